"""compare(): several methods, the same targets, one figure (rows = image x target, columns = methods)."""

from __future__ import annotations

import json

import numpy as np
import pytest

import heatlens
from heatlens import MethodError

OCCLUSION = {"occlusion": {"window": 112, "stride": 112}}


@pytest.fixture(scope="module")
def comparison(lite0, cat):
    return heatlens.compare(lite0, cat, ["gradcam", "occlusion", "eigencam"], target="top2", options=OCCLUSION)


def test_every_method_explains_the_same_targets(comparison, lite0, cat):
    assert comparison.methods == ["gradcam", "occlusion", "eigencam"]
    ids = {m: r.targets.ids.tolist() for m, r in comparison.results.items()}
    assert len({str(v) for v in ids.values()}) == 1
    alone = heatlens.explain(lite0, cat, "occlusion", "top2", window=112, stride=112)
    np.testing.assert_allclose(comparison.results["occlusion"].maps, alone.maps, rtol=1e-6)


def test_the_figure_has_a_row_per_target_and_a_column_per_method(comparison):
    fig = comparison.figure()
    axes = fig.get_axes()
    assert len(axes) == 2 * 4
    assert [ax.get_title() for ax in axes[:4]] == ["photo", "gradcam", "occlusion", "eigencam"]
    names = comparison.results["gradcam"].targets.names[0]
    assert [axes[r * 4].get_ylabel().split(" (")[0] for r in range(2)] == names
    assert all("%" in axes[r * 4].get_ylabel() for r in range(2))


def test_save_writes_the_figure_and_a_folder_per_method(comparison, tmp_path):
    manifest = json.loads(comparison.save(tmp_path / "cmp").read_text())
    assert (tmp_path / "cmp" / "comparison.png").is_file()
    assert [e["method"] for e in manifest["images"]] == comparison.methods
    for entry in manifest["images"]:
        assert json.loads((tmp_path / "cmp" / entry["manifest"]).read_text())["method"] == entry["method"]


def test_bad_requests_are_refused_before_any_work(lite0, cat):
    with pytest.raises(MethodError, match="methods must be a list of method names"):
        heatlens.compare(lite0, cat, "gradcam")
    with pytest.raises(MethodError, match="each method can be compared once"):
        heatlens.compare(lite0, cat, ["gradcam", "gradcam"])
    with pytest.raises(MethodError, match=r"options= names methods that are not compared: \['lime'\]"):
        heatlens.compare(lite0, cat, ["gradcam"], options={"lime": {}})


def test_signed_methods_keep_their_own_colours_in_the_comparison(comparison):
    occlusion = comparison.results["occlusion"]
    np.testing.assert_array_equal(comparison.figure().get_axes()[2].get_images()[0].get_array(),
                                  occlusion.overlay_image(0, 0))


def test_results_of_photo_files_carry_their_names(lite0, tmp_path):
    path, other = heatlens.samples.path("coffee"), heatlens.samples.path("rocket")
    assert heatlens.explain(lite0, path, method="eigencam").names == [path.name]
    assert heatlens.explain(lite0, [path, path], method="eigencam").names == [path.name] * 2
    assert [r.names for r in heatlens.explain(lite0, [path, other], method="eigencam")] == [[path.name], [other.name]]
