"""One explain() fuzz case: drawn (a valid call with 0-2 of its parts spoilt), run, and classified.

Kept apart from the campaign so that test_fuzz_harness.py can check the classifier on calls known to
misbehave.
"""

from __future__ import annotations

import json
import tempfile
import warnings
from pathlib import Path
from typing import Any

import fuzz_inputs as fi
import numpy as np
from attention_methods import ATTENTION_ONLY
from fuzz_ledger import Case, time_limit
from fuzz_models import Adapter, adapters, first_difference, global_state
from hypothesis import strategies as st
from PIL import Image

import heatlens
from heatlens.methods import METHODS

CAMPAIGN = "explain"
LIMIT_S = {"torch": 20.0, "predict": 20.0, "keras": 60.0}
ADAPTERS: dict[str, list[Adapter]] = {}


def family_adapters(family: str) -> list[Adapter]:
    if family not in ADAPTERS:
        ADAPTERS[family] = adapters(family)
    return ADAPTERS[family]


def serves(family: str, method: str) -> bool:
    """Whether the family's fuzz models (CNNs and predict functions) can be explained by the method at all; the
    others must refuse every case in one typed line."""
    info = METHODS[method]
    if method in ATTENTION_ONLY:
        return False
    return family != "predict" or not (info.needs_gradients or info.uses_layer)


# ---------------------------------------------------------------- one case

def layer_names(adapter: Adapter) -> list[str]:
    """The model's own layer names, read from the framework (not through heatlens)."""
    if adapter.family == "torch":
        return [name for name, _ in adapter.model.named_modules() if name]
    if adapter.family == "keras":
        return [layer.name for layer in adapter.model.layers]
    return []


FAULTS = ("model", "images", "target", "layer", "options")


def draw_case(data: st.DataObject, family: str, method: str) -> dict[str, Any]:
    """One case: a valid call with 0, 1 or 2 of its parts (model, images, target, layer, options) spoilt."""
    info = METHODS[method]
    count = data.draw(st.sampled_from([0, 0, 0, 1, 1, 1, 1, 2, 2]), label="faults")
    where = FAULTS if info.uses_layer else tuple(f for f in FAULTS if f != "layer")
    faults = set(data.draw(st.permutations(where), label="fault order")[:count])
    pool = [a for a in family_adapters(family) if a.serves_all != ("model" in faults)]
    adapter = data.draw(st.sampled_from(pool), label="adapter")
    mode = data.draw(st.sampled_from(["raw", "photo"]), label="mode")
    if mode == "photo":
        images = fi.photos(data, "images" in faults)
    else:
        images = fi.model_inputs(data, None if adapter.any_size else adapter.size, "images" in faults)
    n = fi.count_images(images.value) or 1
    classes = 1000 if "1000" in adapter.name else 4
    target = fi.targets(data, n, classes, adapter.classes, "target" in faults)
    if info.uses_layer:
        module = adapter.model.features[3] if adapter.name == "torch_tiny" else None
        layer = fi.layers(data, layer_names(adapter), "layer" in faults, module)
    elif data.draw(st.integers(0, 29), label="stray layer") == 0:
        layer = fi.Drawn("features.1", "'features.1' (a method without layers)")
    else:
        layer = fi.Drawn(None, "None", True)
    x_shape = _input_shape(images.value, mode, adapter)
    options = fi.options(data, info.fn, x_shape, images.value, "options" in faults)
    score_label = ""
    if data.draw(st.integers(0, 19), label="custom score") == 0:
        fn, score_label, _ = data.draw(st.sampled_from(fi.score_functions(family)), label="score function")
        options.value = {**options.value, "score_fn": fn}
        options.valid = False
    upsample = data.draw(st.integers(0, 7), label="upsample") != 0
    valid = (adapter.serves_all and serves(family, method) and images.valid and target.valid and layer.valid
             and options.valid and upsample)
    preprocess = "None" if mode == "raw" else f"ResizeCrop({adapter.size + 2}, {adapter.size})"
    extra = ", classes=NAMES" if adapter.classes else ""
    args = [f"images={images.label}", f"method={method!r}", f"target={target.label}"]
    if layer.value is not None:
        args.append(f"layer={layer.label}")
    if not upsample:
        args.append("upsample=False")
    if options.label:
        args.append(options.label)
    if score_label:
        args.append(f"score_fn=<{score_label}>")
    repro = f"explain(wrap({adapter.name}, preprocess={preprocess}{extra}), {', '.join(args)})"
    return {
        "adapter": adapter, "mode": mode, "images": images, "target": target, "layer": layer,
        "options": options.value, "score": bool(score_label), "upsample": upsample, "valid": valid, "n": n,
        "repro": repro, "recheck": adapter.stochastic or data.draw(st.integers(0, 9), label="recheck") == 0,
        "overlay": data.draw(st.integers(0, 7), label="overlay") == 0,
        "save": data.draw(st.integers(0, 29), label="save") == 0,
    }


def _input_shape(value: Any, mode: str, adapter: Adapter) -> tuple[int, ...] | None:
    """The shape of the model input an images argument becomes (for options that must match it)."""
    n = fi.count_images(value) or 1
    if mode == "photo":
        return (n, adapter.size, adapter.size, 3)
    arr = value if isinstance(value, np.ndarray) else None
    if arr is None or arr.ndim not in (3, 4):
        return None
    return arr.shape if arr.ndim == 4 else (1, *arr.shape)


def run_case(family: str, method: str, spec: dict[str, Any]) -> Case:
    adapter: Adapter = spec["adapter"]
    case = Case(CAMPAIGN, f"{method} / {family}", spec["repro"], adapter=adapter.name)
    images, target, layer, options = spec["images"], spec["target"], spec["layer"], spec["options"]
    kept_model, kept_global = adapter.state(), global_state()
    kept_inputs = _copies({"images": images.value, "target": target.value, **options})

    def call() -> heatlens.Explanation:
        network = adapter.network(spec["mode"])
        return heatlens.explain(network, images.value, method=method, target=target.value, layer=layer.value,
                                upsample=spec["upsample"], **options)

    result = None
    try:
        with warnings.catch_warnings(), time_limit(LIMIT_S[family]):
            warnings.simplefilter("ignore")
            result = call()
            if spec["recheck"] and not isinstance(result, list):
                again = call()
                if not _close(result.maps, again.maps):
                    gap = (f"max difference {np.nanmax(np.abs(result.maps - again.maps)):.3g}"
                           if result.maps.shape == again.maps.shape else f"shapes {again.maps.shape}")
                    case.flag("unstable", f"a second identical call gave different maps ({gap})")
            if spec["overlay"] and not isinstance(result, list):
                _check_overlay(case, result)
            if spec.get("save") and not isinstance(result, list):
                _check_save(case, result)
    except KeyboardInterrupt:
        raise
    except BaseException as exc:  # classifying every ending is the point
        case.ended_with(exc)
    if isinstance(result, list) and case.ending == "ok":
        judge_each(case, result, spec)
    elif result is not None and case.ending == "ok":
        judge(case, result, family, method, spec)
    if case.ending == "typed" and spec["valid"]:
        case.flag("refused", f"valid call refused: {case.message}")
    changed = first_difference(kept_model, adapter.state()) or first_difference(kept_global, global_state())
    if changed:
        case.flag("model_changed", changed)
        adapter.reset()
    altered = _first_changed(kept_inputs, {"images": images.value, "target": target.value, **options})
    if altered:
        case.flag("input_changed", altered)
    return case


def judge_each(case: Case, results: list, spec: dict[str, Any]) -> None:
    """Photos of different sizes give one result each: as many as photos, each finite and at its photo's size."""
    photos = spec["images"].value
    if len(results) != len(photos):
        case.flag("wrong_shape", f"{len(photos)} photos of different sizes gave {len(results)} results")
        return
    for photo, result in zip(photos, results, strict=True):
        size = fi.image_size(photo, spec["mode"])
        if not np.isfinite(result.maps).all() or not np.isfinite(result.logits).all():
            case.flag("nonfinite", "a per-photo result holds NaN or inf")
        if result.maps.shape[0] != 1 or (spec["upsample"] and tuple(result.maps.shape[2:]) != tuple(size)):
            case.flag("wrong_shape", f"a photo of size {size} gave maps {result.maps.shape}")


def judge(case: Case, result: Any, family: str, method: str, spec: dict[str, Any]) -> None:
    """Flag an ok result that is non-finite, wrongly shaped, or explains what it should not."""
    maps, ids, logits = result.maps, np.asarray(result.targets.ids), result.logits
    for name, arr in (("maps", maps), ("attributions", result.attributions), ("logits", logits),
                      ("target scores", result.targets.scores), ("probabilities", result.targets.probabilities)):
        if arr is not None and np.asarray(arr).dtype.kind in "fc" and not np.isfinite(arr).all():
            case.flag("nonfinite", f"{name} hold NaN or inf")
    n, hw = spec["n"], fi.image_size(spec["images"].value, spec["mode"])
    if not isinstance(maps, np.ndarray) or maps.ndim != 4 or maps.dtype != np.float32:
        case.flag("wrong_shape", f"maps are {type(maps).__name__} {getattr(maps, 'shape', '')} "
                  f"{getattr(maps, 'dtype', '')}, expected float32 (N, K, H, W)")
        return
    if maps.shape[0] != n or ids.shape != maps.shape[:2] or ids.shape[1] < 1:
        case.flag("wrong_shape", f"{n} image(s): maps {maps.shape}, target ids {ids.shape}")
        return
    if spec["upsample"] and hw is not None and tuple(maps.shape[2:]) != tuple(hw):
        case.flag("wrong_shape", f"maps {maps.shape} for images of size {tuple(hw)}")
    if result.attributions is not None and (result.attributions.ndim != 5
                                            or result.attributions.shape[:2] != maps.shape[:2]):
        case.flag("wrong_shape", f"attributions {result.attributions.shape} beside maps {maps.shape}")
    if logits is None or logits.ndim != 2 or len(logits) != n:
        case.flag("wrong_shape", f"logits {getattr(logits, 'shape', None)} for {n} image(s)")
        return
    if ids.dtype.kind not in "iu" or ids.min() < 0 or ids.max() >= logits.shape[1]:
        case.flag("wrong_answer", f"target ids {ids.tolist()} outside the {logits.shape[1]} scores")
        return
    if not serves(family, method):
        case.flag("wrong_answer", f"{method} explained a {family} model it cannot serve")
    tokens_only = [k for k in ("grid", "prefix_tokens") if spec["options"].get(k) is not None]
    if tokens_only and spec["adapter"].name != "torch_tokens":
        case.flag("wrong_answer", f"{tokens_only[0]}= (for token layers) accepted on a model that has none")
    expect = None if spec["score"] else spec["target"].expect
    target = spec["target"].label
    if expect == "refuse":
        case.flag("wrong_answer", f"target {target} accepted: explained ids {ids[0].tolist()}")
    elif isinstance(expect, tuple) and expect[0] == "ids":
        wanted = np.broadcast_to(expect[1], ids.shape) if expect[1].shape[-1] == ids.shape[1] else None
        if wanted is None or not np.array_equal(wanted, ids):
            case.flag("wrong_answer", f"target {target} explained ids {ids.tolist()}, not {expect[1].tolist()}")
    elif isinstance(expect, tuple) and expect[0] == "top":
        k = expect[1]
        best = -np.sort(-logits, axis=1)[:, :k]
        got = np.take_along_axis(logits, ids, axis=1) if ids.shape[1] == k else None
        if got is None or not np.allclose(got, best, equal_nan=True):
            case.flag("wrong_answer", f"target {target} explained ids {ids.tolist()}, not the top {k}")


def _check_overlay(case: Case, result: Any) -> None:
    overlays = result.overlay()
    if overlays.dtype != np.uint8 or overlays.shape[:2] != result.maps.shape[:2] or overlays.shape[-1] != 3:
        case.flag("wrong_shape", f"overlay() gave {overlays.dtype} {overlays.shape} for maps {result.maps.shape}")


def _check_save(case: Case, result: Any) -> None:
    with tempfile.TemporaryDirectory() as folder:
        manifest = Path(result.save(folder))
        entries = json.loads(manifest.read_text())["images"]
        written = [t["overlay"] for e in entries for t in e["targets"]]
        if len(written) != result.maps.shape[0] * result.maps.shape[1] or len(set(written)) != len(written):
            case.flag("wrong_shape", f"save() wrote overlays {written} for maps {result.maps.shape}")


def _copies(values: dict[str, Any]) -> dict[str, Any]:
    return {k: _copy(v) for k, v in values.items()}


def _copy(value: Any) -> Any:
    if isinstance(value, np.ndarray):
        return value.copy()
    if isinstance(value, Image.Image):
        return (value.mode, value.size, value.tobytes(), dict(value.info))
    if isinstance(value, list | tuple):
        return [_copy(v) for v in value]
    return value


def _first_changed(kept: dict[str, Any], now: dict[str, Any]) -> str | None:
    for key, before in kept.items():
        if not _same_value(before, _copy(now[key])):
            return f"the caller's {key} changed"
    return None


def _same_value(a: Any, b: Any) -> bool:
    if isinstance(a, np.ndarray) or isinstance(b, np.ndarray):
        return isinstance(a, np.ndarray) and isinstance(b, np.ndarray) and _same_arrays(a, b)
    if isinstance(a, list) and isinstance(b, list):
        return len(a) == len(b) and all(_same_value(x, y) for x, y in zip(a, b, strict=True))
    if isinstance(a, tuple) and isinstance(b, tuple):
        return a == b
    return True  # scalars and callables: nothing the call could change in place


def _close(a: np.ndarray, b: np.ndarray) -> bool:
    """Equal up to float summation order (batch sizes may differ between calls); random maps differ wildly."""
    if a.shape != b.shape:
        return False
    peak = float(np.nanmax(np.abs(a))) if a.size else 0.0
    return bool(np.allclose(a, b, rtol=1e-4, atol=1e-5 * peak, equal_nan=True))


def _same_arrays(a: np.ndarray, b: np.ndarray) -> bool:
    if a.shape != b.shape or a.dtype != b.dtype:
        return False
    if a.dtype.kind in "fc":
        return bool(np.array_equal(a, b, equal_nan=True))
    if a.dtype.kind == "O":
        return bool(all(x is y for x, y in zip(a.ravel(), b.ravel(), strict=True)))
    return bool(np.array_equal(a, b))
