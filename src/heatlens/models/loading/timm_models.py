"""timm architectures by name ('timm:convnext_tiny', or with a pretrained tag 'timm:convnext_tiny.fb_in1k'), with
weights from a local file (never downloaded), the preprocessing of their pretrained config and their classes."""

from __future__ import annotations

from typing import Any

import timm
import torch

from ...classes import imagenet_classes
from ...errors import ModelError, close_matches, first_line
from .loaded import RANDOM, RANDOM_NOTE, Loaded, weights_needed
from .photo_pipeline import PhotoPipeline
from .state_dicts import classifier_classes, load_weights, read_weights

CROP_MODES = ("center", "squash")


def load_timm(spec: str, weights: str | None) -> Loaded:
    """timm.create_model(spec, pretrained=False) with its state dict read from `weights`; rebuilt with the
    file's class count when its classifier was fine-tuned to another one."""
    label = f"timm:{spec}"
    if not timm.is_model(spec):
        name = spec.partition(".")[0]
        raise ModelError(f"unknown timm model '{spec}'.{close_matches(name, timm.list_models())} "
                         "(timm.list_models() lists them)")
    if weights is None:
        raise weights_needed(label)
    state = None if weights == RANDOM else read_weights(weights)
    module = _created(spec, label)
    notes = [RANDOM_NOTE] if state is None else []
    if state is not None:
        classes = classifier_classes(module, state)
        if classes is not None:
            module = _created(spec, label, num_classes=classes)
            notes.append(f"{classes} classes, as the weights file's output layer has")
        load_weights(module, state, str(weights), label)
    config = timm.data.resolve_model_data_config(module)
    pretrained: dict[str, Any] = dict(getattr(module, "pretrained_cfg", None) or {})
    tag = f".{pretrained['tag']}" if pretrained.get("tag") else ""
    notes.append(f"preprocessing of timm's pretrained config for {pretrained.get('architecture', spec)}{tag}")
    return Loaded(module.eval(), _pipeline(config, label), _classes(module), notes)


def _created(spec: str, label: str, **options: Any) -> torch.nn.Module:
    try:
        return timm.create_model(spec, pretrained=False, **options)
    except (RuntimeError, ValueError, TypeError) as exc:
        raise ModelError(f"timm cannot build {label}: {first_line(exc)}") from None


def _pipeline(config: dict[str, Any], label: str) -> PhotoPipeline:
    """timm's eval transform (transforms_imagenet_eval) for a resolved data config: the short side (or both,
    'squash') to input_size / crop_pct, floored, then a centre crop to input_size."""
    mode = config.get("crop_mode") or "center"
    if mode not in CROP_MODES:
        raise ModelError(f"{label} crops with timm's '{mode}' mode, which heatlens does not reproduce: pass "
                         "preprocess= (a preset or your own function)")
    height, width = config["input_size"][1:]
    pct = config.get("crop_pct") or 0.875
    scaled = (int(height / pct), int(width / pct))
    resize: int | tuple[int, int] = scaled if mode == "squash" else _short_side(scaled, label)
    return PhotoPipeline(resize=resize, crop_size=(height, width),
                         interpolation=config.get("interpolation") or "bilinear", mean=tuple(config["mean"]),
                         std=tuple(config["std"]), source=f"timm data config of {label}")


def _short_side(scaled: tuple[int, int], label: str) -> int:
    if scaled[0] != scaled[1]:
        raise ModelError(f"{label} takes {scaled[0]}x{scaled[1]} inputs, a shape whose keep-ratio resize heatlens does "
                         "not reproduce: pass preprocess= (your own function)")
    return scaled[0]


def _classes(module: torch.nn.Module) -> list[str] | None:
    """ImageNet-1k's names for 1000 outputs of an ImageNet-1k tag; the names timm ships for the tag's label set
    (each description's first name) when their count matches; else None (numbered)."""
    count = getattr(module, "num_classes", None)
    subset = timm.data.infer_imagenet_subset(module)
    if count == 1000 and subset in (None, "imagenet-1k"):
        return list(imagenet_classes())
    if subset is None:
        return None
    info = timm.data.ImageNetInfo(subset)
    if info.num_classes() != count:
        return None
    return [description.split(",")[0].strip() for description in info.label_descriptions()]
