"""ROAD (MoRF, LeRF, combined), average drop, increase in confidence, faithfulness correlation and infidelity
against direct computations of their papers' formulas, and on a planted signal, where the true map must win."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.stats
from planted import SIZE, explanation_of, planted_images, planted_network, square_mask, true_maps

import heatlens
from heatlens import metrics
from heatlens.errors import MethodError
from heatlens.metrics import faithfulness
from heatlens.metrics.imputation import noisy_linear_imputation

FAITHFULNESS = ["morf", "lerf", "road", "average_drop", "increase_in_confidence", "faithfulness_correlation",
                "infidelity", "deletion", "insertion"]
QUICK = {"faithfulness_correlation": {"runs": 30}, "infidelity": {"n_perturb": 20}, "deletion": {"steps": 20},
         "insertion": {"steps": 20}}


def distracted_network(calls: list[int] | None = None) -> heatlens.models.Network:
    """Two classes on (N, 32, 32, 3) floats: class 0's logit depends only on the square (8 x its mean brightness
    - 4), class 1's only on everything else (the same of the background), so darkening the background raises class
    0's probability (what increase in confidence rewards) while class 0's logit still sees the square alone."""
    mask = square_mask()

    def predict(x: np.ndarray) -> np.ndarray:
        if calls is not None:
            calls.append(len(x))
        return np.stack([8.0 * x[:, mask].mean(axis=(1, 2)) - 4.0, 8.0 * x[:, ~mask].mean(axis=(1, 2)) - 4.0], 1)

    return heatlens.wrap(predict, preprocess=None, name="distracted")


def softmax0(logits: np.ndarray) -> np.ndarray:
    return np.exp(logits[:, 0]) / np.exp(logits).sum(1)


@pytest.fixture(scope="module")
def planted() -> tuple[heatlens.models.Network, np.ndarray]:
    return distracted_network(), planted_images(3)


@pytest.fixture(scope="module")
def noise_maps() -> np.ndarray:
    return np.random.default_rng(5).normal(size=(3, 1, SIZE, SIZE)).astype(np.float32)


@pytest.mark.parametrize("name", FAITHFULNESS)
def test_the_true_square_beats_noise_and_its_inverse(planted, noise_maps, name):
    """On the shared planted network; increase in confidence needs a distractor to remove (on the shared one no
    map can raise the score), so it runs on the distracted network (where imputing the background from the bright
    square would mislead LeRF instead)."""
    network, x = (planted if name == "increase_in_confidence" else (planted_network(), planted[1]))
    maps = {"true": true_maps(3), "inverse": -true_maps(3), "noise": noise_maps}
    better = max if metrics.get_metric(name).higher_is_better else min
    scores = {k: metrics.compute(name, network, None, explanation_of(network, x, m), progress=False,
                                 **QUICK.get(name, {})).mean() for k, m in maps.items()}
    assert better(scores, key=scores.get) == "true", scores
    assert scores["true"] not in (scores["noise"], scores["inverse"]), scores


def test_normalised_infidelity_of_the_true_square_is_zero(planted, noise_maps):
    """Class 0's logit is linear in the square: beta * indicator is its exact gradient, so the error vanishes."""
    network, x = planted
    true = faithfulness.infidelity(network, None, explanation_of(network, x, square_mask()[None, None].repeat(3, 0)),
                              normalise=True, n_perturb=10, progress=False)
    noise = faithfulness.infidelity(network, None, explanation_of(network, x, noise_maps), normalise=True, n_perturb=10,
                               progress=False)
    assert true.scores.max() < 1e-9 < noise.scores.min()


@pytest.mark.parametrize("direction", ["morf", "lerf"])
def test_road_curves_match_a_direct_loop(planted, noise_maps, direction):
    """Without noise: sort the map, remove the p% most (least) relevant pixels, impute them (the imputation is
    checked against a dense solve in test_imputation), score the target's probability."""
    network, x = planted
    result = metrics.compute(direction, network, None, explanation_of(network, x, noise_maps),
                             percentages=[5, 50, 95], noise=0.0, progress=False)
    for i in range(3):
        order = np.argsort(-noise_maps[i, 0].ravel(), kind="stable")
        expected = []
        for p in (5, 50, 95):
            count = round(p / 100 * SIZE * SIZE)
            removed = np.zeros(SIZE * SIZE, bool)
            removed[order[:count] if direction == "morf" else order[SIZE * SIZE - count:]] = True
            picture = noisy_linear_imputation(x[i], removed.reshape(SIZE, SIZE))
            expected.append(softmax0(network.predict(picture[None]))[0])
        np.testing.assert_allclose(result.curves["scores"][i, 0], expected, rtol=1e-6)
    np.testing.assert_allclose(result.scores[:, 0], result.curves["scores"][:, 0].mean(-1), rtol=1e-12)
    np.testing.assert_array_equal(result.curves["fraction"], [0.05, 0.5, 0.95])


def test_road_is_half_the_lerf_morf_gap_with_the_same_draws(planted, noise_maps):
    network, x = planted
    explanation = explanation_of(network, x, noise_maps)
    kwargs = {"percentages": [20, 60], "noise": 0.05, "seed": 3, "progress": False}
    combined = faithfulness.road(network, None, explanation, **kwargs)
    most = faithfulness.morf(network, None, explanation, **kwargs)
    least = faithfulness.lerf(network, None, explanation, **kwargs)
    np.testing.assert_array_equal(combined.curves["morf"], most.curves["scores"])
    np.testing.assert_array_equal(combined.curves["lerf"], least.curves["scores"])
    np.testing.assert_allclose(combined.scores, ((least.curves["scores"] - most.curves["scores"]) / 2).mean(-1))
    assert combined.forward_passes == most.forward_passes + least.forward_passes == 2 * 3 * 2
    quiet = faithfulness.morf(network, None, explanation, **{**kwargs, "noise": 0.0})
    assert not np.array_equal(quiet.curves["scores"], most.curves["scores"])


@pytest.mark.parametrize(("name", "kwargs", "per_target"), [
    ("road", {"percentages": [10, 50, 90]}, 6),
    ("average_drop", {}, 2),
    ("faithfulness_correlation", {"runs": 9, "subset_size": 20}, 10),
    ("infidelity", {"n_perturb": 6}, 7),
])
def test_passes_are_batched_counted_and_the_draws_do_not_depend_on_the_batch_size(name, kwargs, per_target):
    calls: list[int] = []
    network, x = distracted_network(calls), planted_images(2)
    explanation = explanation_of(network, x, np.random.default_rng(0).random((2, 1, SIZE, SIZE)))
    calls.clear()
    small = metrics.compute(name, network, None, explanation, batch_size=4, progress=False, **kwargs)
    assert sum(calls) == small.forward_passes == 2 * per_target
    assert max(calls) == 4
    large = metrics.compute(name, network, None, explanation, batch_size=64, progress=False, **kwargs)
    np.testing.assert_array_equal(small.scores, large.scores)


def test_average_drop_and_increase_in_confidence_follow_the_formulas(planted, noise_maps):
    """Y on x, O on m x + (1 - m) b with m the map min-max scaled; drop 100 max(0, Y - O) / Y, increase 100 [O > Y]."""
    network, x = planted
    explanation = explanation_of(network, x, noise_maps)
    drop = faithfulness.average_drop(network, None, explanation, baseline=0.25, progress=False)
    increase = faithfulness.increase_in_confidence(network, None, explanation, baseline=0.25, progress=False)
    m = noise_maps[:, 0, :, :, None]
    low, high = m.min(axis=(1, 2), keepdims=True), m.max(axis=(1, 2), keepdims=True)
    m = (m - low) / (high - low)
    y = softmax0(network.predict(x))
    o = softmax0(network.predict((m * x + (1 - m) * 0.25).astype(np.float32)))
    np.testing.assert_allclose(drop.scores[:, 0], 100 * np.maximum(0, y - o) / y, rtol=1e-5)
    np.testing.assert_array_equal(increase.scores[:, 0], 100.0 * (o > y))
    np.testing.assert_allclose(drop.curves["original"][:, 0], y, rtol=1e-6)
    np.testing.assert_allclose(drop.curves["masked"][:, 0], o, rtol=1e-6)


def test_faithfulness_correlation_matches_a_direct_loop(planted, noise_maps):
    network, x = planted
    rng = np.random.default_rng(4)
    subsets = np.stack([np.stack([rng.choice(SIZE * SIZE, 50, replace=False) for _ in range(12)]) for _ in range(3)])
    result = faithfulness.faithfulness_correlation(network, None, explanation_of(network, x, noise_maps),
                                              subsets=subsets, baseline=0.1, progress=False)
    for i in range(3):
        sums, drops = [], []
        for subset in subsets[i]:
            removed = np.zeros(SIZE * SIZE, bool)
            removed[subset] = True
            picture = np.where(removed.reshape(SIZE, SIZE, 1), 0.1, x[i]).astype(np.float32)
            drops.append(network.predict(x[i : i + 1])[0, 0] - network.predict(picture[None])[0, 0])
            sums.append(noise_maps[i, 0].ravel()[subset].sum())
        assert result.scores[i, 0] == pytest.approx(scipy.stats.pearsonr(sums, drops)[0], abs=1e-5)
    assert result.params["subsets"] == "given" and result.params["runs"] == 12


def test_faithfulness_correlation_draws_distinct_pixels_from_its_seed(planted, noise_maps):
    network, x = planted
    explanation = explanation_of(network, x, noise_maps)
    runs = [faithfulness.faithfulness_correlation(network, None, explanation, runs=8, subset_size=30, seed=s,
                                             progress=False) for s in (0, 0, 1)]
    np.testing.assert_array_equal(runs[0].scores, runs[1].scores)
    assert not np.array_equal(runs[0].scores, runs[2].scores)
    sums = runs[0].curves["relevance_sums"]
    assert sums.shape == (3, 1, 8) and runs[0].curves["score_drops"].shape == (3, 1, 8)


def test_an_undefined_correlation_scores_zero_with_a_note(planted):
    """A constant map sums to the same value over every subset of one size: Pearson's r is undefined."""
    network, x = planted
    constant = explanation_of(network, x, np.ones((3, 1, SIZE, SIZE)))
    result = faithfulness.faithfulness_correlation(network, None, constant, runs=5, subset_size=10, progress=False)
    np.testing.assert_array_equal(result.scores, 0.0)
    assert result.notes and "undefined" in result.notes[0]


@pytest.mark.parametrize("normalise", [False, True])
def test_infidelity_follows_yeh_et_al_with_a_given_perturbation(planted, noise_maps, normalise):
    network, x = planted
    draws = iter(np.random.default_rng(6).normal(0, 0.05, (3 * 5, SIZE, SIZE, 3)).astype(np.float32))
    given = [next(draws) for _ in range(15)]
    calls = iter(given)

    def perturb(image: np.ndarray, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
        shift = next(calls)
        return shift, image - shift

    result = faithfulness.infidelity(network, None, explanation_of(network, x, noise_maps), n_perturb=5,
                                     perturb=perturb, normalise=normalise, progress=False, batch_size=4)
    for i in range(3):
        shifts = given[5 * i : 5 * i + 5]
        dots = np.array([(noise_maps[i, 0, :, :, None] * shift.astype(np.float64)).sum() for shift in shifts])
        changes = np.float64(network.predict(x[i : i + 1])[0, 0]) - np.array(
            [network.predict((x[i] - shift)[None])[0, 0] for shift in shifts], np.float64)
        beta = (dots * changes).mean() / (dots * dots).mean() if normalise else 1.0
        # float32 logits differ by a few ulps between batch sizes: ~1e-4 of these small score changes
        assert result.scores[i, 0] == pytest.approx(np.mean((beta * dots - changes) ** 2), rel=1e-3)
    assert result.params["perturb"] == "perturb" and result.params["normalise"] is normalise


def test_the_default_perturbation_scales_with_the_input_range(planted, noise_maps):
    network, x = planted
    explanation = explanation_of(network, x, noise_maps)
    result = faithfulness.infidelity(network, None, explanation, n_perturb=8, noise=0.2, progress=False)
    scaled = faithfulness.infidelity(network, None, explanation_of(network, 2 * x, noise_maps), n_perturb=8, noise=0.2,
                                progress=False)
    np.testing.assert_allclose(scaled.curves["dots"], 2 * result.curves["dots"], rtol=1e-4)


def test_the_metrics_are_registered_with_their_direction():
    expected = {"morf": False, "lerf": True, "road": True, "average_drop": False, "increase_in_confidence": True,
                "faithfulness_correlation": True, "infidelity": False}
    for name, higher in expected.items():
        info = metrics.get_metric(name)
        assert (info.family, info.higher_is_better) == ("faithfulness", higher)
        assert "et al." in info.paper and info.fn.__doc__


def test_a_method_name_explains_first(planted):
    network, x = planted
    result = faithfulness.road(network, x, "occlusion", target=0, options={"window": 8, "stride": 8},
                          percentages=[50], progress=False)
    assert result.method == "occlusion" and result.scores.shape == (3, 1) and result.forward_passes == 6


@pytest.mark.parametrize(("name", "kwargs", "message"), [
    ("road", {"percentages": [10, 100]}, "percentages must be a non-empty list of numbers in"),
    ("morf", {"percentages": []}, "percentages must be a non-empty list of numbers in"),
    ("morf", {"percentages": ["ten"]}, "percentages must be a non-empty list of numbers in"),
    ("road", {"seed": -1}, "seed must be a non-negative integer"),
    ("infidelity", {"seed": 1.5}, "seed must be a non-negative integer"),
    ("lerf", {"noise": -1.0}, "noise must be a number >= 0"),
    ("road", {"score": "softmax"}, "score must be one of"),
    ("average_drop", {"baseline": "white"}, "unknown baseline 'white'"),
    ("faithfulness_correlation", {"subset_size": SIZE * SIZE + 1}, "subset_size must be at most"),
    ("faithfulness_correlation", {"runs": 0}, "runs must be a positive integer"),
    ("faithfulness_correlation", {"subsets": np.array([[0, SIZE * SIZE]])}, "subsets must be integer pixel indices"),
    ("faithfulness_correlation", {"subsets": np.zeros((2, 2, 2))}, "subsets must be integer pixel indices"),
    ("infidelity", {"n_perturb": 0}, "n_perturb must be a positive integer"),
    ("infidelity", {"perturb": lambda image, rng: image}, "perturb must return"),
    ("infidelity", {"perturb": lambda image, rng: (image[:2], image)}, "perturb must return two finite arrays"),
])
def test_bad_parameters_are_refused_in_one_line(planted, name, kwargs, message):
    network, x = planted
    with pytest.raises(MethodError, match=message):
        metrics.compute(name, network, None, explanation_of(network, x, true_maps(3)), progress=False, **kwargs)


def test_the_lead_planted_network_agrees(noise_maps):
    """On the shared planted network (class 1 the negative of class 0) ROAD ranks the true square first too."""
    network, x = planted_network(), planted_images(3)
    true = faithfulness.road(network, None, explanation_of(network, x, true_maps(3)), progress=False)
    noise = faithfulness.road(network, None, explanation_of(network, x, noise_maps), progress=False)
    assert true.scores.min() > noise.scores.max()
