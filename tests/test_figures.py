"""The shap.image_plot-style signed figure and the LIME figure: colour limits, titles, colour bar label, the
grey photo underneath, and the colours of the saved PNG pixel by pixel."""

from __future__ import annotations

import numpy as np
import pytest
from matplotlib.colors import to_rgb
from PIL import Image

import heatlens
from heatlens import HeatlensError
from heatlens.explanation import Explanation
from heatlens.figures import save_figure, save_signed, signed_figure, value_label
from heatlens.targets import resolve

H, W = 40, 60
CLASSES = ["zero", "one", "two", "three"]


def made(maps: np.ndarray, photos: np.ndarray, method: str = "shap_partition", **fields) -> Explanation:
    """An Explanation of hand-made maps (N, K, H, W) for classes 3, 1, ... of the photos."""
    n, k = maps.shape[:2]
    logits = np.tile(np.arange(len(CLASSES), dtype=np.float32), (n, 1))
    targets = resolve([[3, 1, 2, 0][:k]] * n, logits, CLASSES)
    return Explanation(maps=maps.astype(np.float32), targets=targets, method=method, model="toy", logits=logits,
                       classes=CLASSES, _images=photos, **fields)


@pytest.fixture
def photos(rng):
    return rng.integers(0, 256, (2, H, W, 3), dtype=np.uint8)


def value_axes(figure):
    """The grid's axes showing values: those with two images (the grey photo, then the values)."""
    return [ax for ax in figure.axes if len(ax.get_images()) == 2]


def test_symmetric_limit_titles_label_and_grey_photo(rng, photos):
    maps = rng.normal(size=(2, 3, H, W)) * np.array([1.0, 3.0, 0.5])[:, None, None]
    maps[1] *= 10
    result = made(maps, photos, params={"softmax": False})
    figure = result.plot_signed()
    axes = value_axes(figure)
    assert len(axes) == 6
    limit = np.percentile(np.abs(maps), 99.9)
    for i in range(2):
        for k in range(3):
            ax = axes[3 * i + k]
            grey, values = ax.get_images()
            assert values.get_clim() == pytest.approx((-limit, limit), rel=1e-5)
            np.testing.assert_allclose(values.get_array(), maps[i, k], rtol=1e-6)
            assert ax.get_title() == CLASSES[[3, 1, 2][k]]
            luma = np.asarray(Image.fromarray(photos[i]).convert("L"), np.float32)  # PIL's ITU-R 601-2 luma
            np.testing.assert_allclose(grey.get_array(), luma, atol=1)
            assert grey.get_cmap().name == "gray" and grey.get_clim() == (0, 255) and grey.get_alpha() == 0.15
    (bar,) = [ax for ax in figure.axes if ax.get_xlabel()]
    assert bar.get_xlabel() == "SHAP value (change in the class's logit)"
    assert bar.get_xlim() == pytest.approx((-limit, limit), rel=1e-5)


def test_limits_per_row_give_each_row_its_scale_and_bar(rng, photos):
    maps = rng.normal(size=(2, 2, H, W))
    maps[1] *= 10
    figure = made(maps, photos).plot_signed(limits="row", label="my values")
    axes = value_axes(figure)
    for i in range(2):
        limit = np.percentile(np.abs(maps[i]), 99.9)
        for ax in axes[2 * i : 2 * i + 2]:
            assert ax.get_images()[1].get_clim() == pytest.approx((-limit, limit), rel=1e-5)
    assert [ax.get_xlabel() for ax in figure.axes if ax.get_xlabel()] == ["my values", "my values"]
    fixed = made(maps, photos).plot_signed(vmax=2.5)
    assert all(ax.get_images()[1].get_clim() == (-2.5, 2.5) for ax in value_axes(fixed))


def test_pixel_attributions_are_summed_over_channels(rng, photos):
    attributions = rng.normal(size=(2, 2, H, W, 3)).astype(np.float32)
    result = made(np.abs(attributions).max(axis=-1), photos, method="integrated_gradients",
                  attributions=attributions)
    (ax, *_) = value_axes(result.plot_signed())
    np.testing.assert_allclose(ax.get_images()[1].get_array(), attributions[0, 0].sum(axis=-1), rtol=1e-5)
    assert "integrated gradients" in value_label(result)


def test_the_png_is_red_where_positive_blue_where_negative(tmp_path):
    photo = np.full((1, H, W, 3), 128, np.uint8)
    maps = np.zeros((1, 2, H, W))
    maps[0, 0, :, : W // 2] = 1.0  # class 'three': for, on the left half only
    maps[0, 1, :, W // 2 :] = -1.0  # class 'one': against, on the right half only
    result = made(maps, photo)
    figure = signed_figure(result)
    path = save_figure(figure, tmp_path / "figures" / "signed.png", dpi=80)  # lays the figure out, as drawn
    assert Image.open(save_signed(result, tmp_path / "again.png", dpi=80)).size == Image.open(path).size
    png = np.asarray(Image.open(path).convert("RGB")).astype(int)
    red, blue = np.array(to_rgb((0.88, 0.05, 0.15))) * 255, np.array(to_rgb((0.0, 0.42, 0.88))) * 255
    for ax, (colour, side) in zip(value_axes(figure), [(red, "left"), (blue, "right")], strict=True):
        box = ax.get_window_extent()
        scale = 80 / figure.dpi
        top, bottom = png.shape[0] - box.y1 * scale, png.shape[0] - box.y0 * scale
        rows = slice(int(top) + 3, int(bottom) - 3)
        middle = (box.x0 + box.x1) / 2 * scale
        halves = {"left": png[rows, int(box.x0 * scale) + 3 : int(middle) - 3],
                  "right": png[rows, int(middle) + 3 : int(box.x1 * scale) - 3]}
        coloured, plain = halves[side], halves["right" if side == "left" else "left"]
        assert np.abs(coloured - colour).max() <= 3, side  # full colour: the value is at the limit
        bluish = plain[..., 2] - plain[..., 0]
        reddish = plain[..., 0] - plain[..., 2]
        assert np.abs(bluish).max() <= 2 and np.abs(reddish).max() <= 2  # 0 is transparent over the grey photo
        assert plain.min() >= 230  # the photo is faint (alpha 0.15) underneath


def test_labels_say_what_the_values_are(photos):
    maps = np.zeros((2, 1, H, W))
    assert value_label(made(maps, photos)) == "SHAP value (change in the class's score)"
    noted = made(maps, photos, method="occlusion", notes=["the model's softmax was removed: logits are explained"])
    assert value_label(noted) == "occlusion (drop in the class's logit when the pixel is covered)"
    asked = made(maps, photos, method="lime", params={"softmax": True})
    assert value_label(asked) == "LIME weight (change in the class's probability when the superpixel is shown)"
    assert value_label(made(maps, photos, method="gradcam")) == "gradcam value (from the class's score)"


def test_bad_options_are_refused(photos):
    result = made(np.zeros((2, 1, H, W)), photos)
    with pytest.raises(HeatlensError, match=r"vmax must be a number > 0 \(the colour scale runs from -vmax to "
                                            r"vmax\). Received: -1"):
        result.plot_signed(vmax=-1)
    with pytest.raises(HeatlensError, match=r"limits must be 'figure' or 'row'. Received: 'image'"):
        result.plot_signed(limits="image")
    figure = result.plot_signed()  # all zero: a finite scale, nothing coloured
    assert value_axes(figure)[0].get_images()[1].get_clim() == (-1.0, 1.0)


def test_lime_figure_titles_and_legend(tmp_path):
    segments = (np.arange(H)[:, None] // 10) * 6 + (np.arange(W)[None, :] // 10)

    def predict(x):
        x = np.asarray(x, np.float64)
        return np.stack([x[:, :, :30].mean(axis=(1, 2, 3)), x[:, :, 30:].mean(axis=(1, 2, 3))], axis=1)

    photo = np.random.default_rng(1).integers(0, 256, (H, W, 3), dtype=np.uint8)
    result = heatlens.explain(heatlens.wrap(predict, preprocess=None, classes=["left", "right"]), photo,
                              method="lime", target=[1, 0], num_samples=60, segments=segments, hide=0.0)
    figure = result.plot_lime(num_features=24)
    assert [ax.get_title() for ax in figure.axes] == ["24 superpixels", "right", "left"]
    (legend,) = figure.legends
    assert [t.get_text() for t in legend.get_texts()] == ["for the class", "against the class"]
    shown = figure.axes[1].get_images()[0].get_array()
    np.testing.assert_array_equal(shown, result.lime_boundaries(0, num_features=24))
    assert Image.open(save_figure(figure, tmp_path / "lime.png")).size[0] > 300


def test_large_photos_are_shown_on_every_nth_pixel(rng):
    small = made(rng.normal(size=(1, 1, 10, 12)), rng.integers(0, 256, (1, 30, 36, 3), dtype=np.uint8))
    # reduced pixel j's centre is the photo's pixel 3j + 1's: the same bilinear value
    np.testing.assert_allclose(small.signed_map(0, 0, 3), small.display_map(0, 0)[1::3, 1::3], atol=1e-5)
    tall = made(rng.normal(size=(1, 1, 2100, 40)), np.zeros((1, 2100, 40, 3), np.uint8))
    (ax,) = value_axes(tall.plot_signed())
    grey, values = ax.get_images()
    assert grey.get_array().shape == values.get_array().shape == (700, 14)
    np.testing.assert_array_equal(values.get_array(), tall.maps[0, 0, ::3, ::3])
