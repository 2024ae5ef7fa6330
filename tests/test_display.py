"""The one display: labelled figures (titles, colour bars), sign-aware colours read from the pixels, captum's
attribution view, the notebook's reprs and progress bar, all-zero maps without NaN or warnings."""

from __future__ import annotations

import io
import re
import warnings

import matplotlib
import numpy as np
import pytest
from matplotlib import colormaps
from PIL import Image

from heatlens import HeatlensError, display
from heatlens.explanation import Explanation
from heatlens.progress import text_bar
from heatlens.targets import resolve

matplotlib.use("Agg")
H, W = 40, 60
CLASSES = ["zero", "one", "two", "three"]


def made(maps: np.ndarray, photos: np.ndarray | None = None, method: str = "occlusion", **fields) -> Explanation:
    """An Explanation of hand-made maps (N, K, h, w) for classes 3, 1, ... with logits 0, 1, 2, 3."""
    n, k = maps.shape[:2]
    logits = np.tile(np.arange(len(CLASSES), dtype=np.float32), (n, 1))
    photos = np.full((n, H, W, 3), 128, np.uint8) if photos is None else photos
    return Explanation(maps=maps.astype(np.float32), targets=resolve([[3, 1, 2, 0][:k]] * n, logits, CLASSES),
                       method=method, model="toy", logits=logits, classes=CLASSES, _images=photos, **fields)


def softmax(x: np.ndarray) -> np.ndarray:
    e = np.exp(x - x.max())
    return e / e.sum()


def three_bands() -> np.ndarray:
    """Left third +1 (for the class), middle third 0, right third -1 (against)."""
    m = np.zeros((1, 1, H, W))
    m[..., : W // 3] = 1.0
    m[..., 2 * W // 3 :] = -1.0
    return m


def map_axes(figure):
    """The axes showing a tile, and the colour bar axes under each (figure order: tile, bar, tile, bar)."""
    axes = figure.axes
    return list(zip(axes[::2], axes[1::2], strict=True))


def test_tiles_are_titled_with_class_and_probability_and_have_colour_bars(rng):
    result = made(rng.random((1, 2, 7, 7)), method="gradcam", names=["kitten.jpg"])
    figure = result.plot()
    (photo, photo_bar), *tiles = map_axes(figure)
    assert photo.get_title() == "kitten.jpg" and not photo_bar.axison
    p = softmax(np.arange(4.0))
    assert [ax.get_title() for ax, _ in tiles] == [f"three {p[3]:.0%}", f"one {p[1]:.1%}"]  # 2 figures under 10%
    assert figure.get_suptitle() == "gradcam  ·  toy"
    for (ax, bar), k in zip(tiles, range(2), strict=True):
        (image,) = ax.get_images()
        assert image.get_array().shape == (H, W, 3)
        assert "evidence for the class" in bar.get_xlabel()
        assert bar.get_xlim() == pytest.approx((0.0, result.display_map(0, k).max()), rel=1e-4)  # 0 to the peak
        assert bar.collections or bar.images  # the colour ramp itself is drawn
    import matplotlib.pyplot as plt

    assert plt.get_fignums() == []  # not managed by pyplot: a notebook shows it once


def test_custom_scores_are_titled_with_the_score_not_a_probability(rng):
    """With score_fn= (a detection, a region) a softmax over the K scores means nothing: titles give the score."""
    result = made(rng.random((1, 2, 7, 7)), method="gradcam", params={"score_fn": "detection"})
    titles = [ax.get_title() for ax, _ in map_axes(result.plot())[1:]]
    assert titles == ["three 3", "one 1"] and not any("%" in t for t in titles)


def test_signed_overlay_zero_is_neutral_positive_and_negative_differ():
    """Zero is blended with bwr's neutral middle; +1 and -1 (at the clip) with its two ends: red, blue."""
    result = made(three_bands())
    shown = result.overlay(alpha=0.5)[0, 0].astype(int)
    grey = np.full(3, 128.0)
    bwr = colormaps["bwr"]
    for column, value in [(5, 0.999), (W // 2, 0.5), (W - 5, 0.0)]:
        expected = 0.5 * grey + 0.5 * np.array(bwr(value)[:3]) * 255
        assert np.abs(shown[:, column] - expected).max() <= 2, column
    red, middle, blue = shown[H // 2, 5], shown[H // 2, W // 2], shown[H // 2, W - 5]
    assert red[0] > red[2] + 100 and blue[2] > blue[0] + 100
    assert np.ptp(middle) <= 2  # neutral: no hue


def test_signed_figure_pixels_and_colour_bar(tmp_path):
    """The saved labelled PNG: the tile's left third reddish, middle neutral, right bluish; the bar's ends
    are -limit and +limit with 0 in the middle."""
    result = made(three_bands())
    figure = display.labelled(result, 0, 0, "bands.png")
    path = display.save(figure, tmp_path / "labelled.png")
    ((ax, bar),) = map_axes(figure)
    assert ax.get_title() == f"three {softmax(np.arange(4.0))[3]:.0%}" and "bands.png" in figure.get_suptitle()
    assert bar.get_xlim() == pytest.approx((-1.0, 1.0))
    assert [t.get_text() for t in bar.get_xticklabels()] == ["≤-1", "0", "≥1"]
    assert "occlusion" in bar.get_xlabel() and "blue: against the class" in bar.get_xlabel()
    png = np.asarray(Image.open(path).convert("RGB")).astype(int)
    box = ax.get_window_extent()
    top, bottom = png.shape[0] - box.y1, png.shape[0] - box.y0
    rows = slice(int(top) + 4, int(bottom) - 4)
    width = box.x1 - box.x0
    parts = [png[rows, int(box.x0 + f * width) : int(box.x0 + (f + 0.2) * width)] for f in (0.05, 0.4, 0.75)]
    left, middle, right = (p.reshape(-1, 3).mean(axis=0) for p in parts)
    assert left[0] - left[2] > 80 and right[2] - right[0] > 80 and np.ptp(middle) < 6


def test_signed_maps_are_clipped_at_the_documented_percentile(rng):
    m = rng.normal(size=(1, 1, H, W))
    m[0, 0, 0, 0] = 1000.0  # one outlier must not wash the map out
    result = made(m, method="lime")
    ((_, bar),) = map_axes(display.figure(result, photo=False))
    limit = np.percentile(np.abs(m), 99.9)
    assert bar.get_xlim() == pytest.approx((-limit, limit), rel=1e-4)
    assert display.style(result).percentile == display.SIGNED_PERCENTILE == 99.9
    hue = [np.abs(np.diff(o[..., ::2].astype(int), axis=-1)).mean()  # |red - blue|: 0 where neutral
           for o in (result.overlay(), made(m, method="lime").overlay(percentile=None))]
    assert hue[0] > 10 * hue[1]
    with pytest.raises(HeatlensError, match=r"percentile must be a number in \(0, 100\], None \(the peak\) or "
                                            r"'auto'. Received: 0"):
        result.overlay(percentile=0)


def test_unsigned_maps_use_jet_and_a_map_with_negatives_is_signed(rng):
    assert display.style(made(rng.random((1, 1, 7, 7)), method="gradcam")) == display.Style(False, "jet", None)
    assert display.style(made(rng.normal(size=(1, 1, 7, 7)), method="my_method")).signed
    assert display.style(made(rng.random((1, 1, 7, 7)), method="cam")).cmap == "bwr"
    assert display.style(made(rng.random((1, 1, 7, 7)), method="gradcam"), cmap="viridis").cmap == "viridis"


def test_attribution_view_equals_captums_default_visualisation(rng):
    """captum's visualize_image_attr default: |channel sum|, clipped where 98% of the total is reached."""
    visualization = pytest.importorskip("captum.attr._utils.visualization")
    attributions = (rng.standard_t(2, size=(1, 1, 24, 32, 3))).astype(np.float32)  # heavy tails
    result = made(np.abs(attributions).max(axis=-1), method="integrated_gradients", attributions=attributions,
                  _inputs=None)
    theirs = visualization._normalize_attr(attributions[0, 0].sum(axis=2), "absolute_value", 2)
    ours = result.attribution_images()[0, 0]
    assert np.abs(ours[..., 0] / 255.0 - theirs).max() <= 1 / 255 + 1e-6
    ((ax, bar),) = map_axes(result.plot(photo=False))  # 'auto' shows the attributions
    np.testing.assert_array_equal(ax.get_images()[0].get_array(), ours)
    assert bar.get_xlabel().startswith("|integrated_gradients|")
    assert result.manifest_header()["display"]["labelled"] == {"view": "attributions", "cmap": "gray"}


def test_an_all_zero_map_draws_without_nan_or_warnings(tmp_path):
    result = made(np.zeros((1, 2, 7, 7)), method="shap_partition")
    flat = made(np.zeros((1, 1, 7, 7)), method="gradcam")
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        for r in (result, flat):
            shown = r.overlay()
            figure = r.plot()
            figure.savefig(io.BytesIO(), format="png")
            r._repr_html_()
            r._repr_png_()
            r.save(tmp_path / r.method)
    neutral = result.overlay().astype(int)
    assert np.abs(neutral[..., 0] - neutral[..., 2]).max() <= 1  # bwr's middle, (255, 254, 254): no hue
    assert (shown == flat.overlay()).all() and np.isfinite(figure.axes[1].get_xlim()).all()


def test_notebook_reprs_are_short_and_small(rng):
    result = made(rng.random((1, 2, 7, 7)), photos=rng.integers(0, 256, (1, 600, 900, 3), dtype=np.uint8),
                  method="gradcam", layer="head")
    assert repr(result) == "Explanation(method='gradcam', model='toy', layer='head', 1 image, targets=['three', 'one'])"
    page = result._repr_html_()
    pictures = re.findall(r"<img src='data:image/png;base64,([^']+)' alt='([^']*)'", page)
    sizes = [Image.open(io.BytesIO(__import__("base64").b64decode(data))).size for data, _ in pictures]
    assert len(sizes) == 3 and max(max(s) for s in sizes) <= display.THUMBNAIL_SIDE
    assert "<th>class</th>" in page and page.count("<tr>") == 1 + 4  # the header and the top classes
    assert f"three {softmax(np.arange(4.0))[3]:.0%}" in page
    picture = Image.open(io.BytesIO(result._repr_png_()))
    assert max(picture.size) <= 512
    assert len(result._repr_png_()) < 200_000


def test_save_writes_a_labelled_png_next_to_the_bare_overlay(rng, tmp_path):
    import json

    photo = rng.integers(0, 256, (1, 3000, 200, 3), dtype=np.uint8)
    result = made(rng.random((1, 1, 7, 7)), photos=photo, method="gradcam")
    manifest = json.loads(result.save(tmp_path, stems=["tall"]).read_text())
    (record,) = manifest["images"][0]["targets"]
    assert Image.open(tmp_path / record["overlay"]).size == (200, 3000)
    labelled = Image.open(tmp_path / record["labelled"])
    assert max(labelled.size) <= 1400 and record["labelled"] == "tall_gradcam_1_three_labelled.png"
    assert manifest["display"] == {"alpha": 0.4, "cmap": "jet", "signed": False, "percentile": None,
                                   "scale": "zero to clip", "labelled": {"view": "overlay", "cmap": "jet"}}


def test_the_notebook_bar_redraws_one_line():
    stream = io.StringIO()
    with text_bar(10, "RISE", stream, width=10) as advance:
        for _ in range(10):
            advance(1)
    lines = stream.getvalue().split("\r")
    assert lines[-1].startswith("RISE [##########] 10/10") and stream.getvalue().endswith("\n")
    assert "\n" not in stream.getvalue()[:-1]


def test_progress_shows_in_a_jupyter_kernel_without_a_terminal(monkeypatch, capsys):
    import sys
    import types

    from heatlens.progress import in_notebook, progress_bar

    assert not in_notebook()
    shell = type("ZMQInteractiveShell", (), {"kernel": object()})()
    monkeypatch.setitem(sys.modules, "IPython", types.SimpleNamespace(get_ipython=lambda: shell))
    assert in_notebook()
    with progress_bar(4, "Score-CAM") as advance:
        advance(4)
    err = capsys.readouterr().err
    assert "Score-CAM [" in err and "4/4" in err
    with progress_bar(4, "Score-CAM", enabled=False) as advance:
        advance(4)
    assert capsys.readouterr().err == ""
