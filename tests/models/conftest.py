"""Loads triton (torch's compiler back end) before any test here imports TensorFlow: libtriton crashes the process
(a segmentation fault) when it is loaded after TensorFlow, and torchvision, timm, transformers and torch.export
load it through torch._dynamo (as tests/methods/conftest.py does for the methods' tests)."""

from __future__ import annotations

import contextlib

with contextlib.suppress(ImportError):
    import triton  # noqa: F401
