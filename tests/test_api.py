"""explain(): model, image and target forms, options and the errors users meet first."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest

import heatlens
from heatlens import ImageError, LayerError, MethodError, ModelError, TargetError

torch = pytest.importorskip("torch")
from toy_models import TinyCNN


@pytest.fixture
def tiny_net():
    torch.manual_seed(0)
    return heatlens.wrap(TinyCNN(classes=4), preprocess=None, classes=["a", "b", "c", "d"])


def test_zoo_name_module_and_network_give_the_same_maps(lite0, cat):
    by_name = heatlens.explain("efficientnet_lite0", cat)
    by_network = heatlens.explain(lite0, cat)
    by_module = heatlens.explain(heatlens.wrap(lite0.module, preprocess=lite0.preprocess), cat)
    np.testing.assert_allclose(by_name.maps, by_network.maps, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(by_module.maps, by_network.maps, rtol=1e-5, atol=1e-6)


def test_image_forms(lite0, cat, tmp_path):
    from PIL import Image

    Image.fromarray(cat).save(tmp_path / "cat.png")
    from_path = heatlens.explain(lite0, tmp_path / "cat.png")
    from_batch = heatlens.explain(lite0, np.stack([cat, cat[:, ::-1]]), target="tabby")
    np.testing.assert_allclose(from_path.maps, heatlens.explain(lite0, cat).maps, rtol=1e-5)
    assert from_batch.maps.shape == (2, 1, *cat.shape[:2])
    assert from_batch.targets.names == [["tabby"], ["tabby"]]


def test_upsample_false_keeps_the_layer_grid(lite0, cat):
    result = heatlens.explain(lite0, cat, upsample=False)
    assert result.maps.shape == (1, 1, 7, 7)
    assert result.overlay().shape == (1, 1, *cat.shape[:2], 3)


def test_input_array_is_not_mutated(tiny_net, rng):
    x = rng.standard_normal((2, 8, 8, 3)).astype(np.float32)
    copy = x.copy()
    heatlens.explain(tiny_net, x, target="top2")
    np.testing.assert_array_equal(x, copy)


def test_deterministic(tiny_net, rng):
    x = rng.standard_normal((2, 8, 8, 3)).astype(np.float32)
    np.testing.assert_array_equal(heatlens.explain(tiny_net, x).maps, heatlens.explain(tiny_net, x).maps)


@pytest.mark.parametrize("method", ["gradcam", "saliency", "lrp", "occlusion"])
def test_every_method_takes_progress_false(tiny_net, rng, method):
    """progress= switches a bar off where a method draws one; elsewhere it is accepted and changes nothing."""
    x = rng.standard_normal((1, 8, 8, 3)).astype(np.float32)
    quiet = heatlens.explain(tiny_net, x, method=method, progress=False)
    np.testing.assert_array_equal(quiet.maps, heatlens.explain(tiny_net, x, method=method).maps)
    assert "progress" not in quiet.params
    with pytest.raises(MethodError, match="progress must be True or False"):
        heatlens.explain(tiny_net, x, method=method, progress="no")


def test_method_and_option_errors(tiny_net, rng):
    x = rng.standard_normal((1, 8, 8, 3)).astype(np.float32)
    with pytest.raises(MethodError, match=r"unknown method 'gradcamm'.*'gradcam'"):
        heatlens.explain(tiny_net, x, method="gradcamm")
    with pytest.raises(MethodError, match="does not take option 'steps'"):
        heatlens.explain(tiny_net, x, steps=3)
    with pytest.raises(LayerError, match="unknown layer"):
        heatlens.explain(tiny_net, x, layer="nope")
    with pytest.raises(TargetError, match="out of range"):
        heatlens.explain(tiny_net, x, target=10)
    with pytest.raises(TargetError, match="unknown class name"):
        heatlens.explain(tiny_net, x, target="e")
    with pytest.raises(ImageError, match="rank 3"):
        heatlens.explain(tiny_net, np.zeros(5))
    with pytest.raises(ImageError, match="empty batch"):
        heatlens.explain(tiny_net, x[:0])
    with pytest.raises(LayerError, match=r"layer must be a layer name or a list of names\b.*Received: 3"):
        heatlens.explain(tiny_net, x, layer=3)
    with pytest.raises(MethodError, match=r"aug_smooth must be True or False\. Received: 'no'"):
        heatlens.explain(tiny_net, x, aug_smooth="no")


def test_class_names_from_a_file_a_list_or_refused(tmp_path, rng):
    x = rng.standard_normal((1, 8, 8, 3)).astype(np.float32)
    (tmp_path / "names.txt").write_text("ant\nbee\n\ncow\ndoe\n")
    net = heatlens.wrap(TinyCNN(classes=4), preprocess=None, classes=tmp_path / "names.txt")
    assert net.classes == ["ant", "bee", "cow", "doe"]
    assert heatlens.explain(net, x, target="cow").targets.ids.tolist() == [[2]]
    with pytest.raises(ModelError, match=r"classes='tabby' is neither 'imagenet' nor a text file"):
        heatlens.wrap(TinyCNN(), classes="tabby")
    with pytest.raises(ModelError, match=r"classes must be a list of names \(str\)"):
        heatlens.wrap(TinyCNN(), classes=[0, 1, 2, 3])
    three = heatlens.wrap(TinyCNN(classes=4), preprocess=None, classes=["ant", "bee", "cow"])
    with pytest.raises(ModelError, match="TinyCNN outputs 4 scores but has 3 class names"):
        heatlens.explain(three, x)


def test_method_names_are_forgiving():
    assert heatlens.methods.get_method(" GradCAM ").name == "gradcam"


def test_photo_input_needs_uint8_or_unit_floats(lite0):
    with pytest.raises(ImageError, match="float with values"):
        heatlens.explain(lite0, np.full((10, 10, 3), 7.0))


def test_import_needs_no_framework():
    """`import heatlens`, the registry and black-box models work with torch, keras and tensorflow blocked."""
    code = (
        "import sys, importlib.abc\n"
        "class Block(importlib.abc.MetaPathFinder):\n"
        "    def find_spec(self, name, path=None, target=None):\n"
        "        if name.split('.')[0] in {'torch', 'keras', 'tensorflow'}:\n"
        "            raise ModuleNotFoundError(name)\n"
        "sys.meta_path.insert(0, Block())\n"
        "import numpy as np, heatlens\n"
        "assert 'gradcam' in heatlens.methods.METHODS\n"
        "net = heatlens.wrap(lambda x: x.mean(axis=(1, 2)), preprocess=None)\n"
        "heatlens.explain(net, np.ones((1, 8, 8, 3), np.float32), method='occlusion', window=4, stride=4)\n"
        "assert not {'torch', 'keras', 'tensorflow'} & set(sys.modules)\n"
        "try:\n"
        "    heatlens.load_model()\n"
        "except heatlens.ModelError as e:\n"
        "    print(e)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert "pip install 'heatlens[torch]'" in out.stdout


def test_overflowing_gradients_give_a_clear_error_not_a_nan_map(rng):
    class Overflow(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.conv = torch.nn.Conv2d(3, 2, 1)

        def forward(self, x):
            a = self.conv(x)
            return (a * 1e30).exp().clamp(max=1.0).mean(dim=(2, 3)) + (a * 1e30).mean(dim=(2, 3))

    x = rng.standard_normal((1, 4, 4, 3)).astype(np.float32)
    with pytest.raises(MethodError, match="NaN or infinite"):
        heatlens.explain(heatlens.wrap(Overflow(), preprocess=None), x, layer="conv")


def test_params_record_every_effective_default_beside_the_options_given(lite0, cat):
    result = heatlens.explain(lite0, cat, method="occlusion", window=112, stride=112)
    assert result.params == {"target": "top1", "window": 112, "stride": 112, "fill": "black", "batch_size": "auto"}
    assert result.manifest_header()["params"] == result.params


def test_model_ready_pixel_inputs_are_shown_as_the_pixels_they_are(rng):
    pixels = rng.integers(0, 256, (1, 16, 16, 3)).astype(np.float32)
    pixels[0, 0, 0] = (0, 0, 0)
    pixels[0, 0, 1] = (255, 255, 255)
    pixels[0, 1, :] = 200  # a min-max display would stretch nothing here, but a 0..200 photo would change
    result = heatlens.explain(heatlens.wrap(lambda b: b.reshape(len(b), -1)[:, :2], preprocess=None), pixels,
                              method="occlusion", window=8, stride=8, target=0)
    np.testing.assert_array_equal(result.images, pixels.astype(np.uint8))
    dim = heatlens.explain(heatlens.wrap(lambda b: b.reshape(len(b), -1)[:, :2], preprocess=None), pixels * 0.5,
                           method="occlusion", window=8, stride=8, target=0)
    np.testing.assert_array_equal(dim.images, np.round(pixels * 0.5).astype(np.uint8))


def test_a_misspelt_option_gets_the_close_names(lite0, cat):
    with pytest.raises(MethodError, match=r"does not take option 'num_sample'\. Did you mean: 'num_samples'"):
        heatlens.explain(lite0, cat, method="lime", num_sample=3)
