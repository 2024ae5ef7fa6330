"""Noisy linear imputation (Rong et al. 2022, ROAD): removed pixels take the weighted mean of their eight
neighbours (direct 1/6, diagonal 1/12), solved for all removed pixels at once as one sparse linear system per
image, plus Gaussian noise, so that the removal itself leaks no information about which pixels were removed."""

from __future__ import annotations

import numpy as np

from ..errors import MethodError

NEIGHBOURS = ((-1, -1, 1 / 12), (-1, 0, 1 / 6), (-1, 1, 1 / 12), (0, -1, 1 / 6),
              (0, 1, 1 / 6), (1, -1, 1 / 12), (1, 0, 1 / 6), (1, 1, 1 / 12))


def noisy_linear_imputation(image: np.ndarray, removed: np.ndarray, noise: float = 0.0,
                            rng: np.random.Generator | None = None) -> np.ndarray:
    """`image` (h, w, C) with the pixels where `removed` (h, w) is True replaced: each removed pixel v_p solves
    v_p = sum_q w_q v_q / sum_q w_q over its in-image neighbours q (known or removed), then gets N(0, noise^2)
    added (drawn from `rng`, seed 0 when None). Returns float32 (h, w, C); the kept pixels are unchanged."""
    from scipy.sparse import csc_matrix
    from scipy.sparse.linalg import spsolve

    image = np.asarray(image)
    removed = np.asarray(removed, bool)
    h, w = removed.shape
    out = image.astype(np.float64, copy=True)
    rows, cols = np.nonzero(removed)
    m = len(rows)
    if m == 0:
        return out.astype(np.float32)
    if m == h * w:
        raise MethodError("noisy linear imputation needs at least one kept pixel: every pixel was removed; "
                          "remove less than 100% of the image")
    variable = np.full((h, w), -1, np.int64)
    variable[rows, cols] = np.arange(m)
    weight_sums = np.zeros(m)
    right = np.zeros((m, image.shape[-1]))
    entries, columns, values = [np.arange(m)], [np.arange(m)], []
    for dy, dx, weight in NEIGHBOURS:
        y, x = rows + dy, cols + dx
        inside = (y >= 0) & (y < h) & (x >= 0) & (x < w)
        weight_sums += weight * inside
        at = np.flatnonzero(inside)
        neighbour = variable[y[at], x[at]]
        known = neighbour < 0
        right[at[known]] += weight * out[y[at[known]], x[at[known]]]
        entries.append(at[~known])
        columns.append(neighbour[~known])
        values.append(np.full(int((~known).sum()), -weight))
    values.insert(0, weight_sums)
    system = csc_matrix((np.concatenate(values), (np.concatenate(entries), np.concatenate(columns))), shape=(m, m))
    solution = np.asarray(spsolve(system, right, permc_spec="MMD_AT_PLUS_A")).reshape(m, -1)  # a symmetric system
    if noise > 0:
        solution = solution + noise * (rng or np.random.default_rng(0)).standard_normal(solution.shape)
    out[rows, cols] = solution
    return out.astype(np.float32)
