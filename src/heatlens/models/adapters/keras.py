"""Adapter for Keras 3 models on the TensorFlow backend: GradientTape inside a cached tf.function.

Everything backend-neutral (layer taps, the step cache, probing, errors) is in keras_common; this file is the
TensorFlow pass: the tape watches the input or the tapped layers' outputs, so recording starts there.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from typing import Any

import keras
import numpy as np
import tensorflow as tf

from .keras_common import KerasBase, StepKey, walk, wrapped
from .keras_rectifiers import rectifiers
from .lrp_keras import relevance_rules


class _OwnRetracingFilter(logging.Filter):
    """Drops TensorFlow's 'triggered tf.function retracing' warning about this adapter's functions: it
    compiles one function per kind of request on purpose, and TensorFlow counts them all as one (it keys
    its counter by the code object), so a few different methods in a row would look like a retracing bug."""

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        return not ("retracing" in message and "KerasNetwork." in message)


logging.getLogger("tensorflow").addFilter(_OwnRetracingFilter())


class KerasNetwork(KerasBase):
    """A Keras 3 model on TensorFlow seen through the Network primitives."""

    backend = "tensorflow"
    compiler = "tf.function"
    graph_only = (TypeError, NotImplementedError, tf.errors.OperatorNotAllowedInGraphError)
    tensor_type = tf.Tensor

    def _compile(self, fn: Callable[..., Any]) -> Callable[..., Any]:
        return tf.function(fn, reduce_retracing=True)

    def _predict_chunk(self, x: np.ndarray) -> np.ndarray:
        return np.asarray(self._compiled(("forward",), lambda: self._forward, (tf.constant(np.asarray(x, np.float32)),),
                                         x.shape))

    def _forward(self, x: tf.Tensor) -> tf.Tensor:
        return self._scores_of(self.model(x, training=False))

    def _compile_rest(self, rest: keras.Model) -> Callable[[np.ndarray], np.ndarray]:
        run = tf.function(lambda a: self._scores_of(rest(a, training=False)), reduce_retracing=True)
        return lambda activation: run(tf.constant(activation, tf.float32)).numpy()

    def _step_args(self, x: np.ndarray, ids: np.ndarray, values: tuple[np.ndarray, ...]) -> tuple:
        return tf.constant(x), tf.constant(ids), tuple(tf.constant(v) for v in values)

    def _make_step(self, key: StepKey) -> Callable[..., tuple]:
        capture, wrt, n_targets, top_k, relu, objective = key[:6]
        composite = key[8]

        def step(x: tf.Tensor, ids: tf.Tensor, values: tuple[tf.Tensor, ...]) -> tuple:
            held: dict[str, tf.Tensor] = {}
            with tf.GradientTape(persistent=n_targets > 1, watch_accessed_variables=False) as tape:
                if "input" in wrt:
                    tape.watch(x)

                def source(_name: str, out: tf.Tensor) -> tf.Tensor:
                    tape.watch(out)
                    return out

                names, taps = self._taps(key, held, values, source)
                with rectifiers(self.model, relu, walk(self.model), rectify), \
                        relevance_rules(composite, walk(self.model), with_backward, vjp), wrapped(taps):
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

        return step


def rectify(x: tf.Tensor, upper: float | None, rule: str) -> tf.Tensor:
    """max(x, 0) (clipped at `upper`) whose gradient follows `rule` ('guided' or 'deconv'; see keras_rectifiers)."""

    @tf.custom_gradient
    def rectifier(t: tf.Tensor) -> tuple[tf.Tensor, Callable[[tf.Tensor], tf.Tensor]]:
        y = tf.nn.relu(t) if upper is None else tf.clip_by_value(t, 0.0, upper)

        def grad(dy: tf.Tensor) -> tf.Tensor:
            positive = tf.nn.relu(dy)
            if rule == "deconv":
                return positive
            inside = t > 0 if upper is None else tf.logical_and(t > 0, t < upper)
            return positive * tf.cast(inside, dy.dtype)

        return y, grad

    return rectifier(x)


def with_backward(inputs: Sequence[tf.Tensor], value: tf.Tensor,
                  backward: Callable[[list[tf.Tensor], tf.Tensor], list[tf.Tensor]]) -> tf.Tensor:
    """`value` (computed from `inputs`, gradient stopped) whose gradient w.r.t. the inputs is `backward(inputs, dy)`:
    the custom backward pass of an LRP rule (lrp_keras)."""

    @tf.custom_gradient
    def relevance(*xs: tf.Tensor) -> tuple[tf.Tensor, Callable[[tf.Tensor], list[tf.Tensor]]]:
        return tf.identity(value), lambda dy: backward(list(xs), dy)

    return relevance(*inputs)


def vjp(fn: Callable[..., tf.Tensor], primals: Sequence[tf.Tensor], cotangent: tf.Tensor) -> list[tf.Tensor]:
    """The vector-Jacobian products of `fn` at `primals` for `cotangent`, one per primal."""
    with tf.GradientTape(watch_accessed_variables=False) as tape:
        for primal in primals:
            tape.watch(primal)
        out = fn(*primals)
    return list(tape.gradient(out, list(primals), output_gradients=cotangent))
