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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--device", default="cpu", help="cpu or cuda")
    args = parser.parse_args()
    torch.manual_seed(0)
    bench("ResNet-50 (random weights)", ResNet50(), "layer4", args.batch, 224, args.rounds, args.device)
    default = heatlens.load_model()
    bench("EfficientNet-Lite0 (default model)", default.module, default.default_layer(), args.batch, 224,
          args.rounds, args.device)


if __name__ == "__main__":
    main()
