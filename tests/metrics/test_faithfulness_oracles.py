"""Quantus 0.6 (torch path) and captum as independent oracles for the faithfulness metrics, on a tiny seeded CNN.

Compared, to 1e-5:
- faithfulness_correlation vs quantus.FaithfulnessCorrelation, with Quantus' own random subsets (recorded from its
  perturbation function) fed to ours as `subsets=`;
- deletion (the lead's) vs quantus.PixelFlipping with features_in_step = pixels / steps (1 and 8): Quantus' curve
  is ours without its first point (Quantus records the score after each step, not the intact image's); Quantus'
  AUC is np.trapz with dx=1 over that curve, ours the trapezoid over the fraction removed in [0, 1] from step 0.
  (quantus.RegionPerturbation removes square patches, which deletion does not offer: not compared);
- the imputation under ROAD vs quantus.functions.perturb_func.noisy_linear_imputation (noise 0);
- infidelity vs captum.metrics.infidelity (normalize False and True) with the same perturbations.

Convention differences, set equal here:
- Quantus' features are the input's values (channel x pixel), ours pixels (a map applies to every channel): the
  Quantus cases use a one-channel model, where the two coincide;
- Quantus normalises (divides by the max |value|) by default: normalise=False, abs=False here (Pearson's r and
  the pixel order are unchanged by it anyway); its 'black' baseline is not ours: both get the number 0.0;
- Quantus' FaithfulnessCorrelation uses logits (softmax=False), PixelFlipping probabilities (softmax=True): ours
  get score='logit' and the default 'probability';
- captum's perturb_func takes the batch of inputs (N x samples, image-major); ours perturb(x, rng) one input at a
  time in the same order: both take the same pre-drawn noise, and the map is broadcast over the channels for
  captum's attributions.

Not compared: Quantus' ROAD scores top-1 accuracy over the batch per percentage (ours: the target's score per
image), and Quantus' Infidelity removes square patches with its own loss (captum's definition is Yeh et al.'s)."""

from __future__ import annotations

import numpy as np
import pytest

torch = pytest.importorskip("torch")
quantus = pytest.importorskip("quantus")
captum_metrics = pytest.importorskip("captum.metrics")

import heatlens
from heatlens import metrics
from heatlens.explanation import Explanation
from heatlens.metrics import faithfulness
from heatlens.metrics.imputation import noisy_linear_imputation
from heatlens.targets import resolve

SIZE, N = 20, 3


def tiny_cnn(channels: int) -> torch.nn.Module:
    """A seeded random CNN whose last layer is scaled up, so that its probabilities move as pixels go."""
    torch.manual_seed(channels)
    model = torch.nn.Sequential(
        torch.nn.Conv2d(channels, 6, 3, padding=1), torch.nn.ReLU(), torch.nn.Conv2d(6, 6, 3, padding=1, stride=2),
        torch.nn.ReLU(), torch.nn.AdaptiveAvgPool2d(1), torch.nn.Flatten(), torch.nn.Linear(6, 4),
    ).eval()
    with torch.no_grad():
        model[-1].weight *= 20
    return model


def case(channels: int) -> tuple[torch.nn.Module, heatlens.models.Network, np.ndarray, np.ndarray, Explanation]:
    """The model, its Network, inputs (N, SIZE, SIZE, C), maps (N, SIZE, SIZE) and an Explanation of them for
    each image's top class."""
    model = tiny_cnn(channels)
    network = heatlens.wrap(model, preprocess=None)
    rng = np.random.default_rng(channels)
    x = rng.normal(size=(N, SIZE, SIZE, channels)).astype(np.float32)
    maps = rng.normal(size=(N, SIZE, SIZE)).astype(np.float32)
    logits = network.predict(x)
    explanation = Explanation(maps=maps[:, None], targets=resolve("top1", logits, None), method="saliency",
                              model="tiny", logits=logits, _inputs=x)
    return model, network, x, maps, explanation


@pytest.fixture(scope="module")
def gray():
    return case(1)


def channels_first(x: np.ndarray) -> np.ndarray:
    return np.ascontiguousarray(x.transpose(0, 3, 1, 2))


def test_faithfulness_correlation_equals_quantus_on_its_own_subsets(gray):
    model, network, x, maps, explanation = gray
    recorded = []

    def recording(arr, indices, **kwargs):
        recorded.append(np.array(indices))
        return quantus.functions.perturb_func.batch_baseline_replacement_by_indices(arr, indices, **kwargs)

    oracle = quantus.FaithfulnessCorrelation(nr_runs=12, subset_size=40, perturb_baseline=0.0, perturb_func=recording,
                                             normalise=False, abs=False, return_aggregate=False,
                                             disable_warnings=True)
    y = explanation.targets.ids[:, 0]
    expected = oracle(model=model, x_batch=channels_first(x), y_batch=y, a_batch=maps[:, None], softmax=False,
                      device="cpu")
    subsets = np.stack(recorded, axis=1)  # (N, runs, size)
    ours = faithfulness.faithfulness_correlation(network, None, explanation, subsets=subsets, baseline=0.0,
                                                 score="logit", progress=False)
    np.testing.assert_allclose(ours.scores[:, 0], expected, atol=1e-5)


@pytest.mark.parametrize("steps", [SIZE * SIZE, 50])
def test_deletion_equals_quantus_pixel_flipping(gray, steps):
    """features_in_step=1 (one pixel a step, as Quantus' default) and 8."""
    model, network, x, maps, explanation = gray
    oracle = quantus.PixelFlipping(features_in_step=SIZE * SIZE // steps, perturb_baseline=0.0, normalise=False,
                                   abs=False, disable_warnings=True)
    curve = np.array(oracle(model=model, x_batch=channels_first(x), y_batch=explanation.targets.ids[:, 0],
                            a_batch=maps[:, None], softmax=True, device="cpu"))
    ours = metrics.deletion(network, None, explanation, steps=steps, baseline=0.0, progress=False)
    np.testing.assert_allclose(ours.curves["scores"][:, 0, 1:], curve, atol=1e-5)
    full = np.concatenate([ours.curves["scores"][:, 0, :1], curve], axis=1)
    np.testing.assert_allclose(ours.scores[:, 0], np.trapezoid(full, dx=1 / steps, axis=1), atol=1e-5)


def test_the_road_imputation_equals_quantus():
    rng = np.random.default_rng(3)
    image = rng.normal(size=(3, SIZE, SIZE))
    for share in (0.1, 0.5, 0.9):
        removed = rng.random((SIZE, SIZE)) < share
        expected = quantus.functions.perturb_func.noisy_linear_imputation(image, np.flatnonzero(removed), noise=0.0)
        np.testing.assert_allclose(noisy_linear_imputation(image.transpose(1, 2, 0), removed),
                                   expected.transpose(1, 2, 0), atol=1e-5)


@pytest.mark.parametrize("normalise", [False, True])
def test_infidelity_equals_captum_with_the_same_perturbations(normalise):
    model, network, x, maps, explanation = case(3)
    samples = 7
    noise = np.random.default_rng(9).normal(0, 0.2, (N * samples, SIZE, SIZE, 3)).astype(np.float32)

    def captum_perturb(inputs):
        shift = torch.from_numpy(channels_first(noise))
        return shift, inputs - shift

    expected = captum_metrics.infidelity(
        model, captum_perturb, torch.from_numpy(channels_first(x)),
        torch.from_numpy(np.repeat(maps[:, None], 3, axis=1)), target=torch.from_numpy(explanation.targets.ids[:, 0]),
        n_perturb_samples=samples, normalize=normalise).numpy()
    given = iter(noise)

    def ours_perturb(image, rng):
        shift = next(given)
        return shift, image - shift

    ours = faithfulness.infidelity(network, None, explanation, n_perturb=samples, perturb=ours_perturb,
                                   normalise=normalise, score="logit", progress=False)
    np.testing.assert_allclose(ours.scores[:, 0], expected, rtol=1e-5, atol=1e-5)
