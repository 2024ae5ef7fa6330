"""The zoo picks the framework that is installed when none is named."""

from __future__ import annotations

import importlib.util

import pytest

from heatlens import ModelError
from heatlens.models import zoo


def _without(monkeypatch, *missing: str) -> None:
    found = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name in missing else found(name, *a))


def test_torch_is_the_default_where_it_is_installed():
    assert zoo.installed_framework() == "torch"


def test_keras_is_the_default_where_only_keras_is_installed(monkeypatch):
    _without(monkeypatch, "torch")
    assert zoo.installed_framework() == "keras"


def test_neither_installed_says_what_to_install(monkeypatch):
    _without(monkeypatch, "torch", "keras")
    with pytest.raises(ModelError, match=r"need torch or Keras: pip install 'heatlens\[torch\]' or"):
        zoo.load_zoo_model("efficientnet_lite0")
