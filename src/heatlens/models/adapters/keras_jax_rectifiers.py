"""Guided backprop and deconvnet rectifiers for Keras on JAX: ReLU / ReLU6 forward, the rule's backward
(see keras_rectifiers) through a custom VJP."""

from __future__ import annotations

from functools import partial

import jax
import jax.numpy as jnp


@partial(jax.custom_vjp, nondiff_argnums=(1, 2))
def rectify(x: jax.Array, upper: float | None, rule: str) -> jax.Array:
    """max(x, 0) (clipped at `upper`) whose gradient follows `rule` ('guided' or 'deconv')."""
    return jnp.maximum(x, 0) if upper is None else jnp.clip(x, 0, upper)


def _forward(x: jax.Array, upper: float | None, rule: str) -> tuple[jax.Array, jax.Array]:
    return rectify(x, upper, rule), x


def _backward(upper: float | None, rule: str, x: jax.Array, dy: jax.Array) -> tuple[jax.Array]:
    positive = jnp.maximum(dy, 0)
    if rule == "deconv":
        return (positive,)
    inside = x > 0 if upper is None else (x > 0) & (x < upper)
    return (positive * inside.astype(dy.dtype),)


rectify.defvjp(_forward, _backward)
