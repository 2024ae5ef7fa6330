"""heatlens.scores: each ready-made score against a direct computation (numpy, torchvision.ops.box_iou, torch's
cosine similarity, autograd by hand), on torch, numpy and Keras outputs, and their one-line errors."""

from __future__ import annotations

import numpy as np
import pytest

torch = pytest.importorskip("torch")
torchvision = pytest.importorskip("torchvision")

from task_models import TinySegmenter
from toy_models import count_hooks

import heatlens
from heatlens import ModelError, TargetError, scores


@pytest.fixture
def logits(rng):
    return rng.standard_normal((2, 4, 6, 5)).astype(np.float32)


@pytest.fixture
def mask(rng):
    return rng.random((6, 5)) > 0.5


def test_segment_sums_a_class_over_the_mask(logits, mask):
    got = scores.segment(2, mask)(torch.from_numpy(logits))
    np.testing.assert_allclose(got.numpy()[:, 0], (logits[:, 2] * mask).sum(axis=(1, 2)), rtol=1e-5)


def test_segment_without_a_mask_sums_the_pixels_predicted_as_the_class(logits):
    winners = logits.argmax(axis=1)
    expected = np.stack([(logits[:, c] * (winners == c)).sum(axis=(1, 2)) for c in (1, 3)], axis=1)
    for output in (torch.from_numpy(logits), {"out": torch.from_numpy(logits), "aux": None}, logits):
        got = scores.segment([1, 3])(output)
        np.testing.assert_allclose(np.asarray(got), expected, rtol=1e-5)


def test_segment_reads_hugging_face_logits_and_keras_channels_last(logits, mask):
    class Output:
        pass

    hf = Output()
    hf.logits = torch.from_numpy(logits)
    expected = (logits[:, 1] * mask).sum(axis=(1, 2))
    np.testing.assert_allclose(scores.segment(1, mask)(hf).numpy()[:, 0], expected, rtol=1e-5)
    channels_last = logits.transpose(0, 2, 3, 1).copy()
    np.testing.assert_allclose(scores.segment(1, mask, channels_last=True)(channels_last)[:, 0], expected, rtol=1e-5)


def test_segment_on_keras_tensors(logits, mask):
    keras = pytest.importorskip("keras")
    tensor = keras.ops.convert_to_tensor(logits.transpose(0, 2, 3, 1))
    got = keras.ops.convert_to_numpy(scores.segment(1, mask)(tensor))
    np.testing.assert_allclose(got[:, 0], (logits[:, 1] * mask).sum(axis=(1, 2)), rtol=1e-5)


def test_gradcam_of_a_segment_is_the_hand_computed_formula(rng):
    torch.manual_seed(0)
    model = TinySegmenter().eval()
    x = rng.standard_normal((2, 16, 16, 3)).astype(np.float32)
    region = np.zeros((16, 16), bool)
    region[4:12, 2:9] = True
    xt = torch.from_numpy(x.transpose(0, 3, 1, 2).copy())
    act = model.features(xt)
    act.retain_grad()
    logits = torch.nn.functional.interpolate(model.classifier(act), size=(16, 16), mode="bilinear")
    (logits[:, 1] * torch.from_numpy(region)).sum().backward()
    a, g = act.detach().numpy(), act.grad.numpy()
    expected = np.maximum(np.einsum("nc,nchw->nhw", g.mean(axis=(2, 3)), a), 0)
    net = heatlens.wrap(model, preprocess=None)
    out = heatlens.explain(net, x, layer="features", score_fn=scores.segment(1, region), upsample=False)
    np.testing.assert_allclose(out.maps[:, 0], expected, rtol=1e-4, atol=1e-7)
    assert out.targets.names == [["segment"]] * 2
    assert count_hooks(model) == 0


def test_segment_errors(logits, mask):
    with pytest.raises(ModelError, match=r"segment: the mask has shape \(3, 5\).*needs \(6, 5\) or \(2, 6, 5\)"):
        scores.segment(1, mask[:3])(torch.from_numpy(logits))
    with pytest.raises(TargetError, match=r"class_id 7 is out of range: the segmentation output has 4 classes"):
        scores.segment(7)(torch.from_numpy(logits))
    with pytest.raises(ModelError, match=r"expected a segmentation output.*Received: a Tensor of shape \(2, 4\)"):
        scores.segment(1)(torch.zeros(2, 4))
    with pytest.raises(ModelError, match=r"this is a detector's output: use heatlens\.scores\.detection"):
        scores.segment(1)([{"boxes": 0, "labels": 0, "scores": 0}])
    with pytest.raises(TargetError, match=r"class_id must be a class id \(an int >= 0\)"):
        scores.segment("cat")
    with pytest.raises(TargetError, match=r"the mask must be an \(H, W\) or \(N, H, W\) array"):
        scores.segment(1, np.zeros(5))


def detections(rng, images=2, count=6):
    """Random detections in torchvision's format: boxes inside 64 x 64, labels 1..3, scores in (0, 1)."""
    out = []
    for _ in range(images):
        corner = rng.uniform(0, 40, (count, 2))
        size = rng.uniform(8, 24, (count, 2))
        out.append({"boxes": torch.tensor(np.hstack([corner, corner + size]), dtype=torch.float32),
                    "labels": torch.from_numpy(rng.integers(1, 4, count)),
                    "scores": torch.tensor(rng.uniform(0.05, 1, count), dtype=torch.float32)})
    return out


def matched_score(image, box, label, threshold, with_iou):
    """The reference: a loop over the detections of `label`, the one of largest IoU (torchvision's box_iou)."""
    ious = torchvision.ops.box_iou(torch.tensor(np.asarray(box)[None], dtype=torch.float32), image["boxes"])[0]
    best, best_iou = None, -1.0
    for j in range(len(ious)):
        if int(image["labels"][j]) == label and float(ious[j]) > best_iou:
            best, best_iou = j, float(ious[j])
    if best is None or best_iou <= threshold:
        return 0.0
    return float(image["scores"][best]) + (best_iou if with_iou else 0.0)


@pytest.mark.parametrize("with_iou", [False, True])
def test_detection_scores_the_best_overlapping_detection_of_each_label(rng, with_iou):
    output = detections(rng)
    picked = output[0]["boxes"][[0, 3]].numpy() + rng.uniform(-3, 3, (2, 4))
    boxes = np.vstack([picked, [[50, 50, 60, 60]]])
    labels = [int(output[0]["labels"][0]), int(output[0]["labels"][3]), 2]
    got = scores.detection(boxes, labels, iou=with_iou, iou_threshold=0.3)(output).numpy()
    expected = [[matched_score(image, box, label, 0.3, with_iou) for box, label in zip(boxes, labels, strict=True)]
                for image in output]
    np.testing.assert_allclose(got, expected, rtol=1e-5, atol=1e-7)
    assert got.shape == (2, 3) and (got[0, :2] > 0).all()


def test_detection_skips_a_better_overlap_of_another_label():
    output = [{"boxes": torch.tensor([[0.0, 0, 10, 10], [1, 1, 11, 11]]), "labels": torch.tensor([5, 7]),
               "scores": torch.tensor([0.9, 0.4])}]
    got = scores.detection([1, 1, 11, 11], 5, iou=True)(output)
    np.testing.assert_allclose(got.numpy(), [[0.9 + 81 / 119]], rtol=1e-6)


def test_detection_on_numpy_outputs_and_images_without_detections(rng):
    output = [{key: value.numpy() for key, value in image.items()} for image in detections(rng, images=1)]
    empty = {"boxes": np.zeros((0, 4), np.float32), "labels": np.zeros(0, np.int64), "scores": np.zeros(0, np.float32)}
    box, label = output[0]["boxes"][2], int(output[0]["labels"][2])
    got = scores.detection(box, label)([*output, empty])
    np.testing.assert_allclose(got, [[matched_score({k: torch.from_numpy(v) for k, v in output[0].items()}, box,
                                                    label, 0.5, False)], [0.0]], rtol=1e-6)


def test_detection_refuses_an_unmatched_box_only_where_gradients_are_taken(rng):
    output = detections(rng, images=1)
    far = scores.detection([200, 200, 210, 210], 1)
    np.testing.assert_array_equal(far(output).numpy(), [[0.0]])  # predictions (perturbed inputs): no detection, 0
    tracked = [{**image, "scores": image["scores"].requires_grad_()} for image in output]
    with pytest.raises(TargetError, match=r"detection: no detection of label 1 overlaps box \(200, 200, 210, 210\)"):
        far(tracked)


def test_detection_errors():
    with pytest.raises(TargetError, match=r"box \[5.0, 0.0, 5.0, 4.0\] is empty"):
        scores.detection([5, 0, 5, 4], 1)
    with pytest.raises(TargetError, match=r"boxes must be \(x_min, y_min, x_max, y_max\)"):
        scores.detection([1, 2, 3], 1)
    with pytest.raises(TargetError, match="2 boxes and 3 labels"):
        scores.detection([[0, 0, 4, 4], [1, 1, 5, 5]], [1, 2, 3])
    with pytest.raises(TargetError, match=r"iou_threshold must be in \[0, 1\)"):
        scores.detection([0, 0, 4, 4], 1, iou_threshold=1.5)
    with pytest.raises(ModelError, match=r"detection: expected a detector's output.*Received: a Tensor"):
        scores.detection([0, 0, 4, 4], 1)(torch.zeros(2, 3))


def test_similarity_is_the_cosine_to_each_reference(rng):
    embedding = rng.standard_normal((3, 2, 4)).astype(np.float32)
    references = rng.standard_normal((2, 8)).astype(np.float32)
    flat = torch.from_numpy(embedding.reshape(3, 8))
    expected = torch.stack([torch.nn.functional.cosine_similarity(flat, torch.from_numpy(r)[None], dim=1)
                            for r in references], dim=1).numpy()
    np.testing.assert_allclose(scores.similarity(references)(torch.from_numpy(embedding)).numpy(), expected, rtol=1e-5)
    np.testing.assert_allclose(scores.similarity(references)(embedding), expected, rtol=1e-5)

    class Output:
        pooler_output = flat

    got = scores.similarity(torch.from_numpy(references[0]).requires_grad_())(Output())
    np.testing.assert_allclose(got.numpy()[:, 0], expected[:, 0], rtol=1e-5)


def test_similarity_errors(rng):
    with pytest.raises(ModelError, match="the model's embedding has 8 values and the reference 5"):
        scores.similarity(np.ones(5))(torch.ones(2, 8))
    with pytest.raises(TargetError, match="a reference embedding is all zeros"):
        scores.similarity(np.zeros(4))
    with pytest.raises(TargetError, match=r"the reference must be a finite embedding \(D,\)"):
        scores.similarity(np.ones((2, 2, 2)))
    with pytest.raises(ModelError, match=r"similarity: expected an embedding \(N, D\).*Received: a tuple"):
        scores.similarity(np.ones(4))(("text",) * 2)

    class Table:
        shape, dtype = (2, 4), "float32"

    with pytest.raises(ModelError, match=r"similarity works on torch, Keras .* outputs\. Received: a test_scores"):
        scores.similarity(np.ones(4))(Table())
