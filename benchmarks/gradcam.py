"""Grad-CAM cost against the compute floor (one plain inference pass) and against peers, same run.

heatlens runs the network without recording a graph up to the target layer and records only the rest,
so its Grad-CAM should cost about one forward pass. The peer "full backward" is what most Grad-CAM code
does (and pytorch-grad-cam, measured when installed): a graph over the whole network and a backward
with parameter gradients.

Run: .venv/bin/python benchmarks/gradcam.py [--batch 8] [--rounds 7]
"""

from __future__ import annotations

import argparse

import numpy as np
import torch
from common import ResNet50, interleaved, report

import heatlens
from heatlens.methods.cam import gradcam


def full_backward_gradcam(model: torch.nn.Module, layer: torch.nn.Module, x: torch.Tensor, ids: torch.Tensor):
    """The textbook way: hook the layer, forward with grad everywhere, loss.backward() into every weight."""
    held = {}
    handle = layer.register_forward_hook(lambda _m, _i, out: held.update(act=out) or out.retain_grad())
    try:
        model.zero_grad(set_to_none=True)
        logits = model(x)
        logits.gather(1, ids[:, None]).sum().backward()
        act, grad = held["act"], held["act"].grad
        return torch.relu((grad.mean(dim=(2, 3), keepdim=True) * act).sum(1)).detach()
    finally:
        handle.remove()
        model.zero_grad(set_to_none=True)


def pytorch_grad_cam_variant(model, layer, x, ids):
    """pytorch-grad-cam's GradCAM when it is installed in this environment, else None."""
    try:
        from pytorch_grad_cam import GradCAM
        from pytorch_grad_cam.utils.model_targets import ClassifierOutputTarget
    except ImportError:
        return None
    cam = GradCAM(model=model, target_layers=[layer])
    targets = [ClassifierOutputTarget(int(i)) for i in ids]
    return lambda: cam(input_tensor=x, targets=targets)


def bench(title: str, model: torch.nn.Module, layer_name: str, batch: int, size: int, rounds: int,
          device: str) -> None:
    model.eval().to(device)
    net = heatlens.wrap(model, preprocess=None)
    rng = np.random.default_rng(0)
    x_np = rng.standard_normal((batch, size, size, 3)).astype(np.float32)
    x = torch.from_numpy(x_np.transpose(0, 3, 1, 2).copy()).to(device)
    with torch.no_grad():
        ids_np = model(x).argmax(1).cpu().numpy()[:, None]
    ids = torch.from_numpy(ids_np[:, 0]).to(device)
    layer = dict(model.named_modules())[layer_name]

    def forward():
        with torch.no_grad():
            model(x)

    variants = {
        "forward, no grad (floor)": forward,
        "heatlens gradcam (method, targets given)": lambda: gradcam(net, x_np, ids_np, layer=layer_name),
        "heatlens.explain(target='top1', upsample)": lambda: heatlens.explain(net, x_np, layer=layer_name),
        "full backward with parameter grads (peer)": lambda: full_backward_gradcam(model, layer, x, ids),
    }
    peer = pytorch_grad_cam_variant(model, layer, x, ids)
    if peer is not None:
        variants["pytorch-grad-cam GradCAM (peer)"] = peer
    if device.startswith("cuda"):
        variants = {name: synchronised(fn) for name, fn in variants.items()}
        where = torch.cuda.get_device_name(torch.device(device))
    else:
        where = f"CPU, {torch.get_num_threads()} threads"
    report(f"{title}: batch {batch}, {size}x{size}, layer {layer_name}, torch {torch.__version__}, {where}",
           interleaved(variants, rounds=rounds), "forward, no grad (floor)")


def synchronised(fn):
    """Time GPU work to its end, not to its launch."""

    def run():
        fn()
        torch.cuda.synchronize()

    return run


def bench_keras(title: str, model, layer_name: str, batch: int, size: int, rounds: int) -> None:
    """Keras: the floor is the best forward (a tf.function); the peer is the tutorial's eager tape."""
    import keras
    import tensorflow as tf

    net = heatlens.wrap(model, preprocess=None)
    x_np = np.random.default_rng(0).standard_normal((batch, size, size, 3)).astype(np.float32)
    x = tf.constant(x_np)
    ids_np = model.predict(x_np, verbose=0).argmax(1)[:, None]
    compiled_forward = tf.function(lambda t: model(t, training=False))
    grad_model = keras.Model(model.inputs, [model.get_layer(layer_name).output, model.output])

    def tutorial_tape():
        with tf.GradientTape() as tape:
            act, preds = grad_model(x, training=False)
            score = tf.gather(preds, ids_np[:, 0], batch_dims=1)
        grads = tape.gradient(score, act)
        return tf.nn.relu(tf.reduce_sum(tf.reduce_mean(grads, axis=(1, 2), keepdims=True) * act, axis=-1)).numpy()

    variants = {
        "tf.function forward (floor)": lambda: compiled_forward(x).numpy(),
        "eager forward": lambda: model(x, training=False).numpy(),
        "heatlens gradcam (method, targets given)": lambda: gradcam(net, x_np, ids_np, layer=layer_name),
        "heatlens.explain(target='top1', upsample)": lambda: heatlens.explain(net, x_np, layer=layer_name),
        "eager GradientTape, the Keras tutorial (peer)": tutorial_tape,
    }
    variants.update(_keras_peers(model, layer_name, x_np, ids_np))
    report(f"{title}: batch {batch}, {size}x{size}, layer {layer_name}, Keras {keras.__version__}, "
           f"TF {tf.__version__}", interleaved(variants, rounds=rounds), "tf.function forward (floor)")


def _keras_peers(model, layer_name: str, x: np.ndarray, ids: np.ndarray) -> dict:
    """tf-keras-vis and xplique Grad-CAM, when installed in this environment."""
    peers = {}
    try:
        from tf_keras_vis.gradcam import Gradcam
        from tf_keras_vis.utils.scores import CategoricalScore

        cam = Gradcam(model, clone=True)
        peers["tf-keras-vis Gradcam (peer)"] = lambda: cam(CategoricalScore(list(ids[:, 0])), x,
                                                            penultimate_layer=layer_name)
    except ImportError:
        pass
    try:
        from xplique.attributions import GradCAM

        explainer = GradCAM(model, conv_layer=layer_name)
        onehot = np.eye(model.output_shape[-1], dtype=np.float32)[ids[:, 0]]
        peers["xplique GradCAM (peer)"] = lambda: explainer.explain(x, onehot)
    except ImportError:
        pass
    return peers


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--device", default="cpu", help="cpu or cuda (torch models)")
    parser.add_argument("--no-keras", dest="keras", action="store_false", help="skip the Keras measurements")
    args = parser.parse_args()
    torch.manual_seed(0)
    bench("ResNet-50 (random weights)", ResNet50(), "layer4", args.batch, 224, args.rounds, args.device)
    default = heatlens.load_model()
    bench("EfficientNet-Lite0 (default model)", default.module, default.default_layer(), args.batch, 224,
          args.rounds, args.device)
    if args.keras:
        import keras

        keras.utils.set_random_seed(0)
        resnet = keras.applications.ResNet50(weights=None, classifier_activation=None)
        bench_keras("Keras ResNet50 (random weights)", resnet, "conv5_block3_out", args.batch, 224, args.rounds)
        lite = heatlens.load_model(framework="keras")
        bench_keras("Keras EfficientNet-Lite0 (default model)", lite.model, "head", args.batch, 224, args.rounds)


if __name__ == "__main__":
    main()
