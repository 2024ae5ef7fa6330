"""pytorch-grad-cam as the oracle for heatlens.scores on torchvision's own detection and segmentation models:
heatlens' Grad-CAM, Eigen-CAM and Ablation-CAM with `detection` / `segment` equal pytorch-grad-cam's with
FasterRCNNBoxScoreTarget / SemanticSegmentationTarget on the same layer, to 1e-4, maps scaled the way
pytorch-grad-cam returns them. Random weights (nothing downloads); each model is built once for the module.
`make test` requires the oracle (HEATLENS_ORACLES=required: a missing one fails, not skips)."""

from __future__ import annotations

import copy
import os

import numpy as np
import pytest

if os.environ.get("HEATLENS_ORACLES") == "required":
    import pytorch_grad_cam
    import torch
    import torchvision
else:
    torch = pytest.importorskip("torch")
    torchvision = pytest.importorskip("torchvision")
    pytorch_grad_cam = pytest.importorskip("pytorch_grad_cam")
from pytorch_grad_cam.utils.model_targets import FasterRCNNBoxScoreTarget, SemanticSegmentationTarget

import heatlens
from heatlens import scores

SIZE = 128  # a multiple of 32: torchvision's detection transform neither resizes nor pads it (min/max size 128)
CUDA = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device: thousands of full passes")


def scaled(maps: np.ndarray) -> np.ndarray:
    low = maps.min(axis=(1, 2), keepdims=True)
    span = maps.max(axis=(1, 2), keepdims=True) - low
    return (maps - low) / (span + 1e-7)


class SegmentationLogits(torch.nn.Module):
    """pytorch-grad-cam's side of a segmentation model: its tutorial's wrapper that returns the dict's 'out'."""

    def __init__(self, model: torch.nn.Module) -> None:
        super().__init__()
        self.model = model

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.model(x)["out"]


def oracle(cam: str, model: torch.nn.Module, layer: torch.nn.Module, x: torch.Tensor, targets: list) -> np.ndarray:
    """pytorch-grad-cam's maps for one input and its targets; its hooks are removed afterwards (the models are
    shared by the module's tests)."""
    with getattr(pytorch_grad_cam, cam)(model=model, target_layers=[layer]) as method:
        return method(input_tensor=x, targets=targets)


@pytest.fixture(scope="module")
def photo() -> np.ndarray:
    return np.random.default_rng(3).integers(0, 256, (SIZE, SIZE, 3), dtype=np.uint8)


@pytest.fixture(scope="module")
def detector():
    torch.manual_seed(0)
    return torchvision.models.detection.fasterrcnn_resnet50_fpn(
        weights=None, weights_backbone=None, min_size=SIZE, max_size=SIZE, box_score_thresh=0.0,
        rpn_pre_nms_top_n_test=100, rpn_post_nms_top_n_test=50, box_detections_per_img=10).eval()


@pytest.fixture(scope="module")
def detected(detector, photo):
    """The detector's input (what heatlens prepares: 0..1 floats at the photo's size) and its detections."""
    x = torch.from_numpy(photo.transpose(2, 0, 1).astype(np.float32) / 255)[None]
    with torch.no_grad():
        (found,) = detector(x)
    assert len(found["boxes"]) >= 2, "the random-weight detector should detect something at box_score_thresh=0"
    return x, {key: value[:2].numpy() for key, value in found.items()}


@pytest.fixture(scope="module")
def segmenter():
    torch.manual_seed(0)
    return torchvision.models.segmentation.deeplabv3_resnet50(weights=None, weights_backbone=None,
                                                              num_classes=4).eval()


@pytest.fixture(scope="module")
def segmented(segmenter, photo):
    """The segmenter's input (ImageNet-normalised at the photo's size), its most predicted class and that
    class's pixels."""
    network = heatlens.wrap(segmenter)
    x = torch.from_numpy(network.prepare(photo[None]).transpose(0, 3, 1, 2).copy())
    with torch.no_grad():
        predicted = segmenter(x)["out"].argmax(1)[0].numpy()
    class_id = int(np.bincount(predicted.ravel()).argmax())
    return x, class_id, predicted == class_id


def test_detection_scores_equal_faster_rcnn_box_score_target(detector, detected):
    x, found = detected
    with torch.no_grad():
        output = detector(x)
    ours = scores.detection(found["boxes"], found["labels"], iou=True)(output)
    theirs = FasterRCNNBoxScoreTarget(found["labels"], found["boxes"])(output[0])
    np.testing.assert_allclose(ours.sum().item(), theirs.item(), rtol=1e-6)


@pytest.mark.parametrize(("method", "cam"), [("gradcam", "GradCAM"), ("eigencam", "EigenCAM")])
def test_detection_cams_agree_with_pytorch_grad_cam(detector, detected, photo, method, cam):
    x, found = detected
    boxes, labels = (found["boxes"], found["labels"]) if method == "gradcam" else (found["boxes"][:1],
                                                                                  found["labels"][:1])
    ours = heatlens.explain(heatlens.wrap(detector), photo, method=method, target=list(range(len(boxes))),
                            score_fn=scores.detection(boxes, labels, iou=True))
    assert ours.layer == "backbone.body.layer4"
    for k in range(len(boxes)):
        theirs = oracle(cam, detector, detector.backbone.body.layer4, x,
                        [FasterRCNNBoxScoreTarget(labels[k : k + 1], boxes[k : k + 1])])
        np.testing.assert_allclose(scaled(ours.maps[:, k]), theirs, atol=1e-4)
    if method == "gradcam":
        assert not np.allclose(scaled(ours.maps[:, 0]), scaled(ours.maps[:, 1]), atol=1e-2)


@pytest.mark.parametrize(("method", "cam"), [("gradcam", "GradCAM"), ("eigencam", "EigenCAM")])
def test_segmentation_cams_agree_with_pytorch_grad_cam(segmenter, segmented, photo, method, cam):
    x, class_id, mask = segmented
    network = heatlens.wrap(segmenter)
    ours = heatlens.explain(network, photo, method=method, score_fn=scores.segment(class_id, mask))
    assert ours.layer == "backbone.layer4"
    theirs = oracle(cam, SegmentationLogits(segmenter), segmenter.backbone.layer4, x,
                    [SemanticSegmentationTarget(class_id, mask.astype(np.float32))])
    np.testing.assert_allclose(scaled(ours.maps[:, 0]), theirs, atol=1e-4)
    if method == "gradcam":  # without a mask: the pixels predicted as the class, the same region here
        predicted = heatlens.explain(network, photo, method=method, score_fn=scores.segment(class_id))
        np.testing.assert_allclose(predicted.maps, ours.maps, rtol=1e-5, atol=1e-7)


def test_segmentation_ablationcam_agrees_on_a_narrow_layer(segmenter, segmented, photo):
    """The classifier's last convolution (4 channels): 4 ablations, cheap enough for a CPU; the backbone's
    2048 channels are checked on a GPU below."""
    x, class_id, mask = segmented
    ours = heatlens.explain(heatlens.wrap(segmenter), photo, method="ablationcam", layer="classifier.4",
                            score_fn=scores.segment(class_id, mask), progress=False)
    theirs = oracle("AblationCAM", SegmentationLogits(segmenter), segmenter.classifier[4], x,
                    [SemanticSegmentationTarget(class_id, mask.astype(np.float32))])
    np.testing.assert_allclose(scaled(ours.maps[:, 0]), theirs, atol=1e-4)


def test_detection_ablationcam_agrees_on_a_narrow_layer(detector, detected, photo):
    """The first bottleneck's first convolution (64 channels): 64 ablations of the whole detector, about a
    minute on a CPU for both libraries; layer4's 2048 channels are checked on a GPU below."""
    x, found = detected
    boxes, labels = found["boxes"][:1], found["labels"][:1]
    ours = heatlens.explain(heatlens.wrap(detector), photo, method="ablationcam", target=0,
                            layer="backbone.body.layer1.0.conv1",
                            score_fn=scores.detection(boxes, labels, iou=True), progress=False)
    theirs = oracle("AblationCAM", detector, detector.backbone.body.layer1[0].conv1, x,
                    [FasterRCNNBoxScoreTarget(labels, boxes)])
    np.testing.assert_allclose(scaled(ours.maps[:, 0]), theirs, atol=1e-4)

@pytest.fixture
def full_float32_cuda(monkeypatch):
    """pytorch-grad-cam runs with torch's TF32 defaults; heatlens turns TF32 off on CUDA. Compare in float32."""
    monkeypatch.setattr(torch.backends.cudnn, "allow_tf32", False)
    monkeypatch.setattr(torch.backends.cuda.matmul, "allow_tf32", False)


@CUDA
def test_detection_ablationcam_agrees_on_the_backbone(detector, detected, photo, full_float32_cuda):
    x, found = detected
    model = copy.deepcopy(detector).cuda()
    boxes, labels = found["boxes"][:1], found["labels"][:1]
    ours = heatlens.explain(heatlens.wrap(model), photo, method="ablationcam", target=0,
                            score_fn=scores.detection(boxes, labels, iou=True), progress=False)
    theirs = oracle("AblationCAM", model, model.backbone.body.layer4, x.cuda(),
                    [FasterRCNNBoxScoreTarget(labels, boxes)])
    np.testing.assert_allclose(scaled(ours.maps[:, 0]), theirs, atol=1e-4)


@CUDA
def test_segmentation_ablationcam_agrees_on_the_backbone(segmenter, segmented, photo, full_float32_cuda):
    x, class_id, mask = segmented
    model = copy.deepcopy(segmenter).cuda()
    ours = heatlens.explain(heatlens.wrap(model), photo, method="ablationcam",
                            score_fn=scores.segment(class_id, mask), progress=False)
    theirs = oracle("AblationCAM", SegmentationLogits(model), model.backbone.layer4, x.cuda(),
                    [SemanticSegmentationTarget(class_id, mask.astype(np.float32))])
    np.testing.assert_allclose(scaled(ours.maps[:, 0]), theirs, atol=1e-4)
