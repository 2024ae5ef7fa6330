"""Gradient methods against their compute floor and captum, measured side by side in one run.

Floors: guided backprop and saliency cost one forward + backward to the input; integrated gradients
with S steps cost S batched forward + backward passes to the input (run here as one batch of S * N).

Run: .venv/bin/python benchmarks/gradients.py [--batch 8] [--steps 32] [--rounds 5]
"""

from __future__ import annotations

import argparse

import numpy as np
import torch
from common import ResNet50, interleaved, report

import heatlens
from heatlens.methods.gradients import guided_backprop, integrated_gradients, saliency


def input_gradient(model: torch.nn.Module, x: torch.Tensor, ids: torch.Tensor) -> np.ndarray:
    """The floor: one forward with a graph from the input and one backward to the input only."""
    x = x.clone().requires_grad_()
    (grad,) = torch.autograd.grad(model(x).gather(1, ids[:, None]).sum(), [x])
    return grad.numpy()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--steps", type=int, default=32)
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    torch.manual_seed(0)
    model = ResNet50().eval()
    net = heatlens.wrap(model, preprocess=None, batch_size=256)
    x_np = np.random.default_rng(0).standard_normal((args.batch, 224, 224, 3)).astype(np.float32)
    x = torch.from_numpy(x_np.transpose(0, 3, 1, 2).copy())
    with torch.no_grad():
        ids = model(x).argmax(1)
    ids_np = ids.numpy()[:, None]

    variants = {
        "forward + backward to the input (floor)": lambda: input_gradient(model, x, ids),
        "heatlens saliency": lambda: saliency(net, x_np, ids_np),
        "heatlens guided_backprop": lambda: guided_backprop(net, x_np, ids_np),
    }
    variants.update(_captum_pixel(model, x, ids))
    report(f"Guided backprop, ResNet-50 (random weights), batch {args.batch}, torch {torch.__version__}, "
           f"{torch.get_num_threads()} threads", interleaved(variants, rounds=args.rounds),
           "forward + backward to the input (floor)")

    steps, small = args.steps, x[:1]
    path = small.repeat(steps, 1, 1, 1)
    ids_path = ids[:1].repeat(steps)
    ig_variants = {
        f"{steps} batched forward + backward (floor)": lambda: input_gradient(model, path, ids_path),
        f"heatlens integrated_gradients steps={steps}": lambda: integrated_gradients(
            net, x_np[:1], ids_np[:1], steps=steps, batch_size=steps, progress=False),
    }
    ig_variants.update(_captum_ig(model, small, ids[:1], steps))
    report(f"Integrated gradients, ResNet-50 (random weights), 1 image x {steps} steps, one batch",
           interleaved(ig_variants, rounds=args.rounds), f"{steps} batched forward + backward (floor)")


def _captum_pixel(model, x, ids) -> dict:
    try:
        from captum.attr import GuidedBackprop, Saliency
    except ImportError:
        return {}
    return {
        "captum Saliency (peer)": lambda: Saliency(model).attribute(x.clone().requires_grad_(), target=ids, abs=False),
        "captum GuidedBackprop (peer)": lambda: GuidedBackprop(model).attribute(x.clone().requires_grad_(),
                                                                                target=ids),
    }


def _captum_ig(model, x, ids, steps: int) -> dict:
    try:
        from captum.attr import IntegratedGradients
    except ImportError:
        return {}
    ig = IntegratedGradients(model)
    return {"captum IntegratedGradients (peer)": lambda: ig.attribute(x, target=ids, n_steps=steps,
                                                                      internal_batch_size=steps)}


if __name__ == "__main__":
    main()
