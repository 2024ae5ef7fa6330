"""Deletion (Petsiuk et al. 2018) with 100 steps on the default model and the cat photo, against its forward passes.

Floor: the 101 forward passes deletion makes (steps + 1), alone, through network.predict in batches of the size
deletion uses ('auto'), on inputs prepared in advance. Goal: heatlens' deletion within 1.10 x the floor. Because
this shared CPU drifts, the variants run interleaved (median of rounds), and the share of deletion's time spent
outside the model's predict calls (instrumented) is printed too: its own work, which drift cannot fake.
Peers in the same run, each on the same model, photo and Grad-CAM map, compared per forward pass: Quantus'
PixelFlipping (features_in_step 512, the nearest divisor of 224 x 224: 98 steps, one forward pass per step for
one image) and torchcam's DeletionInsertionMetric (steps=100: its own Grad-CAM, then both curves, 199 perturbed
passes in batches of deletion's size).

Run: .venv/bin/python benchmarks/metrics.py [--rounds 5]
torchcam is not a heatlens dependency; to include it, run with a Python that has it besides .venv's packages,
e.g. a scratch venv: python -m venv --without-pip /tmp/bench-venv; echo 'import site;
site.addsitedir("<repo>/.venv/lib/python3.11/site-packages")' > /tmp/bench-venv/lib/python3.11/site-packages/v.pth;
.venv/bin/python -m pip --python /tmp/bench-venv/bin/python install --no-deps torchcam==0.5.0
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable

import numpy as np
from common import interleaved, predict_timer

import heatlens
from heatlens import metrics
from heatlens.methods.batching import batch_size_for

STEPS = 100
FEATURES_IN_STEP = 512  # Quantus flips this many pixels per step and needs it to divide 224 * 224: 98 steps


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    net = heatlens.load_model()
    cat = heatlens.samples.load("cat")
    explanation = heatlens.explain(net, cat, "gradcam", upsample=False)
    x = net.prepare(cat[None])
    batch = batch_size_for(net, x[0], "auto", STEPS + 1)
    inputs = np.repeat(x, batch, axis=0)
    passes = {"heatlens deletion": STEPS + 1, "floor": STEPS + 1}

    def floor() -> None:
        for start in range(0, STEPS + 1, batch):
            net.predict(inputs[: min(batch, STEPS + 1 - start)])

    def deletion() -> None:
        metrics.deletion(net, None, explanation, steps=STEPS, progress=False)

    variants: dict[str, Callable[[], object]] = {"heatlens deletion": deletion, "floor": floor}
    peers, missing = _peers(net, x, explanation, batch)
    for name, (fn, count) in peers.items():
        variants[name], passes[name] = fn, count
    medians = interleaved(variants, rounds=args.rounds, warmup=1)
    own = _own_work(net, deletion)
    print(f"\nDeletion, {STEPS} steps: EfficientNet-Lite0, the cat photo (224 x 224 input), Grad-CAM map, "
          f"auto batch size {batch}, median of {args.rounds} interleaved rounds")
    print(f"  {'variant':<64} {'seconds':>8} {'passes':>7} {'ms/pass':>8} {'x floor':>8}")
    per_pass_floor = medians["floor"] / passes["floor"]
    for name, seconds in medians.items():
        per_pass = seconds / passes[name]
        print(f"  {name:<64} {seconds:>8.3f} {passes[name]:>7} {1000 * per_pass:>8.2f} "
              f"{per_pass / per_pass_floor:>8.2f}")
    print(f"\n  heatlens deletion / floor: {medians['heatlens deletion'] / medians['floor']:.3f} (goal <= 1.10); "
          f"its own work outside predict: {own:.1%} of its time")
    for line in missing:
        print(f"  {line}")


def _own_work(net: heatlens.models.Network, deletion: Callable[[], None]) -> float:
    """The share of deletion's time outside the model's predict calls (median of three runs)."""
    shares = []
    with predict_timer(net) as inside:
        for _ in range(3):
            inside[0] = 0.0
            start = time.perf_counter()
            deletion()
            shares.append(1 - inside[0] / (time.perf_counter() - start))
    return float(np.median(shares))


def _peers(net: heatlens.models.Network, x: np.ndarray, explanation: heatlens.Explanation,
           batch: int) -> tuple[dict[str, tuple[Callable[[], object], int]], list[str]]:
    """Quantus' and torchcam's deletion on the same model, input and map, where installed: name -> (run, forward
    passes), and a line for each peer that is not installed."""
    import torch

    module = net.module.eval()
    tensor = torch.from_numpy(np.ascontiguousarray(x.transpose(0, 3, 1, 2)))
    target = int(explanation.targets.ids[0, 0])
    grid = metrics.core.subject(net, None, explanation).maps[:, :1]  # (1, 1, 224, 224)
    found: dict[str, tuple[Callable[[], object], int]] = {}
    missing: list[str] = []
    try:
        import quantus

        metric = quantus.PixelFlipping(features_in_step=FEATURES_IN_STEP, perturb_baseline="black", normalise=False,
                                       abs=False, disable_warnings=True, display_progressbar=False)
        x_batch, y_batch = tensor.numpy(), np.array([target])
        steps = -(-grid[0].size // FEATURES_IN_STEP)
        found[f"Quantus {quantus.__version__} PixelFlipping ({steps} steps, batch 1)"] = (
            lambda: metric(module, x_batch, y_batch, a_batch=grid, channel_first=True, device="cpu"), steps)
    except ImportError:
        missing.append("quantus: not installed")
    try:
        import torchcam
        from torchcam.methods import GradCAM
        from torchcam.metrics import DeletionInsertionMetric
    except ImportError:
        missing.append("torchcam: not installed (see this script's docstring)")
        return found, missing
    extractor = GradCAM(module, target_layer="head")
    torchcam_metric = DeletionInsertionMetric(extractor, lambda out: torch.softmax(out, dim=-1), steps=STEPS,
                                              batch_size=batch)

    def torchcam_run() -> None:
        torchcam_metric.reset()
        torchcam_metric.update(tensor, class_idx=target)

    found[f"torchcam {torchcam.__version__} DeletionInsertionMetric (both curves, its CAM)"] = (
        torchcam_run, 2 * (STEPS - 1) + 2)
    return found, missing


if __name__ == "__main__":
    main()
