"""Pointing game on a model trained in the test: Grad-CAM's peak must land on the deciding object."""

from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip("torch")

from synthetic import make_images, train

import heatlens


@pytest.fixture(scope="module")
def trained():
    model, accuracy = train()
    assert accuracy >= 0.95, f"the synthetic task did not train (held-out accuracy {accuracy:.2f})"
    return heatlens.wrap(model, preprocess=None, classes=["red", "green", "blue"])


def hit_rate(network, method: str, n: int = 200) -> float:
    images, labels, boxes = make_images(n, seed=123)
    maps = heatlens.explain(network, images, method=method, target=[[c] for c in labels]).maps[:, 0]
    hits = 0
    for m, (top, left, bottom, right) in zip(maps, boxes, strict=True):
        y, x = np.unravel_index(m.argmax(), m.shape)
        hits += bool(top <= y < bottom and left <= x < right)
    return hits / n


@pytest.mark.parametrize("method", ["gradcam", "cam"])
def test_peak_falls_on_the_object(trained, method):
    assert hit_rate(trained, method) >= 0.9
