"""The fuzz classifier itself: explain() stand-ins that misbehave in one known way each must be labelled so.

Without these a campaign that reports zero bad outcomes could simply be blind.
"""

from __future__ import annotations

import time

import fuzz_cases
import fuzz_files
import numpy as np
import pytest
from fuzz_inputs import Drawn
from fuzz_models import adapters

import heatlens

torch = pytest.importorskip("torch")

REAL_EXPLAIN = heatlens.explain


@pytest.fixture(scope="module")
def tiny():
    (adapter,) = [a for a in adapters("torch") if a.name == "torch_tiny"]
    return adapter


def spec(adapter, images=None, target=("top1", "'top1'", True, ("top", 1)), recheck=False, **options):
    images = np.random.default_rng(0).uniform(-1, 1, (2, 8, 8, 3)).astype(np.float32) if images is None else images
    value, label, valid, expect = target
    return {"adapter": adapter, "mode": "raw", "images": Drawn(images, "float32 (2, 8, 8, 3)", True),
            "target": Drawn(value, label, valid, expect), "layer": Drawn(None, "None", True), "options": options,
            "score": False, "upsample": True, "valid": valid, "n": len(images), "repro": "test", "recheck": recheck,
            "overlay": True}


def outcome_with(monkeypatch, tiny, fake, method="gradcam", **kwargs) -> fuzz_cases.Case:
    monkeypatch.setattr(heatlens, "explain", fake)
    case = fuzz_cases.run_case("torch", method, spec(tiny, **kwargs))
    tiny.reset()
    return case


def test_a_real_valid_call_ends_ok(tiny):
    case = fuzz_cases.run_case("torch", "gradcam", spec(tiny))
    assert case.outcome == "ok" and not case.flags


def raising(exc):
    def fake(*args, **kwargs):
        raise exc
    return fake


@pytest.mark.parametrize(("exc", "outcome"), [
    (heatlens.TargetError("class 9 is out of range"), "typed"),
    (heatlens.MethodError("two\nlines"), "untyped"),
    (ValueError("deep inside"), "untyped"),
    (AssertionError(), "untyped"),
])
def test_endings(monkeypatch, tiny, exc, outcome):
    bad_target = (1.7, "1.7", False, "refuse")  # so that a typed error is no refusal of a valid call
    assert outcome_with(monkeypatch, tiny, raising(exc), target=bad_target).outcome == outcome


def test_a_typed_error_on_a_valid_call_is_a_refusal(monkeypatch, tiny):
    assert outcome_with(monkeypatch, tiny, raising(heatlens.MethodError("no"))).outcome == "refused"


def spoilt(how, adapter):
    def fake(network, images, **kwargs):
        result = REAL_EXPLAIN(network, images, **kwargs)
        how(adapter.model, images, result)
        return result
    return fake


def _nan(model, images, result):
    result.maps[0, 0, 0, 0] = np.nan


def _hook(model, images, result):
    model.features[1].register_forward_hook(lambda *a: None)


def _train(model, images, result):
    model.fc.train()


def _constant(model, images, result):
    model._tensor_constant0 = torch.zeros(1)


def _grad(model, images, result):
    model.fc.bias.grad = torch.zeros(4)


def _requires_grad(model, images, result):
    model.fc.bias.requires_grad_(False)


def _weights(model, images, result):
    with torch.no_grad():
        model.fc.bias += 1


def _write_input(model, images, result):
    images[0, 0, 0, 0] += 1


def _global_rng(model, images, result):
    np.random.seed(1)


@pytest.mark.parametrize(("how", "outcome"), [
    (_nan, "nonfinite"), (_hook, "model_changed"), (_train, "model_changed"), (_constant, "model_changed"),
    (_grad, "model_changed"), (_requires_grad, "model_changed"), (_weights, "model_changed"),
    (_write_input, "input_changed"), (_global_rng, "model_changed"),
])
def test_spoilt_results_and_side_effects(monkeypatch, tiny, how, outcome):
    assert outcome in outcome_with(monkeypatch, tiny, spoilt(how, tiny)).flags


def test_maps_that_change_between_calls_are_unstable(monkeypatch, tiny):
    def fake(network, images, **kwargs):
        result = REAL_EXPLAIN(network, images, **kwargs)
        result.maps[:] = np.random.default_rng().random(result.maps.shape)
        return result

    assert "unstable" in outcome_with(monkeypatch, tiny, fake, recheck=True).flags


def test_an_accepted_bad_target_and_wrong_classes_are_wrong_answers(monkeypatch, tiny):
    coerce = lambda network, images, target, **kwargs: REAL_EXPLAIN(network, images, target=1, **kwargs)  # noqa: E731
    accepted = outcome_with(monkeypatch, tiny, coerce, target=(1.7, "1.7", False, "refuse"))
    assert accepted.outcome == "wrong_answer"
    wrong = outcome_with(monkeypatch, tiny, coerce, target=(2, "2", True, ("ids", np.array([[2], [2]]))))
    assert wrong.outcome == "wrong_answer"


def test_wrong_shapes(monkeypatch, tiny):
    def fake(network, images, **kwargs):
        result = REAL_EXPLAIN(network, images, **kwargs)
        result.maps = result.maps[:, :, :4]
        return result

    assert outcome_with(monkeypatch, tiny, fake).outcome == "wrong_shape"


def test_a_hang_is_cut_off(monkeypatch, tiny):
    monkeypatch.setitem(fuzz_cases.LIMIT_S, "torch", 0.2)
    assert outcome_with(monkeypatch, tiny, lambda *a, **k: time.sleep(5)).outcome == "timeout"


def test_file_readings_that_ignore_exif_or_scale_wrongly_are_wrong_answers(monkeypatch, tmp_path):
    rng = np.random.default_rng(0)
    turned = next(f for f in fuzz_files.exif_files(tmp_path, rng) if "orientation 6" in f.label)
    monkeypatch.setattr(heatlens, "load_image", lambda path: np.zeros((20, 40, 3), np.uint8))
    case = fuzz_files.load_case("load", "jpg", turned.path, "test", turned)
    assert case.outcome == "wrong_answer" and "EXIF" in case.flags["wrong_answer"]
    grey = fuzz_files.sixteen_bit_files(tmp_path)[0]  # values 0..200 of 65535: all near black
    monkeypatch.setattr(heatlens, "load_image", lambda path: np.full((12, 10, 3), 200, np.uint8))
    assert fuzz_files.load_case("load", "png", grey.path, "test", grey).outcome == "wrong_answer"


def test_a_file_reading_that_writes_to_the_file_changed_the_input(monkeypatch, tmp_path):
    path = tmp_path / "x.png"
    path.write_bytes(b"abc")

    def fake(source):
        path.write_bytes(b"abd")
        raise heatlens.ImageError("not an image")

    monkeypatch.setattr(heatlens, "load_image", fake)
    assert fuzz_files.load_case("load", "png", path, "test").outcome == "input_changed"
