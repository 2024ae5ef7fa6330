"""The TensorFlow side of the parity tests, in its own process: `python tf_side.py KIND WEIGHTS.npz OUT.npz`
writes every method's maps for the case KIND (parity_cases) with the weights given (the Sequential net's)."""

from __future__ import annotations

import os
import sys

os.environ["KERAS_BACKEND"] = "tensorflow"

import numpy as np
from parity_cases import maps, network

if __name__ == "__main__":
    kind, weights_file, out_file = sys.argv[1:4]
    with np.load(weights_file) as saved:
        weights = [saved[f"w{i}"] for i in range(len(saved.files))] or None
    np.savez(out_file, **maps(kind, network(kind, weights)))
