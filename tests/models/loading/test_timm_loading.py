"""timm architectures by name with weights from local files: the same scores as the model in memory fed through
timm's own eval transform of its pretrained config, its classes, and clear refusals (nothing downloads)."""

from __future__ import annotations

import numpy as np
import pytest

torch = pytest.importorskip("torch")
timm = pytest.importorskip("timm")
from PIL import Image

import heatlens
from heatlens import ModelError
from heatlens.classes import imagenet_classes


def timm_scores(model, photo):
    """The oracle: timm's eval transform for the model's data config, then the model."""
    transform = timm.data.create_transform(**timm.data.resolve_model_data_config(model))
    with torch.no_grad():
        return model(transform(Image.fromarray(photo))[None]).numpy()


@pytest.fixture(scope="module")
def atto(tmp_path_factory):
    torch.manual_seed(0)
    model = timm.create_model("convnext_atto", pretrained=False).eval()
    path = tmp_path_factory.mktemp("timm") / "atto.pth"
    torch.save(model.state_dict(), path)
    return model, path


def test_a_saved_model_reloads_with_its_scores_and_classes(atto, cat):
    model, path = atto
    network = heatlens.load_model("timm:convnext_atto", weights=str(path))
    ours = network.predict(network.prepare(cat[None]))
    theirs = timm_scores(model, cat)
    np.testing.assert_allclose(ours, theirs, rtol=1e-4, atol=1e-4)
    assert list(np.argsort(-ours[0])[:5]) == list(np.argsort(-theirs[0])[:5])
    assert network.classes == list(imagenet_classes())
    assert heatlens.explain(network, cat, method="gradcam").maps.shape == (1, 1, *cat.shape[:2])


def test_a_fine_tuned_head_and_refusals(atto, tmp_path, cat):
    torch.manual_seed(2)
    tuned = timm.create_model("convnext_atto", pretrained=False, num_classes=4).eval()
    torch.save(tuned.state_dict(), tmp_path / "tuned.pth")
    network = heatlens.load_model("timm:convnext_atto", weights=str(tmp_path / "tuned.pth"))
    np.testing.assert_allclose(network.predict(network.prepare(cat[None])), timm_scores(tuned, cat),
                               rtol=1e-4, atol=1e-4)
    assert network.classes is None
    with pytest.raises(ModelError, match=r"unknown timm model 'convnext_atoo'.*'convnext_atto'"):
        heatlens.load_model("timm:convnext_atoo", weights="random")
    with pytest.raises(ModelError, match="needs its weights from a file"):
        heatlens.load_model("timm:convnext_atto")
    with pytest.raises(ModelError, match=r"do not fit timm:convnext_femto.*first"):
        heatlens.load_model("timm:convnext_femto", weights=str(atto[1]))
