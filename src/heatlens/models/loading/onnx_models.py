"""ONNX models through onnxruntime, as predict functions: the input's layout (NCHW or NHWC), size, dtype and batch
read from the graph, so black-box methods run on an export without glue code."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import onnxruntime

from ...errors import ModelError, first_line

DTYPES = {"tensor(float)": np.float32, "tensor(float16)": np.float16, "tensor(double)": np.float64,
          "tensor(uint8)": np.uint8}
PROVIDERS = {"cpu": ["CPUExecutionProvider"], "cuda": ["CUDAExecutionProvider", "CPUExecutionProvider"]}


@dataclass(frozen=True)
class OnnxModel:
    """An ONNX graph's one image input and first output, and a predict function over batches for it."""

    path: Path
    session: Any
    input_name: str
    output_name: str
    layout: str
    size: tuple[int, int] | None  # (h, w), None where the graph leaves it open
    dtype: Any
    batch: int | None  # a batch size the graph fixes, else None
    classes: int | None  # the output's class count, when the graph fixes it

    @property
    def __name__(self) -> str:  # the predict function's name in notes and messages
        return self.path.name

    def __call__(self, x: np.ndarray) -> np.ndarray:
        inputs = np.rint(np.clip(x, 0, 255)) if self.dtype == np.uint8 else x
        return self.session.run([self.output_name], {self.input_name: inputs.astype(self.dtype)})[0]


def load_onnx(path: str | Path, device: str = "cpu", layout: str | None = None) -> OnnxModel:
    """An onnxruntime session over the file, with what its input and output declare; `layout` overrides the
    layout read from the graph (the axis of size 3 among the last three, channels first or last)."""
    file = Path(path).expanduser()
    if not file.is_file():
        raise ModelError(f"no model file at '{path}'")
    providers = _providers(device)
    try:
        session = onnxruntime.InferenceSession(str(file), providers=providers)
    except Exception as exc:  # onnxruntime's own errors (a damaged or foreign file) have no common base class
        raise ModelError(f"'{file.name}' is not an ONNX model onnxruntime runs: {first_line(exc)[:200]}") from None
    inputs, outputs = session.get_inputs(), session.get_outputs()
    if len(inputs) != 1:
        names = ", ".join(repr(node.name) for node in inputs)
        raise ModelError(f"'{file.name}' takes {len(inputs)} inputs ({names}); heatlens feeds one image batch: "
                         "export the model with one input, or wrap your own predict function with heatlens.wrap")
    node, output = inputs[0], outputs[0]
    if node.type not in DTYPES:
        raise ModelError(f"'{file.name}' takes {node.type} inputs; heatlens feeds images as one of "
                         f"{', '.join(DTYPES)}")
    shape = list(node.shape)
    if len(shape) != 4:
        raise ModelError(f"'{file.name}' takes inputs of shape {shape}; heatlens feeds image batches "
                         "(N, 3, H, W) or (N, H, W, 3)")
    found = layout or _layout(shape, file.name)
    spatial = shape[2:] if found == "NCHW" else shape[1:3]
    size = (spatial[0], spatial[1]) if all(isinstance(side, int) and side > 0 for side in spatial) else None
    classes = output.shape[-1] if len(output.shape) == 2 and isinstance(output.shape[-1], int) else None
    batch = shape[0] if isinstance(shape[0], int) and shape[0] > 0 else None
    return OnnxModel(file, session, node.name, output.name, found, size, DTYPES[node.type], batch, classes)


def _providers(device: str) -> list[str]:
    kind = device.split(":")[0]
    wanted = PROVIDERS.get(kind)
    if wanted is None or wanted[0] not in onnxruntime.get_available_providers():
        gpu = ", or install onnxruntime-gpu" if kind == "cuda" else ""
        raise ModelError(f"onnxruntime cannot run on '{device}' here (it has {', '.join(_available())}): "
                         f"pass device='cpu'{gpu}")
    return wanted


def _available() -> list[str]:
    return [provider.removesuffix("ExecutionProvider").lower() for provider in onnxruntime.get_available_providers()]


def _layout(shape: list[Any], name: str) -> str:
    """NCHW when axis 1 has 3 channels, NHWC when axis 3 has; a graph that says neither needs layout=."""
    first, last = shape[1] == 3, shape[3] == 3
    if first != last:
        return "NCHW" if first else "NHWC"
    raise ModelError(f"cannot tell from '{name}' whether its input {shape} is channels first or last: pass "
                     "layout='NCHW' or layout='NHWC'")

