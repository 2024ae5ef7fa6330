"""Gradient methods against hand-derived formulas, captum as an oracle, and torch/Keras parity."""

from __future__ import annotations

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from toy_models import TinyCNN

import heatlens
from heatlens import ImageError, MethodError, ModelError

H = W = 4


def linear_model(classes: int = 3, seed: int = 0) -> torch.nn.Module:
    torch.manual_seed(seed)
    return torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(3 * H * W, classes))


def weight_image(model: torch.nn.Module, cls: int) -> np.ndarray:
    """The linear layer's row for `cls` as an (H, W, 3) image: the exact input gradient."""
    return model[1].weight[cls].detach().numpy().reshape(3, H, W).transpose(1, 2, 0)


def nchw(x: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(np.ascontiguousarray(x.transpose(0, 3, 1, 2)))


@pytest.fixture
def x(rng):
    return rng.standard_normal((2, H, W, 3)).astype(np.float32)


def explain(model, x, method, **options):
    return heatlens.explain(heatlens.wrap(model, preprocess=None), x, method=method, upsample=False, **options)


def test_saliency_and_gradient_x_input_on_a_linear_model(x):
    model = linear_model()
    g = weight_image(model, 2)
    sal = explain(model, x, "saliency", target=2)
    np.testing.assert_allclose(sal.attributions[:, 0], np.broadcast_to(g, x.shape), atol=1e-6)
    np.testing.assert_allclose(sal.maps[:, 0], np.abs(g).max(axis=-1)[None].repeat(2, 0), atol=1e-6)
    gxi = explain(model, x, "gradient_x_input", target=2)
    np.testing.assert_allclose(gxi.maps[:, 0], (x * g).sum(axis=-1), atol=1e-5)


@pytest.mark.parametrize("integration", ["gausslegendre", "riemann_left", "riemann_middle", "riemann_trapezoid"])
def test_integrated_gradients_on_a_linear_model_is_exact(x, integration):
    model = linear_model()
    baseline = np.full((1, H, W, 3), 0.3, np.float32)
    result = explain(model, x, "integrated_gradients", target=1, steps=8, baseline=baseline, integration=integration)
    np.testing.assert_allclose(result.attributions[:, 0], (x - baseline) * weight_image(model, 1), atol=1e-5)
    assert np.abs(result.extras["completeness_gap"]).max() < 1e-4


def test_smoothgrad_on_a_linear_model_is_the_gradient(x):
    model = linear_model()
    result = explain(model, x, "smoothgrad", target=0, n_samples=5, noise=0.3)
    np.testing.assert_allclose(result.attributions[:, 0], np.broadcast_to(weight_image(model, 0), x.shape), atol=1e-5)


class Quadratic(torch.nn.Module):
    """score = sum(w * x^2): gradient 2 w x, so E[g(x + e)] = 2 w x and E[g^2] = 4 w^2 (x^2 + sigma^2)."""

    def __init__(self, w: np.ndarray) -> None:
        super().__init__()
        self.w = torch.nn.Parameter(torch.from_numpy(w))

    def forward(self, x):
        return (self.w * x * x).flatten(1).sum(1, keepdim=True)


def test_smoothgrad_and_squared_match_their_expectations(x):
    w = np.random.default_rng(1).uniform(0.5, 1.5, (3, H, W)).astype(np.float32)
    model = Quadratic(w)
    w_img = w.transpose(1, 2, 0)
    noise = 0.1
    sigma = noise * (x.max(axis=(1, 2, 3)) - x.min(axis=(1, 2, 3)))[:, None, None, None]
    n = 4000
    plain = explain(model, x, "smoothgrad", target=0, n_samples=n, noise=noise, batch_size=500)
    five_standard_errors = 5 * 2 * w_img * sigma / np.sqrt(n)
    assert (np.abs(plain.attributions[:, 0] - 2 * w_img * x) <= five_standard_errors).all()
    squared = explain(model, x, "smoothgrad", target=0, n_samples=4000, noise=noise, squared=True, batch_size=500)
    expected = 4 * w_img**2 * (x**2 + sigma**2)
    np.testing.assert_allclose(squared.attributions[:, 0], expected, rtol=0.1, atol=0.05)


class ReluMLP(torch.nn.Module):
    """f = V relu(W x): guided dx = W^T (max(v, 0) * [Wx > 0]); deconv dx = W^T max(v, 0)."""

    def __init__(self, relu: torch.nn.Module | None, seed: int = 0) -> None:
        super().__init__()
        torch.manual_seed(seed)
        self.hidden = torch.nn.Linear(3 * H * W, 10, bias=False)
        self.out = torch.nn.Linear(10, 2, bias=False)
        self.relu = relu

    def forward(self, x):
        h = self.hidden(x.flatten(1))
        h = self.relu(h) if self.relu is not None else torch.nn.functional.relu(h)
        return self.out(h)


@pytest.mark.parametrize("relu", [torch.nn.ReLU(), torch.nn.ReLU(inplace=True), None], ids=["module", "inplace", "F"])
def test_guided_backprop_and_deconvnet_by_hand(x, relu):
    model = ReluMLP(relu)
    w = model.hidden.weight.detach().numpy()
    v = model.out.weight.detach().numpy()[1]
    flat = x.transpose(0, 3, 1, 2).reshape(2, -1)
    guided = explain(model, x, "guided_backprop", target=1).attributions[:, 0]
    deconv = explain(model, x, "deconvnet", target=1).attributions[:, 0]
    for n in range(2):
        mask = (w @ flat[n]) > 0
        g = (w.T @ (np.maximum(v, 0) * mask)).reshape(3, H, W).transpose(1, 2, 0)
        d = (w.T @ np.maximum(v, 0)).reshape(3, H, W).transpose(1, 2, 0)
        np.testing.assert_allclose(guided[n], g, atol=1e-5)
        np.testing.assert_allclose(deconv[n], d, atol=1e-5)


def test_guided_backprop_in_place_equals_out_of_place(rng):
    x = rng.standard_normal((2, 8, 8, 3)).astype(np.float32)
    plain, inplace = TinyCNN(inplace=False), TinyCNN(inplace=True)
    inplace.load_state_dict(plain.state_dict())
    a = explain(plain, x, "guided_backprop", target="top2")
    b = explain(inplace, x, "guided_backprop", target="top2")
    np.testing.assert_allclose(a.attributions, b.attributions, atol=1e-6)
    assert not np.allclose(a.attributions, explain(plain, x, "saliency", target="top2").attributions)


def test_guided_rules_refuse_models_without_relu(x):
    with pytest.raises(ModelError, match="no ReLU"):
        explain(linear_model(), x, "guided_backprop")


def test_expected_gradients_with_one_background_image_on_a_linear_model(x):
    model = linear_model()
    background = np.full((1, H, W, 3), -0.2, np.float32)
    result = explain(model, x, "expected_gradients", target=0, background=background, n_samples=6)
    np.testing.assert_allclose(result.attributions[:, 0], (x - background) * weight_image(model, 0), atol=1e-5)


def test_expected_gradients_prepares_background_photos_of_different_sizes_one_by_one(rng):
    """Two photos of different sizes that crop to the same inputs are one reference x': A = (x - x') * w."""
    model = linear_model()
    crop = heatlens.wrap(model, preprocess=lambda photos: photos[:, :H, :W].astype(np.float32) / 255)
    photo = rng.integers(0, 256, (H, W, 3), dtype=np.uint8)
    small, large = np.full((H + 1, W, 3), 51, np.uint8), np.full((H + 3, W + 2, 3), 51, np.uint8)
    result = heatlens.explain(crop, photo, method="expected_gradients", target=0, background=[small, large],
                              n_samples=4, upsample=False)
    expected = (photo.astype(np.float32) / 255 - 0.2) * weight_image(model, 0)
    np.testing.assert_allclose(result.attributions[0, 0], expected, atol=1e-5)
    assert result.extras["background_size"] == 2


def test_expected_gradients_at_a_layer_by_hand(rng):
    """After the layer: global average pooling and a linear layer, so dy/dA = w / (h w) everywhere."""
    torch.manual_seed(0)
    model = TinyCNN(classes=3)
    x = rng.standard_normal((2, 8, 8, 3)).astype(np.float32)
    background = rng.standard_normal((1, 8, 8, 3)).astype(np.float32)
    result = explain(model, x, "expected_gradients", target=2, background=background, n_samples=5, layer="features")
    with torch.no_grad():
        a_x = model.features(nchw(x)).numpy().transpose(0, 2, 3, 1)
        a_b = model.features(nchw(background)).numpy().transpose(0, 2, 3, 1)
    w = model.fc.weight[2].detach().numpy() / (a_x.shape[1] * a_x.shape[2])
    np.testing.assert_allclose(result.attributions[:, 0], (a_x - a_b) * w, atol=1e-5)
    assert result.layer == "features" and result.maps.shape == (2, 1, 4, 4)


def test_expected_gradients_completeness_in_expectation(rng):
    """sum A ~ f(x) - E f(x') over many samples (exact for linear models, close for a small CNN)."""
    torch.manual_seed(0)
    model = TinyCNN(classes=3)
    net = heatlens.wrap(model, preprocess=None)
    x = rng.standard_normal((1, 8, 8, 3)).astype(np.float32)
    background = rng.standard_normal((4, 8, 8, 3)).astype(np.float32)
    result = heatlens.explain(net, x, method="expected_gradients", target=1, background=background, n_samples=3000,
                              batch_size=500)
    expected = float(net.predict(x)[0, 1] - net.predict(background)[:, 1].mean())
    assert float(result.attributions.sum()) == pytest.approx(expected, abs=0.05 * abs(expected) + 0.02)


def test_batch_size_and_seed(x):
    model = TinyCNN(classes=3)
    xs = np.random.default_rng(3).standard_normal((3, 8, 8, 3)).astype(np.float32)
    small = explain(model, xs, "integrated_gradients", steps=9, batch_size=4)
    large = explain(model, xs, "integrated_gradients", steps=9, batch_size=100)
    np.testing.assert_allclose(small.attributions, large.attributions, atol=1e-6)
    one = explain(model, xs, "smoothgrad", n_samples=6, seed=1).attributions
    np.testing.assert_array_equal(one, explain(model, xs, "smoothgrad", n_samples=6, seed=1).attributions)
    assert not np.array_equal(one, explain(model, xs, "smoothgrad", n_samples=6, seed=2).attributions)


def test_option_errors(x):
    model = linear_model()
    with pytest.raises(MethodError, match="steps must be a positive integer"):
        explain(model, x, "integrated_gradients", steps=0)
    with pytest.raises(MethodError, match="unknown baseline"):
        explain(model, x, "integrated_gradients", baseline="grey")
    with pytest.raises(MethodError, match="unknown integration method"):
        explain(model, x, "integrated_gradients", integration="simpson")
    with pytest.raises(MethodError, match="needs background"):
        explain(model, x, "expected_gradients")
    with pytest.raises(MethodError, match="does not fit"):
        explain(model, x, "integrated_gradients", baseline=np.zeros((5, 5)))
    with pytest.raises(MethodError, match=r"noise must be a number >= 0. Received: -0.1"):
        explain(model, x, "smoothgrad", noise=-0.1)
    with pytest.raises(MethodError, match=r"noise=nan is not valid for expected_gradients: noise takes a finite"):
        explain(model, x, "expected_gradients", background=x, noise=float("nan"))
    with pytest.raises(MethodError, match=r"background=\[\] holds no images"):
        crop = heatlens.wrap(model, preprocess=lambda photos: photos[:, :H, :W].astype(np.float32) / 255)
        explain(crop, np.zeros((8, 8, 3), np.uint8), "expected_gradients", background=[])
    with pytest.raises(ImageError, match="empty batch"):
        explain(model, x, "expected_gradients", background=x[:0])


def test_attribution_images_and_files(lite0, cat, tmp_path):
    result = heatlens.explain(lite0, cat, method="guided_backprop")
    shown = result.attribution_images("seed")
    assert shown.shape == (1, 1, 224, 224, 3) and shown.dtype == np.uint8
    assert abs(float(shown.mean()) - 127.5) < 10
    manifest = result.save(tmp_path)
    assert (tmp_path / "image0_guided_backprop_1_tiger-cat_attributions.png").is_file()
    assert manifest.is_file()
    with pytest.raises(heatlens.HeatlensError, match="no pixel attributions"):
        heatlens.explain(lite0, cat).attribution_images()


class CaptumOracle:
    """captum (a test-only dependency) on the same model, inputs and targets."""

    @staticmethod
    def run(name: str, model, x: np.ndarray, target: int, **kwargs) -> np.ndarray:
        captum_attr = pytest.importorskip("captum.attr")
        inputs = nchw(x).requires_grad_()
        method = getattr(captum_attr, name)(model, **kwargs.pop("init", {}))
        out = method.attribute(inputs, target=target, **kwargs)
        return out.detach().numpy().transpose(0, 2, 3, 1)


@pytest.mark.parametrize(("ours", "theirs", "kwargs"), [
    ("saliency", "Saliency", {"abs": False}),
    ("gradient_x_input", "InputXGradient", {}),
    ("guided_backprop", "GuidedBackprop", {}),
    ("deconvnet", "Deconvolution", {}),
])
def test_pixel_methods_equal_captum(rng, ours, theirs, kwargs):
    torch.manual_seed(0)
    model = TinyCNN(classes=4).eval()
    x = rng.standard_normal((2, 8, 8, 3)).astype(np.float32)
    result = explain(model, x, ours, target=3)
    expected = CaptumOracle.run(theirs, model, x, 3, **kwargs)
    np.testing.assert_allclose(result.attributions[:, 0], expected, atol=1e-6)


def test_integrated_gradients_equals_captum_on_the_pretrained_model(lite0, cat):
    x = lite0.prepare(cat[None])
    base = lite0.prepare(np.zeros((1, 224, 224, 3), np.uint8))
    ours = heatlens.explain(lite0, cat, method="integrated_gradients", target=282, steps=16, upsample=False)
    captum_attr = pytest.importorskip("captum.attr")
    theirs, delta = captum_attr.IntegratedGradients(lite0.module).attribute(
        nchw(x), nchw(base), target=282, n_steps=16, method="gausslegendre", return_convergence_delta=True)
    np.testing.assert_allclose(ours.attributions[0, 0], theirs[0].detach().numpy().transpose(1, 2, 0), atol=1e-6)
    assert ours.extras["completeness_gap"][0, 0] == pytest.approx(float(delta[0]), abs=1e-3)


def test_guided_gradcam_equals_captum_with_bilinear_upsampling(rng):
    captum_attr = pytest.importorskip("captum.attr")
    torch.manual_seed(0)
    model = TinyCNN(classes=4).eval()
    x = rng.standard_normal((2, 8, 8, 3)).astype(np.float32)
    ours = explain(model, x, "guided_gradcam", target=1, layer="features")
    theirs = captum_attr.GuidedGradCam(model, model.features).attribute(nchw(x), target=1, interpolate_mode="bilinear")
    np.testing.assert_allclose(ours.attributions[:, 0], theirs.detach().numpy().transpose(0, 2, 3, 1), atol=1e-6)


class Squares(torch.nn.Module):
    """f_k(x) = (k + 1) * sum x^2: the noise of local smoothing shows in the expected gradients."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        total = (x**2).flatten(1).sum(1, keepdim=True)
        return torch.cat([total, 2 * total], dim=1)


def test_local_smoothing_is_shaps_noise_on_the_explained_point(rng):
    """With one background image r and e ~ N(0, s^2) on x: E[(x + e - r) * 2 (r + a (x + e - r))] =
    x^2 - r^2 + s^2 per input, which shap's GradientExplainer(local_smoothing=s) estimates too."""
    shap = pytest.importorskip("shap")
    x = rng.uniform(-1, 1, (1, 2, 2, 3)).astype(np.float32)
    r = rng.uniform(-1, 1, (1, 2, 2, 3)).astype(np.float32)
    s = 0.7
    ours = explain(Squares(), x, "expected_gradients", target=0, background=r, n_samples=20000,
                   local_smoothing=s, batch_size=5000).attributions[0, 0]
    expected = x[0] ** 2 - r[0] ** 2 + s**2
    np.testing.assert_allclose(ours, expected, atol=0.06)
    np.random.seed(0)
    torch.manual_seed(0)
    explainer = shap.GradientExplainer(Squares(), nchw(r), local_smoothing=s)
    theirs = np.asarray(explainer.shap_values(nchw(x), nsamples=8000))[0, ..., 0].transpose(1, 2, 0)
    np.testing.assert_allclose(theirs, expected, atol=0.1)
    plain = explain(Squares(), x, "expected_gradients", target=0, background=r, n_samples=20000,
                    noise=0.7, batch_size=5000).attributions[0, 0]
    np.testing.assert_allclose(plain, x[0] ** 2 - r[0] ** 2, atol=0.06)  # noise= is not local_smoothing


def test_noise_and_local_smoothing_together_are_refused(x):
    with pytest.raises(MethodError, match="give noise= or local_smoothing=, not both"):
        explain(linear_model(), x, "expected_gradients", background=x, noise=0.1, local_smoothing=0.1)
    with pytest.raises(MethodError, match=r"local_smoothing must be a number >= 0"):
        explain(linear_model(), x, "expected_gradients", background=x, local_smoothing=-1.0)
