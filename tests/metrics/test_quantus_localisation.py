"""Localisation, complexity and robustness metrics against Quantus 0.6 (torch path) and captum, on the same inputs,
maps, regions and noise draws: equal to 1e-5.

Compared: PointingGame, AttributionLocalisation (positive_attributions=True: the energy pointing game),
RelevanceMassAccuracy, RelevanceRankAccuracy, Sparseness, Complexity, MaxSensitivity, AvgSensitivity, and captum's
sensitivity_max. Convention differences, set equal here:
- Quantus normalises maps by their max |value| by default (normalise=True): off here (normalise=False); the
  localisation ratios, the Gini index and the entropy do not change under it, sensitivity would.
- Quantus takes |map| by default for Sparseness and Complexity (abs=True), as heatlens does; RelevanceMassAccuracy
  sums the signed map by default: heatlens counts the positive part (Arras et al.'s), so Quantus gets the map's
  positive part there, and abs=True is compared with absolute=True.
- Quantus' PointingGame scores 1 when ANY of several tied maxima hits, heatlens the share of them that hit; the maps
  here have one maximum. RelevanceRankAccuracy breaks ties by argsort, heatlens counts them in proportion: no ties.
- Quantus adds 1e-7 to every |value| before the Gini index and 1e-12 inside the entropy's log, and
  AttributionLocalisation adds 1e-9 to its denominator: below 1e-5 here.
- Quantus and captum draw the noise from numpy's and torch's global generators: their draws are recorded and fed
  to heatlens through perturb=. Quantus perturbs channels-first arrays, heatlens channels-last ones (transposed).
- captum's sensitivity_max divides by 1 where the map's norm is 0, as heatlens does; Quantus would divide by 0.
"""

from __future__ import annotations

import numpy as np
import pytest

torch = pytest.importorskip("torch")
quantus = pytest.importorskip("quantus")
captum_sensitivity = pytest.importorskip("captum.metrics").sensitivity_max

from planted import explanation_of
from toy_models import TinyCNN

import heatlens
from heatlens.metrics import localisation, robustness

SIZE, N = 16, 4
BOXES = [(2, 3, 9, 11), (0, 0, 16, 4), (5, 5, 6, 6), (8, 1, 15, 13)]  # x_min, y_min, x_max, y_max
QUIET = {"disable_warnings": True, "display_progressbar": False}


def masks() -> np.ndarray:
    out = np.zeros((N, 1, SIZE, SIZE), bool)
    for i, (x_min, y_min, x_max, y_max) in enumerate(BOXES):
        out[i, 0, y_min:y_max, x_min:x_max] = True
    return out


@pytest.fixture(scope="module")
def model():
    torch.manual_seed(0)
    return TinyCNN(classes=3).eval()


@pytest.fixture(scope="module")
def x() -> np.ndarray:
    return np.random.default_rng(0).uniform(0, 1, (N, SIZE, SIZE, 3)).astype(np.float32)


@pytest.fixture(scope="module")
def maps() -> np.ndarray:
    return np.random.default_rng(1).normal(size=(N, 1, SIZE, SIZE)).astype(np.float32)


def quantus_scores(metric, model, x, a, labels=None, **extra) -> np.ndarray:
    return np.asarray(metric(model=model, x_batch=x.transpose(0, 3, 1, 2), y_batch=np.zeros(N, int) if labels is None
                             else labels, a_batch=a, **extra), np.float64)


def brightness_network() -> heatlens.models.Network:
    """A predict function on model-ready (N, 16, 16, 3) floats: the maps here are the test's own, not its."""
    return heatlens.wrap(lambda x: np.stack([x.mean(axis=(1, 2, 3)), -x.mean(axis=(1, 2, 3))], 1), preprocess=None)


def test_localisation_equals_quantus(model, x, maps):
    network = brightness_network()
    explanation = explanation_of(network, x, maps)
    regions = list(BOXES)
    s = masks()
    cases = [
        (localisation.pointing_game, {}, quantus.PointingGame(abs=False, normalise=False, **QUIET), maps),
        (localisation.energy_pointing_game, {},
         quantus.AttributionLocalisation(positive_attributions=True, abs=False, normalise=False, **QUIET), maps),
        (localisation.relevance_mass, {}, quantus.RelevanceMassAccuracy(abs=False, normalise=False, **QUIET),
         np.clip(maps, 0, None)),
        (localisation.relevance_mass, {"absolute": True},
         quantus.RelevanceMassAccuracy(abs=True, normalise=False, **QUIET), maps),
        (localisation.relevance_rank, {}, quantus.RelevanceRankAccuracy(abs=False, normalise=False, **QUIET), maps),
        (localisation.relevance_rank, {"absolute": True},
         quantus.RelevanceRankAccuracy(abs=True, normalise=False, **QUIET), maps),
    ]
    for ours, params, theirs, their_maps in cases:
        got = ours(network, None, explanation, region=regions, **params).scores[:, 0]
        expected = quantus_scores(theirs, model, x, their_maps, s_batch=s)
        np.testing.assert_allclose(got, expected, rtol=1e-5, atol=1e-7, err_msg=f"{ours.__name__} {params}")
    assert len(set(localisation.pointing_game(network, None, explanation, region=regions).scores[:, 0])) == 2


def test_sparseness_and_complexity_equal_quantus(model, x, maps):
    network = brightness_network()
    explanation = explanation_of(network, x, maps)
    for ours, theirs in ((robustness.sparseness, quantus.Sparseness(abs=True, normalise=False, **QUIET)),
                         (robustness.complexity, quantus.Complexity(abs=True, normalise=False, **QUIET))):
        got = ours(network, None, explanation).scores[:, 0]
        np.testing.assert_allclose(got, quantus_scores(theirs, model, x, maps.copy()), rtol=1e-5)


def saliency(model, inputs, targets) -> torch.Tensor:
    """max over channels of |d logit[target] / d input| for channels-first inputs: (N, 1, h, w) (a 1-tuple of it
    for a 1-tuple of inputs, as captum's attribution methods answer)."""
    if isinstance(inputs, tuple):
        return (saliency(model, inputs[0], targets),)
    inputs = torch.as_tensor(np.asarray(inputs), dtype=torch.float32).detach().requires_grad_(True)
    with torch.enable_grad():
        logits = model(inputs)
        chosen = logits[torch.arange(len(inputs)), torch.as_tensor(np.asarray(targets)).long()]
        (grads,) = torch.autograd.grad(chosen.sum(), inputs)
    return grads.abs().amax(dim=1, keepdim=True)


class Feed:
    """A heatlens perturb= hook handing out recorded noisy inputs (channels-last) in heatlens' job order."""

    def __init__(self, noisy: np.ndarray):
        self.noisy, self.at = noisy, 0

    def __call__(self, x: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        out = self.noisy[self.at : self.at + len(x)]
        self.at += len(x)
        return out


@pytest.mark.parametrize(("ours", "theirs"), [(robustness.max_sensitivity, quantus.MaxSensitivity),
                                              (robustness.avg_sensitivity, quantus.AvgSensitivity)])
def test_sensitivity_equals_quantus(model, x, ours, theirs):
    samples, radius = 5, 0.1
    labels = np.array([0, 1, 2, 1])
    draws: list[np.ndarray] = []

    def recorded_noise(arr: np.ndarray, indices: np.ndarray, **kwargs) -> np.ndarray:
        noisy = quantus.batch_uniform_noise(arr, indices, lower_bound=radius)
        draws.append(noisy.astype(np.float32))
        return noisy

    metric = theirs(nr_samples=samples, perturb_func=recorded_noise, lower_bound=radius, normalise=False, abs=False,
                    **QUIET)
    a = saliency(model, x.transpose(0, 3, 1, 2), labels).numpy()
    expected = quantus_scores(metric, model, x, a, labels, explain_func=lambda model, inputs, targets, **_:
                              saliency(model, inputs, targets).numpy())
    by_sample = np.stack(draws).reshape(samples, N, 3, SIZE, SIZE).transpose(1, 0, 3, 4, 2)  # (N, samples, h, w, C)
    network = heatlens.wrap(model, preprocess=None)
    got = ours(network, x, "saliency", target=[[t] for t in labels], n_samples=samples,
               perturb=Feed(by_sample.reshape(-1, SIZE, SIZE, 3)), batch_size=7, progress=False)
    np.testing.assert_allclose(got.scores[:, 0], expected, rtol=1e-5)
    assert (expected > 0).all()


def test_max_sensitivity_equals_captum(model, x):
    samples, radius = 6, 0.05
    labels = torch.tensor([2, 0, 1, 1])
    recorded: list[torch.Tensor] = []

    def perturb(inputs: torch.Tensor, perturb_radius: float) -> torch.Tensor:
        noisy = inputs + torch.empty_like(inputs).uniform_(-perturb_radius, perturb_radius)
        recorded.append(noisy.detach().clone())
        return noisy

    torch.manual_seed(3)
    expected = captum_sensitivity(lambda inputs, target: saliency(model, inputs, target),
                                  torch.from_numpy(x.transpose(0, 3, 1, 2)), perturb_func=perturb,
                                  perturb_radius=radius, n_perturb_samples=samples, target=labels).numpy()
    noisy = torch.cat(recorded).numpy().transpose(0, 2, 3, 1)  # captum repeats each input n times in turn
    network = heatlens.wrap(model, preprocess=None)
    got = robustness.max_sensitivity(network, x, "saliency", target=[[int(t)] for t in labels], n_samples=samples,
                                     perturb=Feed(noisy), progress=False)
    np.testing.assert_allclose(got.scores[:, 0], expected, rtol=1e-5)
    assert (expected > 0).all()
