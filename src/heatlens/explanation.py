"""Explanation: the maps of one explain() call with everything needed to show, save and reproduce them."""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from . import display
from . import overlay as ov
from .display import Percentile
from .errors import HeatlensError, TargetError
from .images import output_folder, to_display
from .preprocess import Box, scaled_box
from .targets import Targets, class_name, probabilities

MANIFEST_SCHEMA = 1


@dataclass
class Explanation:
    """Raw maps (N, K, h, w) float32, the targets they explain, and the photos (N, H, W, 3) uint8.

    Maps are not normalised: Grad-CAM maps are in units of score x activation. `overlay()`, `plot()` and
    `save()` scale each map for display only, sign-aware (see heatlens.display). For model-ready float inputs
    the photos are made (min-max scaled) only when first shown. `notes`: what heatlens decided for the caller
    (the scores explained, what a predict function received), one sentence each, also written to the
    manifest. `names`: the images' names where known, shown over their photos.
    """

    maps: np.ndarray
    targets: Targets
    method: str
    model: str
    layer: str | None = None
    logits: np.ndarray | None = None
    input_box: Box | None = None
    params: dict[str, Any] = field(default_factory=dict)
    extras: dict[str, Any] = field(default_factory=dict)
    attributions: np.ndarray | None = None
    classes: list[str] | None = None
    notes: list[str] = field(default_factory=list)
    names: list[str] | None = None
    _images: np.ndarray | None = field(default=None, repr=False)
    _inputs: np.ndarray | None = field(default=None, repr=False)

    @property
    def images(self) -> np.ndarray:
        """The explained photos as uint8 (N, H, W, 3)."""
        if self._images is None:
            if self._inputs is None:
                raise HeatlensError("this Explanation holds neither photos nor model inputs to show")
            self._images = to_display(self._inputs)
        return self._images

    def display_maps(self) -> np.ndarray:
        """Maps at photo resolution (upsampled onto the photo when the call kept the layer's grid)."""
        h, w = self.images.shape[1:3]
        if self.maps.shape[-2:] == (h, w):
            return self.maps
        return ov.upsample(self.maps, (h, w), self._box())

    def display_map(self, i: int, k: int) -> np.ndarray:
        """Image i's map for target k at photo resolution (H, W) float32, upsampled for this target alone."""
        h, w = self.images.shape[1:3]
        if self.maps.shape[-2:] == (h, w):
            return self.maps[i, k]
        return ov.upsample(self.maps[i, k], (h, w), self._box())

    def overlay(self, alpha: float = 0.4, cmap: str | None = None, percentile: Percentile = "auto") -> np.ndarray:
        """Heatmaps blended over the photos: uint8 (N, K, H, W, 3), sign-aware (see heatlens.display): `cmap`
        None is jet for maps >= 0 and the diverging bwr centred on 0 for signed ones; each map clipped at the
        `percentile` of its |values|. Parts of the photo the model never saw (outside its crop) are left
        unblended."""
        n, k = self.maps.shape[:2]
        out = np.empty((n, k, *self.images.shape[1:]), dtype=np.uint8)
        for i in range(n):
            for j in range(k):
                out[i, j] = self.overlay_image(i, j, alpha, cmap, percentile)
        return out

    def overlay_image(self, i: int, k: int, alpha: float = 0.4, cmap: str | None = None,
                      percentile: Percentile = "auto") -> np.ndarray:
        """Image i's overlay for target k (H, W, 3) uint8, made in row bands: memory stays near one photo
        whatever the number of targets."""
        out = np.empty_like(self.images[i])
        for start, band in self._overlay_bands(i, k, alpha, cmap, percentile):
            out[start : start + len(band)] = band
        return out

    def _photo_map(self, i: int, k: int) -> ov.PhotoMap:
        return ov.PhotoMap(self.maps[i, k], self.images.shape[1:3], self._box())

    def _overlay_bands(self, i: int, k: int, alpha: float, cmap: str | None,
                       percentile: Percentile = "auto") -> Iterator[tuple[int, np.ndarray]]:
        shown = display.style(self, cmap, percentile)
        return ov.overlay_bands(self.images[i], self._photo_map(i, k), alpha, shown.cmap,
                                display.scaling(self, i, k, shown), self.input_box)

    def _box(self) -> Box:
        h, w = self.images.shape[1:3]
        return self.input_box or (0.0, 0.0, float(h), float(w))

    def attribution_images(self, mode: str = "abs", percentile: float = ov.ATTRIBUTION_PERCENTILE) -> np.ndarray:
        """Pixel attributions (N, K, h, w, C) of gradient methods as uint8 RGB images: by default |a| summed
        over the channels and clipped at the 98th percentile, as captum shows them ('seed': the guided-backprop
        tutorials' display; 'signed': blue-white-red; see overlay.attribution_rgb)."""
        if self.attributions is None or self.attributions.ndim != 5:
            raise HeatlensError(f"method '{self.method}' has no pixel attributions to show; use overlay()")
        return ov.attribution_rgb(self.attributions, mode, percentile)

    def superpixel_images(self, num_features: int = 5, positive_only: bool = True, hide_rest: bool = False,
                          boundaries: bool = True) -> np.ndarray:
        """For LIME: per image and target, the top superpixels on the model input (N, K, h, w, 3) uint8."""
        if "segments" not in self.extras:
            raise HeatlensError(f"method '{self.method}' has no superpixels; use method='lime'")
        images, segments = self.extras["segmented_images"], self.extras["segments"]
        return np.stack([
            np.stack([ov.superpixel_view(images[i], segments[i], weights, num_features, positive_only, hide_rest,
                                         boundaries) for weights in self.extras["weights"][i]])
            for i in range(len(images))
        ])

    def lime_mask(self, target: int | str = 0, image: int = 0, positive_only: bool = True, num_features: int = 5,
                  hide_rest: bool = False, negative_only: bool = False,
                  min_weight: float = 0.0) -> tuple[np.ndarray, np.ndarray]:
        """For LIME: lime's `get_image_and_mask(label, positive_only, negative_only, hide_rest, num_features,
        min_weight)` for one image and target, as `(image, mask)` on the picture the superpixels were cut
        from; `target` is a position among the explained targets (as in `maps[:, k]`) or a class name among
        them. Mask 1 on the chosen superpixels (-1 where the weight is negative when both signs are asked);
        the picture is uint8, or float64 under `hide_rest`, as lime's. Ties in |weight| go to the lower
        superpixel number."""
        picture, segments, weights, _ = self._lime_parts(target, image)
        chosen = ov.lime_selection(weights, positive_only, negative_only, num_features, min_weight)
        return ov.lime_image_and_mask(picture, segments, chosen, not (positive_only or negative_only), hide_rest)

    def lime_boundaries(self, target: int | str = 0, image: int = 0, num_features: int = 10,
                        positive_only: bool = False, negative_only: bool = False, min_weight: float = 0.0,
                        hide_rest: bool = False) -> np.ndarray:
        """For LIME: the chosen superpixels (selected as `lime_mask` does; both signs by default) outlined and
        tinted green where they speak for the class, red where against, on the picture (h, w, 3) uint8."""
        picture, segments, weights, _ = self._lime_parts(target, image)
        chosen = ov.lime_selection(weights, positive_only, negative_only, num_features, min_weight)
        return ov.sign_boundaries(picture, segments, chosen, hide_rest=hide_rest)

    def plot_lime(self, image: int = 0, num_features: int = 10, min_weight: float = 0.0) -> Any:
        """For LIME: a matplotlib Figure of `lime_boundaries` for every target of one image, with the class
        names as titles and a legend for the two colours (see heatlens.figures.lime_figure)."""
        from .figures import lime_figure

        return lime_figure(self, image, num_features, min_weight)

    def plot_signed(self, vmax: float | None = None, limits: str = "figure", label: str | None = None,
                    width: float = 20.0) -> Any:
        """A shap.image_plot-style matplotlib Figure: per image a row with the photo, then one column per
        target with the signed map in red (for) / blue (against) over the photo in grey, and a colour bar
        labelled with what the values are (see heatlens.figures.signed_figure)."""
        from .figures import signed_figure

        return signed_figure(self, vmax=vmax, limits=limits, label=label, width=width)

    def signed_map(self, i: int, k: int, step: int = 1) -> np.ndarray:
        """Image i's signed values for target k on the photo (H, W) float32: pixel attributions summed over
        the colour channels where the method has them (as shap's image plot shows), otherwise the map. `step`
        > 1: on every step-th photo pixel only, for showing a large photo without a photo-sized map."""
        values = self.maps[i, k] if self.attributions is None or self.attributions.ndim != 5 else \
            self.attributions[i, k].sum(axis=-1, dtype=np.float32)
        h, w = self.images.shape[1:3]
        if values.shape == (h, w):
            return values[::step, ::step]
        return ov.upsample(values, (-(-h // step), -(-w // step)), scaled_box(self._box(), 1 / step))

    def _lime_parts(self, target: int | str, image: int) -> tuple[np.ndarray, np.ndarray, np.ndarray, int]:
        """(picture, segments, weights, target position) of one LIME image and target, checked."""
        if "segments" not in self.extras or "weights" not in self.extras:
            raise HeatlensError(f"method '{self.method}' has no superpixels; use method='lime'")
        count = len(self.extras["segments"])
        if isinstance(image, bool) or not isinstance(image, int | np.integer) or not 0 <= image < count:
            raise HeatlensError(f"image must be a position 0..{count - 1} among the explained images. "
                                f"Received: {image!r}")
        k = self.target_position(target, image)
        return (self.extras["segmented_images"][image], self.extras["segments"][image],
                np.asarray(self.extras["weights"][image][k]), k)

    def target_position(self, target: int | str, image: int = 0) -> int:
        """The position k (as in `maps[:, k]`) of `target`: a position itself, or the name of one of the
        image's explained classes (exactly, else ignoring case)."""
        names = self.targets.names[image]
        if isinstance(target, int | np.integer) and not isinstance(target, bool) and 0 <= target < len(names):
            return int(target)
        if isinstance(target, str):
            for same in (str.__eq__, lambda a, b: a.casefold() == b.casefold()):
                found = [k for k, name in enumerate(names) if same(name, target)]
                if found:
                    return found[0]
        raise TargetError(f"target {target!r} is not one of the explained targets: pass a position 0..{len(names) - 1} "
                          f"or one of the names {names}")

    def grid(self, alpha: float = 0.4, cmap: str | None = None) -> np.ndarray:
        """One bare picture (no labels; plot() has them): per image a row with the photo and one overlay per
        target."""
        over = self.overlay(alpha, cmap)
        tiles = np.concatenate([self.images[:, None], over], axis=1)
        return ov.grid(tiles.reshape(-1, *tiles.shape[2:]), columns=tiles.shape[1])

    def top(self, k: int = 5) -> list[list[tuple[int, str, float]]]:
        """Per image, the model's k best classes as (id, name, probability)."""
        if self.logits is None:
            return []
        probs = probabilities(self.logits)
        order = np.argsort(-self.logits, axis=1, kind="stable")[:, :k]
        return [[(int(c), class_name(int(c), self.classes), float(p[c])) for c in row]
                for row, p in zip(order, probs, strict=True)]

    def save(self, directory: str | Path, alpha: float = 0.4, cmap: str | None = None,
             stems: list[str] | None = None, labelled: bool = True) -> Path:
        """Write overlays (PNG, at photo size), labelled figures of them (PNG, see display.labelled), raw
        maps (.npy) and manifest.json into `directory`; returns the manifest path."""
        entries = self.write_images(directory, alpha, cmap, stems, labelled=labelled)
        return write_manifest(directory, self.manifest_header(alpha, cmap), entries)

    def manifest_header(self, alpha: float = 0.4, cmap: str | None = None) -> dict[str, Any]:
        """Everything the manifest records about the call itself (model, method, layer, parameters)."""
        return {
            "schema_version": MANIFEST_SCHEMA,
            "model": self.model,
            "method": self.method,
            "layer": self.layer,
            "params": {k: _jsonable(v) for k, v in self.params.items()},
            "notes": list(self.notes),
            "display": self._display_record(alpha, cmap),
        }

    def _display_record(self, alpha: float, cmap: str | None) -> dict[str, Any]:
        """How the overlays are coloured, and what the labelled figures show: the overlay, or (pixel methods)
        the attributions in grey."""
        shown = display.style(self, cmap)
        labelled = ({"view": "attributions", "cmap": display.ATTRIBUTION_CMAP} if display.has_attributions(self)
                    else {"view": "overlay", "cmap": shown.cmap})
        return {"alpha": alpha, "cmap": shown.cmap, "signed": shown.signed, "percentile": shown.percentile,
                "scale": "minmax" if shown.minmax else "symmetric" if shown.signed else "zero to clip",
                "labelled": labelled}

    def write_images(self, directory: str | Path, alpha: float = 0.4, cmap: str | None = None,
                     stems: list[str] | None = None, photo_maps: bool = False,
                     labelled: bool = True, max_size: int | None = None) -> list[dict[str, Any]]:
        """Write one overlay PNG, one labelled figure PNG (`labelled`: titled, with a colour bar, drawn on a
        copy of the photo no longer than display.SAVED_SIDE) and one raw map .npy per image and target, in
        row bands; returns manifest entries. The .npy holds the map as `maps` does, or with `photo_maps` at
        photo resolution (upsampled band by band from a result explained with upsample=False: a photo-sized
        map never sits in memory). `max_size`: the overlay's long side
        at most this many pixels (the photo and the map resampled to it; None: the photo's size)."""
        out = output_folder(directory)
        stems = stems or self.names or [f"image{i}" for i in range(len(self.images))]
        h, w = self.images.shape[1:3]
        entries = []
        for i, (stem, records) in enumerate(zip(stems, self.targets.as_records(), strict=True)):
            files = []
            for k, record in enumerate(records):
                base = f"{stem}_{self.method}_{k + 1}_{_slug(record['name'])}"
                if photo_maps:
                    _save_npy_bands(out / f"{base}.npy", (h, w), self._photo_map(i, k).bands())
                else:
                    np.save(out / f"{base}.npy", self.maps[i, k])
                self._save_overlay(out / f"{base}.png", i, k, alpha, cmap, max_size)
                shown = {}
                if labelled:
                    display.save_labelled(self, i, k, out / f"{base}_labelled.png", stem, alpha, cmap)
                    shown = {"labelled": f"{base}_labelled.png"}
                files.append({**record, "overlay": f"{base}.png", **shown, "map": f"{base}.npy",
                              **self._write_attributions(out, base, i, k)})
            entries.append({"image": stem, "size": [h, w], "targets": files})
        return entries

    def _save_overlay(self, path: Path, i: int, k: int, alpha: float, cmap: str | None, max_size: int | None) -> None:
        """The overlay PNG at the photo's size, or shrunk to a long side of `max_size` (photo and map alike)."""
        h, w = self.images.shape[1:3]
        if max_size is None or max(h, w) <= max_size:
            _save_png_bands(path, (h, w), self._overlay_bands(i, k, alpha, cmap))
            return
        factor = max_size / max(h, w)
        size = (max(1, round(h * factor)), max(1, round(w * factor)))
        photo = np.asarray(Image.fromarray(self.images[i]).resize(size[::-1], Image.Resampling.LANCZOS))
        box = tuple(v * size[j % 2] / (h, w)[j % 2] for j, v in enumerate(self._box()))
        shown = display.style(self, cmap, "auto")
        bands = ov.overlay_bands(photo, ov.PhotoMap(self.maps[i, k], size, box), alpha, shown.cmap,
                                 display.scaling(self, i, k, shown), box if self.input_box else None)
        _save_png_bands(path, size, bands)

    def _write_attributions(self, out: Path, base: str, i: int, k: int) -> dict[str, str]:
        if self.attributions is None or self.attributions.ndim != 5:
            return {}
        np.save(out / f"{base}_attributions.npy", self.attributions[i, k])
        Image.fromarray(ov.attribution_rgb(self.attributions[i, k], "abs")).save(
            out / f"{base}_attributions.png")
        return {"attributions": f"{base}_attributions.npy", "attributions_image": f"{base}_attributions.png"}

    def plot(self, alpha: float = 0.4, cmap: str | None = None, percentile: Percentile = "auto",
             view: str = "auto", **options: Any) -> Any:
        """A labelled matplotlib Figure: per image the photo and one tile per target, titled with the class
        and probability, each with a colour bar (see heatlens.display.figure for `view` and `options`). The
        figure is not managed by pyplot, so a notebook shows it once; save it with `figure.savefig(path)`."""
        return display.figure(self, alpha=alpha, cmap=cmap, percentile=percentile, view=view, **options)

    def __repr__(self) -> str:
        count = len(self.images) if self._images is not None or self._inputs is not None else self.maps.shape[0]
        layer = f", layer={self.layer!r}" if self.layer else ""
        names = self.targets.names if count > 1 else self.targets.names[0]
        return (f"Explanation(method={self.method!r}, model={self.model!r}{layer}, {count} image"
                f"{'s' if count != 1 else ''}, targets={list(names)!r})")

    def _repr_html_(self) -> str:
        """The notebook's view: thumbnails (long side <= 256 px) with their labels and colour scales, and the
        model's top-5 classes per image."""
        return display.notebook_html(self)

    def _repr_png_(self) -> bytes:
        """The labelled figure as a PNG no longer than 512 pixels."""
        return display.figure_png(self.plot(), max_side=display.NOTEBOOK_SIDE)


def _save_png_bands(path: Path, size: tuple[int, int], bands: Iterator[tuple[int, np.ndarray]]) -> None:
    """An RGB PNG assembled from (first row, uint8 rows) bands straight into Pillow's image."""
    picture = Image.new("RGB", (size[1], size[0]))
    for start, band in bands:
        picture.paste(Image.fromarray(band), (0, start))
    picture.save(path)


def _save_npy_bands(path: Path, size: tuple[int, int], bands: Iterator[tuple[int, np.ndarray]]) -> None:
    """A float32 (H, W) .npy written band by band: the same file np.save writes for the whole array."""
    with open(path, "wb") as file:
        np.lib.format.write_array_header_1_0(file, {"descr": np.lib.format.dtype_to_descr(np.dtype(np.float32)),
                                                    "fortran_order": False, "shape": size})
        for _, band in bands:
            np.ascontiguousarray(band, np.float32).tofile(file)


def write_manifest(directory: str | Path, header: dict[str, Any], entries: list[dict[str, Any]]) -> Path:
    """Write manifest.json (the call's header plus one entry per image) and return its path."""
    path = Path(directory) / "manifest.json"
    path.write_text(json.dumps({**header, "images": entries}, indent=2) + "\n", encoding="utf-8")
    return path


def _slug(text: str) -> str:
    return "".join(c if c.isalnum() else "-" for c in text.lower()).strip("-") or "class"


def _jsonable(value: Any) -> Any:
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, np.ndarray):
        return f"array{list(value.shape)}"
    if isinstance(value, str | int | float | bool | type(None)):
        return value
    if isinstance(value, list | tuple):
        return [_jsonable(v) for v in value]
    return repr(value)
