"""What `heatlens methods NAME` says about a method's options: names and defaults read from the method's
signature, a one-line meaning per option from the glossary below (a test checks every option has one)."""

from __future__ import annotations

import inspect
from dataclasses import dataclass
from typing import Any

from .methods import MethodInfo

NOT_OPTIONS = ("network", "x", "targets")  # what every method receives from explain() itself
FLAGS = {"layer": "--layer"}  # options with a command-line flag of their own

MEANINGS: dict[str, str] = {
    "layer": "layer whose activations are used (several, comma-separated, are fused); default: the model's",
    "eigen_smooth": "use the first principal component of the weighted activations instead of their sum",
    "aug_smooth": "average the map over flipped and rescaled copies of the image (test-time augmentation)",
    "grid": "for vision transformers: the (rows, columns) grid the layer's tokens are laid out on",
    "prefix_tokens": "for vision transformers: how many leading tokens (class, register) are not patches",
    "softmax": "true: explain the class probabilities instead of the logits",
    "batch_size": "inputs per model call ('auto' where offered: as many as fit)",
    "progress": "show a progress bar while it runs",
    "seed": "random seed: the same seed gives the same map",
    "n_samples": "how many noisy copies are averaged",
    "noise": "noise standard deviation, as a fraction of the input's range",
    "squared": "average the squared gradients (SmoothGrad-squared)",
    "steps": "points on the straight path from the baseline to the image",
    "baseline": "the image that means 'nothing': 'black', 'blurred' or 'uniform'",
    "integration": "quadrature along the path: gausslegendre, riemann_left, _right, _middle or _trapezoid",
    "background": "images the baselines are drawn from: -o background=a.jpg,b.jpg (required)",
    "local_smoothing": "noise on the explained point, in input units (shap's GradientExplainer option)",
    "window": "side of the square window that hides part of the image, in model-input pixels",
    "stride": "step between window positions, in pixels",
    "fill": "what hidden pixels become: 'black', 'mean', 'blurred', 'uniform' or a number",
    "n_masks": "how many random masks are scored",
    "cells": "mask grid cells per side (coarser masks for fewer cells)",
    "p": "probability that a mask cell keeps the image",
    "num_samples": "how many perturbed images the linear surrogate is fitted on",
    "segmentation": "superpixel algorithm: quickshift, slic or felzenszwalb",
    "segments": "your own superpixel label image (Python API only)",
    "hide": "what a switched-off superpixel becomes: 'mean' (its mean colour), 'blur', 'black' or a number",
    "kernel_width": "width of the kernel that weights samples by their distance to the image",
    "samples": "your own binary sample matrix (Python API only)",
    "max_evals": "how many model evaluations the Owen values may use",
    "masker": "what masked pixels become: 'blur', 'black', a number, 'inpaint_telea' or 'inpaint_ns'",
    "min_block": "smallest block, in pixels, the hierarchy of image halves is split down to",
    "split_channels": "split single pixels into their colour channels at the bottom of the hierarchy",
    "round_size": "masks per round of the priority queue (shap's batch_size)",
    "composite": "lrp: which rule each layer uses: epsilon_plus, epsilon_gamma_box, epsilon_alpha2_beta1, "
                 "epsilon_plus_flat, or a mapping {layer kind or name pattern: rule}",
    "epsilon": "lrp: the epsilon rule's stabiliser (larger: less noisy, less conservative)",
    "gamma": "lrp: how much the gamma rule favours positive contributions",
    "stabilizer": "lrp: the small number every rule and proportional split adds to its denominators",
    "low": "lrp: the z-box rule's lowest input value per channel (default: what a black pixel becomes)",
    "high": "lrp: the z-box rule's highest input value per channel (default: what a white pixel becomes)",
    "head_fusion": "attention_rollout: how the heads of a block are fused: mean, max or min",
    "discard_ratio": "attention_rollout: the fraction of each block's weakest attention weights set to 0",
}
OWN_MEANINGS: dict[tuple[str, str], str] = {  # where a method gives a shared name its own sense
    ("expected_gradients", "n_samples"): "how many (background image, path point) pairs are averaged",
    ("expected_gradients", "noise"): "noise on each path point, as a fraction of the input's range",
    ("expected_gradients", "layer"): "attribute at this layer's activations instead of the pixels; default: "
                                     "the input",
}


@dataclass(frozen=True)
class OptionHelp:
    """One method option as `heatlens methods NAME` lists it."""

    name: str
    default: str
    meaning: str


def option_names(info: MethodInfo) -> list[str]:
    """The options a method takes (-o KEY=VALUE, or a flag of their own such as --layer)."""
    return [name for name in inspect.signature(info.fn).parameters if name not in NOT_OPTIONS]


def options_help(info: MethodInfo) -> list[OptionHelp]:
    """Each option of the method with its default (from the signature) and its one-line meaning."""
    parameters = inspect.signature(info.fn).parameters
    return [OptionHelp(name, _default(parameters[name].default), meaning(info.name, name))
            for name in option_names(info)]


def meaning(method: str, option: str) -> str:
    """The one-line meaning of `option` for `method` ('' when the glossary lacks it)."""
    return OWN_MEANINGS.get((method, option), MEANINGS.get(option, ""))


def formula(info: MethodInfo) -> str:
    """The first paragraph of the method's docstring (its formula), on one line."""
    text = inspect.getdoc(info.fn) or ""
    return " ".join(text.split("\n\n")[0].split())


def _default(value: Any) -> str:
    if value is inspect.Parameter.empty:
        return "(required)"
    return "-" if value is None else repr(value) if isinstance(value, str) else str(value)
