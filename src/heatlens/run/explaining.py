"""One batch of decoded images -> one Arrow table of rows: predictions, targets, per method the maps (float16 at
the layer's grid), optional overlay JPEGs and metric scores, and per failed image its reason. The local and the
Ray engine both call this, so they write the same rows."""

from __future__ import annotations

import copy
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from ..api import explain
from ..errors import HeatlensError, first_line
from ..explanation import Explanation
from ..models import Network
from ..overlay import overlay_map
from ..targets import probabilities
from .arrow import pyarrow
from .decoding import Decoded

FLOAT16_MAX = float(np.finfo(np.float16).max)


@dataclass(frozen=True)
class Plan:
    """The settings that shape a run's rows; a resumed run must match them (see Plan.record)."""

    methods: tuple[str, ...]
    target: Any = "top1"  # a target spec of explain(), or 'label': each image's own label
    layer: Any = None
    options: dict[str, dict[str, Any]] = field(default_factory=dict)
    metrics: tuple[str, ...] = ()
    metric_options: dict[str, dict[str, Any]] = field(default_factory=dict)
    top: int = 5
    overlays: bool = False
    alpha: float = 0.4
    cmap: str = "jet"

    def record(self) -> dict[str, Any]:
        """The plan as JSON-ready values (option values that are not plain data by their repr)."""
        def plain(value: Any) -> Any:
            if isinstance(value, dict):
                return {str(k): plain(v) for k, v in value.items()}
            if isinstance(value, list | tuple):
                return [plain(v) for v in value]
            return value if isinstance(value, str | int | float | bool | None) else repr(value)

        return plain({"methods": self.methods, "target": self.target, "layer": self.layer, "options": self.options,
                      "metrics": self.metrics, "metric_options": self.metric_options, "top": self.top,
                      "overlays": self.overlays, "alpha": self.alpha, "cmap": self.cmap})


class BatchExplainer:
    """Explains batches for one plan with one network; `label_ids` maps each label text to its class id."""

    def __init__(self, network: Network, plan: Plan, out: Path, label_ids: dict[str, int] | None = None) -> None:
        self.network = network
        self.raw = copy.copy(network)  # the batch arrives prepared: the methods get model inputs as they are
        self.raw.preprocess = None
        self.plan = plan
        self.out = out
        self.label_ids = label_ids or {}
        self.layers: dict[str, str | list[str] | None] = {}
        self.clipped = 0  # maps with values past float16's range, stored clipped
        self.explained_any = False

    def __call__(self, batch: Sequence[Decoded]) -> Any:
        """The rows of one batch as an Arrow table, in the batch's order; failed images carry `error`."""
        pa = pyarrow()
        shapes = {d.inputs.shape for d in batch if d.inputs is not None and d.error is None}
        parts = [self._guarded([d for d in batch if d.inputs is not None and d.inputs.shape == s]) for s in shapes]
        parts = [part for part in parts if part["id"]]
        columns: dict[str, list[Any]] = {"id": [d.item.id for d in batch], "path": [d.item.path for d in batch],
                                         "error": [d.error for d in batch]}
        by_id = {row_id: (part, i) for part in parts for i, row_id in enumerate(part["id"])}
        for name in (parts[0] if parts else {}):
            if name != "id":
                columns[name] = [by_id[d.item.id][0][name][by_id[d.item.id][1]] if d.item.id in by_id else None
                                 for d in batch]
        return pa.table({name: _arrow_column(name, values) for name, values in columns.items()})

    def _guarded(self, batch: list[Decoded]) -> dict[str, list[Any]]:
        """_explained, and where the batch fails, each image on its own (see _one_by_one)."""
        try:
            cols = self._explained(batch)
        except HeatlensError as exc:
            if len(batch) > 1 or self.explained_any:
                return self._one_by_one(batch, exc)
            raise
        self.explained_any = True
        return cols

    def _one_by_one(self, batch: list[Decoded], error: HeatlensError) -> dict[str, list[Any]]:
        """Each image explained alone; the ones that fail are recorded with the reason. Until one image has been
        explained, a failure of them all is the settings' (a wrong layer, option or target) and stops the run."""
        parts = []
        for decoded in batch:
            try:
                parts.append(self._explained([decoded]))
                self.explained_any = True
            except HeatlensError as exc:
                decoded.error = f"{type(exc).__name__}: {first_line(exc)}"
        if not self.explained_any:
            raise error
        return {name: [v for part in parts for v in part[name]] for name in parts[0]} if parts else {"id": []}

    def _explained(self, batch: list[Decoded]) -> dict[str, list[Any]]:
        """Columns for images of one input shape: every method on the same targets (the first method's)."""
        x = np.stack([d.inputs for d in batch if d.inputs is not None])
        target = self._target(batch)
        cols: dict[str, list[Any]] = {
            "id": [d.item.id for d in batch], "label": [d.item.label for d in batch],
            "label_id": [self.label_ids.get(d.item.label) if d.item.label is not None else None for d in batch],
            "height": [d.size[0] for d in batch], "width": [d.size[1] for d in batch],
            "crop_box": [list(d.box or ()) for d in batch],
        }
        for index, method in enumerate(self.plan.methods):
            result = explain(self.raw, x, method, target=target, layer=self.plan.layer, upsample=False,
                             **self.plan.options.get(method, {}))
            self.layers[method] = result.layer
            if index == 0:
                cols.update(self._predictions(result))
                target = result.targets.ids
            cols[f"map_{method}"] = list(self._float16(result.maps))
            if self.plan.overlays:
                cols[f"overlay_{method}"] = self._overlays(method, result, batch)
            for metric in self.plan.metrics:
                cols[f"{metric}_{method}"] = list(self._scores(metric, x, result))
        return cols

    def _target(self, batch: list[Decoded]) -> Any:
        if self.plan.target != "label":
            return self.plan.target
        return np.array([[self.label_ids[str(d.item.label)]] for d in batch], dtype=np.int64)

    def _predictions(self, result: Explanation) -> dict[str, list[Any]]:
        """The top predictions of each image (ids, names, probabilities) and the targets explained."""
        logits = np.asarray(result.logits, np.float32)
        probs = probabilities(logits)
        top = np.argsort(-probs, axis=1, kind="stable")[:, : self.plan.top]
        classes = result.classes
        names = [[classes[i] if classes is not None else str(i) for i in row] for row in top]
        return {"pred_ids": top.tolist(), "pred_names": names,
                "pred_probs": np.take_along_axis(probs, top, axis=1).tolist(),
                "target_ids": result.targets.ids.tolist(), "target_names": result.targets.names,
                "target_probs": result.targets.probabilities.tolist()}

    def _float16(self, maps: np.ndarray) -> np.ndarray:
        """Maps as float16; values past its range are clipped to it (and counted, for the summary)."""
        outside = np.abs(maps) > FLOAT16_MAX
        self.clipped += int(outside.any(axis=tuple(range(1, maps.ndim))).sum())
        return np.clip(maps, -FLOAT16_MAX, FLOAT16_MAX).astype(np.float16)

    def _overlays(self, method: str, result: Explanation, batch: list[Decoded]) -> list[list[str]]:
        """One JPEG per image and target (the map over the photo the decoder kept); their paths, relative to out."""
        from PIL import Image

        paths = []
        for row, decoded in enumerate(batch):
            own = []
            for k, name in enumerate(result.targets.names[row]):
                relative = Path("overlays", method, f"{decoded.item.id:09d}-{k}-{_slug(name)}.jpg")
                picture = overlay_map(decoded.photo, result.maps[row, k], self.plan.alpha,  # type: ignore[arg-type]
                                      self.plan.cmap, box=decoded.box)
                target = self.out / relative
                target.parent.mkdir(parents=True, exist_ok=True)
                Image.fromarray(picture).save(target, quality=85)
                own.append(relative.as_posix())
            paths.append(own)
        return paths

    def _scores(self, metric: str, x: np.ndarray, result: Explanation) -> np.ndarray:
        from ..metrics import compute

        params = {**self.plan.metric_options.get(metric, {}), "target": result.targets.ids, "progress": False}
        return np.asarray(compute(metric, self.raw, x, result, **params).scores, np.float32)


def _slug(name: str) -> str:
    return "".join(c if c.isalnum() else "_" for c in name)[:40] or "class"


def column_type(name: str) -> Any:
    """The Arrow type of a row column other than the maps (so every shard and engine writes the same schema)."""
    pa = pyarrow()
    fixed = {"id": pa.int64(), "path": pa.string(), "error": pa.string(), "label": pa.string(),
             "label_id": pa.int64(), "height": pa.int32(), "width": pa.int32(), "crop_box": pa.list_(pa.float32()),
             "pred_ids": pa.list_(pa.int64()), "pred_names": pa.list_(pa.string()),
             "pred_probs": pa.list_(pa.float32()), "target_ids": pa.list_(pa.int64()),
             "target_names": pa.list_(pa.string()), "target_probs": pa.list_(pa.float32())}
    if name in fixed:
        return fixed[name]
    return pa.list_(pa.string()) if name.startswith("overlay_") else pa.list_(pa.float32())


def _arrow_column(name: str, values: list[Any]) -> Any:
    """One column: maps in Arrow's fixed-shape tensor format (zeros for failed rows), the rest typed by column_type."""
    pa = pyarrow()
    if not name.startswith("map_"):
        return pa.array(values, type=column_type(name))
    shape = next(v.shape for v in values if v is not None)
    filled = np.stack([v if v is not None else np.zeros(shape, np.float16) for v in values])
    return pa.FixedShapeTensorArray.from_numpy_ndarray(filled)
