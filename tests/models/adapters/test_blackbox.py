"""Predict functions that misbehave get one-line ModelErrors; well-behaved odd outputs are converted."""

from __future__ import annotations

import numpy as np
import pytest

import heatlens
from heatlens import ModelError

WEIGHTS = np.random.default_rng(1).standard_normal((8 * 8 * 3, 3)).astype(np.float32)
OPTIONS = {"method": "occlusion", "window": 4, "stride": 4, "target": 0}


def linear(batch: np.ndarray) -> np.ndarray:
    return batch.reshape(len(batch), -1) @ WEIGHTS


@pytest.fixture
def x():
    return np.random.default_rng(0).random((2, 8, 8, 3), dtype=np.float32)


@pytest.mark.parametrize(("predict", "message"), [
    (lambda b: np.array([["a", "b", "c"]] * len(b)), r"must return real-valued scores.*dtype=<U1"),
    (lambda b: [[1.0, 2.0]] + [[1.0]] * (len(b) - 1), "not a rectangular array of numbers"),
    (lambda b: linear(b) + 1j, r"must return real-valued scores.*dtype=complex"),
    (lambda b: linear(b)[:1], "returned 1 rows of scores for 2 inputs"),
    (lambda b: linear(b)[:, :0], r"Received: shape=\(2, 0\)"),
])
def test_malformed_outputs(x, predict, message):
    with pytest.raises(ModelError, match=message) as caught:
        heatlens.explain(heatlens.wrap(predict, preprocess=None), x, **OPTIONS)
    assert "\n" not in str(caught.value)


def test_a_multiline_exception_becomes_one_line(x):
    def broken(batch):
        raise AssertionError("first line\nsecond line")

    with pytest.raises(ModelError, match=r"broken failed on inputs of shape \(2, 8, 8, 3\): AssertionError: first "
                                         r"line$"):
        heatlens.explain(heatlens.wrap(broken, preprocess=None), x, **OPTIONS)


def test_a_function_writing_into_its_input_changes_neither_the_caller_nor_the_result(x):
    def scribbles(batch):
        scores = linear(batch)
        batch[:] = 0
        return scores

    before = x.copy()
    ours = heatlens.explain(heatlens.wrap(scribbles, preprocess=None), x, **OPTIONS)
    np.testing.assert_array_equal(x, before)
    np.testing.assert_allclose(ours.maps, heatlens.explain(heatlens.wrap(linear, preprocess=None), x, **OPTIONS).maps)


def test_torch_tensors_that_require_grad_are_scores():
    torch = pytest.importorskip("torch")
    weights = torch.from_numpy(WEIGHTS).requires_grad_()

    def predict(batch):
        return torch.from_numpy(batch.reshape(len(batch), -1)) @ weights

    x = np.random.default_rng(0).random((2, 8, 8, 3), dtype=np.float32)
    ours = heatlens.explain(heatlens.wrap(predict, preprocess=None), x, **OPTIONS)
    np.testing.assert_allclose(ours.maps, heatlens.explain(heatlens.wrap(linear, preprocess=None), x, **OPTIONS).maps,
                               rtol=1e-5, atol=1e-6)
