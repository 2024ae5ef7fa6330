"""PhotoPipeline against the libraries it stands in for: torchvision's ImageClassification on Pillow photos and
Hugging Face's image processors (Pillow and torchvision backends) on odd sizes where their roundings differ, and
its input box against where the pixels it keeps really come from."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

torch = pytest.importorskip("torch")
torchvision = pytest.importorskip("torchvision")
from PIL import Image
from torchvision.transforms import InterpolationMode, _presets

from heatlens.models.loading.photo_pipeline import PhotoPipeline

SHAPES = [(101, 133), (133, 101), (64, 64), (37, 200)]


@pytest.fixture(scope="module")
def photos():
    rng = np.random.default_rng(3)
    return [rng.integers(0, 256, (*shape, 3), dtype=np.uint8) for shape in SHAPES]


@pytest.mark.parametrize(("resize", "crop", "mode"), [(100, 37, "bilinear"), (51, 50, "bicubic"), (20, 40, "bilinear")])
def test_torchvision_image_classification(photos, resize, crop, mode):
    transform = _presets.ImageClassification(crop_size=crop, resize_size=resize, interpolation=InterpolationMode(mode))
    pipeline = PhotoPipeline(resize=resize, crop_size=(crop, crop), interpolation=mode)
    for photo in photos:
        expected = transform(Image.fromarray(photo)).numpy().transpose(1, 2, 0)
        np.testing.assert_allclose(pipeline(photo[None])[0], expected, atol=1e-5)


@pytest.mark.parametrize("backend", ["pil", "torchvision"])
@pytest.mark.parametrize("kind", ["vit", "convnext", "bit"])
def test_hugging_face_processors(photos, backend, kind):
    transformers = pytest.importorskip("transformers")
    from heatlens.models.loading.hf_models import pipeline_of

    settings = {"vit": ("ViTImageProcessor", {"size": {"height": 48, "width": 40}}),
                "convnext": ("ConvNextImageProcessor", {"size": {"shortest_edge": 45}, "crop_pct": 0.9}),
                "bit": ("BitImageProcessor", {"size": {"shortest_edge": 47}, "crop_size": {"height": 33, "width": 33}})}
    name, options = settings[kind]
    processor = getattr(transformers, name + ("Pil" if backend == "pil" else ""))(**options)
    pipeline = pipeline_of(processor, kind)
    for photo in photos:
        expected = processor(images=[photo], return_tensors="np")["pixel_values"][0].transpose(1, 2, 0)
        np.testing.assert_allclose(pipeline(photo[None])[0], expected, atol=1e-5)


@pytest.mark.parametrize("pipeline", [PhotoPipeline(resize=100, crop_size=(37, 37), interpolation="nearest"),
                                      PhotoPipeline(resize=(50, 70), crop_size=None, interpolation="nearest"),
                                      PhotoPipeline(resize=80, crop_size=(60, 50), interpolation="nearest",
                                                    crop_offset="floor")])
def test_the_input_box_holds_the_pixels_the_model_sees(pipeline):
    """A photo whose red and green channels are its row and column: with nearest sampling, each model pixel
    says where it came from, and those places fill the box evenly (one source step per model pixel)."""
    rows, cols = np.mgrid[:151, :203]
    photo = np.stack([rows, cols, np.zeros_like(rows)], -1).astype(np.uint8)
    plain = dataclasses.replace(pipeline, mean=(0.0,) * 3, std=(1.0,) * 3, scale=1.0)
    seen = plain(photo[None])[0]
    top, left, bottom, right = pipeline.input_box(151, 203)
    height, width = seen.shape[:2]
    step_y, step_x = (bottom - top) / height, (right - left) / width
    centres_y = top + (np.arange(height) + 0.5) * step_y
    centres_x = left + (np.arange(width) + 0.5) * step_x
    assert np.all(np.abs(seen[:, 0, 0] - centres_y) <= step_y / 2 + 0.5)
    assert np.all(np.abs(seen[0, :, 1] - centres_x) <= step_x / 2 + 0.5)

