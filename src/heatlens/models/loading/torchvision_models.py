"""torchvision architectures by name ('torchvision:resnet50'), with weights from a local file (never downloaded),
the preprocessing of the weights entry they come from and its class names, both shipped inside torchvision."""

from __future__ import annotations

import inspect
import re
from pathlib import Path
from typing import Any

import torch
import torchvision
from torchvision.transforms import _presets

from ...errors import ModelError, close_matches, first_line
from .loaded import RANDOM, RANDOM_NOTE, Loaded, weights_needed
from .photo_pipeline import PhotoPipeline
from .state_dicts import classifier_classes, load_weights, read_weights

LEGACY_DENSENET = re.compile(r"(denselayer\d+\.(?:norm|relu|conv))\.(?=[12]\.[a-z_]+$)")  # norm.1.weight: norm1.weight


def load_torchvision(spec: str, weights: str | None) -> Loaded:
    """'resnet50' or 'resnet50.IMAGENET1K_V1' (which weights entry's preprocessing and classes to take; the
    DEFAULT one otherwise) built with get_model(weights=None), its state dict read from `weights`."""
    name, _, tag = spec.partition(".")
    known = torchvision.models.list_models()
    if name not in known:
        raise ModelError(f"unknown torchvision model '{name}'.{close_matches(name, known)} "
                         "(torchvision.models.list_models() lists them)")
    entry = _entry(name, tag)
    label = f"torchvision:{spec}"
    preprocess = _pipeline(entry, label)
    state = _state(label, weights, entry)
    module = _built(name, **_variant(state))
    notes = [f"preprocessing and classes of torchvision's {type(entry).__name__}.{entry.name}"] if entry else []
    classes = (list(entry.meta.get("categories") or []) or None) if entry else None
    if state is None:
        notes.append(RANDOM_NOTE)
    else:
        module, refitted = _fitted(module, name, state, str(weights), label)
        if refitted is not None:
            notes.append(f"{refitted} classes, as the weights file's output layer has")
            classes = None
    return Loaded(module.eval(), preprocess, classes, notes)


def _entry(name: str, tag: str) -> Any:
    """The weights entry `tag` names (DEFAULT when empty) of a model; None for one without weight entries."""
    try:
        entries = torchvision.models.get_model_weights(name)
    except (ValueError, KeyError):
        entries = None
    if entries is None or not list(entries):
        if tag:
            raise ModelError(f"torchvision:{name} has no weights entries, so '.{tag}' names none: drop it")
        return None
    names = [entry.name for entry in entries]
    wanted = tag or "DEFAULT"
    if wanted not in names and wanted != "DEFAULT":
        raise ModelError(f"torchvision:{name} has no weights entry '{tag}': use one of {', '.join(names)}, "
                         "or none for DEFAULT")
    return entries[wanted]


def _state(label: str, weights: str | None, entry: Any) -> dict[str, torch.Tensor] | None:
    if weights == RANDOM:
        return None
    if weights is None:
        raise weights_needed(label, _cached(entry))
    return _current_keys(read_weights(weights))


def _current_keys(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Keys of torchvision's older published files renamed as today's modules have them: DenseNet's
    'denselayer1.norm.1.weight' is now 'denselayer1.norm1.weight' (torchvision renames them when it loads)."""
    return {LEGACY_DENSENET.sub(r"\1", key): value for key, value in state.items()}


def _cached(entry: Any) -> str:
    """Where torch's hub cache already holds this entry's file, said as a hint ('' when it does not)."""
    url = getattr(entry, "url", None)
    if not url:
        return ""
    path = Path(torch.hub.get_dir()) / "checkpoints" / url.rsplit("/", 1)[-1]
    return f" (torch's cache has one: {path})" if path.is_file() else ""


def _variant(state: dict[str, torch.Tensor] | None) -> dict[str, Any]:
    """Builder options a weights file implies: the auxiliary head torchvision's published DeepLabV3 and FCN weights
    carry (their builders add it only when they load those weights themselves)."""
    if state is not None and any(key.startswith("aux_classifier.") for key in state):
        return {"aux_loss": True}
    return {}


def _built(name: str, **options: Any) -> torch.nn.Module:
    """The architecture with random weights; detection and segmentation backbones too, as their builders
    would otherwise download ImageNet weights for them."""
    builder = torchvision.models.get_model_builder(name)
    if "weights_backbone" in inspect.signature(builder).parameters:
        options["weights_backbone"] = None
    return builder(weights=None, **options)


def _fitted(module: torch.nn.Module, name: str, state: dict[str, torch.Tensor], file: str,
            label: str) -> tuple[torch.nn.Module, int | None]:
    """The module with the weights loaded, and the class count it was rebuilt with for a classifier fine-tuned
    to another number of classes (None when it was not)."""
    classes = classifier_classes(module, state)
    if classes is not None:
        try:
            module = _built(name, num_classes=classes, **_variant(state))
        except (TypeError, ValueError) as exc:
            raise ModelError(f"the weights in '{file}' have {classes} classes, and {label} cannot be built with "
                             f"num_classes={classes}: {first_line(exc)}") from None
    load_weights(module, state, file, label)
    return module, classes


def _pipeline(entry: Any, label: str) -> PhotoPipeline | None:
    """The entry's transforms as a PhotoPipeline (classification and segmentation); detection models take
    0..1 pixels as they are (their own transform resizes and normalises inside the model)."""
    if entry is None:
        return None
    transforms = entry.transforms()
    source = f"torchvision {type(entry).__name__}.{entry.name}.transforms()"
    if isinstance(transforms, _presets.ImageClassification):
        return PhotoPipeline(resize=transforms.resize_size[0], crop_size=(transforms.crop_size[0],) * 2,
                             interpolation=_filter(transforms), **_normalised(transforms), source=source)
    if isinstance(transforms, _presets.SemanticSegmentation):
        size = transforms.resize_size[0] if transforms.resize_size else None
        return PhotoPipeline(resize=size, crop_size=None, interpolation=_filter(transforms),
                             **_normalised(transforms), source=source)
    if isinstance(transforms, _presets.ObjectDetection):
        return PhotoPipeline(resize=None, crop_size=None, mean=(0.0, 0.0, 0.0), std=(1.0, 1.0, 1.0), source=source)
    raise ModelError(f"{label} is a {type(transforms).__name__} model: heatlens explains models of photos "
                     "(classification, detection, segmentation)")


def _filter(transforms: Any) -> str:
    """The Pillow filter torchvision uses on photos for the transforms' interpolation mode."""
    return str(transforms.interpolation.value).removesuffix("-exact")


def _normalised(transforms: Any) -> dict[str, Any]:
    return {"mean": tuple(transforms.mean), "std": tuple(transforms.std)}
