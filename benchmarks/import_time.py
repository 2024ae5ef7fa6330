"""CPU time of `import heatlens` in fresh interpreters, against its floor (numpy + Pillow, which every
heatlens call needs) and against the heavy imports it keeps out of the way (scikit-learn, matplotlib's
figures, scipy.ndimage). Goal: under 0.8 s of CPU on the 2-core development machines."""

from __future__ import annotations

import statistics
import subprocess
import sys

RUNS = 7
PROBES = {
    "floor: numpy + PIL": "import numpy, PIL.Image",
    "heatlens": "import heatlens",
    "peer: sklearn.linear_model": "import sklearn.linear_model",
    "peer: matplotlib.figure": "import matplotlib.figure",
    "peer: scipy.ndimage": "import scipy.ndimage",
}


def cpu_seconds(statement: str) -> float:
    """Median CPU seconds (user + system) of running `statement` in a fresh interpreter, start-up excluded."""
    code = f"import time; t = time.process_time(); {statement}; print(time.process_time() - t)"
    runs = [float(subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout)
            for _ in range(RUNS)]
    return statistics.median(runs)


def main() -> None:
    times = {name: cpu_seconds(statement) for name, statement in PROBES.items()}
    floor = times["floor: numpy + PIL"]
    for name, seconds in times.items():
        print(f"{name:30s} {seconds:6.3f} s CPU   {seconds / floor:5.1f}x the floor")
    print(f"import heatlens: {'within' if times['heatlens'] < 0.8 else 'OVER'} the 0.8 s goal")


if __name__ == "__main__":
    main()
