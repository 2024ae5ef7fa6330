"""Perturbation methods against the forward passes they must make, and the glibc allocator setting.

Floor: the same number of forward passes alone, at the best batch size, on inputs prepared in advance.
Because this shared CPU drifts by tens of percent between runs, each method's own work (its time outside
the model's predict calls, which are instrumented) is printed too: the ratio that drift cannot fake.
Peers: the `lime` package (same model, same budget) when installed. The allocator comparison runs the
same forward loop in two fresh processes, with glibc's defaults and with heatlens.allocator's settings.

Run: .venv/bin/python benchmarks/perturbation.py [--budget 1000] [--size 224]
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import time

import numpy as np
from common import predict_timer

import heatlens
from heatlens.methods.batching import batch_size_for

ALLOCATOR_PROBE = """
import sys, time, numpy as np
if sys.argv[1] == "tuned":
    from heatlens.allocator import tune_allocator; tune_allocator()
import heatlens
net = heatlens.load_model()
x = np.random.default_rng(0).standard_normal((50, 224, 224, 3)).astype(np.float32)
net.predict(x[:10]); start = time.perf_counter()
for _ in range(4): net.predict(x)
print((time.perf_counter() - start) / 200)
"""


def timed(fn) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--budget", type=int, default=1000, help="samples / evaluations / masks per method")
    parser.add_argument("--size", type=int, default=224)
    parser.add_argument("--allocator", choices=["tuned", "default"], default="tuned",
                        help="glibc settings for this process: as the heatlens CLI runs (tuned) or glibc's defaults")
    args = parser.parse_args()
    if args.allocator == "tuned":
        from heatlens.allocator import tune_allocator

        tune_allocator()
    net = heatlens.load_model()
    model_net = heatlens.wrap(net.module, preprocess=None)
    x = net.prepare(heatlens.samples.load("cat")[None])
    if args.size != x.shape[1]:
        x = np.ascontiguousarray(x[:, : args.size, : args.size])
    batch = batch_size_for(model_net, x[0], "auto", args.budget)
    inputs = np.repeat(x, batch, axis=0)
    passes = lambda: [model_net.predict(inputs) for _ in range(0, args.budget, batch)]  # noqa: E731
    passes()
    floor = timed(passes)
    results = {}
    side = int(np.sqrt(x.shape[1] * x.shape[2] / args.budget) * 2)
    runs = {
        "heatlens lime": lambda: heatlens.explain(model_net, x, method="lime", num_samples=args.budget,
                                                  segmentation="slic", progress=False),
        "heatlens shap_partition (top-4)": lambda: heatlens.explain(
            model_net, x, method="shap_partition", target="top4", max_evals=args.budget, progress=False),
        "heatlens rise": lambda: heatlens.explain(model_net, x, method="rise", n_masks=args.budget, progress=False),
        "heatlens occlusion": lambda: heatlens.explain(model_net, x, method="occlusion", window=2 * side, stride=side,
                                                       progress=False),
    }
    own = {}
    with predict_timer(model_net) as in_model:
        for name, fn in runs.items():
            in_model[0] = 0.0
            results[name] = timed(fn)
            own[name] = 1 - in_model[0] / results[name]
            floor = min(floor, timed(passes))  # the floor again after each method: drift on a shared CPU
    for name, fn in _lime_peer(model_net, x, args.budget).items():
        results[name] = timed(fn)
    print(f"\nEfficientNet-Lite0, {args.size}x{args.size}, budget {args.budget}, auto batch size {batch}, "
          f"{args.allocator} allocator")
    print(f"  {'variant':<44} {'seconds':>8} {'x floor':>8} {'own work':>9}")
    print(f"  {'forward passes alone (floor, best of runs)':<44} {floor:>8.2f} {1:>8.2f}")
    for name, seconds in results.items():
        share = f"{own[name]:>9.1%}" if name in own else ""
        print(f"  {name:<44} {seconds:>8.2f} {seconds / floor:>8.2f} {share}")
    print("\nglibc allocator, 200 forwards at batch 50 (fresh processes)")
    for mode in ("default", "tuned"):
        out = subprocess.run([sys.executable, "-c", ALLOCATOR_PROBE, mode], capture_output=True, text=True, check=True)
        print(f"  {mode:<10} {float(out.stdout.strip().splitlines()[-1]) * 1000:8.1f} ms per image")


def _lime_peer(net, x: np.ndarray, budget: int) -> dict:
    try:
        from lime import lime_image
        from skimage.segmentation import slic
    except ImportError:
        return {}
    shown = heatlens.images.to_display(x)[0].astype(np.float64)

    def run():
        lime_image.LimeImageExplainer(random_state=0).explain_instance(
            shown, lambda images: net.predict(images.astype(np.float32)), top_labels=1, num_samples=budget,
            segmentation_fn=lambda img: slic(img.astype(np.uint8), n_segments=50, compactness=10, start_label=0),
            batch_size=10)

    return {"lime package (peer, batch 10)": run}


if __name__ == "__main__":
    main()
