"""Small torch models with torchvision's detection and segmentation output formats, for tests; importable by
the CLI as 'task_models:NAME'. They are not torchvision classes, so heatlens wraps them as plain modules."""

from __future__ import annotations

import torch
from torch import nn


class TinyDetector(nn.Module):
    """A detector's output without torchvision: per image a dict of fixed boxes (input pixels, x_min, y_min,
    x_max, y_max), their labels, and scores that are the sigmoid of a feature channel's mean inside each box."""

    def __init__(self, boxes: list[list[float]], labels: list[int]) -> None:
        super().__init__()
        self.features = nn.Sequential(nn.Conv2d(3, len(boxes), 3, padding=1, stride=2), nn.ReLU())
        self.register_buffer("boxes", torch.tensor(boxes, dtype=torch.float32))
        self.register_buffer("labels", torch.tensor(labels))

    def forward(self, x: torch.Tensor) -> list[dict[str, torch.Tensor]]:
        features = self.features(x)
        step = x.shape[-1] / features.shape[-1]
        cells = (self.boxes / step).round().long()
        detections = []
        for image in features:
            scores = [image[k, y0:y1, x0:x1].mean() for k, (x0, y0, x1, y1) in enumerate(cells.tolist())]
            detections.append({"boxes": self.boxes.clone(), "labels": self.labels.clone(),
                               "scores": torch.sigmoid(torch.stack(scores))})
        return detections


class TinySegmenter(nn.Module):
    """conv -> ReLU -> 1x1 conv to class logits -> upsampled to the input: torchvision's {'out': (N, C, H, W)}."""

    def __init__(self, classes: int = 3) -> None:
        super().__init__()
        self.features = nn.Sequential(nn.Conv2d(3, 6, 3, padding=1, stride=2), nn.ReLU())
        self.classifier = nn.Conv2d(6, classes, 1)

    def forward(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        logits = self.classifier(self.features(x))
        return {"out": nn.functional.interpolate(logits, size=x.shape[-2:], mode="bilinear", align_corners=False)}


def tiny_detector() -> nn.Module:
    """Factory for `--model task_models:tiny_detector`: boxes for a 224 x 224 input."""
    torch.manual_seed(0)
    return TinyDetector([[16, 16, 112, 112], [96, 64, 208, 176]], [1, 2]).eval()


def tiny_segmenter() -> nn.Module:
    """Factory for `--model task_models:tiny_segmenter`."""
    torch.manual_seed(0)
    return TinySegmenter().eval()
