"""An ONNX export of a torch model, explained through onnxruntime as a predict function (NCHW)."""

from __future__ import annotations

import numpy as np
import pytest

import heatlens

ort = pytest.importorskip("onnxruntime")
torch = pytest.importorskip("torch")
pytest.importorskip("onnx")


def test_an_onnx_export_explains_like_the_torch_model(tmp_path, lite0, cat):
    path = tmp_path / "lite0.onnx"
    torch.onnx.export(lite0.module, torch.zeros(1, 3, 224, 224), path, dynamo=False, input_names=["input"],
                      dynamic_axes={"input": {0: "batch"}})
    session = ort.InferenceSession(str(path))
    onnx = heatlens.wrap(lambda x: session.run(None, {"input": x})[0], preprocess="efficientnet_lite",
                         classes="imagenet", layout="NCHW")
    options = {"method": "occlusion", "window": 56, "stride": 56, "target": "top3"}
    ours, theirs = heatlens.explain(onnx, cat, **options), heatlens.explain(lite0, cat, **options)
    assert ours.targets.names == theirs.targets.names
    np.testing.assert_allclose(ours.logits, theirs.logits, rtol=1e-4, atol=1e-4)
    np.testing.assert_allclose(ours.maps, theirs.maps, atol=1e-3 * np.abs(theirs.maps).max())
