"""heatlens run's throughput: Grad-CAM images/s over plain inference images/s of the same model and batch size
(the goal is >= 0.9), measured two ways, each variant timed in turn every round (interleaved medians):

- model: one prepared batch; the floor is Network.predict, Grad-CAM is the run's own per-batch work (explain,
  float16 maps, the Arrow rows);
- end to end: JPEG files decoded in the run's background threads; the floor decodes the same way and predicts,
  Grad-CAM is heatlens.run.run into Parquet shards.

On a GPU (--device cuda) both precisions are measured: TF32 allowed, and precise (TF32 off), each against a floor
measured with the same setting.

Run: .venv/bin/python benchmarks/scale.py [--batch 32] [--images 256] [--rounds 5] [--device cpu]
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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--images", type=int, default=256)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--device", default="cpu")
    args = parser.parse_args()
    network = load_model(DEFAULT_MODEL, device=args.device)
    cuda = args.device.startswith("cuda")
    synchronise = (lambda value: torch.cuda.synchronize() or value) if cuda else (lambda value: value)
    where = torch.cuda.get_device_name(torch.device(args.device)) if cuda else f"CPU, {torch.get_num_threads()} threads"
    print(f"{DEFAULT_MODEL}, batch {args.batch}, {args.images} JPEGs 640x480, torch {torch.__version__}, {where}")
    folder = Path(tempfile.mkdtemp(prefix="heatlens-scale-photos-")) / "photos"
    try:
        write_jpegs(folder, args.images)
        for precise in ([False, True] if cuda else [None]):
            measured = network
            if precise is not None:  # the adapter's precise= turns TF32 off for its calls; False keeps the process's
                torch.backends.cuda.matmul.allow_tf32 = torch.backends.cudnn.allow_tf32 = True
                measured = copy.copy(network)
                measured.precise = precise
                print(f"\nprecision: {'precise (TF32 off)' if precise else 'TF32 allowed'}")
            for label, measure in (("model, one batch", model_ratio), ("end to end, files", end_to_end_ratio)):
                floor, gradcam = measure(measured, folder, args.batch, args.rounds, synchronise)
                print(f"  {label:<20} inference {floor:8.1f} images/s   Grad-CAM {gradcam:8.1f} images/s   "
                      f"ratio {gradcam / floor:.2f}")
    finally:
        shutil.rmtree(folder.parent, ignore_errors=True)


if __name__ == "__main__":
    main()
