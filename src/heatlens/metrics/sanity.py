"""Sanity checks: maps must change when the model's weights or the explained class are randomised.

Cascading model-parameter randomisation (Adebayo et al. 2018) re-explains the images as the model's layers are
re-initialised one after another from the output down; the random-logit test (Sixt et al. 2020) explains a random
other class. Both compare the new maps with the original ones (Spearman rank correlation, SSIM): lower is better,
a map that stays the same does not depend on what the model learnt.
"""

from __future__ import annotations

import copy
import inspect
import logging
from collections.abc import Sequence
from dataclasses import replace
from typing import Any

import numpy as np

from ..errors import LayerError, MethodError, TargetError
from ..methods import get_method
from ..methods.batching import CANDIDATES, batch_size_for
from ..methods.shared import positive
from ..models import Network
from ..progress import progress_bar
from ..targets import TargetSpec
from .core import MetricResult, Subject, subject
from .registry import register
from .similarity import SIMILARITIES, check_similarity, compare

log = logging.getLogger(__name__)
ADEBAYO = "Adebayo et al. 2018, Sanity Checks for Saliency Maps"
MAPS_KEPT = 4  # images whose maps per step a result keeps for its plot
SIXT = "Sixt et al. 2020, When Explanations Lie: Why Many Modified BP Attributions Fail"


@register("model_randomisation", "sanity", False,
          "how much the map changes as the model's layers are randomised from the top down (rank correlation)",
          ADEBAYO, reruns=True)
def model_randomisation(model: Any, images: Any, explanation: Any = "gradcam", target: TargetSpec = "top1",
                        layers: Sequence[str] | None = None, max_steps: int | None = None,
                        similarity: str = "spearman", absolute: bool = False, seed: int = 0,
                        options: dict[str, Any] | None = None, batch_size: int | str = "auto",
                        progress: bool = True) -> MetricResult:
    """Cascading randomisation: step t re-initialises the t top-most parameter layers (all of them, `layers=`
    names or containers, one step each, or the first `max_steps`), re-explains the images and compares the map
    m_t with m_0, the map of the unchanged model made the same way: s_t = Spearman(m_0, m_t) and SSIM(m_0, m_t)
    (|maps| with `absolute`); s_0 compares the given maps with m_0 (1 unless the method is random or the maps
    were resampled from the photo). Score: s_T of `similarity` after the last step; lower is better (the map fell
    apart with the weights).
    Torch layers are reset as Quantus' MPRT does (reset_parameters after torch.manual_seed(seed + 1)); Keras
    weights are re-drawn from their layers' initializers. Curves: 'layers' (T + 1,) ('original' first),
    'spearman' and 'ssim' (N, K, T + 1), 'maps' (min(N, MAPS_KEPT), K, T + 1, h, w) float16 of the first images
    (for the plot; all of them would be ~0.5 GB for 100 photos), each scaled to max |value| 1.
    forward_passes: the model inputs the T + 1 runs of the method passed through the model, counted."""
    check_similarity(similarity)
    check_steps(layers, max_steps)
    sub = rerun_subject(subject(model, images, explanation, target, options), batch_size)
    steps = cascade(sub.network, layers, max_steps, sub.x.shape[1:])
    n, k = sub.ids.shape
    tally = [0]
    label = f"Model randomisation ({len(steps) + 1} runs of {sub.method} on {n} image(s))"
    log.info("%s: randomising %s", label, ", ".join(name for name, _ in steps))
    found = {name: np.zeros((n, k, len(steps) + 1)) for name in SIMILARITIES}
    shown = np.zeros((min(n, MAPS_KEPT), k, len(steps) + 1, *sub.maps.shape[-2:]), np.float16)
    with progress_bar(len(steps) + 1, label, progress) as advance:
        for t in range(len(steps) + 1):
            members = list(dict.fromkeys(name for _, group in steps[:t] for name in group))
            network = sub.network.randomised(members, seed) if members else sub.network
            maps = _compared(replace(sub, network=counted(network, tally)).explain(sub.x), absolute)
            if t == 0:  # step 0 compares the given maps with m_0; every later step m_t with m_0
                reference, original = _compared(sub.maps, absolute), maps
            for name in SIMILARITIES:
                found[name][..., t] = compare(name, reference, maps)
            reference = original
            shown[:, :, t] = _for_display(maps[:MAPS_KEPT])
            advance(1)
    return MetricResult("model_randomisation", sub.method, found[similarity][..., -1], False, tally[0], sub.ids,
                        curves={"layers": np.array(["original", *(name for name, _ in steps)]), **found,
                                "maps": shown},
                        params={"layers": [name for name, _ in steps], "max_steps": max_steps,
                                "similarity": similarity, "absolute": absolute, "seed": seed},
                        notes=_randomisation_notes(found[similarity], similarity, len(steps)))


@register("random_logit", "sanity", False, "how similar the map of a random other class is to the target's (SSIM)",
          SIXT, reruns=True)
def random_logit(model: Any, images: Any, explanation: Any = "gradcam", target: TargetSpec = "top1",
                 other: np.ndarray | None = None, similarity: str = "ssim", absolute: bool = False, seed: int = 0,
                 options: dict[str, Any] | None = None, batch_size: int | str = "auto",
                 progress: bool = True) -> MetricResult:
    """SSIM(m_y, m_r) (or Spearman) of the map of the target y and the map of a class r != y drawn uniformly
    (seeded) from the model's other classes, both made by one run of the method on the model's inputs; `other`
    (N, K) gives the classes instead. Lower is better: a map that explains the class looks different for
    another. Quantus' RandomLogit draws r the same way; its default compares flattened maps, heatlens the maps
    as images. Curves: 'other' (N, K), 'ssim' and
    'spearman' (N, K), 'maps' of the other classes (N, K, h, w) float16, each scaled to max |value| 1."""
    check_similarity(similarity)
    sub = rerun_subject(subject(model, images, explanation, target, options), batch_size)
    chosen = other_classes(sub, other, seed)
    tally = [0]
    with progress_bar(1, f"Random logit ({sub.method} of {len(sub.x)} image(s) for other classes)",
                      progress) as advance:
        both = replace(sub, network=counted(sub.network, tally)).explain(sub.x, np.concatenate([sub.ids, chosen], 1))
        advance(1)
    k = sub.ids.shape[1]
    original, maps = _compared(both[:, :k], absolute), _compared(both[:, k:], absolute)
    found = {name: compare(name, original, maps) for name in SIMILARITIES}
    return MetricResult("random_logit", sub.method, found[similarity], False, tally[0], sub.ids,
                        curves={"other": chosen, **found, "maps": _for_display(maps)},
                        params={"other": "given" if other is not None else "random", "similarity": similarity,
                                "absolute": absolute, "seed": seed})


def cascade(network: Network, layers: Sequence[str] | None, max_steps: int | None,
            input_shape: tuple[int, ...]) -> list[tuple[str, list[str]]]:
    """The randomisation steps, top-most first: (name, the parameter layers it re-initialises). Each of `layers`
    is one step (a container: all the parameter layers inside it); by default every parameter layer is one."""
    known = network.parameter_layers(input_shape)
    if not known:
        raise LayerError(f"{network.name} runs no layer with parameters heatlens can re-initialise")
    position = {name: i for i, name in enumerate(known)}
    check_steps(layers, max_steps)
    steps = []
    for entry in known if layers is None else network.resolve_layer(list(layers), input_shape):
        members = [entry] if entry in position else [name for name in known if name.startswith(f"{entry}.")]
        if not members:
            raise LayerError(f"'{entry}' holds no parameters heatlens can re-initialise in {network.name}; "
                             "name layers from network.parameter_layers() or containers of them")
        steps.append((entry, members))
    steps.sort(key=lambda step: -max(position[name] for name in step[1]))
    return steps if max_steps is None else steps[:max_steps]


def check_steps(layers: Sequence[str] | None, max_steps: int | None) -> None:
    """Refuse `layers` that are not a non-empty list of names, and a `max_steps` that is not a positive integer."""
    if layers is not None:
        if isinstance(layers, str) or not isinstance(layers, Sequence):
            raise LayerError(f"layers must be a list of layer names. Received: {layers!r}")
        if not layers:
            raise MethodError("layers must name at least one layer to randomise. Received: []")
    if max_steps is not None:
        positive("max_steps", max_steps)


def other_classes(sub: Subject, other: np.ndarray | None, seed: int) -> np.ndarray:
    """Per image and target a class id (N, K) that is not the target: `other` checked, or drawn uniformly."""
    classes = int(sub.explanation.logits.shape[1] if sub.explanation.logits is not None
                  else sub.network.predict(sub.x[:1]).shape[1])
    if classes < 2:
        raise TargetError(f"random_logit needs a model with 2 classes or more. Received: {classes} class")
    if other is None:
        draw = np.random.default_rng(seed).integers(0, classes - 1, sub.ids.shape)
        return draw + (draw >= sub.ids)
    chosen = np.asarray(other)
    if chosen.shape != sub.ids.shape or chosen.dtype.kind not in "iu":
        raise TargetError(f"other must be class ids of shape {sub.ids.shape} (images, targets). "
                          f"Received: shape={chosen.shape}, dtype={chosen.dtype}")
    if (chosen < 0).any() or (chosen >= classes).any() or (chosen == sub.ids).any():
        raise TargetError(f"other must hold class ids in 0..{classes - 1}, each different from its target")
    return chosen.astype(np.int64)


def rerun_subject(sub: Subject, batch_size: int | str) -> Subject:
    """The subject with a batch size for methods that take one (the metric's, or where that is 'auto' the method
    options' own); 'auto' is timed once, here on the unchanged network: its randomised copies cost the same."""
    if "batch_size" not in inspect.signature(get_method(sub.method).fn).parameters:
        return sub
    chosen = sub.options.get("batch_size", "auto") if batch_size == "auto" else batch_size
    size = batch_size_for(sub.network, sub.x[0], chosen, CANDIDATES[-1])
    return replace(sub, options={**sub.options, "batch_size": size})


def counted(network: Network, tally: list[int]) -> Network:
    """A shallow copy of `network` whose predictions, traced passes and split tails add their rows to tally[0]."""
    view = copy.copy(network)
    predict, trace, split = view.predict, view.trace, view.split

    def counting_predict(x: np.ndarray) -> np.ndarray:
        tally[0] += len(x)
        return predict(x)

    def counting_trace(x: np.ndarray, *args: Any, **kwargs: Any) -> Any:
        tally[0] += len(x)
        return trace(x, *args, **kwargs)

    def counting_split(layer: str) -> Any:
        cut = split(layer)

        def tail(activation: np.ndarray, x: np.ndarray) -> np.ndarray:
            tally[0] += len(activation)
            return cut.tail(activation, x)

        return replace(cut, tail=tail)

    # a counting view: its instance attributes shadow the methods, on this copy only
    view.predict, view.trace, view.split = counting_predict, counting_trace, counting_split  # type: ignore[method-assign]
    return view


def _compared(maps: np.ndarray, absolute: bool) -> np.ndarray:
    maps = np.asarray(maps, np.float64)
    return np.abs(maps) if absolute else maps


def _for_display(maps: np.ndarray) -> np.ndarray:
    """Maps as float16, each divided by its largest |value| (float16 would flush a gradient map's tiny values)."""
    peak = np.abs(maps).max(axis=(-2, -1), keepdims=True)
    return (maps / np.where(peak > 0, peak, 1.0)).astype(np.float16)


def _randomisation_notes(found: np.ndarray, name: str, steps: int) -> list[str]:
    notes = [f"scores: the {name} similarity to the original map after the last of {steps} randomisation steps"]
    start = float(found[..., 0].mean())
    if start < 0.99:
        notes.append(f"the given maps differ from the method's maps of the unchanged model ({name} {start:.3f} at "
                     "step 0): its own randomness, or maps resampled from the photo (explain with upsample=False)")
    return notes
