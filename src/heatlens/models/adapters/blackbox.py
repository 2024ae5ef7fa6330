"""Adapter for a plain `predict(inputs) -> scores` function: any framework, or none (an ONNX session,
a web service wrapper). It offers predictions only, so only perturbation methods can run on it."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from ...errors import HeatlensError, MethodError, ModelError, first_line
from ...preprocess import AsGiven
from ...targets import check_ids
from ..base import LayerInfo, Network, Preprocess, Split, Targets, Trace, TraceRequest
from ..objectives import LOGITS, Objective

Predict = Callable[[np.ndarray], np.ndarray]
LAYOUTS = ("NHWC", "NCHW")


class BlackBoxNetwork(Network):
    """A predict function seen as a Network: `predict` in batches, `trace` for scores only."""

    def __init__(self, predict: Predict, preprocess: Preprocess | None = None, classes: Sequence[str] | None = None,
                 name: str | None = None, batch_size: int = 32, layout: str = "NHWC") -> None:
        if not callable(predict):
            raise ModelError(f"expected a predict function. Received: {type(predict).__name__}")
        if layout not in LAYOUTS:
            raise ModelError(f"layout must be 'NHWC' (channels last) or 'NCHW' (channels first, as a torch or ONNX "
                             f"export takes them). Received: {layout!r}")
        self.layout = layout
        self.function = predict
        self.preprocess = preprocess
        self.classes = list(classes) if classes is not None else None
        self.name = name or str(getattr(predict, "__name__", "predict"))
        self.batch_size = batch_size

    def _adapter_notes(self) -> list[str]:
        """What the predict function receives, said in the result."""
        axes = "(N, H, W, 3)" if self.layout == "NHWC" else "(N, 3, H, W)"
        if isinstance(self.preprocess, AsGiven):
            return [f"{self.name} received the images as given: uint8 RGB {axes} at the photo's size"]
        if self.preprocess is None:
            return [f"{self.name} received the arrays as given, as float32 {axes.replace('3', 'C')}"]
        return [f"{self.name} received the images preprocessed by {_describe(self.preprocess)}, {axes}"]

    def layers(self, input_shape: tuple[int, ...] | None = None) -> list[LayerInfo]:
        return []

    def _predict_chunk(self, chunk: np.ndarray) -> np.ndarray:
        given = _as_photos(chunk) if isinstance(self.preprocess, AsGiven) else np.array(chunk)
        if self.layout == "NCHW":
            given = np.ascontiguousarray(given.transpose(0, 3, 1, 2))
        try:
            output = self.function(given)  # a copy: a function that writes into its input changes nothing
        except HeatlensError:
            raise
        except Exception as exc:
            raise ModelError(f"{self.name} failed on inputs of shape {chunk.shape}: "
                             f"{type(exc).__name__}: {first_line(exc)}") from exc
        scores = output if self.score_function is None else self._custom_scores(output, np.ndarray)
        return self._as_scores(scores)

    def _as_scores(self, output: object) -> np.ndarray:
        """A predict function's output as a real numeric array: framework tensors are detached and copied to
        the host; strings, ragged lists, complex numbers and other objects are refused."""
        if hasattr(output, "detach") and hasattr(output, "cpu"):  # a torch tensor, possibly requiring grad
            output = output.detach().cpu().numpy()
        try:
            scores = np.asarray(output)
        except (ValueError, TypeError):
            scores = np.asarray(None)
        if scores.dtype.kind not in "fiu" or scores.ndim != 2:
            what = (f"shape={scores.shape}, dtype={scores.dtype}" if scores.dtype != object
                    else f"a {type(output).__name__} that is not a rectangular array of numbers")
            raise ModelError(f"{self.name} must return real-valued scores of shape (N, classes). Received: {what}")
        return scores

    def trace(self, x: np.ndarray, targets: Targets = None, capture: Sequence[str] = (), wrt: Sequence[str] = (),
              relu: str = "normal", inject: dict[str, np.ndarray] | None = None,
              objective: Objective = LOGITS, rules: Any = None, keep_on_device: bool = False) -> Trace:
        if capture or wrt or inject or relu != "normal" or rules is not None:
            raise MethodError(
                f"{self.name} is a black-box predict function: it has no layers or gradients, so only "
                "perturbation methods (occlusion, rise, lime, shap_partition) can explain it"
            )
        return super().trace(x, targets)

    def _trace_chunk(self, request: TraceRequest) -> Trace:
        scores = self.predict(request.x)
        targets = request.targets
        ids = None if targets is None else check_ids(targets(scores) if callable(targets) else targets, *scores.shape)
        return Trace(logits=scores, targets=ids)

    def split(self, layer: str) -> Split:
        raise MethodError(f"{self.name} is a black-box predict function and has no layers to split at")

    def default_layer(self, input_shape: tuple[int, ...] | None = None) -> str:
        raise MethodError(f"{self.name} is a black-box predict function: use a perturbation method")

    def _no_weights(self) -> MethodError:
        return MethodError(f"{self.name} is a black-box predict function: sanity checks randomise a model's weights, "
                           "so they need the torch or Keras model itself (heatlens.wrap(model))")


def _as_photos(x: np.ndarray) -> np.ndarray:
    """Perturbed float photos back to uint8, cut as numpy assigns floats into a uint8 image (as lime does)."""
    return np.clip(x, 0, 255).astype(np.uint8)


def _describe(preprocess: Preprocess) -> str:
    """A preprocessing in a few words: a function by its name, a spec by its fields."""
    return getattr(preprocess, "__name__", None) or repr(preprocess)
