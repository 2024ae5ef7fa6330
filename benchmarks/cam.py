"""Score-CAM and Ablation-CAM against the forward passes they must make, measured side by side in one run.

Score-CAM must run the model once per channel of the layer (2048 masked inputs for ResNet-50's layer4);
Ablation-CAM must run the network once (for the activations) and the rest of the network after the
layer once per channel. The floors are those passes alone, batched like the method, on inputs prepared
in advance.

Run: .venv/bin/python benchmarks/cam.py [--size 224] [--batch 64] [--rounds 1]
"""

from __future__ import annotations

import argparse

import numpy as np
import torch
from common import ResNet50, interleaved, report

import heatlens
from heatlens.methods.cam import ablationcam, scorecam


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=224, help="input size (112 for a quicker run)")
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--rounds", type=int, default=1)
    args = parser.parse_args()
    torch.manual_seed(0)
    model = ResNet50().eval()
    net = heatlens.wrap(model, preprocess=None)
    x_np = np.random.default_rng(0).standard_normal((1, args.size, args.size, 3)).astype(np.float32)
    x = torch.from_numpy(x_np.transpose(0, 3, 1, 2).copy())
    with torch.no_grad():
        features = model.layer4(model.layer3(model.layer2(model.layer1(model.stem(x)))))
        target = int(model(x).argmax())
    channels = features.shape[1]
    masked = x.repeat(args.batch, 1, 1, 1)

    def forward_passes():
        with torch.no_grad():
            for _ in range(0, channels, args.batch):
                model(masked)

    def rest_passes():
        with torch.no_grad():
            model(x)
            ablated = features.repeat(args.batch, 1, 1, 1)
            for _ in range(0, channels, args.batch):
                model.fc(torch.flatten(ablated.mean(dim=(2, 3)), 1))

    ids = np.array([[target]])
    score_variants = {
        f"{channels} batched forward passes (floor)": forward_passes,
        "heatlens scorecam": lambda: scorecam(net, x_np, ids, layer="layer4", batch_size=args.batch, progress=False),
    }
    score_variants.update(_grad_cam_peer("ScoreCAM", model, x, target, args.batch))
    report(f"Score-CAM, ResNet-50 (random weights) layer4, {channels} maps, {args.size}x{args.size}, "
           f"batch {args.batch}, {torch.get_num_threads()} threads",
           interleaved(score_variants, rounds=args.rounds, warmup=0), f"{channels} batched forward passes (floor)")

    ablation_variants = {
        f"1 forward + {channels} rest-of-network passes (floor)": rest_passes,
        "heatlens ablationcam": lambda: ablationcam(net, x_np, ids, layer="layer4", batch_size=args.batch,
                                                    progress=False),
    }
    ablation_variants.update(_grad_cam_peer("AblationCAM", model, x, target, args.batch))
    report(f"Ablation-CAM, ResNet-50 (random weights) layer4, {channels} channels",
           interleaved(ablation_variants, rounds=max(args.rounds, 3), warmup=1),
           f"1 forward + {channels} rest-of-network passes (floor)")


def _grad_cam_peer(name: str, model, x, target: int, batch: int) -> dict:
    """pytorch-grad-cam's implementation when it is installed (it needs torchvision)."""
    try:
        import pytorch_grad_cam
        from pytorch_grad_cam.utils.model_targets import ClassifierOutputTarget
    except ImportError:
        return {}
    method = getattr(pytorch_grad_cam, name)(model=model, target_layers=[model.layer4])
    method.batch_size = batch
    return {f"pytorch-grad-cam {name} (peer)": lambda: method(input_tensor=x, targets=[ClassifierOutputTarget(target)])}


if __name__ == "__main__":
    main()
