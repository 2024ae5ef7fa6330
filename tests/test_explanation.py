"""Explanation: overlays, files, manifest and notebook display."""

from __future__ import annotations

import io
import json

import numpy as np
import pytest
from PIL import Image

import heatlens


def test_save_writes_overlays_maps_and_manifest(lite0, cat, tmp_path):
    result = heatlens.explain(lite0, cat, target="top2")
    manifest_path = result.save(tmp_path, stems=["cat"])
    manifest = json.loads(manifest_path.read_text())
    assert manifest["schema_version"] == 1 and manifest["model"] == "efficientnet_lite0"
    assert manifest["method"] == "gradcam" and manifest["layer"] == "head"
    (entry,) = manifest["images"]
    assert [t["id"] for t in entry["targets"]] == list(result.targets.ids[0])
    for k, record in enumerate(entry["targets"]):
        overlay = np.asarray(Image.open(tmp_path / record["overlay"]))
        assert overlay.shape == cat.shape
        np.testing.assert_array_equal(np.load(tmp_path / record["map"]), result.maps[0, k])
        assert 0 <= record["probability"] <= 1


def test_save_refuses_a_file_as_folder(lite0, cat, tmp_path):
    (tmp_path / "taken").write_text("not a folder")
    with pytest.raises(heatlens.ImageError, match=r"it is a file, not a folder"):
        heatlens.explain(lite0, cat).save(tmp_path / "taken")


def test_overlay_leaves_unseen_borders_untouched(lite0, cat):
    result = heatlens.explain(lite0, cat)
    over = result.overlay(alpha=0.5)[0, 0]
    left = int(result.input_box[1]) - 1
    np.testing.assert_array_equal(over[:, :left], cat[:, :left])
    assert not np.array_equal(over[:, left + 20], cat[:, left + 20])


def test_top_and_repr_png(lite0, cat):
    result = heatlens.explain(lite0, cat)
    top = result.top(5)[0]
    assert len(top) == 5 and top[0][1] == result.targets.names[0][0]
    assert [p for *_, p in top] == sorted((p for *_, p in top), reverse=True)
    picture = Image.open(io.BytesIO(result._repr_png_()))
    assert picture.size == (2 * cat.shape[1], cat.shape[0])


def test_plot_returns_a_figure(lite0, cat):
    import matplotlib

    matplotlib.use("Agg")
    fig = heatlens.explain(lite0, cat).plot()
    assert fig.axes
