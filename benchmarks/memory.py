"""Peak memory of `heatlens explain` on huge and thin photos, measured with GNU time (Maximum resident set size).

The photos are made here (a 9000 x 9000 PNG with some structure, 30000 x 1, 1 x 30000 and 10000 x 1) and
each runs through the CLI once with --target top3. The floor is the same run on a 400 x 300 photo: what
the model and the libraries cost before any photo. Issue 12's bounds: 9000 x 9000 under 1.5 GB,
30000 x 1 under 1 GB.

Run: .venv/bin/python benchmarks/memory.py [--only 9000x9000] [--keep DIR]
"""

from __future__ import annotations

import argparse
import re
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np
from PIL import Image

SIZES = {"400x300": (300, 400), "9000x9000": (9000, 9000), "30000x1": (1, 30000), "1x30000": (30000, 1),
         "10000x1": (1, 10000)}


def photo(height: int, width: int) -> np.ndarray:
    """Stripes and a diagonal ramp: compresses well as PNG, but is not a flat image."""
    rows = np.arange(height, dtype=np.int64)[:, None]
    cols = np.arange(width, dtype=np.int64)[None, :]
    channels = [cols // 35 % 256, rows // 35 % 256, (rows + cols) // 70 % 256]
    return np.stack(np.broadcast_arrays(*channels), axis=-1).astype(np.uint8)


def peak_rss_mb(image: Path, out: Path) -> tuple[float, float, int]:
    """(peak resident MB, wall seconds, exit code) of one CLI run under /usr/bin/time -v."""
    heatlens = Path(sys.executable).with_name("heatlens")
    done = subprocess.run(["/usr/bin/time", "-v", str(heatlens), "explain", str(image), "--target", "top3",
                           "--out", str(out)], capture_output=True, text=True)
    peak = int(re.search(r"Maximum resident set size \(kbytes\): (\d+)", done.stderr).group(1))
    wall = re.search(r"Elapsed \(wall clock\) time \(h:mm:ss or m:ss\): ([\d:.]+)", done.stderr).group(1)
    seconds = sum(float(part) * 60**i for i, part in enumerate(reversed(wall.split(":"))))
    return peak / 1024, seconds, done.returncode


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only", choices=list(SIZES), action="append", help="run only these sizes")
    parser.add_argument("--keep", type=Path, help="write photos and results here instead of a temporary folder")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as scratch:
        folder = args.keep or Path(scratch)
        folder.mkdir(parents=True, exist_ok=True)
        print(f"{'photo':>10}  {'peak RSS':>9}  {'wall':>6}  exit")
        for name in args.only or list(SIZES):
            path = folder / f"{name}.png"
            Image.fromarray(photo(*SIZES[name])).save(path)
            peak, seconds, code = peak_rss_mb(path, folder / f"out-{name}")
            print(f"{name:>10}  {peak:7.0f} MB  {seconds:5.1f}s  {code}", flush=True)


if __name__ == "__main__":
    main()
