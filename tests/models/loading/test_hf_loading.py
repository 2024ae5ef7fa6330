"""Hugging Face image classifiers from folders saved with save_pretrained: the processor is the oracle for the
preprocessing (to 1e-5 on the photo), the model in memory for the scores, id2label for the classes."""

from __future__ import annotations

import numpy as np
import pytest

torch = pytest.importorskip("torch")
transformers = pytest.importorskip("transformers")

import heatlens
from heatlens import ModelError

LABELS = {i: f"kind {i}" for i in range(10)}


def vit():
    config = transformers.ViTConfig(hidden_size=32, num_hidden_layers=2, num_attention_heads=2, intermediate_size=64,
                                    image_size=64, patch_size=16, id2label=LABELS)
    processor = transformers.ViTImageProcessor(size={"height": 64, "width": 64})
    return transformers.ViTForImageClassification(config), processor


def resnet():
    config = transformers.ResNetConfig(embedding_size=8, hidden_sizes=[8, 16], depths=[1, 1], id2label=LABELS)
    processor = transformers.ConvNextImageProcessor(size={"shortest_edge": 64}, crop_pct=0.875)
    return transformers.ResNetForImageClassification(config), processor


@pytest.fixture(scope="module", params=[vit, resnet], ids=["vit", "resnet"])
def saved(request, tmp_path_factory):
    torch.manual_seed(0)
    model, processor = request.param()
    folder = tmp_path_factory.mktemp(request.param.__name__)
    model.save_pretrained(folder)
    processor.save_pretrained(folder)
    return model.eval(), folder


def test_a_saved_folder_loads_with_its_processor_scores_and_labels(saved, cat):
    model, folder = saved
    network = heatlens.load_model(f"hf:{folder}")
    processor = transformers.AutoImageProcessor.from_pretrained(folder)  # as a user of the folder would
    pixels = processor(images=[cat], return_tensors="pt")["pixel_values"]
    prepared = network.prepare(cat[None])
    np.testing.assert_allclose(prepared, pixels.numpy().transpose(0, 2, 3, 1), atol=1e-5)
    with torch.no_grad():
        theirs = model(pixels).logits.numpy()
    ours = network.predict(prepared)
    np.testing.assert_allclose(ours, theirs, rtol=1e-4, atol=1e-4)
    assert list(np.argsort(-ours[0])[:5]) == list(np.argsort(-theirs[0])[:5])
    assert network.classes == [LABELS[i] for i in range(10)]


def test_folders_that_are_not_models(tmp_path):
    with pytest.raises(ModelError, match=r"no config\.json"):
        heatlens.load_model(f"hf:{tmp_path}")
    with pytest.raises(ModelError, match=r"cannot load hf:.*never downloads"):
        heatlens.load_model(f"hf:{tmp_path / 'missing'}")
    with pytest.raises(ModelError, match="weights= does not apply"):
        heatlens.load_model(f"hf:{tmp_path}", weights="random")
