"""pytorch-grad-cam (package grad-cam) as an independent oracle for the CAM family, where the definitions
agree. `make test` requires it (HEATLENS_ORACLES=required: a missing oracle fails, not skips). Maps are compared the
way pytorch-grad-cam returns them: ReLU'd, bilinearly resized to the input, min-max scaled per image."""

from __future__ import annotations

import os

import numpy as np
import pytest

if os.environ.get("HEATLENS_ORACLES") == "required":  # set by `make test`: a broken oracle env must fail
    import pytorch_grad_cam
    import torch
else:
    torch = pytest.importorskip("torch")
    pytorch_grad_cam = pytest.importorskip("pytorch_grad_cam")
from pytorch_grad_cam.utils.model_targets import ClassifierOutputTarget

import heatlens

METHODS = {
    "gradcam": "GradCAM",
    "ablationcam": "AblationCAM",
    "scorecam": "ScoreCAM",
    "gradcam_plusplus": "GradCAMPlusPlus",
    "xgradcam": "XGradCAM",
    "layercam": "LayerCAM",
    "hirescam": "HiResCAM",
}


class Deeper(torch.nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.features = torch.nn.Sequential(torch.nn.Conv2d(3, 8, 3, padding=1), torch.nn.ReLU(),
                                            torch.nn.Conv2d(8, 16, 3, padding=1, stride=2), torch.nn.ReLU())
        self.head = torch.nn.Sequential(torch.nn.Conv2d(16, 8, 1), torch.nn.ReLU())
        self.fc = torch.nn.Linear(8, 4)

    def forward(self, x):
        return self.fc(self.head(self.features(x)).mean(dim=(2, 3)))


def scaled(maps: np.ndarray) -> np.ndarray:
    low = maps.min(axis=(1, 2), keepdims=True)
    span = maps.max(axis=(1, 2), keepdims=True) - low
    return (maps - low) / (span + 1e-7)


@pytest.fixture
def half_pixel_upsampling(monkeypatch):
    """pytorch-grad-cam's Score-CAM upsamples masks with align_corners=True; heatlens, like every
    resize in it, aligns pixel centres. With the same upsampling the two definitions agree."""
    monkeypatch.setattr(torch.nn, "UpsamplingBilinear2d",
                        lambda size: torch.nn.Upsample(size=size, mode="bilinear", align_corners=False))


@pytest.mark.parametrize("method", sorted(METHODS))
def test_cam_methods_agree_with_pytorch_grad_cam(method, rng, half_pixel_upsampling):
    torch.manual_seed(0)
    model = Deeper().eval()
    with torch.no_grad():
        model.fc.weight *= 1000  # gradients well above pytorch-grad-cam's eps = 1e-6 in Grad-CAM++
    x = rng.standard_normal((3, 32, 32, 3)).astype(np.float32)
    ours = heatlens.explain(heatlens.wrap(model, preprocess=None), x, method=method, target=2, layer="features")
    cam = getattr(pytorch_grad_cam, METHODS[method])(model=model, target_layers=[model.features])
    theirs = cam(input_tensor=torch.from_numpy(x.transpose(0, 3, 1, 2).copy()),
                 targets=[ClassifierOutputTarget(2)] * len(x))
    np.testing.assert_allclose(scaled(ours.maps[:, 0]), theirs, atol=2e-3)


def both_cats(output):
    """heatlens' custom score: classes 1 and 2 together, for the whole batch (N, classes) -> (N,)."""
    return output[:, 1:3].sum(dim=1)


@pytest.mark.parametrize("method", sorted(METHODS))
def test_custom_scores_agree_with_pytorch_grad_cam_targets(method, rng, half_pixel_upsampling):
    """pytorch-grad-cam's targets are callables of one image's output; ours of the batch's."""
    torch.manual_seed(1)
    model = Deeper().eval()
    with torch.no_grad():
        model.fc.weight *= 1000
    x = rng.standard_normal((2, 32, 32, 3)).astype(np.float32)
    ours = heatlens.explain(heatlens.wrap(model, preprocess=None), x, method=method, score_fn=both_cats,
                            layer="features")
    cam = getattr(pytorch_grad_cam, METHODS[method])(model=model, target_layers=[model.features])
    theirs = cam(input_tensor=torch.from_numpy(x.transpose(0, 3, 1, 2).copy()),
                 targets=[lambda output: output[1:3].sum()] * len(x))
    np.testing.assert_allclose(scaled(ours.maps[:, 0]), theirs, atol=2e-3)


# Grad-CAM++ is left out: pytorch-grad-cam adds eps = 1e-6 to its alpha denominator, which swamps the
# squared gradients of probabilities (~1e-6 themselves). test_cam_family.py checks its formula and the
# softmax scores (which every gradient CAM differentiates the same way) independently.
@pytest.mark.parametrize("method", sorted(set(METHODS) - {"scorecam", "ablationcam", "gradcam_plusplus"}))
def test_softmax_scores_agree_with_pytorch_grad_cam(method, rng):
    from pytorch_grad_cam.utils.model_targets import ClassifierOutputSoftmaxTarget

    torch.manual_seed(2)
    model = Deeper().eval()
    with torch.no_grad():
        model.fc.weight *= 30  # confident enough for probabilities to vary, not so much that they saturate
    x = rng.standard_normal((2, 32, 32, 3)).astype(np.float32)
    ours = heatlens.explain(heatlens.wrap(model, preprocess=None), x, method=method, target=2, softmax=True,
                            layer="features")
    cam = getattr(pytorch_grad_cam, METHODS[method])(model=model, target_layers=[model.features])
    theirs = cam(input_tensor=torch.from_numpy(x.transpose(0, 3, 1, 2).copy()),
                 targets=[ClassifierOutputSoftmaxTarget(2)] * len(x))
    np.testing.assert_allclose(scaled(ours.maps[:, 0]), theirs, atol=2e-3)
