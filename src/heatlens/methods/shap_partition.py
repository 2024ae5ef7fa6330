"""SHAP's Partition explainer for images (Lundberg & Lee 2017): Owen values over a hierarchy of image halves,
within a budget of evaluations; the maskers that hide blocks, and the values summed over colour channels."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from ..errors import MethodError
from ..models.base import Network
from .baselines import make_baseline
from .batching import batch_size_for
from .inpainting import inpainting_composer
from .masking import fill_values
from .owen import owen_values
from .registry import MethodOutput, TargetFn, register
from .shared import explained, positive


@register("shap_partition", "SHAP partition: Owen values over a hierarchy of image halves, within max_evals",
          "Lundberg & Lee 2017, A Unified Approach to Interpreting Model Predictions (Partition explainer: "
          "Owen values)", needs_gradients=False, uses_layer=False, black_box=True)
def shap_partition(network: Network, x: np.ndarray, targets: TargetFn, max_evals: int = 1000,
                   masker: str | float = "blur", min_block: int = 1, split_channels: bool = True,
                   round_size: int = 10, batch_size: int | str = "auto", seed: int = 0,
                   progress: bool = True) -> MethodOutput:
    """Owen values on a binary partition of the image (each block split in halves along its longer side,
    then single pixels' colour channels: SHAP's Image masker's hierarchy), scheduled as shap does.

    A block's value in a context is shared between its halves as the average of each half's marginal
    contribution with the other half absent and present; blocks not expanded within `max_evals` keep
    their value spread evenly over their features, so sum A = y(x) - y(x fully masked) exactly. `masker`:
    'blur' (a heavy Gaussian blur of x), 'black', a number, or 'inpaint_telea' / 'inpaint_ns' (OpenCV
    inpainting of the photo's 0..255 pixels, a pixel masked when any channel is; the mean colour when all
    are, as shap; pip install 'heatlens[inpaint]'). `min_block` > 1 or `split_channels=False` stop the
    hierarchy at larger blocks. `round_size`: masks per round of the priority queue (shap's batch_size);
    `batch_size`: masks per model call ('auto': a whole round); `seed`: breaks ties between equal
    priorities (as np.random.seed(seed) before shap does)."""
    if max_evals < 2 or min_block < 1:
        raise MethodError(f"shap_partition needs max_evals >= 2 and min_block >= 1. Received: {max_evals}, "
                          f"{min_block}")
    positive("round_size", round_size)
    logits, ids = explained(network, x, targets)
    if isinstance(masker, str) and masker.startswith("inpaint"):
        composers = [inpainting_composer(network, image, masker) for image in x]
    else:
        if masker == "blur":
            masked = make_baseline(network, x, "blurred", np.random.default_rng(0))  # a blur draws no random numbers
        else:
            masked = fill_values(network, x, masker)
        composers = [_keeping(image, fill) for image, fill in zip(x, masked, strict=True)]
    whole_round = batch_size == "auto" and round_size <= 64
    size = round_size if whole_round else batch_size_for(network, x[0], batch_size, round_size)
    attributions = np.zeros((len(x), ids.shape[1], *x.shape[1:]), np.float32)
    settled, base_values = [], []
    for i, compose in enumerate(composers):
        attributions[i], blocks, base = owen_values(network, x.shape[1:], compose, ids[i], max_evals, min_block,
                                                    split_channels, round_size, size, seed, progress)
        settled.append(blocks)
        base_values.append(base)
    full = np.take_along_axis(logits, ids, axis=1)
    maps = attributions.sum(axis=-1)
    return MethodOutput(maps, logits, ids, attributions=attributions, extras={
        "base_values": np.array(base_values), "partition_values": settled, "max_evals": max_evals,
        "round_size": round_size, "additivity_gap": maps.sum(axis=(2, 3)) - (full - np.array(base_values))})


def _keeping(image: np.ndarray, fill: np.ndarray) -> Callable[[np.ndarray], np.ndarray]:
    """keep masks (B, H, W, C) -> model inputs: the image where kept, the fill elsewhere."""
    return lambda keep: np.where(keep, image, fill)
