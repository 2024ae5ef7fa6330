"""torchvision's detection and segmentation models as Networks: the torch adapter, with CAM methods' default
layer at the backbone's last stage, and a clear request for a score function where the output holds no
class scores (a detector's list of dicts, a segmentation model's per-pixel dict)."""

from __future__ import annotations

from typing import Any

from ...errors import ModelError
from ..tasks import backbone_stage
from .torch import TorchNetwork

ASK = {
    "detection": ("a list of dicts of boxes, labels and scores per image",
                  "score_fn=heatlens.scores.detection(boxes, labels) (CLI: --task detection --box X0,Y0,X1,Y1 "
                  "--label ID)"),
    "segmentation": ("per-pixel class scores (a dict with 'out')",
                     "score_fn=heatlens.scores.segment(class_id, mask) (CLI: --task segmentation --class ID or "
                     "--mask MASK.png)"),
}


class TorchTaskNetwork(TorchNetwork):
    """A torchvision detection ('detection') or segmentation ('segmentation') model; explained through a
    score function from heatlens.scores."""

    def __init__(self, module: Any, task: str, **options: Any) -> None:
        super().__init__(module, **options)
        self.task = task

    def default_layer(self, input_shape: tuple[int, ...] | None = None) -> str:
        """The backbone's last stage (see models.tasks.backbone_stage), else the usual default."""
        return backbone_stage(self.layers(input_shape)) or super().default_layer(input_shape)

    def _logits_of(self, out: Any) -> Any:
        holds, use = ASK[self.task]
        raise ModelError(f"{self.name} is a {self.task} model: its output is {holds}, not class scores; explain it "
                         f"with {use}")
