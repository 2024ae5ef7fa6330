"""Keras on JAX against Keras on TensorFlow, same weights: the bundled EfficientNet-Lite0 and a small Sequential
net give the same top-5 classes and, for every registered method, maps equal to 1e-4 of their peak. The
TensorFlow side runs once per model in its own process (tf_side.py), all methods in one go."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from conftest import jax_or_skip

jax_or_skip()
import keras
from attention_methods import ATTENTION_ONLY
from parity_cases import MODELS, maps, network

from heatlens.methods import METHODS

HERE = Path(__file__).parent


@pytest.fixture(scope="module", params=MODELS)
def both(request, tmp_path_factory) -> tuple[dict, dict]:
    """(JAX maps, TensorFlow maps) of one model, the TensorFlow ones from a subprocess on the same weights."""
    kind = request.param
    net = network(kind)
    assert keras.backend.backend() == "jax" and type(net).__name__ == "KerasJaxNetwork"
    folder = tmp_path_factory.mktemp(kind)
    weights = net.model.get_weights() if kind == "sequential" else []  # the zoo model loads its own
    np.savez(folder / "weights.npz", **{f"w{i}": w for i, w in enumerate(weights)})
    env = {**os.environ, "KERAS_BACKEND": "tensorflow", "PYTHONPATH": os.pathsep.join(sys.path)}
    done = subprocess.run([sys.executable, str(HERE / "tf_side.py"), kind, str(folder / "weights.npz"),
                           str(folder / "tf.npz")], capture_output=True, text=True, env=env, timeout=900)
    assert done.returncode == 0, done.stderr[-3000:]
    with np.load(folder / "tf.npz") as theirs:
        return maps(kind, net), dict(theirs)


def test_top5_classes_are_equal(both):
    ours, theirs = both
    top5 = lambda logits: np.argsort(-logits, axis=1)[:, :5]  # noqa: E731
    np.testing.assert_array_equal(top5(ours["logits"]), top5(theirs["logits"]))
    np.testing.assert_allclose(ours["logits"], theirs["logits"], rtol=1e-4, atol=1e-4 * np.abs(theirs["logits"]).max())


@pytest.mark.parametrize("method", sorted(set(METHODS) - ATTENTION_ONLY))
def test_maps_are_equal_to_1e4_of_their_peak(both, method):
    ours, theirs = both
    np.testing.assert_array_equal(ours[f"{method}.targets"], theirs[f"{method}.targets"])
    peak = np.abs(theirs[method]).max()
    assert peak > 0, f"{method} gave an all-zero map on TensorFlow"
    assert np.abs(ours[method] - theirs[method]).max() <= 1e-4 * peak
