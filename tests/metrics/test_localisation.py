"""Localisation metrics against their papers' definitions computed here directly: the true region's own indicator
scores 1, random maps score chance (the region's share of the image) on average, and each value equals the
formula on the map (pointing game with Zhang et al.'s tolerance, energy, relevance mass and rank)."""

from __future__ import annotations

import numpy as np
import pytest
from planted import SIZE, SQUARE, explanation_of, planted_images, planted_network, square_mask

from heatlens import metrics
from heatlens.errors import MethodError
from heatlens.metrics import localisation

NAMES = ("pointing_game", "energy_pointing_game", "relevance_mass", "relevance_rank")
TOP, LEFT, BOTTOM, RIGHT = SQUARE
BOX = (LEFT, TOP, RIGHT, BOTTOM)  # x_min, y_min, x_max, y_max
CHANCE = square_mask().mean()


@pytest.fixture(scope="module")
def network():
    return planted_network()


def explained(network, maps: np.ndarray):
    return explanation_of(network, planted_images(len(maps)), maps)


@pytest.mark.parametrize("name", NAMES)
def test_the_regions_own_indicator_scores_one(network, name):
    maps = np.broadcast_to(square_mask(), (2, 1, SIZE, SIZE)).astype(np.float32)
    result = metrics.compute(name, network, None, explained(network, maps), region=[BOX, BOX])
    np.testing.assert_array_equal(result.scores, 1.0)
    np.testing.assert_allclose(result.curves["chance"], CHANCE)
    assert result.higher_is_better and result.forward_passes == 0
    assert metrics.get_metric(name).needs_region


@pytest.mark.parametrize("name", NAMES)
def test_random_maps_score_chance(network, name):
    n = 2000
    maps = np.random.default_rng(3).uniform(size=(n, 1, SIZE, SIZE)).astype(np.float32)
    result = metrics.compute(name, network, None, explained(network, maps), region=[BOX] * n)
    spread = np.sqrt(CHANCE * (1 - CHANCE) / n) if name == "pointing_game" else 0.002
    assert abs(result.mean() - CHANCE) < 4 * spread


def test_pointing_game_hits_within_the_tolerance_in_photo_pixels(network):
    maps = np.zeros((1, 1, SIZE, SIZE), np.float32)
    maps[0, 0, 14, 28] = 1.0  # nine pixel centres right of the square's last column (19)
    explanation = explained(network, maps)
    for tolerance, hit in ((0, 0.0), (8.9, 0.0), (9, 1.0), (15, 1.0)):
        result = localisation.pointing_game(network, None, explanation, region=BOX, tolerance=tolerance)
        assert result.scores[0, 0] == hit, tolerance
    np.testing.assert_array_equal(result.curves["peak"][0, 0], (14, 28))
    maps[0, 0, 14, 28], maps[0, 0, 30, 28] = 0.0, 1.0  # diagonal: sqrt(11^2 + 9^2) = 14.2 away
    explanation = explained(network, maps)
    assert localisation.pointing_game(network, None, explanation, region=BOX, tolerance=14.1).scores[0, 0] == 0
    assert localisation.pointing_game(network, None, explanation, region=BOX, tolerance=14.3).scores[0, 0] == 1


def test_ties_count_in_proportion_so_a_constant_map_scores_chance(network):
    flat = np.full((1, 1, SIZE, SIZE), 0.5, np.float32)
    for name in NAMES:
        score = metrics.compute(name, network, None, explained(network, flat), region=BOX).scores[0, 0]
        assert score == pytest.approx(CHANCE), name
    zero = localisation.energy_pointing_game(network, None, explained(network, flat * 0), region=BOX)
    assert zero.scores[0, 0] == 0 and "no relevance to place" in zero.notes[0]


def test_signed_maps_against_the_formulas(network):
    rng = np.random.default_rng(7)
    maps = rng.normal(size=(4, 1, SIZE, SIZE)).astype(np.float32)
    mask = square_mask()
    explanation = explained(network, maps)
    energy = localisation.energy_pointing_game(network, None, explanation, region=[BOX] * 4).scores[:, 0]
    mass = localisation.relevance_mass(network, None, explanation, region=[BOX] * 4, absolute=True).scores[:, 0]
    rank = localisation.relevance_rank(network, None, explanation, region=[BOX] * 4).scores[:, 0]
    rank_abs = localisation.relevance_rank(network, None, explanation, region=[BOX] * 4, absolute=True).scores[:, 0]
    pointing = localisation.pointing_game(network, None, explanation, region=[BOX] * 4).scores[:, 0]
    for i, m in enumerate(maps[:, 0].astype(np.float64)):
        positive = np.clip(m, 0, None)
        assert energy[i] == pytest.approx(positive[mask].sum() / positive.sum(), rel=1e-6)
        assert mass[i] == pytest.approx(np.abs(m)[mask].sum() / np.abs(m).sum(), rel=1e-6)
        k = mask.sum()
        assert rank[i] == pytest.approx(mask.ravel()[np.argsort(-m.ravel())[:k]].mean())
        assert rank_abs[i] == pytest.approx(mask.ravel()[np.argsort(-np.abs(m).ravel())[:k]].mean())
        assert pointing[i] == float(mask.ravel()[np.argmax(m)])


def test_masks_score_like_their_boxes(network):
    maps = np.random.default_rng(2).uniform(size=(3, 1, SIZE, SIZE)).astype(np.float32)
    explanation = explained(network, maps)
    for name in NAMES:
        by_box = metrics.compute(name, network, None, explanation, region=[BOX] * 3)
        by_mask = metrics.compute(name, network, None, explanation, region=np.stack([square_mask()] * 3))
        np.testing.assert_allclose(by_box.scores, by_mask.scores)
        assert (by_box.params["region"], by_mask.params["region"]) == ("boxes", "masks")


def test_bad_parameters_get_clear_errors(network):
    explanation = explained(network, np.ones((1, 1, SIZE, SIZE)))
    with pytest.raises(MethodError, match="tolerance must be a number >= 0"):
        localisation.pointing_game(network, None, explanation, region=BOX, tolerance=-1)
    with pytest.raises(MethodError, match="this metric needs region="):
        localisation.relevance_rank(network, None, explanation)
