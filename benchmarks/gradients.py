"""Gradient methods against their compute floor and captum / zennit, measured side by side in one run.

Floors: guided backprop, saliency and LRP cost one forward + backward to the input; integrated gradients
with S steps cost S batched forward + backward passes to the input (run here as one batch of S * N).
LRP's peer is zennit with the same composite (and its torchvision canonizer where one fits), called as its
users do: the composite registered for the call and removed after it, as heatlens does.

Run: .venv/bin/python benchmarks/gradients.py [--batch 8] [--steps 32] [--rounds 5] [--lrp-batch 4] [--only-lrp]
"""

from __future__ import annotations

import argparse

import numpy as np
import torch
from common import ResNet50, interleaved, report

import heatlens
from heatlens.methods.gradients import guided_backprop, integrated_gradients, saliency
from heatlens.methods.lrp import lrp

# name -> heatlens composite; "epsilon" (every layer) shows the rule machinery's own cost: its rule needs no extra
# forward, while z-plus and gamma run each convolution again with changed weights
LRP_COMPOSITES = {"epsilon_plus": "epsilon_plus", "epsilon_gamma_box": "epsilon_gamma_box", "epsilon": {"*": "epsilon"}}


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
    parser.add_argument("--lrp-batch", type=int, default=4, help="images per LRP call (VGG16 at 224 px is heavy)")
    parser.add_argument("--only-lrp", action="store_true", help="skip guided backprop and integrated gradients")
    args = parser.parse_args()
    if not args.only_lrp:
        bench_gradients(args.batch, args.steps, args.rounds)
    bench_lrp_models(args.lrp_batch, args.rounds)


def bench_gradients(batch: int, steps: int, rounds: int) -> None:
    """Saliency and guided backprop, then integrated gradients, on the ResNet-50 layout with captum beside them."""
    torch.manual_seed(0)
    model = ResNet50().eval()
    net = heatlens.wrap(model, preprocess=None, batch_size=256)
    x_np = np.random.default_rng(0).standard_normal((batch, 224, 224, 3)).astype(np.float32)
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
    report(f"Guided backprop, ResNet-50 (random weights), batch {batch}, torch {torch.__version__}, "
           f"{torch.get_num_threads()} threads", interleaved(variants, rounds=rounds),
           "forward + backward to the input (floor)")

    small = x[:1]
    path = small.repeat(steps, 1, 1, 1)
    ids_path = ids[:1].repeat(steps)
    ig_variants = {
        f"{steps} batched forward + backward (floor)": lambda: input_gradient(model, path, ids_path),
        f"heatlens integrated_gradients steps={steps}": lambda: integrated_gradients(
            net, x_np[:1], ids_np[:1], steps=steps, batch_size=steps, progress=False),
    }
    ig_variants.update(_captum_ig(model, small, ids[:1], steps))
    report(f"Integrated gradients, ResNet-50 (random weights), 1 image x {steps} steps, one batch",
           interleaved(ig_variants, rounds=rounds), f"{steps} batched forward + backward (floor)")


def bench_lrp_models(batch: int, rounds: int) -> None:
    """LRP on the bundled model and on torchvision VGG16 and ResNet-18 with random weights."""
    import torchvision

    bundled = heatlens.load_model()
    bench_lrp("EfficientNet-Lite0 (default model)", bundled.module, None, batch, rounds)
    torch.manual_seed(0)
    bench_lrp("torchvision VGG16 (random weights)", torchvision.models.vgg16(weights=None), "vgg", batch, rounds)
    torch.manual_seed(0)
    bench_lrp("torchvision ResNet-18 (random weights)", torchvision.models.resnet18(weights=None), "resnet", batch,
              rounds)


def bench_lrp(title: str, model: torch.nn.Module, canonizer: str | None, batch: int, rounds: int) -> None:
    """heatlens LRP and zennit's, composite by composite, against one forward + backward to the input; then how far
    the two relevance maps agree (where zennit has no canonizer for the model's residual additions, they differ; on
    ResNet-18 by about 1e-3, zennit's merged batch norms still dividing by sqrt(1 + eps): see test_lrp_oracle.py)."""
    model.eval()
    net = heatlens.wrap(model, preprocess=None)
    x_np = np.random.default_rng(0).standard_normal((batch, 224, 224, 3)).astype(np.float32)
    x = torch.from_numpy(x_np.transpose(0, 3, 1, 2).copy())
    with torch.no_grad():
        ids = model(x).argmax(1)
    ids_np = ids.numpy()[:, None]
    low, high = float(x_np.min()), float(x_np.max())
    ours = {name: (lambda spec=spec: lrp(net, x_np, ids_np, composite=spec, low=low, high=high))
            for name, spec in LRP_COMPOSITES.items()}
    variants: dict = {"forward + backward to the input (floor)": lambda: input_gradient(model, x, ids)}
    variants.update({f"heatlens lrp composite={name}": fn for name, fn in ours.items()})
    peers = _zennit_lrp(model, canonizer, x, ids, low, high)
    variants.update({f"zennit {name} (peer)": fn for name, fn in peers.items()})
    report(f"LRP, {title}, batch {batch}, torch {torch.__version__}, {torch.get_num_threads()} threads",
           interleaved(variants, rounds=rounds), "forward + backward to the input (floor)")
    for name, fn in peers.items():
        reference = fn().sum(1).numpy()
        gap = np.abs(ours[name]().maps[:, 0] - reference).max() / np.abs(reference).max()
        why = "" if canonizer else " (zennit, no canonizer here, passes the residual additions' gradient)"
        print(f"  heatlens vs zennit relevance, {name}: max difference {gap:.1e} of zennit's peak{why}")


def _zennit_lrp(model, canonizer: str | None, x, ids, low: float, high: float) -> dict:
    """zennit's relevance (N, C, H, W) per composite, the output relevance being the target's score; {} without
    zennit."""
    try:
        from zennit.attribution import Gradient
        from zennit.composites import EpsilonGammaBox, EpsilonPlus, LayerMapComposite
        from zennit.rules import Epsilon, Pass
        from zennit.torchvision import ResNetCanonizer, VGGCanonizer
        from zennit.types import Activation, Convolution
    except ImportError:
        return {}
    canonizers = {"vgg": [VGGCanonizer()], "resnet": [ResNetCanonizer()], None: []}[canonizer]
    composites = {
        "epsilon_plus": EpsilonPlus(canonizers=canonizers),
        "epsilon_gamma_box": EpsilonGammaBox(low=torch.full((1, 3, 1, 1), low), high=torch.full((1, 3, 1, 1), high),
                                             canonizers=canonizers),
        "epsilon": LayerMapComposite([(Activation, Pass()), (Convolution, Epsilon()), (torch.nn.Linear, Epsilon())],
                                     canonizers=canonizers),
    }
    onehot = torch.nn.functional.one_hot(ids, 1000).float()

    def relevance(composite) -> torch.Tensor:
        return Gradient(model=model, composite=composite)(x.clone(), attr_output=lambda out: onehot * out)[1]

    return {name: (lambda composite=composite: relevance(composite)) for name, composite in composites.items()}


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
