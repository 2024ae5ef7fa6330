"""Loading Keras models: keras.applications by name with weights from a file or the Keras cache (never
downloaded), whole models from .keras files in safe mode, and one-line errors for what cannot load."""

from __future__ import annotations

import numpy as np
import pytest

keras = pytest.importorskip("keras")

from keras_models import small_cnn

import heatlens
from heatlens import ModelError


@pytest.fixture
def rng16(rng):
    return rng.standard_normal((2, 16, 16, 3)).astype(np.float32)


def test_application_weights_from_a_file_and_from_the_keras_cache(tmp_path, monkeypatch, rng):
    keras.utils.set_random_seed(5)
    original = keras.applications.MobileNetV2(weights=None, classifier_activation=None)
    path = tmp_path / "models" / "mobilenet_v2.weights.h5"
    path.parent.mkdir()
    original.save_weights(path)
    x = rng.uniform(-1, 1, (1, 224, 224, 3)).astype(np.float32)
    expected = original.predict(x, verbose=0)
    from_file = heatlens.load_model("keras:MobileNetV2", weights=str(path))
    np.testing.assert_allclose(from_file.predict(x), expected, rtol=1e-4, atol=1e-4)
    monkeypatch.setenv("KERAS_HOME", str(tmp_path))
    np.testing.assert_allclose(heatlens.load_model("keras:MobileNetV2").predict(x), expected, rtol=1e-4, atol=1e-4)


def test_missing_application_weights_say_where_to_put_them(tmp_path, monkeypatch):
    monkeypatch.setenv("KERAS_HOME", str(tmp_path))
    with pytest.raises(ModelError, match=r"never downloads.*--weights"):
        heatlens.load_model("keras:Xception")
    with pytest.raises(ModelError, match=r"unknown Keras application 'Xceptoin'.*'Xception'"):
        heatlens.load_model("keras:Xceptoin", weights="random")
    with pytest.raises(ModelError, match="no weights file"):
        heatlens.load_model("keras:Xception", weights=str(tmp_path / "nope.h5"))


def test_keras_file_loads_safely(tmp_path, rng16):
    model = small_cnn()
    path = tmp_path / "small.keras"
    model.save(path)
    net = heatlens.load_model(str(path), preprocess=None)
    np.testing.assert_allclose(net.predict(rng16), model.predict(rng16, verbose=0), atol=1e-5)
    (tmp_path / "bad.keras").write_bytes(b"nope")
    with pytest.raises(ModelError, match="not a loadable Keras model"):
        heatlens.load_model(str(tmp_path / "bad.keras"))
