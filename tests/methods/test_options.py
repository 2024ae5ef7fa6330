"""Method options of the wrong type are refused before any work, in one line naming the option."""

from __future__ import annotations

import numpy as np
import pytest

import heatlens
from heatlens import LayerError, MethodError
from heatlens.methods.options import describe, matches

torch = pytest.importorskip("torch")
from toy_models import TinyCNN


@pytest.fixture(scope="module")
def net():
    torch.manual_seed(0)
    return heatlens.wrap(TinyCNN(), preprocess=None)


@pytest.fixture(scope="module")
def x():
    return np.random.default_rng(0).random((1, 12, 12, 3), dtype=np.float32)


@pytest.mark.parametrize(("method", "options", "message"), [
    ("occlusion", {"window": 2.5}, r"window=2.5 is not valid for occlusion: window takes an integer$"),
    ("occlusion", {"window": "4"}, r"window='4' is not valid for occlusion: window takes an integer"),
    ("occlusion", {"stride": True}, r"stride=True is not valid for occlusion: stride takes an integer"),
    ("rise", {"n_masks": 2.5}, r"n_masks=2.5 is not valid for rise: n_masks takes an integer"),
    ("rise", {"n_masks": 10**30}, r"n_masks=1000000000000000000000000000000 is not valid for rise"),
    ("rise", {"seed": -1}, r"seed must be a non-negative integer. Received: -1"),
    ("rise", {"p": float("nan")}, r"p=nan is not valid for rise: p takes a finite number"),
    ("rise", {"p": 10**400}, r"is not valid for rise: p takes a finite number"),
    ("lime", {"kernel_width": 10**400}, r"is not valid for lime: kernel_width takes a finite number"),
    ("rise", {"fill": [0]}, r"fill=\[0\] is not valid for rise: fill takes a string or a finite number"),
    ("smoothgrad", {"noise": "0.1"}, r"noise='0.1' is not valid for smoothgrad: noise takes a finite number"),
    ("gradcam", {"grid": (2,)}, r"grid=\(2,\) is not valid for gradcam: grid takes a tuple of 2 values or None"),
    ("gradcam", {"prefix_tokens": 1.0},
     r"prefix_tokens=1.0 is not valid for gradcam: prefix_tokens takes an integer or None$"),
    ("lime", {"segments": [[0, 1]]},
     r"segments=\[\[0, 1\]\] is not valid for lime: segments takes a numpy array or None"),
])
def test_wrong_option_types(net, x, method, options, message):
    with pytest.raises(MethodError, match=message) as caught:
        heatlens.explain(net, x, method=method, **options)
    assert "\n" not in str(caught.value)


def test_integral_numpy_values_are_accepted(net, x):
    result = heatlens.explain(net, x, method="occlusion", window=np.int64(6), stride=np.int32(6), fill=np.float32(0))
    assert np.isfinite(result.maps).all()


@pytest.mark.parametrize("method", ["cam", "guided_gradcam", "expected_gradients"])
def test_one_layer_methods_refuse_a_list(net, x, method):
    with pytest.raises(LayerError, match=f"method '{method}' takes one layer name, not a list"):
        heatlens.explain(net, x, method=method, layer=["features.1", "features.3"], background=x)


@pytest.mark.parametrize("option", [{"grid": (3, 3)}, {"prefix_tokens": 0}])
def test_token_options_on_a_spatial_layer_are_refused(net, x, option):
    with pytest.raises(LayerError, match=r"'features\.3' is already a spatial"):
        heatlens.explain(net, x, layer="features.3", **option)


def test_type_matching_follows_the_annotations():
    assert matches(3, int) and not matches(3.0, int) and not matches(True, int)
    assert matches(3, float) and not matches(float("inf"), float)
    assert matches(None, int | None) and matches((2, 3), tuple[int, int]) and not matches((2, "3"), tuple[int, int])
    assert describe(str | float) == "a string or a finite number"
