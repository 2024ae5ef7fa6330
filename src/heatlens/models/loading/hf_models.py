"""Hugging Face image classifiers from a folder saved with save_pretrained ('hf:PATH'; a Hub name only from the local
cache): the model without remote code, its image processor's recipe as heatlens preprocessing, and id2label."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np
import transformers

from ...errors import HeatlensError, ModelError, first_line
from .loaded import Loaded
from .photo_pipeline import INTERPOLATIONS, PhotoPipeline

PIL_FILTERS = {int(value): name for name, value in INTERPOLATIONS.items()}
CHECK_SHAPE = (67, 90, 3)  # an odd-sized noise photo the translated recipe is checked on against the processor
CHECK_TOLERANCE = 1e-4
UNSUPPORTED_STEPS = ("do_pad", "do_reduce_labels", "rescale_offset")


def load_hf(location: str, own_preprocessing: bool = True) -> Loaded:
    """AutoModelForImageClassification from `location` (local files only, no remote code); with
    `own_preprocessing`, its AutoImageProcessor translated to a PhotoPipeline and checked against it."""
    label = f"hf:{location}"
    folder = Path(location).expanduser()
    if folder.exists() and not (folder / "config.json").is_file():
        raise ModelError(f"'{location}' has no config.json, so it is no Hugging Face model folder: save one with "
                         "model.save_pretrained(PATH) and processor.save_pretrained(PATH)")
    source = str(folder) if folder.exists() else location
    try:
        with _quiet():
            model = transformers.AutoModelForImageClassification.from_pretrained(
                source, local_files_only=True, trust_remote_code=False)
    except OSError as exc:
        where = "" if folder.exists() else " (nor a Hub name in the local cache)"
        raise ModelError(f"cannot load {label}: no Hugging Face model folder there{where}: {first_line(exc)[:200]}. "
                         "Save one with save_pretrained(PATH); heatlens never downloads") from None
    except ValueError as exc:
        raise ModelError(f"{label} is not an image-classification model transformers can build without remote code: "
                         f"{first_line(exc)[:200]}") from None
    preprocess = _processor_pipeline(source, label) if own_preprocessing else None
    notes = [f"preprocessing of its {preprocess.source}"] if preprocess is not None else []
    return Loaded(model.eval(), preprocess, _labels(model.config), notes)


@contextmanager
def _quiet() -> Iterator[None]:
    """transformers' weight-loading progress bar off for the call (it writes to the terminal of a library user)."""
    bars = transformers.utils.logging
    was_enabled = bars.is_progress_bar_enabled()
    bars.disable_progress_bar()
    try:
        yield
    finally:
        if was_enabled:
            bars.enable_progress_bar()


def _labels(config: Any) -> list[str] | None:
    """config.id2label in id order, or None when it does not name every output."""
    id2label = {int(key): str(value) for key, value in (getattr(config, "id2label", None) or {}).items()}
    count = getattr(config, "num_labels", len(id2label))
    return [id2label[i] for i in range(count)] if set(id2label) == set(range(count)) else None


def _processor_pipeline(source: str, label: str) -> PhotoPipeline:
    try:
        processor = transformers.AutoImageProcessor.from_pretrained(source, local_files_only=True,
                                                                     trust_remote_code=False)
    except (OSError, ValueError) as exc:
        raise ModelError(f"{label} has no image processor heatlens can read ({first_line(exc)[:160]}): save it "
                         "beside the model with processor.save_pretrained(PATH), or pass preprocess=") from None
    pipeline = pipeline_of(processor, label)
    _check(pipeline, processor, label)
    return pipeline


def pipeline_of(processor: Any, label: str) -> PhotoPipeline:
    """An image processor's resize, centre crop, rescale and normalise steps as a PhotoPipeline."""
    kind = type(processor).__name__
    used = [step for step in UNSUPPORTED_STEPS if getattr(processor, step, None)]
    if used:
        raise ModelError(f"{label}'s {kind} uses {used[0]}, a step heatlens does not reproduce: pass preprocess=")
    size = _size(processor.size) if getattr(processor, "do_resize", False) else {}
    resize: int | tuple[int, int] | None = None
    crop = _crop(processor) if getattr(processor, "do_center_crop", False) else None
    if "shortest_edge" in size and getattr(processor, "crop_pct", None) is not None:  # ConvNeXt's own rule
        edge = size["shortest_edge"]
        resize, crop = ((int(edge / processor.crop_pct), (edge, edge)) if edge < 384 else ((edge, edge), crop))
    elif set(size) == {"shortest_edge"}:
        resize = size["shortest_edge"]
    elif set(size) == {"height", "width"}:
        resize = (size["height"], size["width"])
    elif size:
        raise ModelError(f"{label}'s {kind} resizes to {size}, which heatlens does not reproduce: pass preprocess=")
    scale = float(processor.rescale_factor) if getattr(processor, "do_rescale", False) else 1.0
    normalise = getattr(processor, "do_normalize", False)
    mean, std = ((_triple(processor.image_mean), _triple(processor.image_std)) if normalise
                 else ((0.0, 0.0, 0.0), (1.0, 1.0, 1.0)))
    backend = getattr(processor, "backend", "pil")
    return PhotoPipeline(resize=resize, crop_size=crop, interpolation=_filter(getattr(processor, "resample", None)),
                         mean=mean, std=std, scale=scale, crop_offset="floor",
                         resampler="pil" if backend == "pil" else "torch", source=f"{kind} ({backend})")


def _size(size: Any) -> dict[str, int]:
    """A processor's size setting (a dict or SizeDict) as the keys it sets."""
    items = size.items() if hasattr(size, "items") else vars(size).items()
    return {key: int(value) for key, value in items if value is not None}


def _crop(processor: Any) -> tuple[int, int] | None:
    size = _size(processor.crop_size or {})
    return (size["height"], size["width"]) if {"height", "width"} <= set(size) else None


def _triple(values: Any) -> tuple[float, float, float]:
    numbers = [float(v) for v in np.broadcast_to(np.asarray(values, dtype=float), (3,))]
    return numbers[0], numbers[1], numbers[2]


def _filter(resample: Any) -> str:
    """The filter name of a PIL resampling code or a torchvision interpolation mode."""
    if resample is None:
        return "bilinear"
    if isinstance(resample, int):
        return PIL_FILTERS.get(int(resample), "bilinear")
    return str(getattr(resample, "value", resample)).removesuffix("-exact")


def _check(pipeline: PhotoPipeline, processor: Any, label: str) -> None:
    """The translated recipe run beside the processor on a noise photo: they must agree, or loading stops
    (a processor with steps heatlens does not know would otherwise be explained on the wrong inputs)."""
    photo = np.random.default_rng(0).integers(0, 256, CHECK_SHAPE, dtype=np.uint8)
    try:
        theirs = np.asarray(processor(images=[photo], return_tensors="np")["pixel_values"][0], np.float32)
        ours = pipeline(photo[None])[0].transpose(2, 0, 1)
    except HeatlensError:
        raise
    except Exception as exc:
        raise ModelError(f"{label}'s {pipeline.source} failed on a test photo: {first_line(exc)[:200]}") from None
    gap = float(np.abs(ours - theirs).max()) if ours.shape == theirs.shape else np.inf
    if gap > CHECK_TOLERANCE:
        raise ModelError(f"{label}'s {pipeline.source} prepares photos in a way heatlens does not reproduce (they "
                         f"differ by {gap:.3g} on a test photo): pass preprocess= (a preset or your own function)")
