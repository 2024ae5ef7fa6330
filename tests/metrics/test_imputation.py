"""ROAD's noisy linear imputation (Rong et al. 2022) against a dense solve of the paper's equations."""

from __future__ import annotations

import numpy as np
import pytest

from heatlens.errors import MethodError
from heatlens.metrics.imputation import noisy_linear_imputation

DIRECT, DIAGONAL = 1 / 6, 1 / 12


def dense_imputation(image: np.ndarray, removed: np.ndarray) -> np.ndarray:
    """The paper's system written out pixel by pixel: for each removed pixel p, with its in-image neighbours q
    weighted 1/6 (sharing an edge) or 1/12 (a corner), (sum_q w_q) v_p - sum_q w_q v_q = 0, where v_q is the
    known value of a kept neighbour or the unknown of a removed one; solved densely."""
    h, w = removed.shape
    unknowns = [(y, x) for y in range(h) for x in range(w) if removed[y, x]]
    number = {pixel: n for n, pixel in enumerate(unknowns)}
    a = np.zeros((len(unknowns), len(unknowns)))
    b = np.zeros((len(unknowns), image.shape[-1]))
    for row, (y, x) in enumerate(unknowns):
        for dy in (-1, 0, 1):
            for dx in (-1, 0, 1):
                qy, qx = y + dy, x + dx
                if (dy, dx) == (0, 0) or not (0 <= qy < h and 0 <= qx < w):
                    continue
                weight = DIAGONAL if dy and dx else DIRECT
                a[row, row] += weight
                if removed[qy, qx]:
                    a[row, number[(qy, qx)]] -= weight
                else:
                    b[row] += weight * image[qy, qx]
    out = image.astype(np.float64).copy()
    for (y, x), value in zip(unknowns, np.linalg.solve(a, b), strict=True):
        out[y, x] = value
    return out


@pytest.mark.parametrize("share", [0.1, 0.5, 0.9])
def test_the_imputation_solves_the_papers_equations(share):
    rng = np.random.default_rng(0)
    image = rng.normal(size=(7, 9, 2)).astype(np.float32)
    removed = rng.random((7, 9)) < share
    removed[0, 0], removed[6, 8] = True, True  # corners: three in-image neighbours only
    np.testing.assert_allclose(noisy_linear_imputation(image, removed), dense_imputation(image, removed),
                               rtol=1e-5, atol=1e-6)


def test_a_linear_image_is_recovered_inside_it():
    """Symmetric weights reproduce a plane exactly where every removed pixel has all eight neighbours."""
    y, x = np.mgrid[0:10, 0:12].astype(np.float32)
    image = np.stack([0.3 * y - 0.2 * x + 1, 0.1 * x], axis=-1)
    removed = np.zeros((10, 12), bool)
    removed[2:8, 3:9] = True
    np.testing.assert_allclose(noisy_linear_imputation(image, removed), image, atol=1e-5)


def test_noise_is_added_to_the_removed_pixels_only():
    rng = np.random.default_rng(1)
    image = rng.random((8, 8, 3)).astype(np.float32)
    removed = rng.random((8, 8)) < 0.4
    clean = noisy_linear_imputation(image, removed)
    noisy = noisy_linear_imputation(image, removed, noise=0.5, rng=np.random.default_rng(7))
    draws = np.random.default_rng(7).standard_normal((int(removed.sum()), 3))
    np.testing.assert_allclose(noisy[removed] - clean[removed], 0.5 * draws, atol=1e-5)
    np.testing.assert_array_equal(noisy[~removed], image[~removed])


def test_nothing_removed_is_the_image_and_everything_removed_is_refused():
    image = np.random.default_rng(2).random((4, 5, 3)).astype(np.float32)
    np.testing.assert_array_equal(noisy_linear_imputation(image, np.zeros((4, 5), bool)), image)
    with pytest.raises(MethodError, match="needs at least one kept pixel"):
        noisy_linear_imputation(image, np.ones((4, 5), bool))
