"""torchvision architectures by name with weights from local files: the same scores as the model in memory fed
through torchvision's own transforms, the weights entry's classes, and clear refusals (nothing downloads)."""

from __future__ import annotations

import numpy as np
import pytest

torch = pytest.importorskip("torch")
torchvision = pytest.importorskip("torchvision")
pytest.importorskip("safetensors")
from PIL import Image
from safetensors.torch import save_file

import heatlens
from heatlens import ModelError


@pytest.fixture(scope="module")
def resnet18():
    torch.manual_seed(0)
    return torchvision.models.resnet18(weights=None).eval()


@pytest.fixture(scope="module")
def weight_files(resnet18, tmp_path_factory):
    folder = tmp_path_factory.mktemp("resnet18")
    save_file(resnet18.state_dict(), folder / "r18.safetensors")
    torch.save(resnet18.state_dict(), folder / "r18.pth")
    return folder


def torchvision_scores(model, photo):
    """The oracle: the photo through the weights entry's own transforms, then the module."""
    transform = torchvision.models.ResNet18_Weights.DEFAULT.transforms()
    with torch.no_grad():
        return model(transform(Image.fromarray(photo))[None]).numpy()


@pytest.mark.parametrize("file", ["r18.safetensors", "r18.pth"])
def test_a_state_dict_file_scores_like_the_model_in_memory(resnet18, weight_files, cat, file):
    network = heatlens.load_model("torchvision:resnet18", weights=str(weight_files / file))
    ours = network.predict(network.prepare(cat[None]))
    theirs = torchvision_scores(resnet18, cat)
    np.testing.assert_allclose(ours, theirs, rtol=1e-4, atol=1e-4)
    assert list(np.argsort(-ours[0])[:5]) == list(np.argsort(-theirs[0])[:5])
    assert network.classes == torchvision.models.ResNet18_Weights.DEFAULT.meta["categories"]


def test_explain_runs_without_a_layer_and_the_cli_takes_the_name(weight_files, cat, tmp_path):
    from typer.testing import CliRunner

    from heatlens.cli import app

    result = CliRunner().invoke(app, ["explain", "--sample", "cat", "--model", "torchvision:resnet18", "--weights",
                                      str(weight_files / "r18.safetensors"), "--out", str(tmp_path)])
    assert result.exit_code == 0, result.output
    assert (tmp_path / "manifest.json").is_file()


def test_a_fine_tuned_classifier_gets_the_class_count_of_its_weights(tmp_path, cat):
    torch.manual_seed(1)
    tuned = torchvision.models.resnet18(weights=None, num_classes=7).eval()
    save_file(tuned.state_dict(), tmp_path / "tuned.safetensors")
    network = heatlens.load_model("torchvision:resnet18", weights=str(tmp_path / "tuned.safetensors"))
    scores = network.predict(network.prepare(cat[None]))
    assert scores.shape == (1, 7) and network.classes is None
    with torch.no_grad():
        expected = tuned(torchvision.models.ResNet18_Weights.DEFAULT.transforms()(Image.fromarray(cat))[None])
    np.testing.assert_allclose(scores, expected.numpy(), rtol=1e-4, atol=1e-4)


def test_random_weights_are_said_and_segmentation_backbones_are_not_downloaded(cat):
    network = heatlens.load_model("torchvision:lraspp_mobilenet_v3_large", weights="random")
    assert any("random weights" in note for note in network.notes)
    prepared = network.prepare(cat[None])
    expected = torchvision.models.get_model_weights("lraspp_mobilenet_v3_large").DEFAULT.transforms()(
        Image.fromarray(cat)).numpy().transpose(1, 2, 0)
    np.testing.assert_allclose(prepared[0], expected, atol=1e-5)


def test_refusals(weight_files, tmp_path):
    with pytest.raises(ModelError, match=r"needs its weights from a file.*weights='random'"):
        heatlens.load_model("torchvision:resnet18")
    with pytest.raises(ModelError, match=r"unknown torchvision model 'resnet19'.*'resnet18'"):
        heatlens.load_model("torchvision:resnet19", weights="random")
    with pytest.raises(ModelError, match=r"no weights entry 'IMAGENET9K'.*IMAGENET1K_V1"):
        heatlens.load_model("torchvision:resnet18.IMAGENET9K", weights="random")
    with pytest.raises(ModelError, match="no weights file"):
        heatlens.load_model("torchvision:resnet18", weights=str(tmp_path / "missing.pth"))
    with pytest.raises(ModelError, match=r"do not fit torchvision:resnet34.*missing from the file \(first: 'layer1\.2"):
        heatlens.load_model("torchvision:resnet34", weights=str(weight_files / "r18.safetensors"))
    with pytest.raises(ModelError, match="trust= is for"):
        heatlens.load_model("torchvision:resnet18", weights="random", trust=True)


def test_densenet_files_with_torchvisions_old_key_names_load(tmp_path):
    torch.manual_seed(3)
    densenet = torchvision.models.densenet121(weights=None)
    old = {key.replace(".norm1.", ".norm.1.").replace(".conv2.", ".conv.2."): value  # as its 2017 file has them
           for key, value in densenet.state_dict().items() if not key.endswith("num_batches_tracked")}
    assert "features.denseblock1.denselayer1.norm.1.weight" in old
    torch.save(old, tmp_path / "densenet121-old.pth")
    network = heatlens.load_model("torchvision:densenet121", weights=str(tmp_path / "densenet121-old.pth"))
    loaded = network.module.state_dict()
    for key, value in densenet.state_dict().items():
        torch.testing.assert_close(loaded[key], value, rtol=0, atol=0)
