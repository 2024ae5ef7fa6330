"""Bundled photos are real and offline."""

import pytest

from heatlens import ImageError, samples


@pytest.mark.parametrize("name", samples.names())
def test_every_sample_loads_as_rgb(name):
    img = samples.load(name)
    assert img.ndim == 3 and img.shape[2] == 3 and min(img.shape[:2]) >= 300


def test_unknown_sample():
    with pytest.raises(ImageError, match="unknown sample 'dog'"):
        samples.load("dog")
