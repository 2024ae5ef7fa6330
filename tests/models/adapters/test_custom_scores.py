"""Custom scores (`explain(..., score_fn=fn)`): every method explains fn(raw model output) instead of the classes.

The reference is the same model with the score function built into its own forward (or its own outputs),
explained the ordinary way, and hand-computed autograd for Grad-CAM."""

from __future__ import annotations

import json

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from toy_models import TinyCNN, count_hooks

import heatlens
from heatlens import LayerError, MethodError, ModelError


class TwoHeads(torch.nn.Module):
    """A shared trunk with two classifier heads; forward returns both, as multi-task models do."""

    def __init__(self) -> None:
        super().__init__()
        self.features = torch.nn.Sequential(torch.nn.Conv2d(3, 6, 3, padding=1), torch.nn.ReLU(),
                                            torch.nn.Conv2d(6, 8, 3, padding=1, stride=2), torch.nn.ReLU())
        self.species = torch.nn.Linear(8, 4)
        self.pose = torch.nn.Linear(8, 3)

    def forward(self, x):
        pooled = self.features(x).mean(dim=(2, 3))
        return self.species(pooled), self.pose(pooled)


class Scored(torch.nn.Module):
    """The reference: `model` with the score function applied inside its own forward."""

    def __init__(self, model: torch.nn.Module, score) -> None:
        super().__init__()
        self.model, self.score = model, score

    def forward(self, x):
        scores = self.score(self.model(x))
        return scores[:, None] if scores.ndim == 1 else scores


def cats(out):
    return out[:, 1:3].sum(dim=1)


def pose(out):
    return out[1]


def constant(out):
    return torch.ones(len(out))


def boom(out):
    return out / 0 if out.ndim > 5 else 1 / 0


@pytest.fixture
def x(rng):
    return rng.standard_normal((3, 8, 8, 3)).astype(np.float32)


def tiny():
    torch.manual_seed(0)
    return TinyCNN(classes=4).eval()


def two_heads():
    torch.manual_seed(1)
    return TwoHeads().eval()


def test_gradcam_of_a_sum_of_classes_is_the_hand_computed_formula(x):
    model = tiny()
    xt = torch.from_numpy(x.transpose(0, 3, 1, 2).copy())
    act = model.features(xt)
    act.retain_grad()
    model.fc(torch.flatten(model.pool(act), 1))[:, 1:3].sum().backward()
    a, g = act.detach().numpy(), act.grad.numpy()
    expected = np.maximum(np.einsum("nc,nchw->nhw", g.mean(axis=(2, 3)), a), 0)
    net = heatlens.wrap(model, preprocess=None)
    out = heatlens.explain(net, x, layer="features", score_fn=cats, upsample=False)
    np.testing.assert_allclose(out.maps[:, 0], expected, rtol=1e-4, atol=1e-7)
    assert out.targets.names == [["cats"]] * 3
    np.testing.assert_allclose(out.logits[:, 0], model(xt)[:, 1:3].sum(1).detach().numpy(), rtol=1e-5)


@pytest.mark.parametrize(("method", "options"), [
    ("gradcam", {}), ("layercam", {}), ("scorecam", {"batch_size": 4}), ("ablationcam", {}),
    ("saliency", {}), ("guided_backprop", {}), ("integrated_gradients", {"steps": 8}),
    ("occlusion", {"window": 4, "stride": 4}), ("rise", {"n_masks": 16, "seed": 0}),
])
def test_every_method_explains_one_output_of_a_multi_output_model(x, method, options):
    model = two_heads()
    layer = {"layer": "features"} if heatlens.methods.get_method(method).uses_layer else {}
    ours = heatlens.explain(heatlens.wrap(model, preprocess=None), x, method=method, target=2, score_fn=pose,
                            **layer, **options)
    ref_layer = {"layer": "model.features"} if layer else {}
    reference = heatlens.explain(heatlens.wrap(Scored(model, pose), preprocess=None), x, method=method, target=2,
                                 **ref_layer, **options)
    np.testing.assert_allclose(ours.maps, reference.maps, rtol=1e-4, atol=1e-6 * np.abs(reference.maps).max())
    assert ours.targets.names == [["pose[2]"]] * 3
    first_head = heatlens.explain(heatlens.wrap(model, preprocess=None), x, method=method, target=2, **layer,
                                  **options)
    assert not np.allclose(first_head.maps, ours.maps)


def test_topk_targets_rank_the_custom_scores(x):
    model = two_heads()
    net = heatlens.wrap(model, preprocess=None)
    out = heatlens.explain(net, x, layer="features", target="top2", score_fn=lambda out: out[1])
    expected = np.argsort(-model(torch.from_numpy(x.transpose(0, 3, 1, 2).copy()))[1].detach().numpy(), axis=1)
    np.testing.assert_array_equal(out.targets.ids, expected[:, :2])
    assert out.targets.names[0][0].startswith("score[")


def test_manifest_records_the_score_function(tmp_path, x):
    net = heatlens.wrap(tiny(), preprocess=None)
    heatlens.explain(net, x, layer="features", score_fn=cats).save(tmp_path)
    manifest = json.loads((tmp_path / "manifest.json").read_text())
    assert manifest["params"]["score_fn"] == "cats"


def test_bad_score_functions_get_one_line_errors_and_leave_no_hooks(x):
    model = tiny()
    net = heatlens.wrap(model, preprocess=None)
    with pytest.raises(ModelError, match=r"score function boom failed on the model's output: ZeroDivisionError"):
        heatlens.explain(net, x, layer="features", score_fn=boom)
    with pytest.raises(ModelError, match=r"must return a torch.Tensor of shape \(N,\) or \(N, K\).*ndarray"):
        heatlens.explain(net, x, layer="features", score_fn=lambda out: out.detach().numpy())
    with pytest.raises(ModelError, match=r"Received: shape=\(3, 4, 1\)"):
        heatlens.explain(net, x, layer="features", score_fn=lambda out: out[..., None])
    with pytest.raises(LayerError, match=r"scores of constant do not depend on 'features': build them from"):
        heatlens.explain(net, x, layer="features", score_fn=constant)
    with pytest.raises(MethodError, match="score_fn must be a function of the model's raw output"):
        heatlens.explain(net, x, layer="features", score_fn=3)
    with pytest.raises(MethodError, match="score= is no option: pass score_fn=callable"):
        heatlens.explain(net, x, layer="features", score=cats)
    assert count_hooks(model) == 0


def test_predict_functions_with_several_outputs(x):
    weights = np.random.default_rng(5).standard_normal((8 * 8 * 3, 5)).astype(np.float32)

    def predict(batch):
        flat = batch.reshape(len(batch), -1)
        return {"logits": flat @ weights[:, :2], "aux": np.tanh(flat @ weights[:, 2:])}

    options = {"method": "occlusion", "window": 4, "stride": 2, "target": 1}
    ours = heatlens.explain(heatlens.wrap(predict, preprocess=None), x, score_fn=lambda out: out["aux"], **options)
    reference = heatlens.explain(heatlens.wrap(lambda b: predict(b)["aux"], preprocess=None), x, **options)
    np.testing.assert_allclose(ours.maps, reference.maps, rtol=1e-5, atol=1e-7)
    with pytest.raises(ModelError, match=r"must return a numpy.ndarray.*Received: a list"):
        heatlens.explain(heatlens.wrap(predict, preprocess=None), x, score_fn=lambda out: [1.0] * len(x), **options)
