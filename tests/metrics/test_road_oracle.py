"""pytorch-grad-cam (package grad-cam) as an independent oracle for ROAD (ROADMostRelevantFirst,
ROADLeastRelevantFirst, their averages over percentiles, ROADCombined) and for average drop / increase in
confidence (CamMultImageConfidenceChange, DropInConfidence, IncreaseInConfidence). `make test` requires it
(HEATLENS_ORACLES=required: a missing oracle fails, not skips).

Conventions, set equal here:
- pytorch-grad-cam's `percentile` q is the map's percentile below which pixels are kept: ROADMostRelevantFirst(q)
  removes the (100 - q)% most relevant pixels (ours: percentages=[100 - q]), ROADLeastRelevantFirst(q) the
  (100 - q)% least relevant (on 1 - map). With h * w a multiple of 10 and distinct map values, its thresholds (numpy's
  interpolated percentiles) select exactly the p% pixels our ranking selects, for p = 10, 20, ..., 90;
- its imputation adds N(0, 0.01^2) noise from torch's global generator: set to 0 here on both sides;
- it returns score changes (after - before) where ours returns the scores after: the test adds the model's score
  on the intact image back; ROADCombined's (LeRF - MoRF) / 2 needs nothing;
- its targets are ClassifierOutputSoftmaxTarget (the target's probability, our default score);
- CamMultImageConfidenceChange multiplies the model input by the map it is given: it gets our map min-max scaled
  to [0, 1] (what ours does, and what its CAMs already are), ours baseline=0.0 (the default); its DropInConfidence
  is max(0, Y - O), ours Chattopadhay et al.'s 100 max(0, Y - O) / Y, and its IncreaseInConfidence 1[O > Y], ours
  100 1[O > Y]."""

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
from pytorch_grad_cam.metrics import cam_mult_image, road
from pytorch_grad_cam.utils.model_targets import ClassifierOutputSoftmaxTarget

import heatlens
from heatlens.explanation import Explanation
from heatlens.metrics import faithfulness
from heatlens.targets import resolve

# pytorch-grad-cam calls np.percentile on a torch tensor, which numpy 2 warns about
pytestmark = pytest.mark.filterwarnings("ignore:__array_wrap__ must accept context:DeprecationWarning")

SIZE, N = 20, 3
PERCENTILES = [10, 20, 30, 40, 50, 60, 70, 80, 90]


@pytest.fixture(scope="module")
def subject():
    """A seeded tiny CNN (its last layer scaled up so its probabilities move), inputs, maps in [0, 1], the
    Explanation of those maps for each image's top class, and pytorch-grad-cam's targets for the same classes."""
    torch.manual_seed(0)
    model = torch.nn.Sequential(
        torch.nn.Conv2d(3, 8, 3, padding=1), torch.nn.ReLU(), torch.nn.Conv2d(8, 8, 3, padding=1, stride=2),
        torch.nn.ReLU(), torch.nn.AdaptiveAvgPool2d(1), torch.nn.Flatten(), torch.nn.Linear(8, 5),
    ).eval()
    with torch.no_grad():
        model[-1].weight *= 20
    network = heatlens.wrap(model, preprocess=None)
    rng = np.random.default_rng(0)
    x = rng.normal(size=(N, SIZE, SIZE, 3)).astype(np.float32)
    maps = rng.random((N, SIZE, SIZE)).astype(np.float32)
    logits = network.predict(x)
    explanation = Explanation(maps=maps[:, None], targets=resolve("top1", logits, None), method="gradcam",
                              model="tiny", logits=logits, _inputs=x)
    targets = [ClassifierOutputSoftmaxTarget(int(i)) for i in explanation.targets.ids[:, 0]]
    tensor = torch.from_numpy(np.ascontiguousarray(x.transpose(0, 3, 1, 2)))
    with torch.no_grad():
        intact = torch.softmax(model(tensor), dim=1).numpy()[np.arange(N), explanation.targets.ids[:, 0]]
    return model, network, tensor, maps, explanation, targets, intact


@pytest.fixture
def noiseless(monkeypatch):
    monkeypatch.setattr(road.NoisyLinearImputer.__init__, "__defaults__", (0.0, road.neighbors_weights))


@pytest.mark.parametrize(("ours", "oracle"), [("morf", road.ROADMostRelevantFirst),
                                              ("lerf", road.ROADLeastRelevantFirst)])
def test_each_percentile_equals_pytorch_grad_cam(subject, noiseless, ours, oracle):
    model, network, tensor, maps, explanation, targets, intact = subject
    result = faithfulness.morf if ours == "morf" else faithfulness.lerf
    mine = result(network, None, explanation, percentages=[100 - q for q in PERCENTILES], noise=0.0, progress=False)
    for index, q in enumerate(PERCENTILES):
        expected = oracle(percentile=q)(tensor, maps, targets, model)
        np.testing.assert_allclose(mine.curves["scores"][:, 0, index] - intact, expected, atol=1e-5)


def test_the_averages_and_road_combined_equal_pytorch_grad_cam(subject, noiseless):
    model, network, tensor, maps, explanation, targets, intact = subject
    kwargs = {"percentages": PERCENTILES, "noise": 0.0, "progress": False}
    most = road.ROADMostRelevantFirstAverage(PERCENTILES)(tensor, maps, targets, model)
    least = road.ROADLeastRelevantFirstAverage(PERCENTILES)(tensor, maps, targets, model)
    combined = road.ROADCombined(PERCENTILES)(tensor, maps, targets, model)
    np.testing.assert_allclose(faithfulness.morf(network, None, explanation, **kwargs).scores[:, 0] - intact, most,
                               atol=1e-5)
    np.testing.assert_allclose(faithfulness.lerf(network, None, explanation, **kwargs).scores[:, 0] - intact, least,
                               atol=1e-5)
    np.testing.assert_allclose(faithfulness.road(network, None, explanation, **kwargs).scores[:, 0], combined,
                               atol=1e-5)


def test_average_drop_and_increase_equal_cam_mult_image(subject):
    model, network, tensor, maps, explanation, targets, intact = subject
    scaled = (maps - maps.min(axis=(1, 2), keepdims=True)) / np.ptp(maps, axis=(1, 2), keepdims=True)
    change = cam_mult_image.CamMultImageConfidenceChange()(tensor, scaled, targets, model)
    drop = cam_mult_image.DropInConfidence()(tensor, scaled, targets, model)
    increase = cam_mult_image.IncreaseInConfidence()(tensor, scaled, targets, model)
    ours_drop = faithfulness.average_drop(network, None, explanation, progress=False)
    ours_increase = faithfulness.increase_in_confidence(network, None, explanation, progress=False)
    np.testing.assert_allclose(ours_drop.curves["masked"][:, 0] - ours_drop.curves["original"][:, 0], change,
                               atol=1e-5)
    np.testing.assert_allclose(ours_drop.scores[:, 0], 100 * drop / intact, rtol=1e-4, atol=1e-4)
    np.testing.assert_array_equal(ours_increase.scores[:, 0], 100 * increase)
