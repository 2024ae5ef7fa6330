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
    picture = Image.open(io.BytesIO(result._repr_png_()))  # the labelled figure, small: no 1 MB PNG
    assert max(picture.size) <= 512 and picture.size[0] > picture.size[1]


def test_plot_returns_a_figure(lite0, cat):
    import matplotlib

    matplotlib.use("Agg")
    fig = heatlens.explain(lite0, cat).plot()
    assert fig.axes


@pytest.mark.parametrize("shape", [(1, 3000, 3), (3000, 1, 3)])
@pytest.mark.parametrize(("method", "options"), [("rise", {"n_masks": 32, "batch_size": 32}), ("gradcam", {}),
                                                  ("occlusion", {"window": 56, "stride": 56})])
def test_thin_photos_overlay_where_the_model_looked(lite0, rng, shape, method, options):
    """A 1 x 3000 photo's crop is under a pixel wide: its one pixel column is blended, the rest untouched."""
    photo = rng.integers(0, 256, shape, dtype=np.uint8)
    result = heatlens.explain(lite0, photo, method=method, **options)
    over = result.overlay()[0, 0]
    changed = np.argwhere((over != photo).any(axis=-1))
    assert over.shape == shape and len(changed) == 1
    assert np.isfinite(result.maps).all()


def test_photo_maps_from_a_grid_result_match_an_upsampled_one(lite0, cat, tmp_path):
    """The CLI's low-memory path: explained with upsample=False, written at photo resolution band by band,
    the same files as writing an upsampled result."""
    full = heatlens.explain(lite0, cat, target="top2")
    grid = heatlens.explain(lite0, cat, target="top2", upsample=False)
    full.write_images(tmp_path / "full", stems=["cat"])
    entries = grid.write_images(tmp_path / "grid", stems=["cat"], photo_maps=True)
    for record in entries[0]["targets"]:
        ours, theirs = (np.load(tmp_path / d / record["map"]) for d in ("grid", "full"))
        assert ours.dtype == np.float32 and ours.shape == cat.shape[:2]
        np.testing.assert_allclose(ours, theirs, rtol=1e-5, atol=1e-7 * np.abs(theirs).max())
        pictures = [np.asarray(Image.open(tmp_path / d / record["overlay"]), int) for d in ("grid", "full")]
        assert np.abs(pictures[0] - pictures[1]).max() <= 4 and (pictures[0] != pictures[1]).mean() < 1e-3


def test_overlay_is_the_per_target_overlays(lite0, cat):
    result = heatlens.explain(lite0, cat, target="top2", upsample=False)
    both = result.overlay(alpha=0.5, cmap="viridis")
    for k in range(2):
        np.testing.assert_array_equal(both[0, k], result.overlay_image(0, k, alpha=0.5, cmap="viridis"))
    assert not np.array_equal(both[0, 0], both[0, 1])
