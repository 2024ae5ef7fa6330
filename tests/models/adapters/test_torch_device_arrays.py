"""The torch adapter's device path (TorchNetwork.device_arrays): traces that keep activations and gradients as
tensors, reduced there by the CAM family and the gradient methods, give the numpy path's maps, and only the
results are copied to the host. It is the default on CUDA; forced on the CPU here so the path is tested without
a GPU."""

from __future__ import annotations

import copy

import numpy as np
import pytest

torch = pytest.importorskip("torch")
torchvision = pytest.importorskip("torchvision")

import heatlens
from heatlens.models.adapters.torch_arrays import TorchOps
from heatlens.models.arrays import NUMPY

CAMS = [
    ("gradcam", {}),
    ("gradcam_plusplus", {}),
    ("xgradcam", {}),
    ("layercam", {}),
    ("hirescam", {}),
    ("eigencam", {}),
    ("gradcam", {"eigen_smooth": True}),
    ("layercam", {"eigen_smooth": True}),
    ("cam", {}),
]
GRADIENTS = [
    ("saliency", {}),
    ("gradient_x_input", {}),
    ("guided_backprop", {}),
    ("deconvnet", {}),
    ("guided_gradcam", {}),
    ("smoothgrad", {"n_samples": 3, "batch_size": 4}),
    ("smoothgrad", {"n_samples": 3, "squared": True}),
    ("integrated_gradients", {"steps": 4, "batch_size": 3}),
    ("expected_gradients", {"n_samples": 4}),
    ("expected_gradients", {"n_samples": 4, "layer": "default"}),
]


def _resnet18() -> heatlens.models.Network:
    """A torchvision ResNet-18 with random weights (seeded), on model-ready inputs."""
    torch.manual_seed(0)
    return heatlens.wrap(torchvision.models.resnet18(weights=None).eval(), preprocess=None, name="resnet18",
                         input_size=(128, 128))


@pytest.fixture(scope="module", params=["lite0", "resnet18"])
def case(request, cat):
    """(numpy-path network, device-path network, its inputs): the bundled model on photos, ResNet-18 on arrays."""
    if request.param == "lite0":
        network = heatlens.load_model("efficientnet_lite0")
        inputs = np.stack([cat, cat[:, ::-1]])
    else:
        network = _resnet18()
        inputs = np.random.default_rng(0).standard_normal((2, 128, 128, 3)).astype(np.float32)
    on_device = copy.copy(network)
    on_device.device_arrays = True
    return network, on_device, inputs


def _options(network, inputs, method, options):
    """The method's options with the background (expected gradients) and the default layer filled in."""
    options = dict(options)
    if options.get("layer") == "default":
        options["layer"] = network.default_layer()
    if method == "expected_gradients":
        options["background"] = inputs[::-1]
    return options


def _close_to_peak(expected: np.ndarray, got: np.ndarray) -> None:
    assert isinstance(got, np.ndarray) and got.dtype == expected.dtype and got.shape == expected.shape
    peak = float(np.abs(expected).max())
    assert peak > 0
    assert float(np.abs(got - expected).max()) <= 1e-6 * peak


@pytest.mark.parametrize(("method", "options"), CAMS + GRADIENTS, ids=lambda v: str(v) if isinstance(v, str) else
                         "-".join(f"{k}={o}" for k, o in v.items()) or "default")
def test_device_path_gives_the_numpy_maps(case, method, options):
    network, on_device, inputs = case
    options = _options(network, inputs, method, options)
    expected = heatlens.explain(network, inputs, method=method, target="top2", upsample=False, **options)
    got = heatlens.explain(on_device, inputs, method=method, target="top2", upsample=False, **options)
    np.testing.assert_array_equal(got.targets.ids, expected.targets.ids)
    _close_to_peak(expected.maps, got.maps)
    if expected.attributions is not None:
        _close_to_peak(expected.attributions, got.attributions)


def test_device_traces_hold_tensors_and_their_ops(case):
    network, on_device, inputs = case
    x = network.prepare(inputs) if network.preprocess is not None else inputs
    layer = network.default_layer()
    kept = on_device.trace(x, np.zeros((len(x), 1), np.int64), capture=[layer], wrt=[layer, "input"],
                           keep_on_device=True)
    plain = network.trace(x, np.zeros((len(x), 1), np.int64), capture=[layer], wrt=[layer, "input"],
                          keep_on_device=True)
    assert isinstance(kept.ops, TorchOps) and plain.ops is NUMPY  # CPU networks keep arrays only when asked
    for name in (layer, "input"):
        assert isinstance(kept.gradients[name], torch.Tensor)
        np.testing.assert_allclose(kept.gradients[name].numpy(), plain.gradients[name], rtol=0,
                                   atol=1e-6 * float(np.abs(plain.gradients[name]).max()))
    assert isinstance(kept.activations[layer], torch.Tensor)
    assert kept.activations[layer].shape == plain.activations[layer].shape  # channels-last, as numpy's
    np.testing.assert_array_equal(kept.activations[layer].numpy(), plain.activations[layer])
    assert isinstance(on_device.trace(x, capture=[layer]).activations[layer], np.ndarray)  # not asked: numpy


@pytest.fixture
def host_copies(monkeypatch):
    """The shapes of every tensor copied to numpy (torch.Tensor.numpy, which np.asarray also goes through)."""
    shapes: list[tuple[int, ...]] = []
    numpy = torch.Tensor.numpy

    def recorded(self, *args, **kwargs):
        shapes.append(tuple(self.shape))
        return numpy(self, *args, **kwargs)

    monkeypatch.setattr(torch.Tensor, "numpy", recorded)
    return shapes


@pytest.mark.parametrize(("method", "options"), [("gradcam", {}), ("gradcam_plusplus", {}), ("eigencam", {}),
                                                 ("gradcam", {"eigen_smooth": True}),
                                                 ("smoothgrad", {"n_samples": 3, "batch_size": 4}),
                                                 ("integrated_gradients", {"steps": 4, "batch_size": 3})])
def test_only_the_results_come_back_to_the_host(case, host_copies, method, options):
    """On the device path the copies are the logits, the maps, the attributions and per-target numbers; on
    the numpy path (the control) the layer's or the input's (N, h, w, C) arrays are copied too."""
    network, on_device, inputs = case
    network.default_layer()  # probed before recording: the probe is no part of an explanation's hot path
    for kept in (True, False):
        host_copies.clear()
        result = heatlens.explain(on_device if kept else network, inputs, method=method, target="top2",
                                  upsample=False, **options)
        n, k = result.targets.ids.shape
        classes = result.logits.shape[1]
        results = {result.maps.shape, (n, k)} | ({result.attributions.shape} if result.attributions is not None
                                                 else set())
        scores = {shape for shape in host_copies if len(shape) == 2 and shape[1] == classes}  # logits of any chunk
        unexpected = set(host_copies) - results - scores
        if kept:
            assert not unexpected, f"{method} copied {sorted(unexpected)} to the host"
        else:
            assert unexpected, f"the recorder saw no (N, h, w, C) copy on the numpy path of {method}"


def test_the_switch_is_a_wrap_option_off_on_the_cpu_by_default():
    from toy_models import TinyCNN

    model = TinyCNN()
    assert not heatlens.wrap(model, preprocess=None).keeps_arrays()
    assert heatlens.wrap(model, preprocess=None, device_arrays=True).keeps_arrays()
    assert not heatlens.wrap(model, preprocess=None, device_arrays=False).keeps_arrays()


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
@pytest.mark.parametrize("method", ["gradcam", "gradcam_plusplus", "smoothgrad"])
def test_on_cuda_the_arrays_stay_by_default_and_precise_maps_equal_the_cpus(method):
    from toy_models import TinyCNN

    torch.manual_seed(0)
    model = TinyCNN(width=16)
    x = np.random.default_rng(0).standard_normal((3, 32, 32, 3)).astype(np.float32)
    on_cpu = heatlens.wrap(model, preprocess=None)
    on_gpu = heatlens.wrap(copy.deepcopy(model).cuda(), preprocess=None)
    assert on_gpu.keeps_arrays()
    expected = heatlens.explain(on_cpu, x, method=method, target="top2", upsample=False)
    got = heatlens.explain(on_gpu, x, method=method, target="top2", upsample=False)
    peak = float(np.abs(expected.maps).max())
    assert float(np.abs(got.maps - expected.maps).max()) <= 1e-5 * peak
