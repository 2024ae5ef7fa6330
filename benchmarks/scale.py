"""heatlens run's throughput: Grad-CAM images/s over plain inference images/s of the same model and batch size
(the goal is >= 0.9), measured two ways, each variant timed in turn every round (interleaved medians):

- model: one prepared batch; the floor is Network.predict, Grad-CAM is the run's own per-batch work (explain,
  float16 maps, the Arrow rows);
- end to end: JPEG files decoded in the run's background threads; the floor decodes the same way and predicts,
  Grad-CAM is heatlens.run.run into Parquet shards.

The CPU rows come first. When CUDA is there (--device all, the default, or cuda) the GPU rows follow for both
precisions: precise (TF32 off, the adapter's default) and TF32 allowed (`precise=False`, `heatlens run --fast`),
each against a floor measured with the same setting; a last row times Grad-CAM with the activations and
gradients copied to the host (`device_arrays=False`), what the device path saves. Without CUDA it says so:
"no CUDA device: GPU rows skipped".

Run: .venv/bin/python benchmarks/scale.py [--batch 32] [--images 256] [--rounds 5] [--device all|cpu|cuda]
"""

from __future__ import annotations

import argparse
import copy
import shutil
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from common import interleaved
from PIL import Image

from heatlens.models import DEFAULT_MODEL, load_model
from heatlens.run import Plan, run
from heatlens.run.decoding import batched, decode, decoded, default_threads
from heatlens.run.explaining import BatchExplainer
from heatlens.run.sources import list_source


def write_jpegs(folder: Path, count: int) -> None:
    """`count` photo-sized random JPEGs (480x640, as phone photos shrunk for a dataset)."""
    rng = np.random.default_rng(0)
    folder.mkdir(parents=True)
    for i in range(count):
        Image.fromarray(rng.integers(0, 256, (480, 640, 3), dtype=np.uint8)).save(folder / f"{i:05d}.jpg", quality=90)


def model_ratio(network, folder: Path, batch: int, rounds: int, synchronise) -> tuple[float, float]:
    """(inference, Grad-CAM) images/s on one prepared batch."""
    images = [decode(item, network) for item in list_source(folder)[:batch]]
    x = np.stack([image.inputs for image in images])
    explainer = BatchExplainer(network, Plan(("gradcam",)), folder)
    medians = interleaved({"predict": lambda: synchronise(network.predict(x)),
                           "gradcam": lambda: synchronise(explainer(images))}, rounds=rounds)
    return batch / medians["predict"], batch / medians["gradcam"]


def end_to_end_ratio(network, folder: Path, batch: int, rounds: int, synchronise) -> tuple[float, float]:
    """(inference, Grad-CAM) images/s over the JPEG files, decoding included."""
    items = list_source(folder)
    threads = default_threads()
    work = Path(tempfile.mkdtemp(prefix="heatlens-scale-"))

    def predict_all() -> None:
        for chunk in batched(decoded(items, network, threads), batch):
            synchronise(network.predict(np.stack([image.inputs for image in chunk])))

    def gradcam_all() -> None:
        out = work / f"run-{time.monotonic_ns()}"
        run(network, folder, out, Plan(("gradcam",)), batch_size=batch, threads=threads, progress=False)
        shutil.rmtree(out)

    try:
        medians = interleaved({"predict": predict_all, "gradcam": gradcam_all}, rounds=rounds, warmup=1)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return len(items) / medians["predict"], len(items) / medians["gradcam"]


def measure_device(device: str, folder: Path, batch: int, rounds: int) -> None:
    """The rows of one device: on CUDA once per precision (and once with host copies), on the CPU once."""
    network = load_model(DEFAULT_MODEL, device=device)
    cuda = device.startswith("cuda")
    synchronise = (lambda value: torch.cuda.synchronize() or value) if cuda else (lambda value: value)
    where = torch.cuda.get_device_name(torch.device(device)) if cuda else f"CPU, {torch.get_num_threads()} threads"
    print(f"\n{where}")
    variants = [("precise (TF32 off)", {"precise": True}), ("TF32 allowed", {"precise": False}),
                ("precise, arrays copied to the host", {"precise": True, "device_arrays": False})] if cuda else \
        [("float32", {})]
    for label, settings in variants:
        measured = copy.copy(network)
        for name, value in settings.items():
            setattr(measured, name, value)
        if cuda:  # precise=True turns TF32 off for the adapter's calls; False keeps the process's, allowed here
            torch.backends.cuda.matmul.allow_tf32 = torch.backends.cudnn.allow_tf32 = True
        print(f"  {label}")
        measures = (("model, one batch", model_ratio), ("end to end, files", end_to_end_ratio))
        for row, measure in measures[:1] if "device_arrays" in settings else measures:
            floor, gradcam = measure(measured, folder, batch, rounds, synchronise)
            print(f"    {row:<20} inference {floor:8.1f} images/s   Grad-CAM {gradcam:8.1f} images/s   "
                  f"ratio {gradcam / floor:.2f}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--images", type=int, default=256)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--device", default="all", help="all (the CPU, then CUDA when there), cpu, or cuda[:N]")
    args = parser.parse_args()
    devices = ["cpu", "cuda"] if args.device == "all" else [args.device]
    print(f"{DEFAULT_MODEL}, batch {args.batch}, {args.images} JPEGs 640x480, torch {torch.__version__}")
    folder = Path(tempfile.mkdtemp(prefix="heatlens-scale-photos-")) / "photos"
    try:
        write_jpegs(folder, args.images)
        for device in devices:
            if device.startswith("cuda") and not torch.cuda.is_available():
                print("\nno CUDA device: GPU rows skipped")
                continue
            measure_device(device, folder, args.batch, args.rounds)
    finally:
        shutil.rmtree(folder.parent, ignore_errors=True)


if __name__ == "__main__":
    main()
