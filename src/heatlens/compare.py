"""compare(): several methods on the same model, photos and targets, in one figure and one folder.

Rows are the explained (image, target) pairs, columns the photo and then one method each, so the eye
reads across a row to see how the methods disagree about the same prediction.
"""

from __future__ import annotations

import io
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from .api import explain
from .errors import MethodError
from .explanation import Explanation, write_manifest
from .images import ImageLike, output_folder
from .methods import get_method
from .models import to_network
from .targets import TargetSpec, probabilities

TILE_INCHES = 2.6


@dataclass
class Comparison:
    """One Explanation per method, for the same photos and targets (ids resolved once, by the first)."""

    results: dict[str, Explanation]

    @property
    def methods(self) -> list[str]:
        return list(self.results)

    def rows(self) -> list[tuple[int, int]]:
        """The (image, target position) pairs, one figure row each."""
        first = next(iter(self.results.values()))
        n, k = first.maps.shape[:2]
        return [(i, j) for i in range(n) for j in range(k)]

    def figure(self, alpha: float = 0.4, cmap: str | None = None) -> Any:
        """A matplotlib Figure (not managed by pyplot, so a notebook shows it once): rows = (image, target),
        columns = the photo and each method's overlay, method names on top, class and probability at left.
        cmap None: each method's own colours (jet for maps >= 0, a diverging map centred on 0 for signed ones)."""
        from matplotlib.figure import Figure

        rows, methods = self.rows(), self.methods
        first = self.results[methods[0]]
        fig = Figure(figsize=(TILE_INCHES * (len(methods) + 1), TILE_INCHES * len(rows)), layout="constrained")
        axes = np.asarray(fig.subplots(len(rows), len(methods) + 1, squeeze=False))
        probs = probabilities(first.logits) if first.logits is not None else None
        for r, (i, k) in enumerate(rows):
            cid, name = int(first.targets.ids[i][k]), first.targets.names[i][k]
            label = name if probs is None else f"{name} ({probs[i, cid]:.1%})"
            axes[r, 0].imshow(first.images[i])
            axes[r, 0].set_ylabel(f"image {i}\n{label}" if len(first.images) > 1 else label, fontsize=9)
            for c, method in enumerate(methods, start=1):
                axes[r, c].imshow(self.results[method].overlay_image(i, k, alpha, cmap))
                if r == 0:
                    axes[r, c].set_title(method, fontsize=10)
        axes[0, 0].set_title("photo", fontsize=10)
        for ax in axes.ravel():
            ax.set_xticks([])
            ax.set_yticks([])
        return fig

    def save(self, directory: str | Path, alpha: float = 0.4, cmap: str | None = None) -> Path:
        """comparison.png, one sub-folder per method (its overlays, maps and manifest) and a manifest.json
        that lists them; returns the manifest's path."""
        out = output_folder(directory)
        self.figure(alpha, cmap).savefig(out / "comparison.png", dpi=100)
        entries = [{"method": method, "manifest": str(result.save(out / method, alpha, cmap).relative_to(out))}
                   for method, result in self.results.items()]
        return write_manifest(out, {"comparison": "comparison.png", "methods": self.methods}, entries)

    def _repr_png_(self) -> bytes:
        buffer = io.BytesIO()
        self.figure().savefig(buffer, format="png", dpi=72)
        return buffer.getvalue()


def compare(
    model: Any,
    images: ImageLike | list[ImageLike],
    methods: Sequence[str],
    target: TargetSpec = "top1",
    options: dict[str, dict[str, Any]] | None = None,
    **common: Any,
) -> Comparison:
    """Explain the same photos with each of `methods` for the same targets. `options`: per-method options
    ({'lime': {'num_samples': 500}}); `common`: options every method takes (e.g. layer=). Dynamic
    targets ('top3', a callable) are resolved once, by the first method, so every column explains the
    same classes."""
    if isinstance(methods, str) or not methods:
        raise MethodError(f"methods must be a list of method names, e.g. ['gradcam', 'lime']. Received: {methods!r}")
    names = [get_method(m).name for m in methods]
    if len(set(names)) != len(names):
        raise MethodError(f"each method can be compared once. Received: {list(methods)}")
    options = options or {}
    unknown = sorted(set(options) - set(names))
    if unknown:
        raise MethodError(f"options= names methods that are not compared: {unknown}; compared: {names}")
    network = to_network(model)
    results: dict[str, Explanation] = {}
    for name in names:
        layer_free = {k: v for k, v in common.items() if k != "layer" or get_method(name).uses_layer}
        aim = target if not results else next(iter(results.values())).targets.ids.tolist()
        result = explain(network, images, name, aim, **layer_free, **options.get(name, {}))
        if isinstance(result, list):
            raise MethodError("compare() takes photos of one size (or one photo); compare the others one by one")
        results[name] = result
    return Comparison(results)
