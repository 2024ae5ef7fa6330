"""The sanity checks on the bundled pretrained model: Grad-CAM falls apart as the weights are randomised from the top
down, an image-only map (the photo's edge magnitude, a test-only method) stays the same, the user's model is
bit-identical afterwards; the random-logit test against SSIM computed directly."""

from __future__ import annotations

import numpy as np
import pytest
from skimage.metrics import structural_similarity

import heatlens
from heatlens.errors import HeatlensError, LayerError, MethodError, TargetError
from heatlens.methods.registry import METHODS, MethodInfo, MethodOutput
from heatlens.methods.shared import explained
from heatlens.metrics import compute, sanity, sanity_plot
from heatlens.metrics.core import on_grid
from heatlens.metrics.sanity import model_randomisation, random_logit

torch = pytest.importorskip("torch")
from toy_models import TinyCNN, count_hooks


def edge_magnitude(network: heatlens.models.Network, x: np.ndarray, targets: object) -> MethodOutput:
    """|grad| of the input's grey values: a map of the image alone, whatever the model's weights or the class."""
    logits, ids = explained(network, x, targets)
    gy, gx = np.gradient(x.mean(axis=-1), axis=(1, 2))
    edges = np.hypot(gy, gx).astype(np.float32)
    return MethodOutput(maps=np.repeat(edges[:, None], ids.shape[1], axis=1), logits=logits, ids=ids)


@pytest.fixture
def edges():
    METHODS["edge_magnitude"] = MethodInfo("edge_magnitude", edge_magnitude, "edge magnitude of the photo", "test",
                                           needs_gradients=False, uses_layer=False, black_box=True)
    yield "edge_magnitude"
    del METHODS["edge_magnitude"]


def snapshot(module: torch.nn.Module) -> tuple:
    return ({k: v.clone() for k, v in module.state_dict().items()},
            {k: p.requires_grad for k, p in module.named_parameters()},
            {k: m.training for k, m in module.named_modules()}, count_hooks(module))


def assert_unchanged(module: torch.nn.Module, before: tuple) -> None:
    state, grad, training, hooks = snapshot(module)
    assert state.keys() == before[0].keys() and all(torch.equal(state[k], before[0][k]) for k in state)
    assert (grad, training, hooks) == before[1:]


def test_gradcam_falls_apart_as_the_pretrained_model_is_randomised(lite0, cat):
    before = snapshot(lite0.module)
    result = compute("model_randomisation", lite0, cat, "gradcam", max_steps=3, progress=False)
    assert_unchanged(lite0.module, before)
    assert list(result.curves["layers"]) == ["original", "classifier", "head.0", "blocks.15.project.0"]
    spearman, ssim = result.curves["spearman"][0, 0], result.curves["ssim"][0, 0]
    assert spearman[0] == pytest.approx(1.0) and ssim[0] == pytest.approx(1.0)
    assert spearman[1] > 0.3 > spearman[-1] and spearman[1] > spearman[-1]
    assert ssim[-1] < 0.2
    assert result.scores[0, 0] == spearman[-1] and not result.higher_is_better
    assert result.forward_passes == 4  # one traced pass of the photo per run of Grad-CAM
    assert result.curves["maps"].shape == (1, 1, 4, 224, 224) and result.curves["maps"].dtype == np.float16


def test_an_image_only_map_stays_the_same(lite0, cat, edges):
    result = model_randomisation(lite0, cat, edges, layers=["stem", "classifier", "blocks.15"], progress=False)
    assert list(result.curves["layers"]) == ["original", "classifier", "blocks.15", "stem"]  # top down
    np.testing.assert_allclose(result.curves["spearman"], 1.0, atol=1e-9)
    np.testing.assert_allclose(result.curves["ssim"], 1.0, atol=1e-9)
    logit = random_logit(lite0, cat, edges, progress=False)
    assert logit.scores[0, 0] == pytest.approx(1.0)


def test_random_logit_compares_the_map_of_another_class(lite0, cat):
    result = random_logit(lite0, cat, "gradcam", seed=3, progress=False)
    other = int(result.curves["other"][0, 0])
    assert other != result.targets[0, 0]
    assert random_logit(lite0, cat, "gradcam", seed=3, progress=False).curves["other"][0, 0] == other
    explained_maps = {}
    for name, target in (("target", int(result.targets[0, 0])), ("other", other)):
        maps = heatlens.explain(lite0, cat, "gradcam", target=[[target]], upsample=False).maps
        explained_maps[name] = on_grid(maps, (224, 224))[0, 0].astype(np.float64)
    a, b = explained_maps["target"], explained_maps["other"]
    span = max(a.max(), b.max()) - min(a.min(), b.min())
    assert result.scores[0, 0] == pytest.approx(structural_similarity(a, b, data_range=span), abs=1e-6)
    assert result.scores[0, 0] < 0.5


def test_keras_model_randomisation_leaves_the_users_model_alone():
    pytest.importorskip("keras")
    from keras_models import small_cnn

    model = small_cnn()
    rng = np.random.default_rng(0)  # fixed weights: Keras' own draws differ per run, and can give all-zero maps
    model.set_weights([rng.normal(0, 0.5, w.shape).astype(np.float32) for w in model.get_weights()])
    before = [w.copy() for w in model.get_weights()]
    x = rng.uniform(0, 1, (2, 16, 16, 3)).astype(np.float32)
    network = heatlens.wrap(model, preprocess=None)
    result = model_randomisation(network, x, "gradcam", target=0, progress=False)
    assert all(np.array_equal(a, b) for a, b in zip(model.get_weights(), before, strict=True))
    assert list(result.curves["layers"]) == ["original", "fc", "conv2", "conv1"]
    np.testing.assert_allclose(result.curves["spearman"][..., 0], 1.0, atol=1e-9)
    assert np.ptp(result.curves["maps"][:, :, 0], axis=(-2, -1)).min() > 0  # maps with something in them
    assert (result.curves["spearman"][..., -1] < 0.9).all()


CALLS: list[int] = []  # module-level, so the model's deep copies append here too


class CountingCNN(TinyCNN):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        CALLS.append(len(x))
        return super().forward(x)


def test_every_forward_pass_of_the_reruns_is_counted_and_batched():
    torch.manual_seed(0)
    network = heatlens.wrap(CountingCNN(), preprocess=None, input_size=(16, 16))
    x = np.random.default_rng(0).uniform(0, 1, (2, 16, 16, 3)).astype(np.float32)
    explanation = heatlens.explain(network, x, "occlusion", window=8, stride=4, progress=False)
    network.parameter_layers()  # the one probe of the layers, on a zero input, happens here
    CALLS.clear()
    result = model_randomisation(network, None, explanation, batch_size=4, progress=False)
    assert result.forward_passes == sum(CALLS) == 4 * (2 + 2 * 9)  # 4 runs: the 2 images, their 9 windows each
    assert max(CALLS) <= 4
    CALLS.clear()
    logit = random_logit(network, None, explanation, batch_size=4, progress=False)
    assert logit.forward_passes == sum(CALLS) > 0


@pytest.fixture
def tiny() -> heatlens.models.Network:
    torch.manual_seed(0)
    return heatlens.wrap(TinyCNN(), preprocess=None, input_size=(16, 16))


def test_bad_requests_are_refused_before_any_randomisation(tiny):
    x = np.random.default_rng(0).uniform(0, 1, (1, 16, 16, 3)).astype(np.float32)
    with pytest.raises(LayerError, match="holds no parameters heatlens can re-initialise"):
        model_randomisation(tiny, x, "gradcam", layers=["features.1"], progress=False)
    with pytest.raises(MethodError, match="max_steps must be a positive integer"):
        model_randomisation(tiny, x, "gradcam", max_steps=0, progress=False)
    with pytest.raises(MethodError, match="similarity must be one of"):
        model_randomisation(tiny, x, "gradcam", similarity="pearson", progress=False)
    with pytest.raises(MethodError, match="layers must name at least one layer"):
        model_randomisation(tiny, x, "gradcam", layers=[], progress=False)
    with pytest.raises(TargetError, match="each different from its target"):
        random_logit(tiny, x, "gradcam", target=1, other=np.array([[1]]), progress=False)
    with pytest.raises(TargetError, match="other must be class ids of shape"):
        random_logit(tiny, x, "gradcam", target=1, other=np.array([2]), progress=False)


def test_predict_functions_cannot_be_randomised():
    network = heatlens.wrap(lambda x: np.stack([x.mean((1, 2, 3)), -x.mean((1, 2, 3))], 1), preprocess=None)
    x = np.random.default_rng(0).uniform(0, 1, (1, 16, 16, 3)).astype(np.float32)
    with pytest.raises(MethodError, match="sanity checks randomise a model's weights"):
        model_randomisation(network, x, "occlusion", options={"window": 8}, progress=False)


def test_only_the_first_images_maps_are_kept_for_the_plot(tiny, monkeypatch):
    monkeypatch.setattr(sanity, "MAPS_KEPT", 1)
    x = np.random.default_rng(1).uniform(0, 1, (2, 16, 16, 3)).astype(np.float32)
    explanation = heatlens.explain(tiny, x, "gradcam", upsample=False)
    result = model_randomisation(tiny, None, explanation, max_steps=2, progress=False)
    assert result.curves["maps"].shape[:3] == (1, 1, 3) and result.curves["spearman"].shape == (2, 1, 3)
    sanity_plot.figure(result, explanation, image=0)
    with pytest.raises(HeatlensError, match="keeps the maps of its first 1 images only"):
        sanity_plot.figure(result, explanation, image=1)
