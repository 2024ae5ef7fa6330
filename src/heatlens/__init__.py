"""heatlens: why did the image classifier say that? Grad-CAM and friends for PyTorch and Keras, offline."""

from . import samples, scores
from .api import explain
from .compare import Comparison, compare
from .errors import HeatlensError, ImageError, LayerError, MethodError, ModelError, TargetError
from .evaluate import Evaluation, evaluate
from .explanation import Explanation
from .images import load_image
from .models import load_model, wrap
from .pictures import Pictures, activations, deconv, filters
from .report import report
from .version import __version__ as __version__


def __getattr__(name: str) -> object:
    """heatlens.figures and heatlens.display on first use: they import matplotlib's figure machinery."""
    if name in {"display", "figures"}:
        import importlib

        return importlib.import_module(f".{name}", __name__)
    raise AttributeError(f"module 'heatlens' has no attribute {name!r}")

__all__ = [
    "Comparison",
    "Evaluation",
    "Explanation",
    "HeatlensError",
    "ImageError",
    "LayerError",
    "MethodError",
    "ModelError",
    "Pictures",
    "TargetError",
    "activations",
    "compare",
    "deconv",
    "evaluate",
    "explain",
    "figures",
    "filters",
    "load_image",
    "load_model",
    "report",
    "samples",
    "scores",
    "wrap",
]
