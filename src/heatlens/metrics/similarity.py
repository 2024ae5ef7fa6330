"""How alike two maps are, per image and target: Spearman's rank correlation and the structural similarity index
(SSIM), as the sanity checks compare an original map with the map of a changed model or class."""

from __future__ import annotations

import numpy as np

from ..errors import MethodError

SIMILARITIES = ("spearman", "ssim")
WINDOW = 7


def spearman(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Spearman's rank correlation (Spearman 1904) of maps a, b (..., h, w): the Pearson correlation of their pixel
    ranks (ties share their mean rank). Where a map is constant its ranks carry no order: two constant maps give 1.0
    when they are equal and 0.0 otherwise, as does one constant map beside a varying one."""
    from scipy.stats import rankdata

    ra = rankdata(_flat(a), axis=-1)
    rb = rankdata(_flat(b), axis=-1)
    ra -= ra.mean(axis=-1, keepdims=True)
    rb -= rb.mean(axis=-1, keepdims=True)
    norms = np.sqrt((ra * ra).sum(-1) * (rb * rb).sum(-1))
    covariance = (ra * rb).sum(-1)
    same = np.all(_flat(a) == _flat(b), axis=-1)
    with np.errstate(invalid="ignore", divide="ignore"):
        out = np.where(norms > 0, covariance / np.where(norms > 0, norms, 1.0), np.where(same, 1.0, 0.0))
    return np.clip(out, -1.0, 1.0)


def ssim(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """The mean structural similarity (Wang et al. 2004) of maps a, b (..., h, w), 7x7 windows (smaller maps: the
    largest odd window that fits), data range = max - min over both maps (Quantus' convention): scikit-image's
    structural_similarity in float64. Two equal constant maps give 1.0."""
    from skimage.metrics import structural_similarity

    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    h, w = a.shape[-2:]
    window = min(WINDOW, h - (1 - h % 2), w - (1 - w % 2))
    if window < 3:
        raise MethodError(f"SSIM needs maps of at least 3x3 pixels. Received: {h}x{w}")
    flat_a, flat_b = a.reshape(-1, h, w), b.reshape(-1, h, w)
    out = np.empty(len(flat_a))
    for n, (one, other) in enumerate(zip(flat_a, flat_b, strict=True)):
        span = float(max(one.max(), other.max()) - min(one.min(), other.min()))
        if span == 0:
            out[n] = 1.0
        else:
            out[n] = structural_similarity(one, other, win_size=window, data_range=span)
    return out.reshape(a.shape[:-2])


def compare(name: str, a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """The similarity `name` ('spearman' or 'ssim') of maps a, b (..., h, w), shape (...)."""
    check_similarity(name)
    return spearman(a, b) if name == "spearman" else ssim(a, b)


def check_similarity(name: str) -> None:
    """Refuse an unknown similarity name before any work is done."""
    if name not in SIMILARITIES:
        raise MethodError(f"similarity must be one of {', '.join(SIMILARITIES)}. Received: {name!r}")


def _flat(m: np.ndarray) -> np.ndarray:
    m = np.asarray(m, np.float64)
    return m.reshape(*m.shape[:-2], -1)
