"""What the Keras 3 adapters share whatever the backend: the layer walk, taps on a layer's `call`, the final
softmax, probing, layer positions, randomisation, the per-request step cache with its eager fallback, and the
one-line errors. A backend adapter adds only its compiler, its tensors and its gradient pass.

Layers are reached by wrapping their `call` for the duration of one trace (a forward hook, in effect),
so nested sub-models and layers called twice work like any other layer. The wrappers only exist while
a graph is traced or an eager pass runs, and are removed in `finally`; the model is never modified.
Steps are compiled once per (layers, gradient sources, number of targets, LRP composite, ...) and input shape;
where compiling fails the adapter falls back to eager execution and logs why.
"""

from __future__ import annotations

import abc
import contextlib
import logging
import re
import warnings
import weakref
from collections.abc import Callable, Iterator, Mapping, Sequence
from functools import partial
from typing import Any, cast

import keras
import numpy as np

from ...errors import HeatlensError, LayerError, ModelError, close_matches
from ...targets import check_ids, check_scores
from ..base import LayerInfo, LayerRecorder, Network, Preprocess, Trace, TraceRequest
from ..objectives import Objective, channel_layer
from . import keras_positions, keras_randomise
from .keras_rectifiers import final_softmax, logits_out, swap_attribute

log = logging.getLogger(__name__)

BACKENDS = ("tensorflow", "jax")
# (capture, wrt, targets, top-k, relu, objective, injected, input shape, LRP composite or None)
StepKey = tuple[tuple[str, ...], tuple[str, ...], int, bool, str, Objective, tuple[str, ...], tuple[int, ...], Any]


def keras_adapter() -> type[KerasBase]:
    """The adapter class for the backend this process runs Keras on; other backends are refused."""
    backend = keras.backend.backend()
    if backend == "tensorflow":
        from .keras import KerasNetwork

        return KerasNetwork
    if backend == "jax":
        from .keras_jax import KerasJaxNetwork

        return KerasJaxNetwork
    raise unsupported_backend(backend)


def unsupported_backend(backend: str) -> ModelError:
    """The refusal for a Keras backend heatlens has no adapter for."""
    return ModelError(f"heatlens explains Keras models on the {' or '.join(BACKENDS)} backend; this process runs "
                      f"Keras on '{backend}'. Set KERAS_BACKEND={BACKENDS[0]} (or {BACKENDS[1]}) before importing "
                      "keras")


class KerasBase(Network):
    """A Keras 3 model (functional, Sequential or subclassed) seen through the Network primitives; subclasses
    bring one backend's compiler and gradient pass."""

    backend = ""
    compiler = ""
    graph_only: tuple[type[BaseException], ...] = ()  # what compiling raises where only eager execution works
    compiled_targets = True

    def __init__(
        self,
        model: keras.Model,
        preprocess: Preprocess | None = None,
        classes: Sequence[str] | None = None,
        name: str | None = None,
        input_size: tuple[int, ...] | None = None,
        batch_size: int = 32,
        keep_softmax: bool = False,
    ) -> None:
        running = keras.backend.backend()
        if running != self.backend:
            if running not in BACKENDS:
                raise unsupported_backend(running)
            raise ModelError(f"{type(self).__name__} is for Keras on {self.backend}; this process runs Keras on "
                             f"'{running}': wrap the model with heatlens.wrap, which picks the adapter")
        self.model = model
        self.preprocess = preprocess
        self.classes = list(classes) if classes is not None else None
        self.name = name or model.name
        self.input_size = input_size
        self.batch_size = batch_size
        self._softmax = None if keep_softmax else final_softmax(model)
        if self._softmax is not None:
            _say_once(model, f"{self.name} ends in a softmax: heatlens explains the logits before it (as the Keras "
                             "Grad-CAM tutorial does); pass keep_softmax=True to heatlens.wrap() to explain the "
                             "probabilities")
            self.add_notes([f"the logits before {self.name}'s final softmax are explained (keep_softmax=False)"])
        self._layers: dict[tuple[int, ...], list[LayerInfo]] = {}
        self._forget_compiled()

    @abc.abstractmethod
    def _compile(self, fn: Callable[..., Any]) -> Callable[..., Any]:
        """`fn` compiled by the backend (traced once per input shape)."""

    @abc.abstractmethod
    def _make_step(self, key: StepKey) -> Callable[..., tuple]:
        """The Python function of one traced pass for `key`: (logits, ids, activations, gradients) from
        `_step_args`; a gradient is None where the scores do not depend on its source."""

    @abc.abstractmethod
    def _step_args(self, x: np.ndarray, ids: np.ndarray, values: tuple[np.ndarray, ...]) -> tuple:
        """The arguments of a step for inputs `x`, target ids and injected activations."""

    @abc.abstractmethod
    def _compile_rest(self, rest: keras.Model) -> Callable[[np.ndarray], np.ndarray]:
        """The model after a cut (a keras.Model from the layer's output) as a compiled function to scores."""

    def _forget_compiled(self) -> None:
        self._steps: dict[tuple, tuple[Callable[..., Any], Callable[..., Any]]] = {}
        self._eager: set[tuple] = set()
        self._rests: dict[str, Callable[[np.ndarray], np.ndarray] | None] = {}

    def layer_at(self, index: int, end: str, input_shape: tuple[int, ...] | None = None) -> str:
        return keras_positions.layer_at(self.model, index, end)

    def parameter_layers(self, input_shape: tuple[int, ...] | None = None) -> list[str]:
        return keras_randomise.parameter_layers(self, input_shape)

    def randomised(self, layers: Sequence[str], seed: int = 0) -> KerasBase:
        return keras_randomise.randomised(self, layers, seed)

    def _fast_tail(self, layer: str) -> Callable[[np.ndarray], np.ndarray] | None:
        self._layer_object(layer)
        rest = self._rest(layer)
        if rest is None:
            return None
        return lambda activation: self._guard(lambda: rest(np.asarray(activation, np.float32)), activation.shape)

    def _trace_chunk(self, request: TraceRequest) -> Trace:
        x, targets, capture, wrt, inject = request.x, request.targets, request.capture, request.wrt, request.inject
        top_k = request.top_k
        n_targets = top_k or (0 if targets is None else np.asarray(targets).reshape(len(x), -1).shape[1])
        ids = np.zeros((len(x), n_targets), np.int32)
        if targets is not None and not top_k:
            count = self._output_count(request.objective, x.shape[1:])
            ids = check_ids(cast(np.ndarray, targets), len(x), count).astype(np.int32)
        key: StepKey = (capture, wrt, n_targets, bool(top_k), request.relu, request.objective, tuple(inject),
                        x.shape[1:], request.rules)
        args = self._step_args(x, ids, tuple(inject.values()))
        cached = (*key[:-1], None if request.rules is None else repr(request.rules))  # hashable, list fields too
        logits, ids_out, acts, grads = self._compiled(cached, lambda: self._make_step(key), args, x.shape)
        for name, grad in zip(wrt, grads, strict=True):
            if grad is None:
                raise self._independent(name)
        return Trace(
            logits=check_scores(np.asarray(logits), len(x)),
            targets=None if targets is None else np.asarray(ids_out, np.int64),
            activations={name: np.asarray(a) for name, a in zip(capture, acts, strict=True)},
            gradients={name: np.asarray(g) for name, g in zip(wrt, grads, strict=True)},
        )

    def _compiled(self, key: tuple, make: Callable[[], Callable[..., Any]], args: tuple,
                  shape: tuple[int, ...]) -> Any:
        """Run the compiled function cached under `key` (built by `make`); where the model cannot be compiled
        (Python control flow on tensor values), run its Python function eagerly from then on."""
        if key not in self._steps:
            python = make()
            self._steps[key] = (self._compile(python), python)
        compiled, python = self._steps[key]
        if key not in self._eager:
            try:
                return self._guard(lambda: compiled(*args), shape, passthrough=self.graph_only)
            except self.graph_only as exc:
                log.warning("%s cannot be traced by %s (%s); running it eagerly", self.name, self.compiler,
                            error_line(exc))
                self._eager.add(key)
        return self._guard(lambda: python(*args), shape)

    def _taps(self, key: StepKey, held: dict[str, Any], values: Sequence[Any],
              source: Callable[[str, Any], Any]) -> tuple[list[str], dict[keras.Layer, Tap]]:
        """The layers a step reaches and a tap on each: injected values replace outputs, and `source(name, out)`
        makes the output of each layer in `wrt` a gradient source the backend's way."""
        capture, wrt, _, _, _, objective, injected, shape, _ = key
        by_layer = channel_layer(objective)
        names = list(dict.fromkeys([*capture, *(w for w in wrt if w != "input"), *injected,
                                    *([by_layer] if by_layer else [])]))
        replacements = dict(zip(injected, values, strict=True))
        taps = {self._layer_object(name): Tap(name, held, self.layer(name, shape).calls, replacements.get(name),
                                              partial(source, name) if name in wrt else None)
                for name in names}
        return names, taps

    def _probe(self, shape: tuple[int, ...]) -> list[LayerInfo]:
        recorder = LayerRecorder()

        def recorder_for(name: str, layer: keras.Layer) -> Callable[[Any], None]:
            def record(out: Any) -> None:
                out_shape = tuple(int(d) for d in out.shape[1:]) if hasattr(out, "shape") else None
                recorder.see(name, type(layer).__name__, out, out_shape)

            return record

        with wrapped({layer: recorder_for(name, layer) for name, layer in walk(self.model)}):
            self._guard(lambda: self.model(np.zeros((1, *shape), np.float32), training=False), (1, *shape))
        return recorder.infos()

    def _declared_input_shape(self) -> tuple[int, ...] | None:
        declared = getattr(self.model, "input_shape", None)
        if isinstance(declared, tuple) and len(declared) == 4 and None not in declared[1:]:
            return tuple(int(d) for d in declared[1:])
        return None

    def _rest(self, layer: str) -> Callable[[np.ndarray], np.ndarray] | None:
        """The model after `layer` as its own compiled function (cached), or None where the layer's
        output is not the only value crossing the cut (then tails run full passes)."""
        if layer not in self._rests:
            try:
                with _graph_kept(self.model):
                    rest = keras.Model(self._layer_object(layer).output, self.model.output)
                self._rests[layer] = self._compile_rest(rest)
            except (ValueError, AttributeError) as exc:
                log.info("no fast tail after '%s' (%s); tails run full forward passes", layer, error_line(exc))
                self._rests[layer] = None
        return self._rests[layer]

    def _logits_of(self, out: Any) -> Any:
        return scores_tensor(out)

    def _probabilities(self, logits: Any) -> Any:
        return keras.ops.softmax(logits, axis=1)

    def _channel_scores(self, activation: Any, strongest: bool) -> Any:
        axes = tuple(range(1, len(activation.shape) - 1))
        if not axes:
            return activation
        return keras.ops.max(activation, axis=axes) if strongest else keras.ops.mean(activation, axis=axes)

    def _class_count(self, shape: tuple[int, ...]) -> int:
        """How many scores the model outputs (read from its output shape, or one forward on zeros)."""
        declared = getattr(self.model, "output_shape", None)
        if self.score_function is None and isinstance(declared, tuple) and len(declared) == 2 and declared[1]:
            return int(declared[1])
        return int(self.predict(np.zeros((1, *shape), np.float32)).shape[1])

    def _layer_object(self, name: str) -> keras.Layer:
        found = dict(walk(self.model))
        if name not in found:
            raise LayerError(f"unknown layer '{name}' in {self.name}.{close_matches(name, found)}")
        return found[name]

    def _guard(self, fn: Callable[[], Any], shape: tuple[int, ...], passthrough: tuple[type, ...] = ()) -> Any:
        """Run model code; the model's own failures become one-line ModelErrors naming the input shape, and
        our own errors raised while the backend compiled come out as themselves, not wrapped by it."""
        try:
            with logits_out(self._softmax):
                return fn()
        except HeatlensError as exc:
            raise _without_notes(exc) from exc.__cause__
        except Exception as exc:
            ours = _own_error(exc)
            if ours is not None:
                raise _without_notes(ours) from None
            if isinstance(exc, passthrough):
                raise
            raise ModelError(
                f"{self.name} failed on an input of shape {tuple(shape)} (N, H, W, C): {error_line(exc)}"
            ) from exc


_WARNED: weakref.WeakSet = weakref.WeakSet()


def _say_once(model: keras.Model, message: str) -> None:
    """Warn about a model once per process, however many times it is wrapped."""
    if model not in _WARNED:
        _WARNED.add(model)
        warnings.warn(message, stacklevel=4)


def _own_error(exc: BaseException) -> HeatlensError | None:
    """Our error behind an exception that the backend's compiler re-raised in its own type, if any."""
    seen: set[int] = set()
    link: BaseException | None = exc
    while link is not None and id(link) not in seen:
        if isinstance(link, HeatlensError):
            return link
        seen.add(id(link))
        link = link.__cause__ or link.__context__
    return None


def _without_notes(exc: HeatlensError) -> HeatlensError:
    """Our error without the notes a compiler added on its way out (JAX's about its filtered traceback)."""
    if hasattr(exc, "__notes__"):
        del exc.__notes__
    return exc


def walk(model: keras.Layer, prefix: str = "") -> Iterator[tuple[str, keras.Layer]]:
    """Every layer with its dotted name, nested models' layers included (after their container)."""
    for layer in getattr(model, "layers", []):
        if isinstance(layer, keras.layers.InputLayer):
            continue
        name = prefix + layer.name
        yield name, layer
        if isinstance(layer, keras.Model):
            yield from walk(layer, name + ".")


class Tap:
    """Sees a layer's output on each call and keeps it; on the layer's last call (of `calls`) replaces it by an
    injected activation when one is given, and hands it to `source` when gradients w.r.t. it are wanted (the
    backend marks it as a gradient source there and returns what flows on)."""

    def __init__(self, name: str, held: dict[str, Any], calls: int, replacement: Any = None,
                 source: Callable[[Any], Any] | None = None) -> None:
        self.name, self.held, self.calls, self.replacement, self.source = name, held, calls, replacement, source
        self.seen = 0

    def __call__(self, out: Any) -> Any:
        if not keras.ops.is_tensor(out):
            raise LayerError(f"layer '{self.name}' returns {type(out).__name__}, not a tensor; pick another layer")
        self.seen += 1
        if self.seen == self.calls:
            if self.replacement is not None:
                out = keras.ops.cast(self.replacement, out.dtype)
            if self.source is not None:
                out = self.source(out)
        self.held[self.name] = out
        return out


@contextlib.contextmanager
def wrapped(observers: Mapping[keras.Layer, Callable[[Any], Any]]) -> Iterator[None]:
    """Wrap each layer's `call` so its output goes to an observer (which may return a replacement);
    what the instance held before is restored on exit, whatever happens."""
    restores = []
    try:
        for layer, observe in observers.items():
            original = layer.call

            def call(*args: Any, __original: Callable = original, __observe: Callable = observe, **kwargs: Any) -> Any:
                out = __original(*args, **kwargs)
                replaced = __observe(out)
                return out if replaced is None else replaced

            restores.append(swap_attribute(layer, "call", call))
        yield
    finally:
        for restore in reversed(restores):
            restore()


@contextlib.contextmanager
def _graph_kept(model: keras.Model) -> Iterator[None]:
    """Keep every layer's graph nodes as they are: a functional model built from an intermediate tensor calls the
    layers after it again, which records new nodes on the user's layers; the new model keeps its own copy."""
    layers = [layer for _, layer in walk(model)]
    saved = [(layer, list(layer._inbound_nodes), list(layer._outbound_nodes)) for layer in layers]
    try:
        yield
    finally:
        for layer, inbound, outbound in saved:
            layer._inbound_nodes[:] = inbound
            layer._outbound_nodes[:] = outbound


def scores_tensor(out: Any) -> Any:
    """The score tensor of a model output: a tensor, the first of a list/tuple, or ['logits']."""
    if isinstance(out, dict):
        out = out.get("logits", next(iter(out.values())))
    if isinstance(out, list | tuple):
        out = out[0]
    if len(out.shape) != 2:
        raise ModelError(f"expected model scores of shape (N, classes). Received: shape={tuple(out.shape)}")
    return out


def error_line(exc: BaseException) -> str:
    """The line of an error that says what went wrong, from under the wrapping that the compilers
    ('in user code:') and Keras ('Exception encountered when calling ...') put around it."""
    lines = [re.sub(r"\x1b\[[0-9;]*m", "", line).strip() for line in str(exc).splitlines()]
    lines = [line for line in lines if line]
    if not lines:
        return type(exc).__name__
    for i, line in enumerate(lines[:-1]):
        if "Exception encountered when calling" in line:
            return lines[i + 1]
    if lines[0].startswith("in user code"):
        errors = [line for line in lines if re.match(r"^\w+(Error|Exception): ", line)]
        return errors[-1] if errors else lines[-1]
    return lines[0]
