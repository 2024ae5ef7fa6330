"""Models that are not classifiers: torchvision's detection and segmentation models, recognised by their
classes (without importing torchvision), the preprocessing they expect, and the layer CAM methods use.

A torchvision detector normalises and resizes inside its own transform and returns boxes in the
coordinates of the image it was given, so it gets 0..1 floats at the photo's own size. A segmentation
model gets ImageNet's normalisation at the photo's size (no crop), so its masks cover the whole photo.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from ..preprocess import Box, whole_image
from .base import LayerInfo

DETECTORS = {"GeneralizedRCNN", "RetinaNet", "FCOS", "SSD"}  # Faster/Mask/Keypoint R-CNN, RetinaNet, FCOS, SSD(lite)
SEGMENTERS = {"_SimpleSegmentationModel", "LRASPP"}  # DeepLabV3 and FCN, LRASPP
IMAGENET_MEAN = (123.675, 116.28, 103.53)
IMAGENET_STD = (58.395, 57.12, 57.375)


def task_of(model: Any) -> str | None:
    """'detection' or 'segmentation' for torchvision's detection and segmentation models, else None."""
    bases = {cls.__name__ for cls in type(model).__mro__ if cls.__module__.startswith("torchvision.models")}
    if bases & DETECTORS:
        return "detection"
    if bases & SEGMENTERS:
        return "segmentation"
    return None


@dataclass(frozen=True)
class UnitScale:
    """Photos as 0..1 floats at their own size: what torchvision's detectors take (they normalise and resize
    inside)."""

    def __call__(self, images: np.ndarray) -> np.ndarray:
        return np.asarray(images, np.float32) / np.float32(255)

    def input_box(self, height: int, width: int) -> Box:
        return whole_image(height, width)


@dataclass(frozen=True)
class Standardised:
    """Photos at their own size, (x - mean) / std per channel on 0..255 values: ImageNet's statistics by
    default, as torchvision's segmentation models were trained, without their crop."""

    mean: tuple[float, float, float] = IMAGENET_MEAN
    std: tuple[float, float, float] = IMAGENET_STD

    def __call__(self, images: np.ndarray) -> np.ndarray:
        return (np.asarray(images, np.float32) - np.asarray(self.mean, np.float32)) / np.asarray(self.std, np.float32)

    def input_box(self, height: int, width: int) -> Box:
        return whole_image(height, width)


def task_preprocessing(task: str) -> UnitScale | Standardised:
    """The default preprocessing for a model of `task`."""
    return UnitScale() if task == "detection" else Standardised()


def backbone_stage(infos: list[LayerInfo]) -> str | None:
    """The backbone's last stage with a spatial output: the last spatial layer among the shallowest ones
    under 'backbone.body.' (detectors' feature-pyramid backbones) or 'backbone.' (segmentation models),
    e.g. 'backbone.body.layer4' of Faster R-CNN ResNet-50 FPN and 'backbone.layer4' of DeepLabV3 ResNet-50;
    None when the model has no such backbone."""
    for prefix in ("backbone.body.", "backbone."):
        spatial = [info for info in infos if info.name.startswith(prefix) and info.spatial and not info.pooling]
        if spatial:
            depth = min(info.name.count(".") for info in spatial)
            return [info.name for info in spatial if info.name.count(".") == depth][-1]
    return None
