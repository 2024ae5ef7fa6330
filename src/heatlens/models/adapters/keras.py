"""Adapter for Keras 3 models on the TensorFlow backend: GradientTape inside a cached tf.function.

Layers are reached by wrapping their `call` for the duration of one trace (a forward hook, in effect),
so nested sub-models and layers called twice work like any other layer. The wrappers only exist while
a graph is traced or an eager pass runs, and are removed in `finally`; the model is never modified.
Gradient steps are traced once per (layers, gradient sources, number of targets) and input shape; where
tracing fails the adapter falls back to eager execution and logs why.
"""

from __future__ import annotations

import contextlib
import logging
import re
import warnings
import weakref
from collections.abc import Callable, Iterator, Sequence
from typing import Any

import keras
import numpy as np
import tensorflow as tf

from ...errors import HeatlensError, LayerError, ModelError, close_matches
from ...targets import check_ids, check_scores
from ..base import LayerInfo, LayerRecorder, Network, Preprocess, Trace, TraceRequest
from ..objectives import Objective, channel_layer
from . import keras_positions, keras_randomise
from .keras_rectifiers import final_softmax, logits_out, rectifiers, swap_attribute

log = logging.getLogger(__name__)


class _OwnRetracingFilter(logging.Filter):
    """Drops TensorFlow's 'triggered tf.function retracing' warning about this adapter's functions: it
    compiles one function per kind of request on purpose, and TensorFlow counts them all as one (it keys
    its counter by the code object), so a few different methods in a row would look like a retracing bug."""

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        return not ("retracing" in message and "KerasNetwork." in message)


logging.getLogger("tensorflow").addFilter(_OwnRetracingFilter())


_GRAPH_ONLY = (TypeError, NotImplementedError, tf.errors.OperatorNotAllowedInGraphError)


class KerasNetwork(Network):
    """A Keras 3 model (functional, Sequential or subclassed) seen through the Network primitives."""

    tensor_type = tf.Tensor
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
        if keras.backend.backend() != "tensorflow":
            raise ModelError(
                f"heatlens explains Keras models on the TensorFlow backend only; this process runs Keras on "
                f"'{keras.backend.backend()}'. Set KERAS_BACKEND=tensorflow before importing keras"
            )
        self.model = model
        self.preprocess = preprocess
        self.classes = list(classes) if classes is not None else None
        self.name = name or model.name
        self.input_size = input_size
        self.batch_size = batch_size
        self.notes: list[str] = []
        self._softmax = None if keep_softmax else final_softmax(model)
        if self._softmax is not None:
            _say_once(model, f"{self.name} ends in a softmax: heatlens explains the logits before it (as the Keras "
                             "Grad-CAM tutorial does); pass keep_softmax=True to heatlens.wrap() to explain the "
                             "probabilities")
            self.notes.append(f"the logits before {self.name}'s final softmax are explained (keep_softmax=False)")
        self._layers: dict[tuple[int, ...], list[LayerInfo]] = {}
        self._forget_compiled()

    def _forget_compiled(self) -> None:
        self._steps: dict[tuple, Callable[..., Any]] = {}
        self._eager: set[tuple] = set()
        self._rests: dict[str, Callable[[tf.Tensor], tf.Tensor] | None] = {}

    def _predict_chunk(self, x: np.ndarray) -> np.ndarray:
        return self._compiled(("forward",), self._make_forward, (tf.constant(np.asarray(x, np.float32)),), x.shape)

    def layer_at(self, index: int, end: str, input_shape: tuple[int, ...] | None = None) -> str:
        return keras_positions.layer_at(self.model, index, end)

    def parameter_layers(self, input_shape: tuple[int, ...] | None = None) -> list[str]:
        return keras_randomise.parameter_layers(self, input_shape)

    def randomised(self, layers: Sequence[str], seed: int = 0) -> KerasNetwork:
        return keras_randomise.randomised(self, layers, seed)

    def _fast_tail(self, layer: str) -> Callable[[np.ndarray], np.ndarray] | None:
        self._layer_object(layer)
        rest = self._rest(layer)
        if rest is None:
            return None
        return lambda activation: self._guard(lambda: rest(tf.constant(activation, tf.float32)).numpy(),
                                              activation.shape)

    def _trace_chunk(self, request: TraceRequest) -> Trace:
        x, targets, capture, wrt, inject = request.x, request.targets, request.capture, request.wrt, request.inject
        top_k = request.top_k
        n_targets = top_k or (0 if targets is None else np.asarray(targets).reshape(len(x), -1).shape[1])
        ids = np.zeros((len(x), n_targets), np.int32)
        if targets is not None and not top_k:
            ids = check_ids(targets, len(x), self._output_count(request.objective, x.shape[1:])).astype(np.int32)
        key = (capture, wrt, n_targets, bool(top_k), request.relu, request.objective, tuple(inject), x.shape[1:])
        args = (tf.constant(x), tf.constant(ids), tuple(tf.constant(v) for v in inject.values()))
        logits, ids_out, acts, grads = self._compiled(key, lambda: self._make_step(*key), args, x.shape)
        for name, grad in zip(wrt, grads, strict=True):
            if grad is None:
                raise self._independent(name)
        scores = check_scores(np.asarray(logits), len(x))
        return Trace(
            logits=scores,
            targets=None if targets is None else np.asarray(ids_out, np.int64),
            activations={name: np.asarray(a) for name, a in zip(capture, acts, strict=True)},
            gradients={name: np.asarray(g) for name, g in zip(wrt, grads, strict=True)},
        )

    def _compiled(self, key: tuple, make: Callable[[], Any], args: tuple, shape: tuple[int, ...]) -> Any:
        """Run the tf.function cached under `key` (built by `make`); where the model cannot be traced (Python
        control flow on tensor values), run its Python function eagerly from then on."""
        if key not in self._steps:
            self._steps[key] = make()
        step = self._steps[key]
        if key not in self._eager:
            try:
                return self._guard(lambda: step(*args), shape, passthrough=_GRAPH_ONLY)
            except _GRAPH_ONLY as exc:
                log.warning("%s cannot be traced by tf.function (%s); running it eagerly", self.name, error_line(exc))
                self._eager.add(key)
        return self._guard(lambda: step.python_function(*args), shape)

    def _make_forward(self) -> Any:
        return tf.function(lambda x: self._scores_of(self.model(x, training=False)), reduce_retracing=True)

    def _make_step(self, capture: tuple[str, ...], wrt: tuple[str, ...], n_targets: int, top_k: bool, relu: str,
                   objective: Objective, injected: tuple[str, ...], shape: tuple[int, ...]) -> Any:
        by_layer = channel_layer(objective)
        names = list(dict.fromkeys([*capture, *(w for w in wrt if w != "input"), *injected,
                                    *([by_layer] if by_layer else [])]))
        objects = {name: self._layer_object(name) for name in names}
        calls = {name: self.layer(name, shape).calls for name in injected}

        def step(x: tf.Tensor, ids: tf.Tensor, values: tuple[tf.Tensor, ...]) -> tuple:
            held: dict[str, tf.Tensor] = {}
            replacements = dict(zip(injected, values, strict=True))
            with tf.GradientTape(persistent=n_targets > 1, watch_accessed_variables=False) as tape:
                if "input" in wrt:
                    tape.watch(x)
                taps = {
                    obj: _Tap(name, held, tape if name in wrt else None, replacements.get(name), calls.get(name, 0))
                    for name, obj in objects.items()
                }
                with rectifiers(self.model, relu, _walk(self.model)), _wrapped(taps):
                    logits = self._scores_of(self.model(x, training=False))
                if top_k:
                    ids = tf.math.top_k(logits, n_targets).indices
                self._check_reached(names, held)
                outputs = self._objective_scores(objective, logits, held)
                picked = [tf.reduce_sum(tf.gather(outputs, ids[:, k], batch_dims=1)) for k in range(n_targets)]
            sources = [x if w == "input" else held[w] for w in wrt]
            per_target = [tape.gradient(score, sources) for score in picked] if wrt else []
            grads = []
            for slot in range(len(wrt)):
                column = [g[slot] for g in per_target]
                grads.append(None if any(g is None for g in column) else tf.stack(column, axis=1))
            return logits, ids, [held[c] for c in capture], grads

        return tf.function(step, reduce_retracing=True)

    def _probe(self, shape: tuple[int, ...]) -> list[LayerInfo]:
        recorder = LayerRecorder()

        def recorder_for(name: str, layer: keras.Layer) -> Callable[[Any], None]:
            def record(out: Any) -> None:
                out_shape = tuple(int(d) for d in out.shape[1:]) if hasattr(out, "shape") else None
                recorder.see(name, type(layer).__name__, out, out_shape)

            return record

        with _wrapped({layer: recorder_for(name, layer) for name, layer in _walk(self.model)}):
            self._guard(lambda: self.model(np.zeros((1, *shape), np.float32), training=False), (1, *shape))
        return recorder.infos()

    def _declared_input_shape(self) -> tuple[int, ...] | None:
        declared = getattr(self.model, "input_shape", None)
        if isinstance(declared, tuple) and len(declared) == 4 and None not in declared[1:]:
            return tuple(int(d) for d in declared[1:])
        return None

    def _rest(self, layer: str) -> Callable[[tf.Tensor], tf.Tensor] | None:
        """The model after `layer` as its own compiled function (cached), or None where the layer's
        output is not the only value crossing the cut (then tails run full passes)."""
        if layer not in self._rests:
            try:
                with _graph_kept(self.model):
                    rest = keras.Model(self._layer_object(layer).output, self.model.output)
                self._rests[layer] = tf.function(lambda a: self._scores_of(rest(a, training=False)),
                                                 reduce_retracing=True)
            except (ValueError, AttributeError) as exc:
                log.info("no fast tail after '%s' (%s); tails run full forward passes", layer, error_line(exc))
                self._rests[layer] = None
        return self._rests[layer]

    def _logits_of(self, out: Any) -> tf.Tensor:
        return _scores(out)

    def _probabilities(self, logits: tf.Tensor) -> tf.Tensor:
        return tf.nn.softmax(logits, axis=1)

    def _channel_scores(self, activation: tf.Tensor, strongest: bool) -> tf.Tensor:
        axes = list(range(1, len(activation.shape) - 1))
        if not axes:
            return activation
        return tf.reduce_max(activation, axis=axes) if strongest else tf.reduce_mean(activation, axis=axes)

    def _class_count(self, shape: tuple[int, ...]) -> int:
        """How many scores the model outputs (read from its output shape, or one forward on zeros)."""
        declared = getattr(self.model, "output_shape", None)
        if self.score_function is None and isinstance(declared, tuple) and len(declared) == 2 and declared[1]:
            return int(declared[1])
        return int(self.predict(np.zeros((1, *shape), np.float32)).shape[1])

    def _layer_object(self, name: str) -> keras.Layer:
        found = dict(_walk(self.model))
        if name not in found:
            raise LayerError(f"unknown layer '{name}' in {self.name}.{close_matches(name, found)}")
        return found[name]

    def _guard(self, fn: Callable[[], Any], shape: tuple[int, ...], passthrough: tuple[type, ...] = ()) -> Any:
        """Run model code; the model's own failures become one-line ModelErrors naming the input shape, and
        our own errors raised while tf.function traced come out as themselves, not wrapped by autograph."""
        try:
            with logits_out(self._softmax):
                return fn()
        except HeatlensError:
            raise
        except Exception as exc:
            ours = _own_error(exc)
            if ours is not None:
                raise ours from None
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
    """Our error behind an exception that autograph re-raised in its own type while tracing, if any."""
    seen: set[int] = set()
    link: BaseException | None = exc
    while link is not None and id(link) not in seen:
        if isinstance(link, HeatlensError):
            return link
        seen.add(id(link))
        link = link.__cause__ or link.__context__
    return None


def _walk(model: keras.Layer, prefix: str = "") -> Iterator[tuple[str, keras.Layer]]:
    """Every layer with its dotted name, nested models' layers included (after their container)."""
    for layer in getattr(model, "layers", []):
        if isinstance(layer, keras.layers.InputLayer):
            continue
        name = prefix + layer.name
        yield name, layer
        if isinstance(layer, keras.Model):
            yield from _walk(layer, name + ".")


class _Tap:
    """Sees a layer's output: keeps it, watches it on the tape when gradients w.r.t. it are wanted (so
    recording starts there: nothing before the first watched layer is recorded or differentiated), and
    on the layer's last call replaces it by an injected activation when one is given."""

    def __init__(self, name: str, held: dict[str, Any], tape: tf.GradientTape | None, replacement: Any,
                 calls: int) -> None:
        self.name, self.held, self.tape, self.replacement, self.calls = name, held, tape, replacement, calls
        self.seen = 0

    def __call__(self, out: Any) -> Any:
        if not tf.is_tensor(out):
            raise LayerError(f"layer '{self.name}' returns {type(out).__name__}, not a tensor; pick another layer")
        self.seen += 1
        if self.replacement is not None and self.seen == self.calls:
            out = tf.cast(self.replacement, out.dtype)
        if self.tape is not None:
            self.tape.watch(out)
        self.held[self.name] = out
        return out if self.replacement is not None else None


@contextlib.contextmanager
def _wrapped(observers: dict[keras.Layer, Callable[[Any], Any]]) -> Iterator[None]:
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
    layers = [layer for _, layer in _walk(model)]
    saved = [(layer, list(layer._inbound_nodes), list(layer._outbound_nodes)) for layer in layers]
    try:
        yield
    finally:
        for layer, inbound, outbound in saved:
            layer._inbound_nodes[:] = inbound
            layer._outbound_nodes[:] = outbound


def _scores(out: Any) -> tf.Tensor:
    """The score tensor of a model output: a tensor, the first of a list/tuple, or ['logits']."""
    if isinstance(out, dict):
        out = out.get("logits", next(iter(out.values())))
    if isinstance(out, list | tuple):
        out = out[0]
    if len(out.shape) != 2:
        raise ModelError(f"expected model scores of shape (N, classes). Received: shape={tuple(out.shape)}")
    return out


def error_line(exc: BaseException) -> str:
    """The line of an error that says what went wrong, from under the wrapping that tf.function
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

