"""The CAM family against each paper's formula, computed independently here with plain torch."""

from __future__ import annotations

import numpy as np
import pytest

torch = pytest.importorskip("torch")
F = torch.nn.functional

import heatlens
from heatlens import LayerError, MethodError


class Deeper(torch.nn.Module):
    """conv-relu-conv-relu [features] conv1x1-relu-GAP-linear: gradients at `features` vary over space."""

    def __init__(self, classes: int = 4) -> None:
        super().__init__()
        self.features = torch.nn.Sequential(torch.nn.Conv2d(3, 6, 3, padding=1), torch.nn.ReLU(),
                                            torch.nn.Conv2d(6, 8, 3, padding=1, stride=2), torch.nn.ReLU())
        self.head = torch.nn.Sequential(torch.nn.Conv2d(8, 5, 1), torch.nn.ReLU())
        self.fc = torch.nn.Linear(5, classes)

    def forward(self, x):
        return self.fc(self.head(self.features(x)).mean(dim=(2, 3)))


@pytest.fixture
def setup(rng):
    torch.manual_seed(0)
    model = Deeper().eval()
    x = rng.standard_normal((2, 8, 8, 3)).astype(np.float32)
    xt = torch.from_numpy(x.transpose(0, 3, 1, 2).copy())
    act = model.features(xt)
    act.retain_grad()
    logits = model.fc(model.head(act).mean(dim=(2, 3)))
    logits[:, 2].sum().backward()
    a = act.detach().numpy()
    g = act.grad.numpy()
    model.zero_grad(set_to_none=True)
    return model, x, xt, a, g


def ours(model, x, method, **options):
    net = heatlens.wrap(model, preprocess=None)
    return heatlens.explain(net, x, method=method, target=2, layer="features", upsample=False, **options).maps[:, 0]


def relu_sum(weights_nc, a):
    return np.maximum(np.einsum("nc,nchw->nhw", weights_nc, a), 0)


def test_gradcam_plusplus(setup):
    model, x, _, a, g = setup
    alpha = g**2 / (2 * g**2 + a.sum(axis=(2, 3), keepdims=True) * g**3 + 1e-30)
    alpha = np.where(g != 0, alpha, 0)
    expected = relu_sum((alpha * np.maximum(g, 0)).sum(axis=(2, 3)), a)
    np.testing.assert_allclose(ours(model, x, "gradcam_plusplus"), expected, rtol=1e-4, atol=1e-6)


def test_xgradcam(setup):
    model, x, _, a, g = setup
    weights = (g * a / (a.sum(axis=(2, 3), keepdims=True) + 1e-7)).sum(axis=(2, 3))
    np.testing.assert_allclose(ours(model, x, "xgradcam"), relu_sum(weights, a), rtol=1e-4, atol=1e-6)


def test_layercam_and_hirescam(setup):
    model, x, _, a, g = setup
    np.testing.assert_allclose(ours(model, x, "layercam"), np.maximum((np.maximum(g, 0) * a).sum(1), 0), atol=1e-6)
    np.testing.assert_allclose(ours(model, x, "hirescam"), np.maximum((g * a).sum(1), 0), atol=1e-6)
    assert not np.allclose(ours(model, x, "hirescam"), ours(model, x, "gradcam"))


def test_eigencam(setup):
    model, x, _, a, _ = setup
    result = ours(model, x, "eigencam")
    for n in range(len(x)):
        m = a[n].reshape(a.shape[1], -1).T
        centred = m - m.mean(axis=0)
        projection = centred @ np.linalg.svd(centred)[2][0]
        if np.corrcoef(projection, m.sum(axis=1))[0, 1] < 0:
            projection = -projection
        np.testing.assert_allclose(result[n], np.maximum(projection, 0).reshape(a.shape[2:]), rtol=1e-4, atol=1e-5)


def test_scorecam(setup):
    model, x, xt, a, _ = setup
    with torch.no_grad():
        masks = F.interpolate(torch.from_numpy(a), size=x.shape[1:3], mode="bilinear", align_corners=False)
        low = masks.amin(dim=(2, 3), keepdim=True)
        masks = (masks - low) / (masks.amax(dim=(2, 3), keepdim=True) - low)
        scores = torch.stack([model(xt[n : n + 1] * masks[n][:, None])[:, 2] for n in range(len(x))])
    weights = torch.softmax(scores, dim=1).numpy()
    np.testing.assert_allclose(ours(model, x, "scorecam", batch_size=3), relu_sum(weights, a), rtol=1e-4, atol=1e-6)


def test_ablationcam(setup):
    model, x, xt, a, _ = setup
    with torch.no_grad():
        base = model(xt)[:, 2]
        drops = []
        for k in range(a.shape[1]):
            def zero(_m, _i, out, k=k):
                return out.index_fill(1, torch.tensor([k]), 0)

            handle = model.features.register_forward_hook(zero)
            drops.append(base - model(xt)[:, 2])
            handle.remove()
    weights = (torch.stack(drops, dim=1) / base[:, None]).numpy()
    np.testing.assert_allclose(ours(model, x, "ablationcam", batch_size=3), relu_sum(weights, a), rtol=1e-4, atol=1e-6)


def test_ablation_fast_tail_equals_full_passes(setup, monkeypatch):
    model, x, *_ = setup
    fast = ours(model, x, "ablationcam")
    monkeypatch.setattr("heatlens.models.adapters.torch.rest_of_network", lambda *_: None)
    np.testing.assert_allclose(ours(model, x, "ablationcam"), fast, atol=1e-6)


def test_eigen_smooth_is_the_first_component_of_the_weighted_activations(setup):
    model, x, _, a, g = setup
    weighted = g.mean(axis=(2, 3))[:, :, None, None] * a
    result = ours(model, x, "gradcam", eigen_smooth=True)
    for n in range(len(x)):
        m = weighted[n].reshape(a.shape[1], -1).T
        centred = m - m.mean(axis=0)
        projection = centred @ np.linalg.svd(centred)[2][0]
        projection *= np.sign(np.corrcoef(projection, m.sum(axis=1))[0, 1])
        np.testing.assert_allclose(result[n], np.maximum(projection, 0).reshape(a.shape[2:]), rtol=1e-4, atol=1e-5)


def test_several_layers_are_upsampled_scaled_and_averaged(setup):
    model, x, *_ = setup
    net = heatlens.wrap(model, preprocess=None)
    fused = heatlens.explain(net, x, target=2, layer=["features.1", "features"], upsample=False)
    parts = []
    for name in ["features.1", "features"]:
        m = torch.from_numpy(heatlens.explain(net, x, target=2, layer=name, upsample=False).maps)
        up = F.interpolate(m, size=x.shape[1:3], mode="bilinear", align_corners=False)
        parts.append((up / up.amax(dim=(2, 3), keepdim=True)).numpy())
    np.testing.assert_allclose(fused.maps, np.mean(parts, axis=0), atol=1e-5)
    assert fused.layer == "features.1, features" and fused.maps.shape == (2, 1, 8, 8)


def test_aug_smooth_averages_flips_and_scalings(setup):
    model, x, *_ = setup
    net = heatlens.wrap(model, preprocess=None)
    smoothed = heatlens.explain(net, x, target=2, layer="features", aug_smooth=True, upsample=False).maps
    views = []
    for flip in (False, True):
        for scale in (1.0, 1.1, 0.9):
            view = (x[:, :, ::-1] if flip else x) * np.float32(scale)
            m = torch.from_numpy(heatlens.explain(net, view, target=2, layer="features", upsample=False).maps)
            up = F.interpolate(m, size=x.shape[1:3], mode="bilinear", align_corners=False)
            up = (up / up.amax(dim=(2, 3), keepdim=True)).numpy()
            views.append(up[..., ::-1] if flip else up)
    np.testing.assert_allclose(smoothed, np.mean(views, axis=0), atol=1e-5)


class TinyViT(torch.nn.Module):
    """Patch embedding, a class token (+ optional register tokens), two encoder blocks, class-token head."""

    def __init__(self, registers: int = 0, classes: int = 3) -> None:
        super().__init__()
        self.embed = torch.nn.Conv2d(3, 16, 4, stride=4)
        self.prefix = torch.nn.Parameter(torch.randn(1, 1 + registers, 16) * 0.1)
        self.position = torch.nn.Parameter(torch.randn(1, 1 + registers + 16, 16) * 0.1)
        self.blocks = torch.nn.Sequential(*[torch.nn.TransformerEncoderLayer(16, 2, 32, dropout=0.0, batch_first=True)
                                            for _ in range(2)])
        self.norm = torch.nn.LayerNorm(16)
        self.head = torch.nn.Linear(16, classes)

    def forward(self, x):
        tokens = self.embed(x).flatten(2).transpose(1, 2)
        tokens = torch.cat([self.prefix.expand(len(x), -1, -1), tokens], dim=1) + self.position
        return self.head(self.norm(self.blocks(tokens))[:, 0])


@pytest.mark.parametrize("registers", [0, 4])
def test_gradcam_on_a_vision_transformer_token_layer(rng, registers):
    torch.manual_seed(0)
    model = TinyViT(registers).eval()
    x = rng.standard_normal((2, 16, 16, 3)).astype(np.float32)
    net = heatlens.wrap(model, preprocess=None)
    result = heatlens.explain(net, x, target=1, layer="blocks.0", upsample=False)
    xt = torch.from_numpy(x.transpose(0, 3, 1, 2).copy())
    held = {}
    handle = model.blocks[0].register_forward_hook(lambda _m, _i, out: held.update(a=out) or out.retain_grad())
    model(xt)[:, 1].sum().backward()
    handle.remove()
    a = held["a"].detach().numpy()[:, 1 + registers :].reshape(2, 4, 4, 16)
    g = held["a"].grad.numpy()[:, 1 + registers :].reshape(2, 4, 4, 16)
    expected = np.maximum(np.einsum("nc,nhwc->nhw", g.mean(axis=(1, 2)), a), 0)
    np.testing.assert_allclose(result.maps[:, 0], expected, rtol=1e-4, atol=1e-6)
    assert heatlens.explain(net, x, target=1, layer="blocks.0").maps.shape == (2, 1, 16, 16)


def test_token_grid_can_be_given_and_errors_are_clear(rng):
    torch.manual_seed(0)
    model = TinyViT(registers=4).eval()
    x = rng.standard_normal((1, 16, 16, 3)).astype(np.float32)
    net = heatlens.wrap(model, preprocess=None)
    auto = heatlens.explain(net, x, layer="blocks.1", upsample=False).maps
    given = heatlens.explain(net, x, layer="blocks.1", upsample=False, grid=(4, 4), prefix_tokens=5).maps
    np.testing.assert_array_equal(auto, given)
    with pytest.raises(LayerError, match="does not fit"):
        heatlens.explain(net, x, layer="blocks.1", grid=(5, 5))
    assert net.default_layer((16, 16, 3)) == "blocks.0"  # blocks.1 does not reach the class token


class TokensOnly(torch.nn.Module):
    """Pixels as tokens through a linear projection: no spatial layer at all."""

    def __init__(self) -> None:
        super().__init__()
        self.proj = torch.nn.Linear(3, 8)
        self.head = torch.nn.Linear(8, 2)

    def forward(self, x):
        return self.head(self.proj(x.flatten(2).transpose(1, 2)).mean(dim=1))


def test_models_with_only_token_layers_must_name_one(rng):
    net = heatlens.wrap(TokensOnly(), preprocess=None)
    x = rng.standard_normal((1, 8, 8, 3)).astype(np.float32)
    with pytest.raises(LayerError, match=r"token layers.*proj"):
        heatlens.explain(net, x)
    assert heatlens.explain(net, x, layer="proj", upsample=False).maps.shape == (1, 1, 8, 8)


def test_cam_family_errors(setup):
    model, x, *_ = setup
    net = heatlens.wrap(model, preprocess=None)
    with pytest.raises(MethodError, match="batch_size"):
        heatlens.explain(net, x, method="scorecam", batch_size=0)
    with pytest.raises(MethodError, match="names no layer"):
        heatlens.explain(net, x, layer=[])


def test_softmax_scores(setup, rng):
    model, x, xt, *_ = setup
    act = model.features(xt)
    act.retain_grad()
    torch.softmax(model.fc(model.head(act).mean(dim=(2, 3))), dim=1)[:, 2].sum().backward()
    g, a = act.grad.numpy(), act.detach().numpy()
    model.zero_grad(set_to_none=True)
    expected = relu_sum(g.mean(axis=(2, 3)), a)
    np.testing.assert_allclose(ours(model, x, "gradcam", softmax=True), expected, rtol=1e-4, atol=1e-7)
    with pytest.raises(MethodError, match=r"score= is no option: pass score_fn=callable .* or softmax=True"):
        ours(model, x, "gradcam", score="softmax")


def test_softmax_scores_keras_equals_torch(lite0, cat):
    pytest.importorskip("keras")
    lite_keras = heatlens.load_model("efficientnet_lite0", framework="keras")
    ours_ = heatlens.explain(lite_keras, cat, method="layercam", softmax=True, upsample=False).maps
    theirs = heatlens.explain(lite0, cat, method="layercam", softmax=True, upsample=False).maps
    assert np.abs(ours_ - theirs).max() / theirs.max() < 1e-4


def test_first_component_of_huge_contributions_scales_instead_of_overflowing():
    from heatlens.methods.cam_template import first_component

    contributions = np.random.default_rng(3).standard_normal((1, 1, 4, 5, 6)).astype(np.float32)
    np.testing.assert_allclose(first_component(contributions * 1e30) / 1e30, first_component(contributions),
                               rtol=1e-4, atol=1e-5)
    contributions[0, 0, 1, 2, 3] = np.inf
    with pytest.raises(heatlens.MethodError, match="eigen_smooth found infinite activations"):
        first_component(contributions)
