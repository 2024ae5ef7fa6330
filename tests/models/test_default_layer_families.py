"""The automatic CAM layer on the architectures people use (random weights, nothing downloads): for each family
of torchvision, timm and Hugging Face, Grad-CAM runs on a photo with no layer named, and the layer it chose is
the last spatial stage (CNNs, Swin, ConvNeXt, MaxViT) or, for ViT and DeiT, the last block's input norm (with
a class token the last block's own output reaches the scores only through that token). Keras applications:
test_default_layer_keras.py."""

from __future__ import annotations

import numpy as np
import pytest

torch = pytest.importorskip("torch")
tv = pytest.importorskip("torchvision.models")

import heatlens
from heatlens.preprocess import ResizeCrop

MEAN, STD = (123.675, 116.28, 103.53), (58.395, 57.12, 57.375)


def _timm(name: str, **options):
    timm = pytest.importorskip("timm")
    return timm.create_model(name, pretrained=False, **options)


def _torchvision_vit():
    """vit_b_16 at 64 px; torchvision initialises its head to zeros (every gradient would be zero): drawn instead."""
    model = tv.vit_b_16(weights=None, image_size=64)
    torch.nn.init.normal_(model.heads.head.weight, std=0.02)
    return model


def _hf(kind: str):
    transformers = pytest.importorskip("transformers")
    if kind == "resnet":
        config = transformers.ResNetConfig(embedding_size=16, hidden_sizes=[16, 32, 48, 64], depths=[1, 1, 1, 1],
                                           num_labels=10)
        return transformers.ResNetForImageClassification(config)
    if kind == "convnext":
        config = transformers.ConvNextConfig(num_stages=4, hidden_sizes=[16, 32, 48, 64], depths=[1, 1, 1, 1],
                                             num_labels=10)
        return transformers.ConvNextForImageClassification(config)
    config = transformers.ViTConfig(image_size=64, patch_size=16, hidden_size=32, num_hidden_layers=2,
                                    num_attention_heads=2, intermediate_size=64, num_labels=10)
    return transformers.ViTForImageClassification(config)


def case(family: str, build, size: int, expected: str, slow: bool = False):
    """One row: the family, how to build it, its input size, the layer the default must be. `slow`: VGG's
    100M-parameter classifier takes ~10 s to initialise on 2 cores."""
    return pytest.param(build, size, expected, id=family, marks=[pytest.mark.slow] if slow else [])


FAMILIES = [
    case("torchvision-resnet18", lambda: tv.resnet18(weights=None), 64, "layer4"),
    case("torchvision-vgg11", lambda: tv.vgg11(weights=None), 64, "features.19", slow=True),
    case("torchvision-densenet121", lambda: tv.densenet121(weights=None), 64, "features"),
    case("torchvision-mobilenet_v2", lambda: tv.mobilenet_v2(weights=None), 64, "features"),
    case("torchvision-mobilenet_v3_small", lambda: tv.mobilenet_v3_small(weights=None), 64, "features"),
    case("torchvision-efficientnet_b0", lambda: tv.efficientnet_b0(weights=None), 64, "features"),
    case("torchvision-regnet_x_400mf", lambda: tv.regnet_x_400mf(weights=None), 64, "trunk_output"),
    case("torchvision-convnext_tiny", lambda: tv.convnext_tiny(weights=None), 64, "features"),
    case("torchvision-vit_b_16", _torchvision_vit, 64,
         "encoder.layers.encoder_layer_11.ln_1"),
    case("torchvision-swin_t", lambda: tv.swin_t(weights=None), 64, "norm"),
    case("torchvision-maxvit_t", lambda: tv.maxvit_t(weights=None), 224, "blocks.3"),
    case("timm-resnet18", lambda: _timm("resnet18"), 64, "layer4"),
    case("timm-vgg11", lambda: _timm("vgg11"), 64, "features.19", slow=True),
    case("timm-densenet121", lambda: _timm("densenet121"), 64, "features"),
    case("timm-mobilenetv2_050", lambda: _timm("mobilenetv2_050"), 64, "bn2"),
    case("timm-mobilenetv3_small_050", lambda: _timm("mobilenetv3_small_050"), 64, "blocks"),
    case("timm-efficientnet_b0", lambda: _timm("efficientnet_b0"), 64, "bn2"),
    case("timm-regnetx_002", lambda: _timm("regnetx_002"), 64, "s4"),
    case("timm-convnext_atto", lambda: _timm("convnext_atto"), 64, "stages"),
    case("timm-vit_tiny_patch16_224", lambda: _timm("vit_tiny_patch16_224", img_size=64), 64, "blocks.11.norm1"),
    case("timm-deit_tiny_patch16_224", lambda: _timm("deit_tiny_patch16_224", img_size=64), 64, "blocks.11.norm1"),
    case("timm-swin_tiny_patch4_window7_224",
         lambda: _timm("swin_tiny_patch4_window7_224", img_size=64, window_size=2), 64, "norm"),
    case("timm-maxvit_tiny_tf_224", lambda: _timm("maxvit_tiny_tf_224", img_size=64), 64, "stages"),
    case("hf-resnet", lambda: _hf("resnet"), 64, "resnet.encoder.stages.3"),
    case("hf-convnext", lambda: _hf("convnext"), 64, "convnext.encoder.stages.3"),
    case("hf-vit", lambda: _hf("vit"), 64, "vit.layers.1.layernorm_before"),
]


@pytest.mark.parametrize(("build", "size", "expected"), FAMILIES)
def test_gradcam_runs_with_no_layer_named_on_the_expected_layer(build, size, expected, cat):
    torch.manual_seed(0)
    model = build().eval()
    net = heatlens.wrap(model, preprocess=ResizeCrop(resize=round(size / 0.875), crop=size, mean=MEAN, std=STD))
    result = heatlens.explain(net, cat)
    assert result.layer == expected
    maps = result.maps[0, 0]
    assert maps.shape == cat.shape[:2]
    assert np.isfinite(maps).all() and maps.max() > maps.min()
