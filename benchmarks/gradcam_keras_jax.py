"""Grad-CAM on Keras 3 over the JAX backend against its compute floor (one jitted forward) and a hand-written peer.

The floor is `model.stateless_call` under `jax.jit`, the fastest plain inference a JAX user has. The peer is
the Grad-CAM a JAX user would write: a jitted forward to the layer, `jax.vjp` of the rest of the network with
respect to that activation, channel-mean weights and the ReLU of the weighted sum. Every variant blocks until
its result is ready. No other library explains Keras-on-JAX models, so there is no library peer.

Run: KERAS_BACKEND=jax .venv/bin/python benchmarks/gradcam_keras_jax.py [--batch 8] [--rounds 7]
"""

from __future__ import annotations

import os

os.environ["KERAS_BACKEND"] = "jax"

import argparse
from collections.abc import Callable

import jax
import jax.numpy as jnp
import keras
import numpy as np
from common import interleaved, report

import heatlens
from heatlens.methods.cam import gradcam

FLOOR = "jax.jit stateless_call forward (floor)"


def variables(model: keras.Model) -> tuple[list[jax.Array], list[jax.Array]]:
    """The model's trainable and non-trainable values, the state `stateless_call` takes."""
    return [v.value for v in model.trainable_variables], [v.value for v in model.non_trainable_variables]


def compiled_forward(model: keras.Model) -> Callable[[jax.Array], jax.Array]:
    """The floor: one jitted stateless forward, blocked until its scores are ready."""
    state = variables(model)
    run = jax.jit(lambda trainable, fixed, x: model.stateless_call(trainable, fixed, x, training=False)[0])
    return lambda x: run(*state, x).block_until_ready()


def hand_written_gradcam(model: keras.Model, layer_name: str) -> Callable[[jax.Array, jax.Array], jax.Array]:
    """The peer: head to the layer, jax.vjp of the rest w.r.t. the activation with a one-hot cotangent at the
    target, weights = spatial mean of the gradient, map = ReLU(sum_k w_k A_k); all in one jax.jit."""
    activation = model.get_layer(layer_name).output
    head, rest = keras.Model(model.inputs, activation), keras.Model(activation, model.output)
    head_state, rest_state = variables(head), variables(rest)

    def cam(head_state, rest_state, x, ids):
        act = head.stateless_call(*head_state, x, training=False)[0]
        logits, pullback = jax.vjp(lambda a: rest.stateless_call(*rest_state, a, training=False)[0], act)
        (grad,) = pullback(jax.nn.one_hot(ids, logits.shape[-1], dtype=logits.dtype))
        weights = grad.mean(axis=(1, 2), keepdims=True)
        return jax.nn.relu((weights * act).sum(axis=-1))

    run = jax.jit(cam)
    return lambda x, ids: run(head_state, rest_state, x, ids).block_until_ready()


def bench(title: str, model: keras.Model, layer_name: str, batch: int, size: int, rounds: int) -> None:
    """One model: the floor, heatlens' method and explain(), the hand-written peer; and how far the maps agree."""
    net = heatlens.wrap(model, preprocess=None)
    x_np = np.random.default_rng(0).standard_normal((batch, size, size, 3)).astype(np.float32)
    x = jnp.asarray(x_np)
    forward, peer = compiled_forward(model), hand_written_gradcam(model, layer_name)
    ids_np = np.asarray(forward(x)).argmax(1)[:, None]
    ids = jnp.asarray(ids_np[:, 0])
    ours, theirs = gradcam(net, x_np, ids_np, layer=layer_name).maps[:, 0], np.asarray(peer(x, ids))
    gap = float(np.abs(ours - theirs).max() / max(float(np.abs(theirs).max()), 1e-12))
    variants = {
        FLOOR: lambda: forward(x),
        "heatlens gradcam (method, targets given)": lambda: gradcam(net, x_np, ids_np, layer=layer_name),
        "heatlens.explain(target='top1', upsample)": lambda: heatlens.explain(net, x_np, layer=layer_name),
        "hand-written jitted jax.vjp Grad-CAM (peer)": lambda: peer(x, ids),
    }
    report(f"{title}: batch {batch}, {size}x{size}, layer {layer_name}, Keras {keras.__version__}, "
           f"JAX {jax.__version__} on {jax.devices()[0].platform}", interleaved(variants, rounds=rounds), FLOOR)
    print(f"  heatlens vs peer maps: max difference {gap:.1e} of the peer's peak")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--rounds", type=int, default=7)
    args = parser.parse_args()
    if keras.backend.backend() != "jax":
        raise SystemExit(f"Keras runs on {keras.backend.backend()!r}: import nothing that loads keras before this "
                         "script sets KERAS_BACKEND=jax")
    keras.utils.set_random_seed(0)
    lite = heatlens.load_model(framework="keras")
    bench("Keras/JAX EfficientNet-Lite0 (default model)", lite.model, "head", args.batch, 224, args.rounds)
    resnet = keras.applications.ResNet50(weights=None, classifier_activation=None)
    bench("Keras/JAX ResNet50 (random weights)", resnet, "conv5_block3_out", args.batch, 224, args.rounds)


if __name__ == "__main__":
    main()
