"""Adapter for Keras 3 models on the JAX backend: jax.vjp inside a cached jax.jit over `model.stateless_call`.

The model's variables are arguments of the compiled functions, not constants folded into them. A gradient
w.r.t. a layer's output is the gradient w.r.t. a zero perturbation added to that output on the layer's last
call: the perturbation is the differentiated input, so one forward and one pullback per target give it. Each
source passes an identity with a custom VJP that notes when a cotangent reaches it: JAX skips it where the scores
do not depend on the source, whose gradient is then None (refused as such) rather than zeros.
Everything backend-neutral (layer taps, the step cache, probing, errors) is in keras_common.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import jax
import jax.numpy as jnp
import keras
import numpy as np

from .keras_common import KerasBase, StepKey, walk, wrapped
from .keras_jax_rectifiers import rectify
from .keras_rectifiers import rectifiers
from .lrp_keras import relevance_rules

State = tuple[list[jax.Array], list[jax.Array]]


class KerasJaxNetwork(KerasBase):
    """A Keras 3 model on JAX seen through the Network primitives."""

    backend = "jax"
    compiler = "jax.jit"
    graph_only = (jax.errors.ConcretizationTypeError, jax.errors.NonConcreteBooleanIndexError,
                  jax.errors.TracerArrayConversionError, jax.errors.TracerIntegerConversionError)
    tensor_type = jax.Array

    def _compile(self, fn: Callable[..., Any]) -> Callable[..., Any]:
        return jax.jit(fn)

    def _predict_chunk(self, x: np.ndarray) -> np.ndarray:
        args = (self._state(x), jnp.asarray(x, jnp.float32))
        return np.asarray(self._compiled(("forward",), lambda: self._forward, args, x.shape))

    def _forward(self, state: State, x: jax.Array) -> jax.Array:
        return self._scores_of(_stateless(self.model, state, x))

    def _compile_rest(self, rest: keras.Model) -> Callable[[np.ndarray], np.ndarray]:
        run = jax.jit(lambda state, a: self._scores_of(_stateless(rest, state, a)))
        return lambda activation: np.asarray(run(_variables(rest), jnp.asarray(activation, jnp.float32)))

    def _step_args(self, x: np.ndarray, ids: np.ndarray, values: tuple[np.ndarray, ...]) -> tuple:
        return self._state(x), jnp.asarray(x), jnp.asarray(ids), tuple(jnp.asarray(v) for v in values)

    def _state(self, x: np.ndarray) -> State:
        """The model's variables (a subclassed model is built by one eager call first, as Keras does)."""
        if not self.model.built:
            self._guard(lambda: self.model(x[:1], training=False), x.shape)
        return _variables(self.model)

    def _make_step(self, key: StepKey) -> Callable[..., tuple]:
        capture, wrt, n_targets, top_k, relu, objective, _, shape, composite = key

        def forward(state: State, x: jax.Array, sources: dict[str, jax.Array], values: tuple) -> tuple:
            held: dict[str, jax.Array] = {}
            names, taps = self._taps(key, held, values, lambda name, out: out + sources[name].astype(out.dtype))
            with rectifiers(self.model, relu, walk(self.model), rectify), \
                    relevance_rules(composite, walk(self.model), with_backward, vjp), wrapped(taps):
                logits = self._scores_of(_stateless(self.model, state, sources.get("input", x)))
            self._check_reached(names, held)
            return self._objective_scores(objective, logits, held), (logits, [held[c] for c in capture])

        def step(state: State, x: jax.Array, ids: jax.Array, values: tuple) -> tuple:
            sources = {w: x if w == "input" else jnp.zeros((len(x), *(self.layer(w, shape).output_shape or ())))
                       for w in wrt}
            outputs: jax.Array
            logits: jax.Array
            acts: list[jax.Array]
            reached: set[str] = set()
            marks = {w: _reach_mark(w, reached) for w in wrt}
            if wrt:
                outputs, pullback, (logits, acts) = jax.vjp(
                    lambda s: forward(state, x, {w: marks[w](v) for w, v in s.items()}, values), sources, has_aux=True)
            else:
                outputs, (logits, acts) = forward(state, x, sources, values)
            if top_k:
                ids = jax.lax.top_k(logits, n_targets)[1]
            per_target = [pullback(jax.nn.one_hot(ids[:, k], outputs.shape[1], dtype=outputs.dtype))[0]
                          for k in range(n_targets)] if wrt else []
            return logits, ids, acts, [jnp.stack([g[w] for g in per_target], axis=1) if w in reached else None
                                       for w in wrt]

        return step


def _variables(model: keras.Model) -> State:
    """The values of a model's trainable and non-trainable variables, as stateless_call takes them."""
    return [v.value for v in model.trainable_variables], [v.value for v in model.non_trainable_variables]


def _stateless(model: keras.Model, state: State, x: jax.Array) -> Any:
    """The model's raw output for `x` from the variable values `state` (stateless_call hands its keywords to
    `call` as they are, so training=False only where `call` takes it)."""
    options = {"training": False} if getattr(model, "_call_has_training_arg", True) else {}
    return model.stateless_call(*state, x, **options)[0]


def _reach_mark(name: str, reached: set[str]) -> Callable[[jax.Array], jax.Array]:
    """The identity, whose backward pass adds `name` to `reached` (JAX runs it only where a cotangent flows)."""

    @jax.custom_vjp
    def mark(t: jax.Array) -> jax.Array:
        return t

    def backward(_: None, cotangent: jax.Array) -> tuple[jax.Array]:
        reached.add(name)
        return (cotangent,)

    mark.defvjp(lambda t: (t, None), backward)
    return mark


def with_backward(inputs: Sequence[jax.Array], value: jax.Array,
                  backward: Callable[[list[jax.Array], jax.Array], list[jax.Array]]) -> jax.Array:
    """`value` (computed from `inputs`, gradient stopped) whose cotangents for the inputs are `backward(inputs, dy)`:
    the custom backward pass of an LRP rule (lrp_keras)."""

    @jax.custom_vjp
    def relevance(xs: tuple[jax.Array, ...], v: jax.Array) -> jax.Array:
        return v

    def forward(xs: tuple[jax.Array, ...], v: jax.Array) -> tuple[jax.Array, tuple[jax.Array, ...]]:
        return v, xs

    def pullback(xs: tuple[jax.Array, ...], dy: jax.Array) -> tuple[tuple[jax.Array, ...], jax.Array]:
        return tuple(backward(list(xs), dy)), jnp.zeros_like(dy)

    relevance.defvjp(forward, pullback)
    return relevance(tuple(inputs), value)


def vjp(fn: Callable[..., jax.Array], primals: Sequence[jax.Array], cotangent: jax.Array) -> list[jax.Array]:
    """The vector-Jacobian products of `fn` at `primals` for `cotangent`, one per primal."""
    return list(jax.vjp(fn, *primals)[1](cotangent))
