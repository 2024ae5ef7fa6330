"""Pointing game on models trained in the test: the map's peak must land on the deciding object."""

from __future__ import annotations

import numpy as np
import pytest
from synthetic import make_images, train_keras, train_torch

import heatlens

TRAINERS = {"torch": train_torch, "keras": train_keras}


@pytest.fixture(scope="module", params=sorted(TRAINERS))
def trained(request):
    pytest.importorskip(request.param)
    model, accuracy = TRAINERS[request.param]()
    assert accuracy >= 0.95, f"the synthetic task did not train in {request.param} (held-out accuracy {accuracy:.2f})"
    return heatlens.wrap(model, preprocess=None, classes=["red", "green", "blue"])


def hit_rate(network, method: str, n: int = 200, **options) -> float:
    images, labels, boxes = make_images(n, seed=123)
    if method in ("scorecam", "ablationcam"):
        options |= {"batch_size": 64, "progress": False}
    maps = heatlens.explain(network, images, method=method, target=[[c] for c in labels], **options).maps[:, 0]
    hits = 0
    for m, (top, left, bottom, right) in zip(maps, boxes, strict=True):
        y, x = np.unravel_index(m.argmax(), m.shape)
        hits += bool(top <= y < bottom and left <= x < right)
    return hits / n


def test_gradcam_peak_falls_on_the_object(trained):
    assert hit_rate(trained, "gradcam") >= 0.9


@pytest.mark.parametrize("method", ["cam", "gradcam_plusplus", "xgradcam", "layercam", "hirescam", "eigencam",
                                    "scorecam", "ablationcam"])
def test_cam_family_peak_falls_on_the_object(trained, method):
    assert hit_rate(trained, method) >= 0.85


@pytest.mark.parametrize("composite", ["epsilon_plus", "epsilon_gamma_box"])
def test_lrp_peak_falls_on_the_object(trained, composite):
    assert hit_rate(trained, "lrp", composite=composite) >= 0.85
