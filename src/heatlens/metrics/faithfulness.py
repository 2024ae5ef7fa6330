"""Faithfulness metrics beyond the deletion/insertion curves: ROAD, MoRF/LeRF, average drop, increase in confidence,
faithfulness correlation and infidelity. Each makes its forward passes through Passes (batched, counted, announced)
and draws its randomness from its seed, per image and draw, so batch sizes never change a result."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from ..errors import MethodError
from ..methods.shared import at_least, positive
from ..targets import TargetSpec
from .core import MetricResult, Passes, Subject, baseline_inputs, check_score, subject
from .curves import _label, unit_ranks
from .imputation import noisy_linear_imputation
from .registry import register

ROAD_PAPER = "Rong et al. 2022, A Consistent and Efficient Evaluation Strategy for Attribution Methods (ROAD)"
GRADCAM_PP = "Chattopadhay et al. 2018, Grad-CAM++: Generalized Gradient-Based Visual Explanations"
BHATT = "Bhatt et al. 2020, Evaluating and Aggregating Feature-based Model Explanations"
YEH = "Yeh et al. 2019, On the (In)fidelity and Sensitivity of Explanations"
PERCENTAGES = (10, 20, 30, 40, 50, 60, 70, 80, 90)
DIRECTIONS = ("morf", "lerf")
Perturb = Callable[[np.ndarray, np.random.Generator], tuple[np.ndarray, np.ndarray]]


@register("morf", "faithfulness", False, "the target's score with the most relevant pixels imputed (ROAD MoRF)",
          ROAD_PAPER)
def morf(model: Any, images: Any, explanation: Any = "gradcam", target: TargetSpec = "top1",
         percentages: Sequence[float] = PERCENTAGES, noise: float = 0.01, score: str = "probability",
         options: dict[str, Any] | None = None, batch_size: int | str = "auto", progress: bool = True,
         seed: int = 0) -> MetricResult:
    """Mean over p in `percentages` of s(x_p): x_p is x with the p% most relevant pixels removed by noisy linear
    imputation (noise: the Gaussian's standard deviation in model-input units); s the target's probability (or
    logit). Lower is better: removing what a faithful map ranks first destroys the prediction."""
    return _one_order("morf", False, subject(model, images, explanation, target, options), percentages, noise,
                      score, batch_size, progress, seed)


@register("lerf", "faithfulness", True, "the target's score with the least relevant pixels imputed (ROAD LeRF)",
          ROAD_PAPER)
def lerf(model: Any, images: Any, explanation: Any = "gradcam", target: TargetSpec = "top1",
         percentages: Sequence[float] = PERCENTAGES, noise: float = 0.01, score: str = "probability",
         options: dict[str, Any] | None = None, batch_size: int | str = "auto", progress: bool = True,
         seed: int = 0) -> MetricResult:
    """Mean over p in `percentages` of s(x_p): x_p is x with the p% least relevant pixels removed by noisy linear
    imputation. Higher is better: what a faithful map ranks last can go without the prediction changing."""
    return _one_order("lerf", True, subject(model, images, explanation, target, options), percentages, noise,
                      score, batch_size, progress, seed)


def _one_order(name: str, higher_is_better: bool, sub: Subject, percentages: Sequence[float], noise: float, score: str,
               batch_size: int | str, progress: bool, seed: int) -> MetricResult:
    """MoRF or LeRF alone: the mean score over the percentages removed in that order."""
    curves, passes, params = _road(sub, (name,), percentages, noise, score, batch_size, progress, seed)
    return MetricResult(name, sub.method, curves[name].mean(-1), higher_is_better, passes, sub.ids,
                        curves={"fraction": curves["fraction"], "scores": curves[name]}, params=params)


@register("road", "faithfulness", True, "half the gap between the LeRF and MoRF scores under imputation (ROAD)",
          ROAD_PAPER)
def road(model: Any, images: Any, explanation: Any = "gradcam", target: TargetSpec = "top1",
         percentages: Sequence[float] = PERCENTAGES, noise: float = 0.01, score: str = "probability",
         options: dict[str, Any] | None = None, batch_size: int | str = "auto", progress: bool = True,
         seed: int = 0) -> MetricResult:
    """Mean over p of (s(x_p^LeRF) - s(x_p^MoRF)) / 2, as pytorch-grad-cam's ROADCombined: the two ROAD orders
    (see morf and lerf) with the same imputation draws as those metrics. Higher is better."""
    sub = subject(model, images, explanation, target, options)
    curves, passes, params = _road(sub, DIRECTIONS, percentages, noise, score, batch_size, progress, seed)
    scores = ((curves["lerf"] - curves["morf"]) / 2).mean(-1)
    return MetricResult("road", sub.method, scores, True, passes, sub.ids, curves=curves, params=params)


def _road(sub: Subject, directions: tuple[str, ...], percentages: Sequence[float], noise: float, score: str,
          batch_size: int | str, progress: bool, seed: int) -> tuple[dict[str, np.ndarray], int, dict[str, Any]]:
    """The ROAD curves (N, K, P) of each direction over `percentages`, the passes made and the parameters."""
    percent = _percentages(percentages)
    at_least("noise", noise)
    check_seed(seed)
    check_score(score)
    ranks, pixels = unit_ranks(sub, "pixel", 0)
    n, k = sub.ids.shape
    counts = np.rint(pixels[0] * percent / 100).astype(np.int64)
    per_direction = n * k * len(percent)
    passes = Passes(sub, len(directions) * per_direction, "ROAD " + "+".join(d.upper() for d in directions), score,
                    batch_size, progress)

    def make(jobs: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        inputs = np.empty((len(jobs), *sub.x.shape[1:]), np.float32)
        d, rest = np.divmod(jobs, per_direction)
        i, rest = np.divmod(rest, k * len(percent))
        j, p = np.divmod(rest, len(percent))
        for row in range(len(jobs)):
            code = DIRECTIONS.index(directions[d[row]])
            rank = ranks[i[row], j[row]]
            count = counts[p[row]]
            removed = rank < count if code == 0 else rank >= pixels[0] - count
            rng = np.random.default_rng((seed, code, i[row], j[row], p[row]))
            inputs[row] = noisy_linear_imputation(sub.x[i[row]], removed, noise, rng)
        return inputs, sub.ids[i, j]

    scores = passes.run(make).reshape(len(directions), n, k, len(percent))
    curves = {"fraction": percent / 100, **{name: scores[index] for index, name in enumerate(directions)}}
    params = {"percentages": percent.tolist(), "noise": noise, "score": score, "seed": seed}
    return curves, passes.done, params


def check_seed(seed: int) -> None:
    """Refuse a seed numpy cannot take (a metric's draws are seeded per image and draw from it)."""
    if isinstance(seed, bool) or not isinstance(seed, int | np.integer) or seed < 0:
        raise MethodError(f"seed must be a non-negative integer. Received: {seed!r}")


def _percentages(percentages: Sequence[float]) -> np.ndarray:
    try:
        values = np.asarray(percentages, np.float64).ravel() if np.ndim(percentages) <= 1 else None
    except (TypeError, ValueError):
        values = None
    if values is None or not len(values) or not np.isfinite(values).all() or values.min() < 0 or values.max() >= 100:
        raise MethodError("percentages must be a non-empty list of numbers in [0, 100), the share of pixels to "
                          f"remove. Received: {percentages!r}")
    return values


@register("average_drop", "faithfulness", False,
          "the target's relative score drop on the image multiplied by its map (%)", GRADCAM_PP)
def average_drop(model: Any, images: Any, explanation: Any = "gradcam", target: TargetSpec = "top1",
                 baseline: str | float | np.ndarray = 0.0, score: str = "probability",
                 options: dict[str, Any] | None = None, batch_size: int | str = "auto",
                 progress: bool = True) -> MetricResult:
    """100 * max(0, Y - O) / Y: Y the target's probability on x, O on m * x + (1 - m) * baseline, m the map
    min-max scaled to [0, 1] per image and target; baseline 0 in model-input space is pytorch-grad-cam's
    CamMultImageConfidenceChange (the model input times the map). Lower is better."""
    sub = subject(model, images, explanation, target, options)
    original, masked, passes, params = _masked(sub, baseline, score, batch_size, progress)
    drop = 100 * np.maximum(0.0, original - masked) / np.where(original > 0, original, 1.0)
    notes = _nonpositive_note(original, score)
    return MetricResult("average_drop", sub.method, drop, False, passes, sub.ids,
                        curves={"original": original, "masked": masked}, params=params, notes=notes)


@register("increase_in_confidence", "faithfulness", True,
          "whether the image multiplied by its map scores the target higher (%)", GRADCAM_PP)
def increase_in_confidence(model: Any, images: Any, explanation: Any = "gradcam", target: TargetSpec = "top1",
                           baseline: str | float | np.ndarray = 0.0, score: str = "probability",
                           options: dict[str, Any] | None = None, batch_size: int | str = "auto",
                           progress: bool = True) -> MetricResult:
    """100 * 1[O > Y] per image and target (so the mean is the paper's percentage): Y, O as in average_drop.
    Higher is better: the map keeps what the model needs and drops what distracts it."""
    sub = subject(model, images, explanation, target, options)
    original, masked, passes, params = _masked(sub, baseline, score, batch_size, progress)
    return MetricResult("increase_in_confidence", sub.method, 100.0 * (masked > original), True, passes, sub.ids,
                        curves={"original": original, "masked": masked}, params=params)


def _masked(sub: Subject, baseline: Any, score: str, batch_size: int | str,
            progress: bool) -> tuple[np.ndarray, np.ndarray, int, dict[str, Any]]:
    """The target's score Y (N, K) on x and O (N, K) on the map-weighted x, the passes made and the parameters."""
    check_score(score)
    base = baseline_inputs(sub, baseline)
    n, k = sub.ids.shape
    weights = unit_scaled(sub.maps)
    passes = Passes(sub, 2 * n * k, "Map-weighted confidence", score, batch_size, progress)

    def make(jobs: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        weighted, rest = np.divmod(jobs, n * k)
        i, j = np.divmod(rest, k)
        m = np.where(weighted[:, None, None], weights[i, j], 1.0)[..., None]
        return (m * sub.x[i] + (1 - m) * base[i]).astype(np.float32), sub.ids[i, j]

    original, masked = passes.run(make).reshape(2, n, k)
    return original, masked, passes.done, {"baseline": _label(baseline), "score": score}


def unit_scaled(maps: np.ndarray) -> np.ndarray:
    """Maps (..., h, w) min-max scaled to [0, 1] each; a constant map (nothing ranked above anything) becomes 0."""
    low = maps.min(axis=(-2, -1), keepdims=True)
    span = maps.max(axis=(-2, -1), keepdims=True) - low
    return np.where(span > 0, (maps - low) / np.where(span > 0, span, 1), 0.0).astype(np.float32)


def _nonpositive_note(original: np.ndarray, score: str) -> list[str]:
    count = int((original <= 0).sum())
    if not count:
        return []
    return [f"{count} target(s) scored <= 0 on the image ({score}): their drop is max(0, Y - O) * 100, not divided "
            "by Y; use score='probability'"]


@register("faithfulness_correlation", "faithfulness", True,
          "correlation of a random subset's summed relevance with the score drop when it is removed", BHATT)
def faithfulness_correlation(model: Any, images: Any, explanation: Any = "gradcam", target: TargetSpec = "top1",
                             runs: int = 100, subset_size: int = 224, baseline: str | float | np.ndarray = "black",
                             subsets: np.ndarray | None = None, score: str = "logit",
                             options: dict[str, Any] | None = None, batch_size: int | str = "auto",
                             progress: bool = True, seed: int = 0) -> MetricResult:
    """Pearson corr over r = 1..runs of (sum_{p in S_r} m_p, s(x) - s(x with S_r set to the baseline)): S_r a
    random set of `subset_size` pixels (or `subsets` (N, runs, size) / (runs, size) flat row-major pixel indices
    on the model-input grid), s the target's logit by default. Higher is better. An undefined correlation (a
    constant drop or sum) scores 0, with a note."""
    sub = subject(model, images, explanation, target, options)
    check_score(score)
    check_seed(seed)
    n, k, h, w = sub.maps.shape
    chosen = _subsets(subsets, n, h * w, runs, subset_size, seed)
    runs = chosen.shape[1]
    base = baseline_inputs(sub, baseline)
    passes = Passes(sub, n * k * (runs + 1), "Faithfulness correlation", score, batch_size, progress)

    def make(jobs: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        i, rest = np.divmod(jobs, k * (runs + 1))
        j, r = np.divmod(rest, runs + 1)
        removed = np.zeros((len(jobs), h * w), bool)
        rows = np.flatnonzero(r > 0)
        removed[rows[:, None], chosen[i[rows], r[rows] - 1]] = True
        removed = removed.reshape(len(jobs), h, w, 1)
        return np.where(removed, base[i], sub.x[i]).astype(np.float32), sub.ids[i, j]

    scores = passes.run(make).reshape(n, k, runs + 1)
    drops = scores[..., :1] - scores[..., 1:]
    flat = sub.maps.reshape(n, k, h * w).astype(np.float64)
    sums = np.take_along_axis(flat[:, :, None, :], chosen[:, None].astype(np.int64), axis=-1).sum(-1)
    correlation, undefined = pearson(sums, drops)
    notes = [f"{undefined} correlation(s) undefined (a constant score drop or relevance sum over the subsets): "
             "scored 0"] if undefined else []
    return MetricResult("faithfulness_correlation", sub.method, correlation, True, passes.done, sub.ids,
                        curves={"relevance_sums": sums, "score_drops": drops},
                        params={"runs": runs, "subset_size": chosen.shape[2], "baseline": _label(baseline),
                                "subsets": "given" if subsets is not None else "random", "score": score,
                                "seed": seed}, notes=notes)


def _subsets(subsets: np.ndarray | None, n: int, pixels: int, runs: int, size: int, seed: int) -> np.ndarray:
    """Pixel subsets (N, runs, size): the caller's, checked, or drawn without replacement per image and run."""
    if subsets is None:
        positive("runs", runs)
        positive("subset_size", size)
        if size > pixels:
            raise MethodError(f"subset_size must be at most the number of pixels of the model input ({pixels}). "
                              f"Received: {size}")
        return np.stack([np.stack([np.random.default_rng((seed, i, r)).choice(pixels, size, replace=False)
                                   for r in range(runs)]) for i in range(n)])
    chosen = np.asarray(subsets)
    if chosen.ndim == 2:
        chosen = np.broadcast_to(chosen, (n, *chosen.shape))
    if (chosen.ndim != 3 or chosen.shape[0] != n or chosen.dtype.kind not in "iu" or not chosen.size
            or chosen.min() < 0 or chosen.max() >= pixels):
        raise MethodError(f"subsets must be integer pixel indices in the range 0 to {pixels - 1}, shaped (runs, "
                          f"size) or ({n}, runs, size). Received: shape {chosen.shape}, dtype {chosen.dtype}")
    return chosen


def pearson(a: np.ndarray, b: np.ndarray) -> tuple[np.ndarray, int]:
    """Pearson's r along the last axis of a and b, and how many were undefined (a constant side), set to 0."""
    a = a - a.mean(-1, keepdims=True)
    b = b - b.mean(-1, keepdims=True)
    scale = np.sqrt((a * a).sum(-1) * (b * b).sum(-1))
    defined = scale > 0
    r = np.where(defined, (a * b).sum(-1) / np.where(defined, scale, 1.0), 0.0)
    return np.clip(r, -1.0, 1.0), int((~defined).sum())


@register("infidelity", "faithfulness", False,
          "mean squared error between the map's predicted and the model's actual score change under noise", YEH)
def infidelity(model: Any, images: Any, explanation: Any = "gradcam", target: TargetSpec = "top1",
               n_perturb: int = 50, noise: float = 0.1, perturb: Perturb | None = None, normalise: bool = False,
               score: str = "logit", options: dict[str, Any] | None = None, batch_size: int | str = "auto",
               progress: bool = True, seed: int = 0) -> MetricResult:
    """E_I[(I . m - (s(x) - s(x - I)))^2] over `n_perturb` perturbations I: by default Gaussian,
    I ~ N(0, (noise * (max x - min x))^2) per value; or perturb(x, rng) -> (I, perturbed input), like captum's
    perturb_func, called per input (h, w, C). I . m sums I * m over pixels and channels (the map applies to every
    channel). normalise: captum's normalize, m scaled by beta = E[I.m (s(x) - s(x-I))] / E[(I.m)^2]. Lower is
    better."""
    sub = subject(model, images, explanation, target, options)
    positive("n_perturb", n_perturb)
    at_least("noise", noise)
    check_score(score)
    check_seed(seed)
    draw = perturb or gaussian(noise)
    n, k = sub.ids.shape
    dots = np.zeros((n, k, n_perturb))
    passes = Passes(sub, n * k * (n_perturb + 1), "Infidelity", score, batch_size, progress)

    def make(jobs: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        i, rest = np.divmod(jobs, k * (n_perturb + 1))
        j, s = np.divmod(rest, n_perturb + 1)
        inputs = sub.x[i].copy()
        for row in np.flatnonzero(s > 0):
            shift, inputs[row] = _drawn(draw, sub.x[i[row]], np.random.default_rng((seed, i[row], s[row] - 1)))
            dots[i[row], j[row], s[row] - 1] = np.sum(shift.sum(-1, dtype=np.float64) * sub.maps[i[row], j[row]])
        return inputs, sub.ids[i, j]

    scores = passes.run(make).reshape(n, k, n_perturb + 1)
    changes = scores[..., :1] - scores[..., 1:]
    beta = np.ones((n, k))
    if normalise:
        power = (dots * dots).mean(-1)
        beta = (dots * changes).mean(-1) / np.where(power > 0, power, 1.0)
    errors = (beta[..., None] * dots - changes) ** 2
    return MetricResult("infidelity", sub.method, errors.mean(-1), False, passes.done, sub.ids,
                        curves={"dots": dots, "score_changes": changes},
                        params={"n_perturb": n_perturb, "noise": noise if perturb is None else None,
                                "perturb": "gaussian" if perturb is None else getattr(perturb, "__name__", "custom"),
                                "normalise": normalise, "score": score, "seed": seed})


def gaussian(noise: float) -> Perturb:
    """Yeh et al.'s noisy perturbation: I ~ N(0, (noise * (max x - min x))^2) per value; the input becomes x - I."""

    def perturb(x: np.ndarray, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
        shift = (noise * float(x.max() - x.min()) * rng.standard_normal(x.shape)).astype(np.float32)
        return shift, x - shift

    return perturb


def _drawn(perturb: Perturb, x: np.ndarray, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """A perturbation (I, perturbed input) of x from `perturb`, checked: two finite arrays shaped like x."""
    out = perturb(x.copy(), rng)
    if not (isinstance(out, tuple) and len(out) == 2):
        raise MethodError(f"perturb must return (perturbation, perturbed input), two arrays. Received: "
                          f"{type(out).__name__}")
    shift, moved = (np.asarray(a, np.float32) for a in out)
    if shift.shape != x.shape or moved.shape != x.shape or not (np.isfinite(shift).all() and np.isfinite(moved).all()):
        raise MethodError(f"perturb must return two finite arrays shaped like its input {x.shape}. Received: "
                          f"{shift.shape} and {moved.shape}")
    return shift, moved
