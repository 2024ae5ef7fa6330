"""ONNX exports loaded by name: the layout, size and batch read from the graph (NCHW and NHWC), 'imagenet'
preprocessing at the graph's size, and black-box maps equal to the torch model's."""

from __future__ import annotations

import numpy as np
import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("onnxruntime")
pytest.importorskip("onnx")

from toy_models import tiny_cnn

import heatlens
from heatlens import ModelError

SIZE = 48


class Pixels(torch.nn.Module):
    """The network taking uint8 (N, H, W, 3) pixels and scaling them itself."""

    def __init__(self, inner: torch.nn.Module) -> None:
        super().__init__()
        self.inner = inner

    def forward(self, x):
        return self.inner(x.permute(0, 3, 1, 2).float() / 255)


class ChannelsLast(torch.nn.Module):
    """The same network taking (N, H, W, 3): what a TensorFlow export looks like."""

    def __init__(self, inner: torch.nn.Module) -> None:
        super().__init__()
        self.inner = inner

    def forward(self, x):
        return self.inner(x.permute(0, 3, 1, 2))


@pytest.fixture(scope="module")
def model():
    torch.manual_seed(0)
    return tiny_cnn().eval()


def export(module, path, shape, dynamic_batch=True):
    torch.onnx.export(module, torch.zeros(*shape), path, dynamo=False, input_names=["input"],
                      dynamic_axes={"input": {0: "batch"}} if dynamic_batch else None)
    return str(path)


@pytest.mark.parametrize("layout", ["NCHW", "NHWC"])
def test_black_box_maps_equal_the_torch_models(model, tmp_path, cat, layout):
    shape = (1, 3, SIZE, SIZE) if layout == "NCHW" else (1, SIZE, SIZE, 3)
    path = export(model if layout == "NCHW" else ChannelsLast(model), tmp_path / "m.onnx", shape)
    onnx = heatlens.load_model(path)
    assert onnx.layout == layout
    reference = heatlens.wrap(model, preprocess=onnx.preprocess)
    assert onnx.preprocess.crop == SIZE
    for options in ({"method": "occlusion", "window": 12, "stride": 12},
                    {"method": "lime", "num_samples": 60, "segmentation": "slic"}):
        ours = heatlens.explain(onnx, cat, target="top2", **options)
        theirs = heatlens.explain(reference, cat, target="top2", **options)
        assert list(ours.targets.ids[0]) == list(theirs.targets.ids[0])
        np.testing.assert_allclose(ours.maps, theirs.maps, atol=1e-4 * np.abs(theirs.maps).max())


def test_a_fixed_batch_of_one_and_refusals(model, tmp_path, cat):
    path = export(model, tmp_path / "one.onnx", (1, 3, SIZE, SIZE), dynamic_batch=False)
    onnx = heatlens.load_model(path)
    assert onnx.batch_size == 1 and onnx.classes is None
    scores = onnx.predict(onnx.prepare(np.stack([cat, cat[::-1]])))
    assert scores.shape[0] == 2
    with pytest.raises(ModelError, match=r"input_size= does not apply to the ONNX model"):
        heatlens.load_model(path, input_size=(SIZE, SIZE))
    with pytest.raises(ModelError, match="holds its own weights"):
        heatlens.load_model(path, weights="random")
    with pytest.raises(ModelError, match="no model file"):
        heatlens.load_model(str(tmp_path / "missing.onnx"))
    (tmp_path / "junk.onnx").write_bytes(b"junk")
    with pytest.raises(ModelError, match="not an ONNX model"):
        heatlens.load_model(str(tmp_path / "junk.onnx"))


def test_a_graph_taking_uint8_pixels_gets_them_resized_but_not_normalised(model, tmp_path, cat):
    path = tmp_path / "pixels.onnx"
    torch.onnx.export(Pixels(model), torch.zeros(1, SIZE, SIZE, 3, dtype=torch.uint8), path, dynamo=False,
                      input_names=["input"], dynamic_axes={"input": {0: "batch"}})
    onnx = heatlens.load_model(str(path))
    prepared = onnx.prepare(cat[None])
    assert onnx.layout == "NHWC" and prepared.min() >= 0 and prepared.max() > 3  # pixels, not mean/std units
    np.testing.assert_array_equal(prepared, np.round(prepared))
    with torch.no_grad():
        expected = Pixels(model)(torch.from_numpy(np.rint(prepared).astype(np.uint8))).numpy()
    np.testing.assert_allclose(onnx.predict(prepared), expected, rtol=1e-5, atol=1e-5)
