"""SHAP partition against the shap package itself: same image, same masker, same max_evals, the same
values (to 1e-5 of their peak), under a budget as well as fully expanded; inpainting on the photo's own
pixel values whatever invertible preprocessing made the model input; additivity to f(x) - f(mean colour)."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

import heatlens
from heatlens import MethodError
from heatlens.methods.inpainting import inpainting_composer
from heatlens.preprocess import ResizeCrop

shap = pytest.importorskip("shap")
pytest.importorskip("cv2")

CAFFE_MEAN = np.float32([103.939, 116.779, 123.68])


def small_network(side: int, seed: int = 1):
    """g(inputs (N, side, side, 3)) -> 5 float32 scores: a random one-hidden-layer tanh network (no ties)."""
    rng = np.random.default_rng(seed)
    hidden = rng.normal(size=(side * side * 3, 8)) / (side * 2)
    out = rng.normal(size=(8, 5))

    def g(x):
        return (np.tanh(np.asarray(x, np.float64).reshape(len(x), -1) @ hidden) @ out).astype(np.float32)

    return g


def photo_of(side: int) -> np.ndarray:
    """The bundled cat resized to side x side: (1, side, side, 3) uint8."""
    return np.asarray(Image.fromarray(heatlens.samples.load("cat")).resize((side, side), Image.BILINEAR))[None]


def shap_values(f, pixels: np.ndarray, masker, max_evals: int, target: int, seed: int = 0, batch_size="auto"):
    """shap's (values (H, W, C), base value) for one image, np.random seeded as heatlens' `seed`."""
    np.random.seed(seed)
    explainer = shap.Explainer(f, shap.maskers.Image(masker, pixels.shape[1:]), algorithm="partition")
    result = explainer(pixels, max_evals=max_evals, outputs=[target], batch_size=batch_size, silent=True)
    return result.values[0, ..., 0], float(result.base_values[0, 0])


def assert_close_to_peak(ours: np.ndarray, theirs: np.ndarray, tolerance: float = 1e-5) -> None:
    assert np.abs(theirs).max() > 0
    assert np.abs(ours - theirs).max() <= tolerance * np.abs(theirs).max()


@pytest.mark.parametrize("max_evals", [100, 500, 2000])
def test_a_constant_masker_under_a_budget(rng, max_evals):
    shape = (16, 16, 3)
    weights = rng.normal(size=shape)

    def f(x):
        s = (np.asarray(x, np.float64).reshape(len(x), *shape) * weights).sum(axis=(1, 2, 3))
        return np.stack([np.tanh(s / 10) + 0.01 * s**2, s], axis=1).astype(np.float32)

    photo = rng.uniform(0, 1, (1, *shape)).astype(np.float32)
    theirs, _ = shap_values(f, photo, 0.0, max_evals, 0)
    ours = heatlens.explain(heatlens.wrap(f, preprocess=None), photo, method="shap_partition", target=0,
                            max_evals=max_evals, masker=0.0, upsample=False, progress=False)
    assert_close_to_peak(ours.attributions[0, 0], theirs)


@pytest.mark.parametrize("masker", ["inpaint_telea", "inpaint_ns"])
@pytest.mark.parametrize("max_evals", [100, 500, 2000])
def test_inpainting_equals_shap_and_adds_up_to_the_mean_colour_image(masker, max_evals):
    """A plain predict function that preprocesses the 0..255 images itself, as the shap tutorial's does."""
    photo = photo_of(32)
    g = small_network(32)

    def predict(images):
        return g(np.asarray(images, np.float32) / 127.5 - 1)

    theirs, base = shap_values(predict, photo.astype(np.float32), masker, max_evals, 3)
    result = heatlens.explain(heatlens.wrap(predict, preprocess=None), photo, method="shap_partition", target=3,
                              max_evals=max_evals, masker=masker, upsample=False, progress=False)
    assert_close_to_peak(result.attributions[0, 0], theirs)
    mean_colour = np.broadcast_to(photo.mean(axis=(1, 2), keepdims=True), photo.shape)
    fully_masked = predict(mean_colour)[0, 3]
    assert result.extras["base_values"][0, 0] == pytest.approx(fully_masked, abs=1e-6)
    assert base == pytest.approx(fully_masked, abs=1e-6)
    total = result.attributions[0, 0].sum()
    assert total == pytest.approx(predict(photo)[0, 3] - fully_masked, abs=1e-5)
    assert abs(total) > 0.01


def test_the_tutorial_setting_a_64_pixel_photo_at_500_evaluations():
    photo = photo_of(64)
    g = small_network(64, seed=2)

    def predict(images):
        return g(np.asarray(images, np.float32) / 127.5 - 1)

    top = int(predict(photo)[0].argmax())
    theirs, _ = shap_values(predict, photo.astype(np.float64), "inpaint_telea", 500, top)
    result = heatlens.explain(heatlens.wrap(predict, preprocess=None), photo, method="shap_partition",
                              target="top1", max_evals=500, masker="inpaint_telea", upsample=False, progress=False)
    assert result.targets.ids[0, 0] == top
    assert_close_to_peak(result.attributions[0, 0], theirs)


def caffe(images: np.ndarray) -> np.ndarray:
    """keras' caffe preprocessing after a resize and crop: RGB to BGR, minus the ImageNet mean."""
    return ResizeCrop(resize=40, crop=32, mean=(0, 0, 0), std=(1, 1, 1))(images)[..., ::-1] - CAFFE_MEAN


@pytest.mark.parametrize("masker", ["inpaint_telea", "inpaint_ns"])
@pytest.mark.parametrize("preprocessing", ["mean_std", "caffe"])
def test_inpainting_undoes_the_preprocessing(cat, masker, preprocessing):
    """The model input is normalised; heatlens inpaints the crop's own pixels, as shap does when given them."""
    g = small_network(32)
    crop = ResizeCrop(resize=40, crop=32, mean=(123.7, 116.3, 103.5), std=(58.4, 57.1, 57.4))
    prep = crop if preprocessing == "mean_std" else caffe
    pixels = ResizeCrop(resize=40, crop=32, mean=(0, 0, 0), std=(1, 1, 1))(cat[None])
    if preprocessing == "mean_std":
        def f(p):
            return g((np.asarray(p, np.float32).reshape(-1, 32, 32, 3) - np.float32(crop.mean)) / np.float32(crop.std))
    else:
        def f(p):
            return g(np.asarray(p, np.float32).reshape(-1, 32, 32, 3)[..., ::-1] - CAFFE_MEAN)

    theirs, base = shap_values(f, pixels, masker, 300, 2)
    result = heatlens.explain(heatlens.wrap(g, preprocess=prep), cat, method="shap_partition", target=2,
                              max_evals=300, masker=masker, upsample=False, progress=False)
    assert_close_to_peak(result.attributions[0, 0], theirs, 1e-5)
    assert result.extras["base_values"][0, 0] == pytest.approx(base, abs=1e-5)


def test_the_inpainted_inputs_are_shaps(rng):
    """Random keep masks, partial pixels among them, and the all-kept and all-masked masks: each input
    equals shap's Image masker's (a pixel with any channel masked is inpainted whole; all masked: the mean)."""
    photo = photo_of(24)[0].astype(np.float32)
    net = heatlens.wrap(lambda x: x.reshape(len(x), -1)[:, :2], preprocess=None)
    keep = rng.random((6, *photo.shape)) < np.array([0.5, 0.9, 0.97, 0.2, 1.0, 0.0])[:, None, None, None]
    for masker in ("inpaint_telea", "inpaint_ns"):
        ours = inpainting_composer(net, photo, masker)(keep)
        reference = shap.maskers.Image(masker, photo.shape)
        for mask, mine in zip(keep, ours, strict=True):
            np.testing.assert_allclose(mine, reference(mask.ravel(), photo)[0][0], rtol=1e-6)


@pytest.mark.parametrize("max_evals", [34, 62, 181])
def test_ties_are_broken_as_shap_breaks_them_with_the_same_seed(max_evals):
    """A mirror-symmetric image and function: mirrored blocks tie exactly, and which one a round takes
    changes the values; np.random.seed(seed) before shap gives heatlens' seed's order."""
    rng = np.random.default_rng(0)
    half = rng.integers(0, 256, (16, 8, 3))
    photo = np.concatenate([half, half[:, ::-1]], axis=1)[None].astype(np.float32)

    def f(x):
        x = np.asarray(x, np.float64).reshape(len(x), 16, 16, 3)
        a, b = x[:, 2:9, 1:6].sum(axis=(1, 2, 3)) / 5000, x[:, 2:9, 10:15].sum(axis=(1, 2, 3)) / 5000
        return np.stack([np.tanh(a) * np.tanh(b) + a * a + b * b, a + b], axis=1).astype(np.float32)

    net = heatlens.wrap(f, preprocess=None)
    seeded = {seed: heatlens.explain(net, photo, method="shap_partition", target=0, max_evals=max_evals, masker=0.0,
                                     seed=seed, upsample=False, progress=False).attributions[0, 0] for seed in (0, 1)}
    assert np.abs(seeded[0] - seeded[1]).max() > 1e-3 * np.abs(seeded[0]).max()
    for seed, ours in seeded.items():
        assert_close_to_peak(ours, shap_values(f, photo, 0.0, max_evals, 0, seed=seed)[0])


def test_rounds_are_shaps_batch_size_and_model_batches_change_nothing(rng):
    photo = rng.integers(0, 256, (1, 16, 16, 3)).astype(np.float32)
    g = small_network(16)
    net = heatlens.wrap(g, preprocess=None)
    runs = [heatlens.explain(net, photo, method="shap_partition", target=1, max_evals=300, masker="inpaint_telea",
                             round_size=4, batch_size=size, upsample=False, progress=False).attributions[0, 0]
            for size in (1, 3, "auto")]
    np.testing.assert_array_equal(runs[0], runs[1])
    np.testing.assert_array_equal(runs[0], runs[2])
    assert_close_to_peak(runs[0], shap_values(g, photo, "inpaint_telea", 300, 1, batch_size=4)[0])
    default = heatlens.explain(net, photo, method="shap_partition", target=1, max_evals=300, masker="inpaint_telea",
                               upsample=False, progress=False).attributions[0, 0]
    assert np.abs(default - runs[0]).max() > 1e-3 * np.abs(default).max()


def test_inpainting_refuses_inputs_that_are_not_pixel_values(rng):
    photo = rng.integers(0, 256, (1, 8, 8, 3)).astype(np.float32)
    g = small_network(8)
    explain = lambda net, x: heatlens.explain(net, x, method="shap_partition", max_evals=20,  # noqa: E731
                                              masker="inpaint_telea", progress=False)
    with pytest.raises(MethodError, match=r"range over .*; pass the photo's 0..255 values"):
        explain(heatlens.wrap(g, preprocess=None), photo / 127.5 - 1)
    with pytest.raises(MethodError, match=r"look like 0\.\.1 floats"):
        explain(heatlens.wrap(g, preprocess=None), photo / 255)
    squared = heatlens.wrap(g, preprocess=lambda images: (images.astype(np.float32) / 255) ** 2)
    with pytest.raises(MethodError, match="preprocessing is not a per-pixel linear colour map"):
        explain(squared, photo.astype(np.uint8))
    with pytest.raises(MethodError, match="1- or 3-channel"):
        explain(heatlens.wrap(lambda x: x.reshape(len(x), -1)[:, :3], preprocess=None), photo[..., :2])
    with pytest.raises(MethodError, match="round_size must be a positive integer"):
        heatlens.explain(heatlens.wrap(g, preprocess=None), photo, method="shap_partition", round_size=0)
