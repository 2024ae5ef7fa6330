"""The model-randomisation figure: titled map tiles per step beside the labelled similarity curve, and a caption
saying what a good method does."""

from __future__ import annotations

import numpy as np
import pytest
from planted import explanation_of, planted_images, planted_network, true_maps

from heatlens.errors import HeatlensError
from heatlens.metrics import sanity_plot
from heatlens.metrics.core import MetricResult

LAYERS = np.array(["original", "fc", "conv2", "bn1", "conv1"])
SPEARMAN = np.array([1.0, 0.6, 0.3, 0.1, 0.0])


@pytest.fixture
def case():
    network, x = planted_network(), planted_images(1)
    maps = true_maps(1)
    explanation = explanation_of(network, x, maps)
    steps = np.repeat(maps[:, :, None], len(LAYERS), axis=2) * np.linspace(1, 0.2, len(LAYERS))[:, None, None]
    curves = {"layers": LAYERS, "spearman": SPEARMAN[None, None], "ssim": 0.8 * SPEARMAN[None, None],
              "maps": steps.astype(np.float16)}
    result = MetricResult("model_randomisation", "occlusion", SPEARMAN[None, None, -1], False, 5,
                          np.zeros((1, 1), int), curves=curves)
    return result, explanation


def test_the_figure_shows_each_step_beside_the_curve(case, tmp_path):
    result, explanation = case
    figure = sanity_plot.figure(result, explanation)
    titles = [ax.get_title() for ax in figure.axes if ax.get_title()]
    assert titles[:3] == ["image 0", "original\nSpearman 1.00", "+ fc randomised\nSpearman 0.60"]
    assert "+ conv1 randomised\nSpearman 0.00" in titles
    curve = next(ax for ax in figure.axes if ax.get_ylabel())
    assert curve.get_ylabel() == "similarity to the original map"
    assert "layers randomised" in curve.get_xlabel()
    assert curve.get_ylim() == (-1.05, 1.05)
    assert [t.get_text() for t in curve.get_xticklabels()] == list(LAYERS)
    assert [t.get_text() for t in curve.get_legend().get_texts()] == ["Spearman rank correlation", "SSIM"]
    assert any(line.get_linestyle() == "--" and set(line.get_ydata()) == {0.0} for line in curve.get_lines())
    np.testing.assert_allclose(curve.get_lines()[0].get_ydata(), SPEARMAN)
    assert "falls apart as the model's weights are randomised" in figure._supxlabel.get_text()
    path = sanity_plot.save(result, explanation, tmp_path / "sanity.png")
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_only_matching_results_are_drawn(case):
    result, explanation = case
    with pytest.raises(HeatlensError, match="draws model_randomisation results"):
        sanity_plot.figure(MetricResult("deletion", "occlusion", result.scores, False, 1, result.targets), explanation)
    with pytest.raises(HeatlensError, match="this explanation is not the one the result measured"):
        sanity_plot.figure(MetricResult("model_randomisation", "gradcam", result.scores, False, 1, result.targets,
                                        curves=result.curves), explanation)
    with pytest.raises(HeatlensError, match=r"steps must be step numbers in 0\.\.4"):
        sanity_plot.figure(result, explanation, steps=[0, 7])
