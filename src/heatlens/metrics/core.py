"""What every metric shares: the subject it measures (model inputs, maps on their grid, the targets, the method to
run again), batched scoring that counts its forward passes, baselines in model-input space, and the result."""

from __future__ import annotations

import inspect
import logging
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from ..api import explain
from ..errors import ImageError, MethodError
from ..explanation import Explanation
from ..inputs import model_inputs
from ..methods import get_method
from ..methods.baselines import make_baseline
from ..methods.batching import batch_size_for
from ..methods.shared import blur
from ..models import Network, to_network
from ..overlay import upsample
from ..preprocess import whole_image
from ..progress import progress_bar
from ..targets import TargetSpec, probabilities

log = logging.getLogger(__name__)
SCORES = ("probability", "logit")
NOT_RERUN = {"network", "x", "targets", "layer", "progress"}


@dataclass
class MetricResult:
    """One metric of one method's maps: `scores` (N, K) per image and target, what it measured (`curves`, e.g. the
    deletion curve (N, K, steps + 1) over `curves['fraction']`), how many model inputs it ran (`forward_passes`),
    and every parameter it used."""

    metric: str
    method: str
    scores: np.ndarray
    higher_is_better: bool
    forward_passes: int
    targets: np.ndarray
    curves: dict[str, np.ndarray] = field(default_factory=dict)
    params: dict[str, Any] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)

    def mean(self) -> float:
        """The mean score over images and targets."""
        return float(np.mean(self.scores))

    def __repr__(self) -> str:
        n, k = self.scores.shape
        better = "higher" if self.higher_is_better else "lower"
        return (f"<MetricResult {self.metric} of {self.method}: {self.mean():.4g} ({better} is better) over {n} "
                f"image(s) x {k} target(s), {self.forward_passes} forward passes>")


@dataclass
class Subject:
    """What a metric measures: the model inputs x (N, h, w, C), the maps (N, K, h, w) on their grid, the target
    ids (N, K), and the method with its options, to explain perturbed inputs again."""

    network: Network
    x: np.ndarray
    maps: np.ndarray
    ids: np.ndarray
    explanation: Explanation
    options: dict[str, Any]

    @property
    def method(self) -> str:
        return self.explanation.method

    def explain(self, x: np.ndarray, ids: np.ndarray | None = None) -> np.ndarray:
        """The method's maps (n, K, h, w) on x's grid for model inputs x (targets `ids`, the subject's by default)."""
        info = get_method(self.method)
        options = dict(self.options)
        if "progress" in inspect.signature(info.fn).parameters:
            options["progress"] = False
        out = info.fn(self.network, x, self.ids if ids is None else ids, **options)
        maps = on_grid(np.asarray(out.maps, np.float32), x.shape[1:3])
        if not np.isfinite(maps).all():
            raise MethodError(f"the {self.method} map of a perturbed input has NaN or infinite values; lower the "
                              "perturbation (radius) or check the model's preprocessing")
        return maps


def subject(model: Any, images: Any, explanation: Explanation | str = "gradcam", target: TargetSpec = "top1",
            options: dict[str, Any] | None = None) -> Subject:
    """The Subject of a metric: `explanation` is an Explanation of these images (images may then be None) or a
    method name, run here with `options` on `target`."""
    network = to_network(model)
    if isinstance(explanation, str):
        result = explain(network, images, explanation, target, upsample=False, **(options or {}))
        if isinstance(result, list):
            raise ImageError("metrics measure photos of one size at a time: pass them one by one, or use "
                             "heatlens.evaluate, which does")
        return subject(network, images, result)
    if not isinstance(explanation, Explanation):
        raise MethodError("explanation must be a method name or an Explanation. "
                          f"Received: {type(explanation).__name__}")
    if options:
        raise MethodError("options= are for a method name: an Explanation already carries its method's options")
    x = _explained_inputs(network, images, explanation)
    return Subject(network, x, explained_maps(explanation, x.shape[1:3]), np.asarray(explanation.targets.ids),
                   explanation, rerun_options(explanation))


def _explained_inputs(network: Network, images: Any, explanation: Explanation) -> np.ndarray:
    if images is None:
        if explanation._inputs is not None:
            return explanation._inputs
        images = explanation.images
    _, x = model_inputs(network, images)
    if len(x) != len(explanation.maps):
        raise ImageError(f"the explanation has maps of {len(explanation.maps)} image(s) but {len(x)} image(s) were "
                         "given: pass the images it explains (or images=None)")
    return x


def explained_maps(explanation: Explanation, size: tuple[int, int]) -> np.ndarray:
    """An Explanation's maps (N, K, h, w) on the model-input grid `size`: maps at the layer's grid are upsampled
    onto it, maps at the photo's resolution are resampled from the box of the photo the model saw."""
    maps = np.asarray(explanation.maps, np.float32)
    photo = explanation.images.shape[1:3]
    if maps.shape[-2:] != photo or explanation.input_box is None:
        return on_grid(maps, size)
    top, left, bottom, right = explanation.input_box
    sy, sx = size[0] / (bottom - top), size[1] / (right - left)
    placed = (-top * sy, -left * sx, (photo[0] - top) * sy, (photo[1] - left) * sx)
    return upsample(maps, size, placed)


def on_grid(maps: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """Maps (..., h, w) on the model-input grid `size` (bilinear, pixel centres aligned)."""
    if maps.shape[-2:] == tuple(size):
        return maps
    return upsample(maps, size, whole_image(*size))


def rerun_options(explanation: Explanation) -> dict[str, Any]:
    """The options that made an Explanation, as its method takes them (the layer included where it uses one)."""
    info = get_method(explanation.method)
    taken = inspect.signature(info.fn).parameters
    options = {k: v for k, v in explanation.params.items() if k in taken and k not in NOT_RERUN}
    if info.uses_layer and explanation.layer is not None:
        options["layer"] = explanation.layer
    return options


def check_score(score: str) -> None:
    if score not in SCORES:
        raise MethodError(f"score must be one of {', '.join(SCORES)}. Received: {score!r}")


def target_scores(network: Network, inputs: np.ndarray, ids: np.ndarray, score: str) -> np.ndarray:
    """The scores (n,) of class ids[j] for inputs[j]: softmax probabilities (or the model's own, when its outputs
    already are a distribution), or the raw outputs ('logit')."""
    out = network.predict(inputs)
    values = probabilities(out) if score == "probability" else out
    return values[np.arange(len(inputs)), ids].astype(np.float64)


@dataclass
class Passes:
    """The forward passes of one metric, announced before they run (log and progress bar), made in batches of
    `batch_size` ('auto': timed once per network and input shape) and counted."""

    subject: Subject
    total: int
    label: str
    score: str = "probability"
    batch_size: int | str = "auto"
    progress: bool = True
    done: int = 0

    def run(self, make: Callable[[np.ndarray], tuple[np.ndarray, np.ndarray]]) -> np.ndarray:
        """Scores (total,) of the jobs 0..total-1: `make(jobs)` returns their model inputs and target ids."""
        size = batch_size_for(self.subject.network, self.subject.x[0], self.batch_size, self.total)
        log.info("%s: %d forward passes in batches of %d", self.label, self.total, size)
        out = np.zeros(self.total, np.float64)
        with progress_bar(self.total, f"{self.label} ({self.total} forward passes)", self.progress) as advance:
            for jobs in chunks(self.total, size):
                inputs, ids = make(jobs)
                out[jobs] = target_scores(self.subject.network, inputs, ids, self.score)
                self.done += len(jobs)
                advance(len(jobs))
        return out


def chunks(total: int, size: int) -> Iterator[np.ndarray]:
    for start in range(0, total, size):
        yield np.arange(start, min(start + size, total))


def baseline_inputs(subject: Subject, baseline: str | float | np.ndarray) -> np.ndarray:
    """The reference inputs (N, h, w, C) that replace removed pixels: 'black' (a black photo, preprocessed),
    'blur' (a Gaussian blur, sigma = 5 px at 224, Petsiuk et al.'s), 'mean' (each image's channel means), a
    number, or an array broadcastable to x, all in model-input space."""
    x = subject.x
    if isinstance(baseline, np.ndarray):
        return make_baseline(subject.network, x, baseline, np.random.default_rng(0))
    if isinstance(baseline, int | float | np.integer | np.floating) and not isinstance(baseline, bool):
        if not np.isfinite(baseline):
            raise MethodError(f"baseline must be a finite number. Received: {baseline!r}")
        return np.full_like(x, float(baseline))
    if baseline == "black":
        return make_baseline(subject.network, x, "black", np.random.default_rng(0))
    if baseline == "blur":
        sigma = 5.0 * max(x.shape[1:3]) / 224
        return blur(x, (0, sigma, sigma, 0))
    if baseline == "mean":
        return np.broadcast_to(x.mean(axis=(1, 2), keepdims=True), x.shape).astype(np.float32)
    raise MethodError(f"unknown baseline {baseline!r}: use 'black', 'blur', 'mean', a number or an array")

