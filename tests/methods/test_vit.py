"""Attention rollout and Chefer relevance against the papers' formulas, evaluated on attention probabilities the
tests compute themselves (from the weights, or through the libraries' own explicit attention paths), on a
hand-built 2-block ViT and on torchvision, timm and Hugging Face ViTs (random weights); the model is left as it
came, also after a failure; models without attention are refused in one line."""

from __future__ import annotations

import copy
import json
import math

import numpy as np
import pytest

import heatlens

torch = pytest.importorskip("torch")
from toy_models import TinyCNN, count_hooks
from toy_vit import tiny_vit

SIZE = 24


@pytest.fixture
def x(rng):
    return rng.standard_normal((2, SIZE, SIZE, 3)).astype(np.float32)


def nchw(x: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(x.transpose(0, 3, 1, 2).copy())


# ---------------------------------------------------------------- the oracles (written apart from heatlens)

def tiny_reference(model, x: np.ndarray) -> tuple[torch.Tensor, list[torch.Tensor]]:
    """A TinyViT's logits and per-block attention softmax(Q K^T / sqrt(d)) (N, heads, T, T), computed from its
    weights by the formulas; the probabilities are graph nodes, so gradients can be taken w.r.t. them."""
    tokens = model.embed(nchw(x))
    attentions = []
    for block in model.blocks:
        mha = block.attn
        n, t, dim = tokens.shape
        heads, size = mha.num_heads, dim // mha.num_heads
        h = block.norm1(tokens)
        q, k, v = (torch.nn.functional.linear(h, w, b).reshape(n, t, heads, size).permute(0, 2, 1, 3)
                   for w, b in zip(mha.in_proj_weight.chunk(3), mha.in_proj_bias.chunk(3), strict=True))
        a = torch.softmax(q @ k.transpose(-1, -2) / size**0.5, dim=-1)
        attentions.append(a)
        context = (a @ v).permute(0, 2, 1, 3).reshape(n, t, dim)
        tokens = tokens + torch.nn.functional.linear(context, mha.out_proj.weight, mha.out_proj.bias)
        tokens = tokens + block.mlp(block.norm2(tokens))
    return model.head(model.norm(tokens[:, 0])), attentions


def rollout_reference(attentions: list[np.ndarray], fusion: str = "mean", discard: float = 0.0,
                      prefix: int = 1) -> np.ndarray:
    """Abnar & Zuidema's rollout, image by image: Ã = normalise_rows(0.5 fuse_h(A) + 0.5 I), R = Ã_B ... Ã_1;
    the class token's row over the patches (N, patches). `discard`: the smallest weights of each fused matrix
    below the discard quantile set to 0, the class token's self-attention kept (jacobgil/vit-explain)."""
    rows = []
    for image in range(len(attentions[0])):
        tokens = attentions[0].shape[-1]
        relevance = np.eye(tokens)
        for a in attentions:
            fused = {"mean": np.mean, "max": np.max, "min": np.min}[fusion](a[image], axis=0)
            count = int(fused.size * discard)
            if count:
                cut = np.sort(fused, axis=None)[count - 1]
                keep_first = fused[0, 0]
                fused = np.where(fused <= cut, 0.0, fused)
                fused[0, 0] = keep_first
            step = 0.5 * fused + 0.5 * np.eye(tokens)
            step = step / step.sum(axis=1, keepdims=True)
            relevance = step @ relevance
        rows.append(relevance[0, prefix:])
    return np.array(rows)


def chefer_reference(score: torch.Tensor, attentions: list[torch.Tensor], prefix: int = 1) -> np.ndarray:
    """Chefer, Gur & Wolf 2021 (eqs. 5-6): Ā = E_h[(∇A ⊙ A)^+], R = I + ..., R <- R + Ā R block by block, by
    autograd of the summed target score through the attention probabilities; class-token row (N, patches)."""
    grads = torch.autograd.grad(score.sum(), attentions, retain_graph=True)
    tokens = attentions[0].shape[-1]
    relevance = torch.eye(tokens, dtype=torch.float64).expand(len(score), tokens, tokens)
    for a, g in zip(attentions, grads, strict=True):
        weighted = (g.double() * a.detach().double()).clamp(min=0).mean(dim=1)
        relevance = relevance + weighted @ relevance
    return relevance[:, 0, prefix:].numpy()


def on_grid(rows: np.ndarray) -> np.ndarray:
    side = math.isqrt(rows.shape[-1])
    return rows.reshape(len(rows), side, side)


def maps_of(net, x, method: str, target, **options) -> np.ndarray:
    return heatlens.explain(net, x, method=method, target=target, upsample=False, **options).maps


# ---------------------------------------------------------------- the hand-built 2-block ViT

@pytest.fixture(scope="module")
def tiny():
    return tiny_vit()


def test_the_reference_forward_is_the_model(tiny, x):
    logits, _ = tiny_reference(tiny, x)
    with torch.no_grad():
        np.testing.assert_allclose(logits.detach().numpy(), tiny(nchw(x)).numpy(), rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize(("fusion", "discard"), [("mean", 0.0), ("max", 0.5), ("min", 0.2)])
def test_rollout_equals_the_direct_computation(tiny, x, fusion, discard):
    _, attentions = tiny_reference(tiny, x)
    expected = rollout_reference([a.detach().double().numpy() for a in attentions], fusion, discard)
    maps = maps_of(heatlens.wrap(tiny, preprocess=None), x, "attention_rollout", 1, head_fusion=fusion,
                   discard_ratio=discard)
    np.testing.assert_allclose(maps[:, 0], on_grid(expected), rtol=1e-5, atol=1e-7)


def test_rollout_does_not_depend_on_the_target(tiny, x):
    maps = maps_of(heatlens.wrap(tiny, preprocess=None), x, "attention_rollout", [0, 3])
    np.testing.assert_array_equal(maps[:, 0], maps[:, 1])
    assert maps.std() > 0


@pytest.mark.parametrize("softmax", [False, True])
def test_chefer_equals_the_authors_formula(tiny, x, softmax):
    logits, attentions = tiny_reference(tiny, x)
    scores = torch.softmax(logits, dim=1) if softmax else logits
    maps = maps_of(heatlens.wrap(tiny, preprocess=None), x, "chefer", [0, 3], softmax=softmax)
    for k, target in enumerate([0, 3]):
        expected = on_grid(chefer_reference(scores[:, target], attentions))
        np.testing.assert_allclose(maps[:, k], expected, rtol=1e-5, atol=1e-6 * np.abs(expected).max())


def test_chefer_maps_differ_between_targets(tiny, x):
    maps = maps_of(heatlens.wrap(tiny, preprocess=None), x, "chefer", [0, 3])
    assert np.abs(maps[:, 0] - maps[:, 1]).max() > 1e-3 * np.abs(maps).max()


def test_grid_and_prefix_tokens_lay_the_tokens_out(tiny, x):
    net = heatlens.wrap(tiny, preprocess=None)
    np.testing.assert_array_equal(maps_of(net, x, "chefer", 0, grid=(6, 6), prefix_tokens=1),
                                  maps_of(net, x, "chefer", 0))
    with pytest.raises(heatlens.LayerError, match="does not fit 37 tokens"):
        maps_of(net, x, "chefer", 0, grid=(5, 5), prefix_tokens=1)


@pytest.mark.parametrize(("options", "message"), [
    ({"head_fusion": "median"}, "head_fusion must be one of"),
    ({"discard_ratio": 1.0}, r"discard_ratio must be a number in \[0, 1\)"),
    ({"discard_ratio": -0.1}, r"discard_ratio must be a number in \[0, 1\)"),
])
def test_rollout_options_are_checked(tiny, x, options, message):
    with pytest.raises(heatlens.MethodError, match=message):
        maps_of(heatlens.wrap(tiny, preprocess=None), x, "attention_rollout", 0, **options)


# ---------------------------------------------------------------- torchvision, timm and Hugging Face ViTs

@pytest.fixture(scope="module")
def torchvision_vit():
    torchvision = pytest.importorskip("torchvision")
    torch.manual_seed(0)
    model = torchvision.models.vit_b_16(weights=None, image_size=32, num_classes=4).eval()
    torch.nn.init.normal_(model.heads.head.weight)  # torchvision starts the head at zero: every score would be 0
    return model


def test_torchvision_vit(torchvision_vit, rng):
    x = rng.standard_normal((1, 32, 32, 3)).astype(np.float32)
    attentions = []

    def ask_for_weights(_module, args, kwargs):  # torch's own per-head weights, as an oracle
        return args, {**kwargs, "need_weights": True, "average_attn_weights": False}

    def keep(_module, _args, out):
        attentions.append(out[1].detach().double().numpy())

    blocks = [block.self_attention for block in torchvision_vit.encoder.layers]
    handles = [b.register_forward_pre_hook(ask_for_weights, with_kwargs=True) for b in blocks]
    handles += [b.register_forward_hook(keep) for b in blocks]
    try:
        with torch.no_grad():
            torchvision_vit(nchw(x))
    finally:
        for handle in handles:
            handle.remove()
    net = heatlens.wrap(torchvision_vit, preprocess=None)
    before = model_state(torchvision_vit)
    rollout = maps_of(net, x, "attention_rollout", 0)
    np.testing.assert_allclose(rollout[:, 0], on_grid(rollout_reference(attentions)), rtol=1e-4, atol=1e-7)
    chefer = heatlens.explain(net, x, method="chefer", target=[0, 1], upsample=False)
    assert chefer.maps.shape == (1, 2, 2, 2) and np.isfinite(chefer.maps).all()
    assert np.abs(chefer.maps[:, 0] - chefer.maps[:, 1]).max() > 0
    assert chefer.extras["attention_layers"][0] == "encoder.layers.encoder_layer_0.self_attention." \
                                                   "heatlens_probabilities"
    assert model_state(torchvision_vit) == before


def timm_reference(model, x: np.ndarray) -> tuple[torch.Tensor, list[torch.Tensor]]:
    """A timm ViT's logits and attention probabilities through timm's own explicit path (fused attention off, on
    a copy), taken at the output of each block's attn_drop (an identity in eval mode)."""
    copied = copy.deepcopy(model)
    attentions: list[torch.Tensor] = []
    for block in copied.blocks:
        block.attn.fused_attn = False
        block.attn.attn_drop.register_forward_hook(lambda _m, _i, out: attentions.append(out))
    return copied(nchw(x)), attentions


@pytest.fixture(scope="module", params=["vit_tiny_patch16_224", "deit_tiny_distilled_patch16_224"])
def timm_vit(request):
    timm = pytest.importorskip("timm")
    torch.manual_seed(0)
    return timm.create_model(request.param, pretrained=False, img_size=48, num_classes=4).eval()


def test_timm_vit_and_deit(timm_vit, rng):
    x = rng.standard_normal((2, 48, 48, 3)).astype(np.float32)
    prefix = timm_vit.num_prefix_tokens  # 2 for DeiT: the class and the distillation token
    logits, attentions = timm_reference(timm_vit, x)
    net = heatlens.wrap(timm_vit, preprocess=None)
    before = model_state(timm_vit)
    rollout = heatlens.explain(net, x, method="attention_rollout", target=0, upsample=False)
    expected = rollout_reference([a.detach().double().numpy() for a in attentions], prefix=prefix)
    np.testing.assert_allclose(rollout.maps[:, 0], on_grid(expected), rtol=1e-4, atol=1e-7)
    assert rollout.extras["prefix_tokens"] == prefix
    chefer = maps_of(net, x, "chefer", [0, 2])
    for k, target in enumerate([0, 2]):
        expected = on_grid(chefer_reference(logits[:, target], attentions, prefix))
        np.testing.assert_allclose(chefer[:, k], expected, rtol=1e-4, atol=1e-6 * np.abs(expected).max())
    assert np.abs(chefer[:, 0] - chefer[:, 1]).max() > 0
    assert_left_as_it_came(timm_vit, x[:1], before)


@pytest.fixture(scope="module", params=["ViT", "DeiT"])
def hf_vit(request):
    transformers = pytest.importorskip("transformers")
    torch.manual_seed(0)
    config = getattr(transformers, f"{request.param}Config")(
        image_size=32, patch_size=8, hidden_size=32, num_hidden_layers=2, num_attention_heads=2, intermediate_size=64,
        num_labels=4, attn_implementation="eager")
    return getattr(transformers, f"{request.param}ForImageClassification")(config).eval()


def test_hugging_face_vit_and_deit(hf_vit, rng):
    x = rng.standard_normal((2, 32, 32, 3)).astype(np.float32)
    out = hf_vit(nchw(x), output_attentions=True)  # the library's own eager probabilities, in the graph
    prefix = out.attentions[0].shape[-1] - 16  # 4x4 patches after the class (and DeiT's distillation) token
    net = heatlens.wrap(hf_vit, preprocess=None)
    before = model_state(hf_vit)
    rollout = heatlens.explain(net, x, method="attention_rollout", target=0, upsample=False)
    expected = rollout_reference([a.detach().double().numpy() for a in out.attentions], prefix=prefix)
    np.testing.assert_allclose(rollout.maps[:, 0], on_grid(expected), rtol=1e-5, atol=1e-7)
    assert rollout.extras["prefix_tokens"] == prefix
    chefer = maps_of(net, x, "chefer", [1, 3])
    for k, target in enumerate([1, 3]):
        expected = on_grid(chefer_reference(out.logits[:, target], list(out.attentions), prefix))
        np.testing.assert_allclose(chefer[:, k], expected, rtol=1e-4, atol=1e-6 * np.abs(expected).max())
    assert_left_as_it_came(hf_vit, x[:1], before)


def test_transformer_encoder_layers_skip_torchs_fast_path(rng):
    torch.manual_seed(0)
    layer = torch.nn.TransformerEncoderLayer(8, 2, dim_feedforward=16, batch_first=True)
    model = torch.nn.Sequential(torch.nn.Conv2d(3, 8, 4, stride=4), torch.nn.Flatten(2), Transposed(),
                                torch.nn.TransformerEncoder(layer, 2, enable_nested_tensor=False), MeanHead()).eval()
    net = heatlens.wrap(model, preprocess=None)
    x = rng.standard_normal((1, 16, 16, 3)).astype(np.float32)
    maps = maps_of(net, x, "attention_rollout", 0)
    assert maps.shape == (1, 1, 4, 4) and np.isfinite(maps).all()
    assert torch.backends.mha.get_fastpath_enabled()


class Transposed(torch.nn.Module):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x.transpose(1, 2)


class MeanHead(torch.nn.Module):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x.mean(dim=1)[:, :3]


# ---------------------------------------------------------------- the model as it came; refusals

def model_state(model) -> tuple:
    """What a call must leave as it was: weights, submodules, per-instance forward and flags, hooks, modes."""
    own = tuple((name, vars(m).get("forward"), vars(m).get("fused_attn")) for name, m in model.named_modules())
    weights = tuple((k, v.double().sum().item()) for k, v in model.state_dict().items())
    return (own, weights, count_hooks(model), tuple(m.training for m in model.modules()),
            torch.backends.mha.get_fastpath_enabled())


def failing_score(_out):
    raise RuntimeError("a score function that fails")


def assert_left_as_it_came(model, x: np.ndarray, before: tuple) -> None:
    """After the calls a test made, and after one that fails inside its pass (a score function that raises), the
    model's state is what it was `before` them."""
    assert model_state(model) == before
    with pytest.raises(heatlens.ModelError, match="a score function that fails"):
        heatlens.explain(heatlens.wrap(model, preprocess=None), x, method="chefer", score_fn=failing_score)
    assert model_state(model) == before


def test_the_model_is_left_as_it_came_also_after_an_exception(tiny, rng):
    x = rng.standard_normal((1, SIZE, SIZE, 3)).astype(np.float32)
    net = heatlens.wrap(tiny, preprocess=None)
    before = model_state(tiny)
    heatlens.explain(net, x, method="attention_rollout", target=[0, 1])
    heatlens.explain(net, x, method="chefer", target=[0, 1])
    with pytest.raises(heatlens.ModelError, match="a score function that fails"):
        heatlens.explain(net, x, method="attention_rollout", score_fn=failing_score)
    assert_left_as_it_came(tiny, x, before)


def test_masked_attention_is_refused_in_one_line(rng):
    class Masked(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.embed = torch.nn.Conv2d(3, 8, 4, stride=4)
            self.attn = torch.nn.MultiheadAttention(8, 2, batch_first=True)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            tokens = self.embed(x).flatten(2).transpose(1, 2)
            mask = torch.zeros(tokens.shape[1], tokens.shape[1], dtype=torch.bool)
            return self.attn(tokens, tokens, tokens, attn_mask=mask)[0].mean(dim=1)

    model = Masked().eval()
    before = model_state(model)
    with pytest.raises(heatlens.MethodError, match="called with an attention mask") as caught:
        heatlens.explain(heatlens.wrap(model, preprocess=None), rng.standard_normal((1, 8, 8, 3)).astype(np.float32),
                         method="chefer", target=0)
    assert "\n" not in str(caught.value)
    assert model_state(model) == before


@pytest.mark.parametrize("method", ["attention_rollout", "chefer"])
def test_a_cnn_is_refused_in_one_line(method, x):
    model = TinyCNN().eval()
    with pytest.raises(heatlens.MethodError, match="TinyCNN has no attention layers heatlens can read") as caught:
        heatlens.explain(heatlens.wrap(model, preprocess=None), x, method=method)
    assert "\n" not in str(caught.value)
    assert count_hooks(model) == 0


def test_the_command_line_runs_both_methods(tmp_path, rng):
    from PIL import Image
    from typer.testing import CliRunner

    from heatlens.cli import app

    photo = tmp_path / "photo.png"
    Image.fromarray(rng.integers(0, 256, (64, 80, 3), dtype=np.uint8)).save(photo)
    for method, option in (("attention_rollout", "head_fusion=max"), ("chefer", "softmax=true")):
        out = tmp_path / method
        result = CliRunner().invoke(app, ["explain", str(photo), "--model", "toy_vit:tiny_vit_224", "--method", method,
                                          "-o", option, "--target", "2", "--out", str(out)])
        assert result.exit_code == 0, result.output
        manifest = json.loads((out / "manifest.json").read_text())
        assert manifest["method"] == method and manifest["layer"] is None
        target = manifest["images"][0]["targets"][0]
        assert np.asarray(Image.open(out / target["overlay"])).shape == (64, 80, 3)
