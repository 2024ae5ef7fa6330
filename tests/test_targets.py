"""Target specs resolve to class ids (N, K), with names and scores; bad specs fail clearly."""

from __future__ import annotations

import numpy as np
import pytest

from heatlens import ModelError, TargetError
from heatlens.classes import imagenet_classes
from heatlens.targets import probabilities, resolve

LOGITS = np.array([[0.0, 3.0, 1.0, 2.0], [5.0, 1.0, 4.0, 0.0]], dtype=np.float32)
NAMES = ["ant", "bee", "cat", "dog"]


def test_topk_orders_by_score():
    t = resolve("top3", LOGITS, NAMES)
    np.testing.assert_array_equal(t.ids, [[1, 3, 2], [0, 2, 1]])
    assert t.names == [["bee", "dog", "cat"], ["ant", "cat", "bee"]]
    np.testing.assert_allclose(t.scores, [[3, 2, 1], [5, 4, 1]])


def test_id_name_list_and_per_image_lists():
    np.testing.assert_array_equal(resolve(2, LOGITS, NAMES).ids, [[2], [2]])
    np.testing.assert_array_equal(resolve("Dog", LOGITS, NAMES).ids, [[3], [3]])
    np.testing.assert_array_equal(resolve(["cat", 0], LOGITS, NAMES).ids, [[2, 0], [2, 0]])
    np.testing.assert_array_equal(resolve([[1], [3]], LOGITS, NAMES).ids, [[1], [3]])


def test_callable_on_logits():
    t = resolve(lambda logits: np.argmin(logits, axis=1), LOGITS, NAMES)
    np.testing.assert_array_equal(t.ids, [[0], [3]])


def test_probabilities_are_softmax_of_logits():
    t = resolve("top1", LOGITS, NAMES)
    expected = np.exp(3) / np.exp([0, 3, 1, 2]).sum()
    assert t.probabilities[0, 0] == pytest.approx(expected, rel=1e-6)


def test_probabilities_pass_through_when_already_a_distribution():
    p = np.array([[0.2, 0.8]], dtype=np.float32)
    np.testing.assert_array_equal(probabilities(p), p)


def test_out_of_range_id():
    with pytest.raises(TargetError, match=r"class id 7 is out of range: the model has classes 0\.\.3"):
        resolve(7, LOGITS, NAMES)
    with pytest.raises(TargetError, match="out of range"):
        resolve(-1, LOGITS, NAMES)


def test_unknown_name_suggests_close_names():
    with pytest.raises(TargetError, match=r"unknown class name 'tabbby'.*'tabby'"):
        resolve("tabbby", np.zeros((1, 1000), np.float32), imagenet_classes())


def test_names_without_class_list():
    with pytest.raises(TargetError, match="no class names"):
        resolve("cat", LOGITS, None)
    assert resolve(1, LOGITS, None).names == [["class 1"], ["class 1"]]


def test_bad_callable_and_bad_spec():
    with pytest.raises(TargetError, match="integer class ids"):
        resolve(lambda logits: logits, LOGITS, NAMES)
    with pytest.raises(TargetError):
        resolve(True, LOGITS, NAMES)
    with pytest.raises(TargetError, match="asks for 9 classes"):
        resolve("top9", LOGITS, NAMES)
    with pytest.raises(TargetError, match=r"for 2 images"):
        resolve([[1], [2], [3]], LOGITS, NAMES)
    with pytest.raises(TargetError, match=r"same length. Received lengths \[1, 2\]"):
        resolve([[1], [1, 2]], LOGITS, NAMES)


def test_non_finite_logits():
    bad = LOGITS.copy()
    bad[1, 2] = np.nan
    with pytest.raises(ModelError, match="NaN or infinite scores for image 1"):
        resolve("top1", bad, NAMES)


def test_imagenet_classes_are_the_standard_order():
    names = imagenet_classes()
    assert len(names) == 1000 and len(set(names)) == 1000
    assert (names[0], names[281], names[285], names[967]) == ("tench", "tabby", "Egyptian cat", "espresso")


@pytest.mark.parametrize(("spec", "message"), [
    ("²", "unknown class name '²'"),
    (10**30, "out of range for any model"),
    (2**32 + 1, r"class id 4294967297 is out of range: the model has classes 0..3"),
    ([[], []], "names no class"),
    (np.array([[1.7], [1.0]]), r"expected a class id \(an integer\) or a class name in the target. Received: 1.7"),
    ([[1], [2], [3]], "gives 3 per-image lists for 2 images"),
    (lambda s: [[1], [1, 2]], "not a rectangular array of integers"),
    (lambda s: np.zeros((2, 0), np.int64), "names no class"),
])
def test_malformed_targets_are_refused_in_one_line(spec, message):
    with pytest.raises(TargetError, match=message) as caught:
        resolve(spec, LOGITS, NAMES)
    assert "\n" not in str(caught.value)


def test_zero_dimensional_arrays_are_class_ids():
    np.testing.assert_array_equal(resolve(np.array(2), LOGITS, NAMES).ids, [[2], [2]])
    np.testing.assert_array_equal(resolve(np.array([[3], [1]]), LOGITS, NAMES).ids, [[3], [1]])


def test_a_raising_target_callable_is_named():
    def pick(scores):
        raise RuntimeError("no\nsuch")

    with pytest.raises(TargetError, match=r"target callable pick failed on the scores: RuntimeError: no$"):
        resolve(pick, LOGITS, NAMES)


def test_keras_spellings_and_wordnet_ids_as_targets_with_wnids_in_the_records():
    logits = np.zeros((2, 1000), np.float32)
    logits[:, 282] = 5.0
    t = resolve(["sports_car", "n02123159"], logits, imagenet_classes())
    np.testing.assert_array_equal(t.ids, [[817, 282], [817, 282]])
    records = resolve("top1", logits, imagenet_classes()).as_records()
    assert records[0][0]["wnid"] == "n02123159" and records[0][0]["name"] == "tiger cat"
    assert "wnid" not in resolve("top1", LOGITS, NAMES).as_records()[0][0]
    with pytest.raises(TargetError, match="ambiguous class name 'crane'"):
        resolve("crane", logits, imagenet_classes())
