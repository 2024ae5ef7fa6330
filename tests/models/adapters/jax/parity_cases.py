"""The cases both Keras backends explain for the parity tests: one model-building function and one settings table,
imported by the JAX tests and by tf_side.py, which runs the TensorFlow side in its own process (a process has
one Keras backend) and writes its maps to an .npz."""

from __future__ import annotations

import copy

import numpy as np
from attention_methods import ATTENTION_ONLY

import heatlens
from heatlens.methods import METHODS
from heatlens.preprocess import ResizeCrop

# Small settings: every method on both models in seconds.
FAST = {
    "scorecam": {"batch_size": 64},
    "ablationcam": {"batch_size": 64},
    "smoothgrad": {"n_samples": 3, "seed": 0},
    "integrated_gradients": {"steps": 4},
    "expected_gradients": {"n_samples": 3, "seed": 0},
    "occlusion": {"window": 8, "stride": 8, "batch_size": 16},
    "rise": {"n_masks": 16, "cells": 4, "seed": 0, "batch_size": 16},
    "lime": {"num_samples": 24, "segmentation": "slic", "seed": 0, "batch_size": 24},
    "shap_partition": {"max_evals": 40, "batch_size": 40},
}
MODELS = ("sequential", "lite0")


def sequential(weights: list[np.ndarray] | None = None):
    """A small Sequential net (conv-relu, conv, ReLU6, pool, dense) with the given weights (else its own)."""
    import keras

    model = keras.Sequential([
        keras.Input((16, 16, 3)),
        keras.layers.Conv2D(6, 3, padding="same", activation="relu", name="conv1"),
        keras.layers.Conv2D(8, 3, padding="same", strides=2, name="conv2"),
        keras.layers.ReLU(max_value=6.0, name="act2"),
        keras.layers.GlobalAveragePooling2D(name="gap"),
        keras.layers.Dense(5, name="fc"),
    ], name="sequential_parity")
    if weights is not None:
        model.set_weights(weights)
    return model


def network(kind: str, weights: list[np.ndarray] | None = None) -> heatlens.models.Network:
    """The network of a case: the Sequential net on model-ready arrays, or the bundled EfficientNet-Lite0 fed
    small photos (64 px crops, so every method stays fast)."""
    if kind == "sequential":
        return heatlens.wrap(sequential(weights), preprocess=None)
    net = copy.copy(heatlens.load_model("efficientnet_lite0", framework="keras"))
    net.preprocess = ResizeCrop(resize=73, crop=64)
    return net


def inputs(kind: str) -> tuple[np.ndarray, np.ndarray]:
    """(what each method explains, the background for expected_gradients)."""
    if kind == "sequential":
        x = np.random.default_rng(0).uniform(-1, 1, (2, 16, 16, 3)).astype(np.float32)
        return x, x[::-1] * 0.5
    cat = heatlens.samples.load("cat")
    return cat, cat[::-1, ::-1].copy()


def maps(kind: str, net: heatlens.models.Network) -> dict[str, np.ndarray]:
    """Every registered method's maps for the case's inputs and its top-2 classes, and the logits (the bundled
    model's of the photo at its own 224 px)."""
    x, background = inputs(kind)
    out: dict[str, np.ndarray] = {}
    for method in sorted(set(METHODS) - ATTENTION_ONLY):
        options = dict(FAST.get(method, {}))
        if kind == "lite0" and method in ("scorecam", "ablationcam"):
            options["layer"] = "blocks.6"  # 80 channels: one pass each, not the head's 1280
        if method == "expected_gradients":
            options["background"] = background
        result = heatlens.explain(net, x, method=method, target="top2", **options)
        results = result if isinstance(result, list) else [result]
        out[method] = np.concatenate([r.maps for r in results])
        out[f"{method}.targets"] = np.concatenate([r.targets.ids for r in results])
    out["logits"] = net.predict(ResizeCrop(resize=256, crop=224)(x[None]) if kind == "lite0" else x)
    return out
