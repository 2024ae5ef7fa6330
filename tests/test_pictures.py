"""heatlens.activations / filters / deconv for a model and a photo: the same pictures as the looks inside over
the prepared inputs, and a manifest written by the writer Explanation uses."""

from __future__ import annotations

import json

import numpy as np
import pytest

import heatlens
from heatlens.inputs import model_inputs
from heatlens.methods import inside
from heatlens.pictures import Pictures

torch = pytest.importorskip("torch")


@pytest.fixture(scope="module")
def tiny():
    from toy_models import TinyCNN

    torch.manual_seed(0)
    return heatlens.wrap(TinyCNN().eval(), preprocess="imagenet", input_size=(32, 32))


@pytest.fixture(scope="module")
def photo():
    return np.random.default_rng(3).integers(0, 256, (40, 48, 3), dtype=np.uint8)


def test_activations_and_deconv_of_a_photo_are_the_looks_inside_its_prepared_input(tiny, photo):
    x = tiny.prepare(photo[None])
    shown = heatlens.activations(tiny, photo, layers=["features.1"])
    direct = inside.layer_activations(tiny, x, ["features.1"])
    np.testing.assert_array_equal(shown.pictures["features.1"], direct.pictures["features.1"])
    with torch.no_grad():
        relu = tiny.module.features[:2](torch.from_numpy(x.transpose(0, 3, 1, 2).copy()))[0].numpy()
    np.testing.assert_allclose(shown.arrays["features.1"], relu.transpose(1, 2, 0), atol=1e-6)
    projected = heatlens.deconv(tiny, photo, "features.3", top_k=2)
    again = inside.deconv_projections(tiny, x, "features.3", top_k=2)
    assert projected.details["channels"] == again.details["channels"]
    np.testing.assert_array_equal(projected.arrays["projections"], again.arrays["projections"])
    assert isinstance(projected, Pictures) and projected.model == tiny.name and projected.kind == "deconv"


def test_filters_start_from_seeded_grey_noise_inside_the_photo_value_range(tiny):
    start = inside.noise_inputs(tiny, (32, 32, 3), 2, seed=5)
    black, white = (tiny.prepare(np.full((1, 32, 32, 3), v, np.uint8))[0].mean(axis=(0, 1)) for v in (0, 255))
    middle, spread = (black + white) / 2, np.abs(white - black) / 16
    assert start.shape == (2, 32, 32, 3) and start.dtype == np.float32
    assert (np.abs(start - middle) <= spread + 1e-5).all() and (np.abs(start - middle) > spread / 2).any()
    np.testing.assert_array_equal(start, inside.noise_inputs(tiny, (32, 32, 3), 2, seed=5))
    grown = heatlens.filters(tiny, "features.2", channels=[1, 2], steps=2, size=32, seed=5, progress=False)
    direct = inside.channel_filters(tiny, start, "features.2", [1, 2], steps=2, seed=5, progress=False)
    np.testing.assert_array_equal(grown.arrays["inputs"], direct.arrays["inputs"])


def test_save_writes_each_picture_and_the_shared_manifest(tiny, photo, tmp_path):
    result = heatlens.activations(tiny, photo, layers=["features.1", "features.3"], strongest_first=True)
    manifest = json.loads(result.save(tmp_path).read_text())
    assert manifest["schema_version"] == heatlens.explanation.MANIFEST_SCHEMA
    assert (manifest["kind"], manifest["model"]) == ("activations", tiny.name)
    assert manifest["details"] == {"layers": ["features.1", "features.3"], "order": "strongest first"}
    assert [entry["name"] for entry in manifest["images"]] == ["features.1", "features.3", "summary"]
    for entry in manifest["images"]:
        saved = np.asarray(heatlens.load_image(tmp_path / entry["file"]))
        np.testing.assert_array_equal(saved, result.pictures[entry["name"]])


def test_model_inputs_prepare_photos_once_and_pass_model_ready_floats(tiny, photo):
    photos, x = model_inputs(tiny, photo)
    np.testing.assert_array_equal(photos, photo[None])
    np.testing.assert_array_equal(x, tiny.prepare(photo[None]))
    floats = np.random.default_rng(0).random((2, 8, 8, 3)).astype(np.float32)
    raw = heatlens.wrap(lambda images: images.mean(axis=(1, 2)), preprocess=None)
    assert model_inputs(raw, floats)[0] is None
    np.testing.assert_array_equal(model_inputs(raw, floats)[1], floats)
    as_given = heatlens.wrap(lambda images: images.mean(axis=(1, 2)))
    photos, x = model_inputs(as_given, floats)
    assert photos is None and x.dtype == np.float32
    np.testing.assert_array_equal(x, floats)
