"""Localisation metrics: how much of a map falls on the object, given as boxes (x_min, y_min, x_max, y_max) or
boolean masks in PHOTO pixels (see heatlens.metrics.regions), measured on the model-input grid. No forward passes.

A random map scores the region's share of the model input (`curves['chance']`) on each of them; the region's own
indicator map scores 1.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from ..methods.shared import at_least
from ..targets import TargetSpec
from .core import MetricResult, Subject, subject
from .regions import GridRegions, regions_on_grid
from .registry import register

ZHANG = "Zhang et al. 2018, Top-down Neural Attention by Excitation Backprop"
WANG = "Wang et al. 2020, Score-CAM: Score-Weighted Visual Explanations for Convolutional Neural Networks"
ARRAS = ("Arras et al. 2022, CLEVR-XAI: A benchmark dataset for the ground truth evaluation of neural network "
         "explanations")


@register("pointing_game", "localisation", True, "1 if the map's maximum falls on the object", ZHANG,
          needs_region=True)
def pointing_game(model: Any, images: Any, explanation: Any = "gradcam", target: TargetSpec = "top1",
                  region: Any = None, tolerance: float = 0.0, options: dict[str, Any] | None = None,
                  batch_size: int | str = "auto", progress: bool = True) -> MetricResult:
    """Hit = 1 if the map's maximum lies in the region, or within `tolerance` photo pixels of it (Zhang et al. use
    15); 0 otherwise. Where several pixels share the maximum, the share of them that hit (a random tie-break's
    expected hit), so a constant map scores chance, not 1. batch_size and progress: unused (no forward passes)."""
    at_least("tolerance", tolerance)
    sub, regions = _localised(model, images, explanation, target, region, options)
    n, k, h, w = sub.maps.shape
    reach = [_within(mask, tolerance, sub) for mask in regions.masks]
    scores = np.zeros((n, k))
    peaks = np.zeros((n, k, 2), np.int64)
    for i in range(n):
        for j in range(k):
            top = sub.maps[i, j] == sub.maps[i, j].max()
            scores[i, j] = (top & reach[i]).sum() / top.sum()
            peaks[i, j] = np.unravel_index(np.argmax(top), (h, w))
    return _result("pointing_game", sub, regions, scores, {"peak": peaks}, {"tolerance": float(tolerance)})


def _within(mask: np.ndarray, tolerance: float, sub: Subject) -> np.ndarray:
    """The model-input pixels whose centres lie within `tolerance` photo pixels of a region pixel's centre."""
    if tolerance == 0:
        return mask
    from scipy.ndimage import distance_transform_edt

    top, left, bottom, right = _input_box(sub)
    h, w = mask.shape
    return distance_transform_edt(~mask, sampling=((bottom - top) / h, (right - left) / w)) <= tolerance


@register("energy_pointing_game", "localisation", True, "the share of the map's positive energy on the object",
          WANG, needs_region=True)
def energy_pointing_game(model: Any, images: Any, explanation: Any = "gradcam", target: TargetSpec = "top1",
                         region: Any = None, options: dict[str, Any] | None = None, batch_size: int | str = "auto",
                         progress: bool = True) -> MetricResult:
    """sum_{p in region} max(M_p, 0) / sum_p max(M_p, 0): the paper's energy proportion for maps >= 0 (the CAM
    family's); signed maps count their positive part, the evidence for the class. A map with no positive value
    scores 0. batch_size and progress: unused (no forward passes)."""
    sub, regions = _localised(model, images, explanation, target, region, options)
    return _mass("energy_pointing_game", sub, regions, np.maximum(sub.maps, 0), {})


@register("relevance_mass", "localisation", True, "the share of the map's relevance on the object", ARRAS,
          needs_region=True)
def relevance_mass(model: Any, images: Any, explanation: Any = "gradcam", target: TargetSpec = "top1",
                   region: Any = None, absolute: bool = False, options: dict[str, Any] | None = None,
                   batch_size: int | str = "auto", progress: bool = True) -> MetricResult:
    """Relevance mass accuracy R_within / R_total over the positive relevance (Arras et al.'s definition; then equal
    to energy_pointing_game), or over |R| with absolute=True (Quantus' abs=True). A map with no relevance
    scores 0. batch_size and progress: unused (no forward passes)."""
    sub, regions = _localised(model, images, explanation, target, region, options)
    relevance = np.abs(sub.maps) if absolute else np.maximum(sub.maps, 0)
    return _mass("relevance_mass", sub, regions, relevance, {"absolute": bool(absolute)})


def _mass(name: str, sub: Subject, regions: GridRegions, relevance: np.ndarray,
          params: dict[str, Any]) -> MetricResult:
    inside = (relevance * regions.masks[:, None]).sum(axis=(2, 3), dtype=np.float64)
    total = relevance.sum(axis=(2, 3), dtype=np.float64)
    scores = np.divide(inside, total, out=np.zeros_like(total), where=total > 0)
    empty = int((total == 0).sum())
    notes = [f"{empty} map(s) have no relevance to place (no value counted is > 0): they score 0"] if empty else []
    return _result(name, sub, regions, scores, {"inside": inside, "total": total}, params, notes)


@register("relevance_rank", "localisation", True, "the share of the map's top-K pixels on the object (K: its size)",
          ARRAS, needs_region=True)
def relevance_rank(model: Any, images: Any, explanation: Any = "gradcam", target: TargetSpec = "top1",
                   region: Any = None, absolute: bool = False, options: dict[str, Any] | None = None,
                   batch_size: int | str = "auto", progress: bool = True) -> MetricResult:
    """Relevance rank accuracy |P_top-K ∩ GT| / K, K = |GT| pixels of the region, P_top-K the K pixels of highest
    relevance (|R| with absolute=True); pixels tied at the K-th value count in proportion (a random tie-break's
    expectation). batch_size and progress: unused (no forward passes)."""
    sub, regions = _localised(model, images, explanation, target, region, options)
    relevance = np.abs(sub.maps) if absolute else sub.maps
    n, k = sub.ids.shape
    scores = np.zeros((n, k))
    for i in range(n):
        mask = regions.masks[i]
        size = int(mask.sum())
        for j in range(k):
            values = relevance[i, j]
            kth = np.partition(values.ravel(), values.size - size)[values.size - size]
            above, tied = values > kth, values == kth
            hits = (above & mask).sum() + (size - above.sum()) * (tied & mask).sum() / tied.sum()
            scores[i, j] = hits / size
    return _result("relevance_rank", sub, regions, scores, {"k": regions.masks.sum(axis=(1, 2))},
                   {"absolute": bool(absolute)})


def _localised(model: Any, images: Any, explanation: Any, target: TargetSpec, region: Any,
               options: dict[str, Any] | None) -> tuple[Subject, GridRegions]:
    sub = subject(model, images, explanation, target, options)
    photo = sub.explanation.images.shape[1:3]
    return sub, regions_on_grid(region, len(sub.x), photo, _input_box(sub), sub.x.shape[1:3])


def _input_box(sub: Subject) -> tuple[float, float, float, float]:
    """The box of the photo that the model input covers (the whole photo when the Explanation does not say)."""
    h, w = sub.explanation.images.shape[1:3]
    return sub.explanation.input_box or (0.0, 0.0, float(h), float(w))


def _result(name: str, sub: Subject, regions: GridRegions, scores: np.ndarray, curves: dict[str, np.ndarray],
            params: dict[str, Any], notes: list[str] | None = None) -> MetricResult:
    chance = regions.masks.mean(axis=(1, 2))
    return MetricResult(name, sub.method, scores, True, 0, sub.ids, curves={"chance": chance, **curves},
                        params={"region": regions.kind, **params},
                        notes=[*regions.notes, *(notes or []), "regions are measured on the model-input grid; "
                               "curves['chance'] is each region's share of it (a random map's expected score)"])
