"""Shared fixtures: the offline default model (loaded once) and a bundled photo.

Triton (torch's compiler back end) is loaded first: libtriton crashes the process (a segmentation fault) when it
is loaded after TensorFlow, and torchvision, timm, transformers and torch.export load it through torch._dynamo."""

from __future__ import annotations

import contextlib

with contextlib.suppress(ImportError):
    import triton  # noqa: F401

import numpy as np
import pytest

import heatlens


@pytest.fixture(scope="session")
def lite0() -> heatlens.models.Network:
    pytest.importorskip("torch")
    return heatlens.load_model("efficientnet_lite0")


@pytest.fixture(scope="session")
def cat() -> np.ndarray:
    return heatlens.samples.load("cat")


@pytest.fixture
def rng() -> np.random.Generator:
    return np.random.default_rng(0)
