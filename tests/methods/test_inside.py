"""Inside the network: activation grids, filter visualization and deconvnet projections."""

from __future__ import annotations

import io

import numpy as np
import pytest
from PIL import Image

torch = pytest.importorskip("torch")

import heatlens
from heatlens import LayerError


def test_activation_tiles_equal_the_layer_outputs(lite0, cat):
    result = heatlens.activations(lite0, cat, layers=["blocks.5"], max_channels=4)
    x = torch.from_numpy(lite0.prepare(cat[None]).transpose(0, 3, 1, 2).copy())
    with torch.no_grad():
        direct = lite0.module.blocks[:6](lite0.module.stem(x))[0].numpy()
    np.testing.assert_allclose(result.arrays["blocks.5"], direct.transpose(1, 2, 0), atol=1e-4)
    picture = result.pictures["blocks.5"]
    side = direct.shape[1] + 2
    first = picture[1 : side - 1, 1 : side - 1, 0].astype(np.float32) / 255
    channel = direct[0]
    expected = (channel - channel.min()) / (channel.max() - channel.min())
    np.testing.assert_allclose(first, expected, atol=1 / 255 + 1e-6)
    assert "summary" in result.pictures


def test_strongest_channels_come_first(lite0, cat):
    result = heatlens.activations(lite0, cat, layers=["head"], strongest_first=True, max_channels=2)
    means = result.arrays["head"].mean(axis=(0, 1))
    assert means.argmax() == np.argsort(-means)[0]


def test_filter_visualization_raises_the_channel_tenfold_and_is_seeded(lite0):
    """Tenfold, or up to ReLU6's ceiling (the head's activation) where tenfold lies above it."""
    options = {"channels": [0, 2], "steps": 64, "size": 128, "progress": False}
    first = heatlens.filters(lite0, "head", seed=0, **options)
    start, end = np.array(first.details["start_activation"]), np.array(first.details["end_activation"])
    assert (end >= np.minimum(10 * np.maximum(start, 1e-3), 0.99 * 6)).all(), (start, end)
    again = heatlens.filters(lite0, "head", seed=0, **options)
    np.testing.assert_array_equal(first.arrays["inputs"], again.arrays["inputs"])
    with pytest.raises(LayerError, match="channels"):
        heatlens.filters(lite0, "blocks.10.expand", channels=[99999], steps=1, size=64)


def test_channels_closed_by_relu6_grow_through_the_pre_activation(lite0):
    """Channels 1, 3, 4, 5 of the head are 0 on the grey start (ReLU6 closed): ascent on head.1 opens them."""
    grown = heatlens.filters(lite0, "head", channels=[1, 3, 4, 5], steps=8, size=64, progress=False)
    assert grown.details["objective"] == "head.1"
    assert max(grown.details["start_activation"]) == 0 and min(grown.details["end_activation"]) > 1
    assert grown.details["dead_channels"] == []


def test_a_channel_that_never_activates_is_named(lite0):
    class Closed(torch.nn.Module):
        """A conv whose channel 1 is shut for every input: weights 0, bias -1, then a ReLU."""

        def __init__(self) -> None:
            super().__init__()
            self.conv = torch.nn.Conv2d(3, 2, 3)
            with torch.no_grad():
                self.conv.weight[1] = 0
                self.conv.bias[1] = -1
            self.act = torch.nn.ReLU()
            self.head = torch.nn.Sequential(torch.nn.AdaptiveAvgPool2d(1), torch.nn.Flatten())

        def forward(self, x):
            return self.head(self.act(self.conv(x)))

    network = heatlens.wrap(Closed().eval(), preprocess="imagenet")
    with pytest.warns(UserWarning, match=r"channels \[1\] of layer 'conv' never activated"):
        grown = heatlens.filters(network, "conv", channels=[0, 1], steps=2, size=32, progress=False)
    assert grown.details["dead_channels"] == [1] and grown.details["objective"] == "conv"


class TwoConvs(torch.nn.Module):
    """Two 3x3 convolutions with ReLUs: a unit of `conv2` sees a 5x5 window of the input."""

    def __init__(self) -> None:
        super().__init__()
        self.conv1 = torch.nn.Conv2d(3, 4, 3, padding=1)
        self.relu1 = torch.nn.ReLU()
        self.conv2 = torch.nn.Conv2d(4, 4, 3, padding=1)
        self.relu2 = torch.nn.ReLU()
        self.fc = torch.nn.Linear(4, 2)

    def forward(self, x):
        return self.fc(self.relu2(self.conv2(self.relu1(self.conv1(x)))).mean(dim=(2, 3)))


def test_deconv_projection_stays_in_the_receptive_field(rng):
    torch.manual_seed(0)
    model = TwoConvs()
    x = rng.uniform(0, 1, (1, 16, 16, 3)).astype(np.float32)
    net = heatlens.wrap(model, preprocess=None)
    result = heatlens.deconv(net, x, "relu2", top_k=4)
    acts = net.trace(x, capture=["relu2"]).activations["relu2"][0]
    for channel, projection in zip(result.details["channels"], result.arrays["projections"], strict=True):
        y, x_ = np.unravel_index(acts[..., channel].argmax(), acts.shape[:2])
        outside = np.ones((16, 16), bool)
        outside[max(y - 2, 0) : y + 3, max(x_ - 2, 0) : x_ + 3] = False
        assert np.abs(projection).sum() > 0
        assert (projection[outside] == 0).all()


def test_deconv_errors(rng):
    torch.manual_seed(0)
    model = TwoConvs()
    net = heatlens.wrap(model, preprocess=None)
    x = rng.uniform(0, 1, (1, 16, 16, 3)).astype(np.float32)
    with pytest.raises(heatlens.MethodError, match="top_k must be a positive integer"):
        heatlens.deconv(net, x, "relu2", top_k=0)
    with pytest.raises(heatlens.LayerError, match=r"has channels 0..3; asked \[7\]"):
        heatlens.deconv(net, x, "relu2", channels=[7])
    with torch.no_grad():
        model.conv2.weight.zero_()
        model.conv2.bias.fill_(-1.0)
    with pytest.raises(heatlens.LayerError, match=r"no channel of layer 'relu2' is active on this image"):
        heatlens.deconv(net, x, "relu2")


def test_pictures_save(tmp_path, lite0, cat):
    manifest = heatlens.deconv(lite0, cat, "blocks.5", top_k=2).save(tmp_path)
    assert manifest.is_file() and len(list(tmp_path.glob("deconv_*.png"))) == 3


def test_keras_gives_the_torch_answers(lite0, cat):
    pytest.importorskip("keras")
    lite_keras = heatlens.load_model("efficientnet_lite0", framework="keras")
    ours = heatlens.activations(lite_keras, cat, layers=["blocks.5"]).arrays["blocks.5"]
    theirs = heatlens.activations(lite0, cat, layers=["blocks.5"]).arrays["blocks.5"]
    np.testing.assert_allclose(ours, theirs, atol=1e-3 * np.abs(theirs).max())
    projected = heatlens.deconv(lite_keras, cat, "blocks.5", channels=[42, 47])
    reference = heatlens.deconv(lite0, cat, "blocks.5", channels=[42, 47])
    peak = np.abs(reference.arrays["projections"]).max()
    assert np.abs(projected.arrays["projections"] - reference.arrays["projections"]).max() < 1e-3 * peak
    grown = heatlens.filters(lite_keras, "head", channels=[0], steps=2, size=64, progress=False)
    assert grown.pictures["head_channel_0"].shape == (64, 64, 3)


def test_inside_functions_refuse_wrong_option_types_in_one_line():
    torch = pytest.importorskip("torch")
    from toy_models import TinyCNN

    torch.manual_seed(0)
    net = heatlens.wrap(TinyCNN(), preprocess=None, input_size=(8, 8))
    x = np.random.default_rng(0).random((8, 8, 3), dtype=np.float32)
    with pytest.raises(heatlens.MethodError, match=r"channels=\[0.5\] is not valid for filters"):
        heatlens.filters(net, "features.1", channels=[0.5], steps=1)
    with pytest.raises(heatlens.MethodError, match=r"steps=2.0 is not valid for filters: steps takes an integer"):
        heatlens.filters(net, "features.1", channels=[0], steps=2.0)
    with pytest.raises(heatlens.MethodError, match=r"jitter, blur_every and blur_sigma >= 0"):
        heatlens.filters(net, "features.1", channels=[0], steps=1, jitter=-1)
    with pytest.raises(heatlens.MethodError, match=r"top_k='3' is not valid for deconv"):
        heatlens.deconv(net, x, "features.1", top_k="3")
    assert list(heatlens.activations(net, x, layers="features.1").arrays) == ["features.1"]


class ConvStack(TwoConvs):
    """TwoConvs as a feature extractor with no class output: its forward returns the (N, C, h, w) features."""

    def forward(self, x):
        return self.relu2(self.conv2(self.relu1(self.conv1(x))))


def test_a_torch_feature_extractor_has_activations_filters_and_deconv(rng):
    """No class output: the channel is the objective, and the activations are the layer's own."""
    torch.manual_seed(0)
    model = ConvStack().eval()
    net = heatlens.wrap(model, preprocess=None, input_size=(16, 16))
    x = rng.uniform(0, 1, (1, 16, 16, 3)).astype(np.float32)
    with pytest.raises(heatlens.ModelError, match=r"expected model scores of shape \(N, classes\)"):
        net.predict(x)
    with torch.no_grad():
        direct = model(torch.from_numpy(x.transpose(0, 3, 1, 2).copy()))[0].numpy().transpose(1, 2, 0)
    acts = heatlens.activations(net, x, layers=["relu2"]).arrays["relu2"]
    np.testing.assert_allclose(acts, direct, atol=1e-6)
    grown = heatlens.filters(net, "conv2", channels=[0, 1], steps=16, size=16, progress=False)
    assert (np.array(grown.details["end_activation"]) > np.array(grown.details["start_activation"])).all()
    projected = heatlens.deconv(net, x, "relu2", top_k=2)
    assert len(projected.details["channels"]) == 2 and np.abs(projected.arrays["projections"]).sum() > 0


def test_filters_grow_a_keras_vgg16_without_its_top_tenfold():
    """The tutorial's setup, VGG16(include_top=False) with its caffe preprocess_input, random weights."""
    keras = pytest.importorskip("keras")
    from keras.applications import vgg16

    from heatlens.models.loading.keras_files import AppPreprocess

    keras.utils.set_random_seed(0)
    model = keras.applications.VGG16(include_top=False, weights=None, input_shape=(32, 32, 3))
    net = heatlens.wrap(model, preprocess=AppPreprocess(32, vgg16.preprocess_input))
    grown = heatlens.filters(net, "block2_conv2", channels=range(4), steps=16, progress=False)
    start, end = np.array(grown.details["start_activation"]), np.array(grown.details["end_activation"])
    assert (start > 0).all() and (end >= 10 * start).all(), (start, end)
    pixels = grown.pictures["block2_conv2_channel_0"].astype(np.float32)
    bgr = grown.arrays["inputs"][0] + np.float32([103.939, 116.779, 123.68])
    np.testing.assert_allclose(pixels, np.clip(np.round(bgr[..., ::-1]), 0, 255), atol=1)


class Identity1x1(torch.nn.Module):
    """A 1x1 convolution that copies its three input channels, then a ReLU."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = torch.nn.Conv2d(3, 3, 1)
        with torch.no_grad():
            self.conv.weight.copy_(torch.eye(3)[:, :, None, None])
            self.conv.bias.zero_()
        self.relu = torch.nn.ReLU()

    def forward(self, x):
        return self.relu(self.conv(x)).mean(dim=(2, 3))


def test_deconv_pictures_are_in_rgb_for_a_bgr_model(rng):
    """Input channel c of a BGR model is RGB channel 2 - c: its projection is drawn in that channel."""
    def bgr(images):
        return images.astype(np.float32)[..., ::-1] - np.float32([103.939, 116.779, 123.68])

    net = heatlens.wrap(Identity1x1(), preprocess=bgr)
    photo = np.stack([rng.permutation(144).reshape(12, 12) for _ in range(3)], axis=-1).astype(np.uint8)
    result = heatlens.deconv(net, photo, "relu", channels=[0, 1, 2])
    for c in range(3):
        projection = result.arrays["projections"][c]
        assert np.count_nonzero(projection) == 1 and projection[..., c].max() > 0
        picture = result.pictures[f"relu_channel_{c}"].astype(int)
        y, x = np.unravel_index(np.abs(projection).sum(axis=-1).argmax(), projection.shape[:2])
        assert picture[y, x].argmax() == 2 - c and picture[y, x, 2 - c] > 200


def test_pictures_show_themselves_in_a_notebook(lite0, cat):
    shown = heatlens.activations(lite0, cat, layers=["blocks.5"])
    png = Image.open(io.BytesIO(shown._repr_png_()))
    assert 0 < max(png.size) <= 512
    page = shown._repr_html_()
    assert page.count("<img") == len(shown.pictures) and "activations" in page and "blocks.5" in page
    assert repr(shown).startswith("Pictures(kind='activations', model='efficientnet_lite0', 2 pictures")
