"""explain(): resolve the model, the images, the targets and the method; return an Explanation."""

from __future__ import annotations

import copy
import inspect
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any, overload

import numpy as np

from . import overlay
from .errors import LayerError, MethodError, ModelError, TargetError, close_matches
from .explanation import Explanation
from .images import ImageLike, load_image
from .inputs import float_array, model_inputs
from .methods import get_method
from .methods.colours import photo_pixels
from .methods.options import check_option_types, takes_several
from .methods.registry import LayerSpec
from .models import Network, to_network
from .preprocess import AsGiven
from .targets import TargetSpec, resolve, resolver, score_label, score_names, static_ids


@overload
def explain(model: Any, images: ImageLike, method: str = ..., target: TargetSpec = ..., layer: LayerSpec = ...,
            upsample: bool = ..., **options: Any) -> Explanation: ...


@overload
def explain(model: Any, images: Sequence[ImageLike], method: str = ..., target: TargetSpec = ...,
            layer: LayerSpec = ..., upsample: bool = ..., **options: Any) -> Explanation | list[Explanation]: ...


def explain(
    model: Any,
    images: ImageLike | Sequence[ImageLike],
    method: str = "gradcam",
    target: TargetSpec = "top1",
    layer: LayerSpec = None,
    upsample: bool = True,
    **options: Any,
) -> Explanation | list[Explanation]:
    """Explain a classifier's predictions on a batch of images.

    model: a Network, a model name, a torch.nn.Module (ImageNet preprocessing), a Keras model (its
    keras.applications architecture's own preprocessing, logits before a final softmax) or a plain
    predict(images) -> scores function (it receives the images as given); see heatlens.wrap.
    images: a path, a PIL image, an (H, W, 3) or (N, H, W, 3) uint8 array, or a list of those; a list of
    photos of different sizes gives a list of Explanations, one per photo (a per-image target list is
    split with them; one image or an array batch gives one Explanation).
    target: 'top1', 'top3', a class id, a class name, a list of those, a per-image list of lists, or a
    callable from the scores (N, classes) to class ids. Returns maps (N, K, H, W) at the photo's
    resolution (upsample=False: at the layer's), raw and finite.
    score_fn=callable (any method): explain custom scores instead of the classes; it receives the model's raw
    output (tensor, tuple or dict) and returns (N,) or (N, K) scores built with the framework's ops, e.g.
    `lambda out: out[:, 281:286].sum(1)` (all cats) or `lambda out: out[1]` (a model's second output);
    targets then index its K scores, named after the function.
    progress=False (any method): no progress bar for the methods that draw one (perturbation and sampling).
    """
    network = to_network(model)
    names = _image_names(images)
    photos = _photo_list(network, images)
    if photos is not None and len({p.shape for p in photos}) > 1:
        per_image = _per_image_targets(target, len(photos))
        results = [explain(network, photo, method, aim, layer, upsample, **options)
                   for photo, aim in zip(photos, per_image, strict=True)]
        for index, result in enumerate(results):
            result.names = None if names is None else [names[index]]
        return results
    given: ImageLike | Sequence[ImageLike] = photos or images
    if isinstance(network.preprocess, AsGiven) and float_array(given):
        network = copy.copy(network)  # float arrays reach a predict function as floats
        network.preprocess = None
    if "score" in options:
        raise MethodError("score= is no option: pass score_fn=callable for custom scores of the model's raw output, "
                          "or softmax=True (CAM methods) to explain the class probabilities")
    score_fn = options.pop("score_fn", None)
    if score_fn is not None:
        network = network.rescored(score_fn)
    info = get_method(method)
    _check_options(info.name, info.fn, options, layer, info.uses_layer)
    if "progress" not in inspect.signature(info.fn).parameters:
        options.pop("progress", None)  # every method takes it; those without a bar have nothing to switch off
    shown, x = model_inputs(network, given)
    size = x.shape[1:3] if shown is None else shown.shape[1:3]
    ids = static_ids(target, len(x), network.classes)
    wanted = ids if ids is not None else resolver(target, network.classes)
    notes = network.notes
    if info.uses_layer:
        options["layer"] = network.resolve_layer(layer, x.shape[1:])
        if options["layer"] != layer:
            notes.append(f"layer {layer} is {options['layer']!r}")
    try:
        out = info.fn(network, x, wanted, **options)
    except MemoryError:
        raise MethodError(f"{info.name} ran out of memory on {len(x)} input(s) of shape {x.shape[1:]}: lower its "
                          "sample counts or batch_size, or explain fewer images at once") from None
    notes.extend(out.notes)
    maps = np.asarray(out.maps, dtype=np.float32)
    if not np.isfinite(maps).all():
        raise MethodError(
            f"the {info.name} map has NaN or infinite values: the model's gradients overflow on this input; "
            "check its preprocessing or run it in float32"
        )
    box = network.input_box(*size)
    if upsample:
        maps = overlay.upsample(maps, size, box)
    options.pop("layer", None)
    options.pop("progress", None)  # how the work was shown, not what it computed
    classes = _score_names(network, out.logits.shape[1], score_fn)
    if score_fn is not None:
        options["score_fn"] = score_label(score_fn)
    return Explanation(
        maps=maps,
        targets=resolve(out.ids, out.logits, classes),
        method=info.name,
        model=network.name,
        layer=out.layer,
        logits=out.logits,
        input_box=box,
        params={"target": target if isinstance(target, str | int) else repr(target),
                **_defaults(info.fn), **options},
        extras=out.extras,
        attributions=out.attributions,
        classes=classes,
        notes=notes,
        names=names,
        _images=shown if shown is not None or x.shape[-1] != 3 else photo_pixels(network, x),
        _inputs=x if shown is None else None,
    )


def _image_names(images: Any) -> list[str] | None:
    """The file names of images given as paths (shown over their photos), else None."""
    items = images if isinstance(images, list | tuple) else [images]
    if items and all(isinstance(item, str | os.PathLike) for item in items):
        return [Path(item).name for item in items]
    return None


def _photo_list(network: Network, images: Any) -> list[np.ndarray] | None:
    """A list of photos loaded (uint8 RGB, each its own size) for a network that prepares photos; None for
    anything else (one image, an array batch, model-ready floats)."""
    if network.preprocess is None or not isinstance(images, list | tuple) or not images:
        return None
    if isinstance(network.preprocess, AsGiven) and any(float_array(image) for image in images):
        return None
    return [load_image(image) for image in images]


def _per_image_targets(target: TargetSpec, count: int) -> list[TargetSpec]:
    """One target spec per photo: a per-image list of lists is split, anything else applies to all."""
    if isinstance(target, list | tuple) and target and all(isinstance(t, list | tuple) for t in target):
        if len(target) != count:
            raise TargetError(f"a per-image target list needs one entry per image: {count} images, "
                              f"{len(target)} entries")
        return [list(t) for t in target]
    return [target] * count


def _score_names(network: Network, count: int, score_fn: Any) -> list[str] | None:
    """Names of the `count` scores explained: the custom score function's, or the network's class names,
    which must then name every output."""
    if score_fn is not None:
        return score_names(score_fn, count)
    classes = network.classes
    if classes is not None and len(classes) != count:
        raise ModelError(f"{network.name} outputs {count} scores but has {len(classes)} class names; "
                         "pass classes= with one name per output (or none)")
    return list(classes) if classes is not None else None


def _defaults(fn: Any) -> dict[str, Any]:
    """The method's options with their default values (what a call that names none of them uses), so the
    manifest records every effective setting (the layer is recorded apart; progress changes nothing)."""
    return {k: p.default for k, p in inspect.signature(fn).parameters.items()
            if p.default is not inspect.Parameter.empty and k not in {"layer", "progress"}}


def _check_options(name: str, fn: Any, options: dict[str, Any], layer: Any, uses_layer: bool) -> None:
    """Refuse, before any work, a layer the method does not use or is not a name (or a list of names), an
    option the method does not take, and a non-bool value for a yes/no option."""
    if layer is not None and not uses_layer:
        raise MethodError(f"method '{name}' does not use a layer; drop layer={layer!r}")
    names = [layer] if isinstance(layer, str) else layer
    if layer is not None and not (isinstance(names, list | tuple) and all(isinstance(n, str) for n in names)):
        raise LayerError(f"layer must be a layer name or a list of names (see `heatlens layers`). Received: {layer!r}")
    if not isinstance(layer, str | None) and not takes_several(fn, "layer"):
        raise LayerError(f"method '{name}' takes one layer name, not a list. Received: {layer!r}")
    parameters = {k: p for k, p in inspect.signature(fn).parameters.items()
                  if k not in {"network", "x", "targets", "layer"}}
    parameters.setdefault("progress", inspect.Parameter("progress", inspect.Parameter.KEYWORD_ONLY, default=True))
    unknown = [k for k in options if k not in parameters]
    if unknown:
        takes = ", ".join(parameters) if parameters else "no options"
        near = close_matches(unknown[0], parameters, n=2)
        raise MethodError(f"method '{name}' does not take option {unknown[0]!r}.{near} It takes: {takes}")
    for key, value in options.items():
        if isinstance(parameters[key].default, bool) and not isinstance(value, bool | np.bool_):
            raise MethodError(f"{key} must be True or False. Received: {value!r}")
    check_option_types(name, fn, options)
