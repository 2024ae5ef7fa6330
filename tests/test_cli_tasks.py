"""`heatlens explain --task detection|segmentation`: boxes and masks given on the photo reach the model input
through its crop and resize (checked against the geometry worked out by hand, and against Pillow's own
nearest-neighbour resize for masks), the maps written equal heatlens.explain with the heatlens.scores function on
the mapped box or mask, torchvision's detectors and segmenters load from state dicts written here (random
weights), and every misuse is a one-line error with exit code 2."""

from __future__ import annotations

import json

import numpy as np
import pytest
from PIL import Image
from typer.testing import CliRunner

import heatlens
from heatlens import scores
from heatlens.cli import app
from heatlens.cli_tasks import input_mask

torch = pytest.importorskip("torch")
torchvision = pytest.importorskip("torchvision")

runner = CliRunner()
HEIGHT, WIDTH = 240, 320  # the photo; the tiny models' 'imagenet' preprocessing: short side to 256, centre 224
DETECTOR = "fasterrcnn_mobilenet_v3_large_320_fpn"  # torchvision's smallest Faster R-CNN: 320 px inside
SEGMENTER = "lraspp_mobilenet_v3_large"


def to_input(x: float, y: float) -> tuple[float, float]:
    """A photo point in the 224 x 224 input of a 320 x 240 photo, by hand: the short side 240 becomes 256 (x
    256/240) and the long one round(320 * 256 / 240) = 341 (x 341/320), then a centre crop cuts (341 - 224) // 2
    = 58 columns and (256 - 224) // 2 = 16 rows."""
    return x * 341 / 320 - 58, y * 256 / 240 - 16


@pytest.fixture(scope="module")
def photo_file(tmp_path_factory):
    path = tmp_path_factory.mktemp("photo") / "street.png"
    Image.fromarray(np.random.default_rng(5).integers(0, 256, (HEIGHT, WIDTH, 3), dtype=np.uint8)).save(path)
    return path


@pytest.fixture(scope="module")
def detector_weights(tmp_path_factory):
    """A random-weight Faster R-CNN's state dict as .pth, its box head made to call every proposal 'person'
    (label 1) with its box unchanged, so the detector finds something without trained weights."""
    torch.manual_seed(0)
    model = torchvision.models.get_model(DETECTOR, weights=None, weights_backbone=None)
    state = model.state_dict()
    state["roi_heads.box_predictor.cls_score.bias"][1] = 20.0
    state["roi_heads.box_predictor.bbox_pred.weight"].zero_()
    state["roi_heads.box_predictor.bbox_pred.bias"].zero_()
    path = tmp_path_factory.mktemp("weights") / "detector.pth"
    torch.save(state, path)
    return path


@pytest.fixture(scope="module")
def segmenter_weights(tmp_path_factory):
    torch.manual_seed(0)
    model = torchvision.models.get_model(SEGMENTER, weights=None, weights_backbone=None)
    path = tmp_path_factory.mktemp("weights") / "segmenter.pth"
    torch.save(model.state_dict(), path)
    return path


def explain_cli(*args: str):
    return runner.invoke(app, ["explain", *map(str, args)], env={"COLUMNS": "200"})


def written_maps(out) -> tuple[dict, list[np.ndarray]]:
    manifest = json.loads((out / "manifest.json").read_text())
    (entry,) = manifest["images"]
    return manifest, [np.load(out / record["map"]) for record in entry["targets"]]


def test_detection_boxes_are_mapped_through_the_crop_and_explained_as_the_api_does(tmp_path, photo_file):
    boxes = [(70, 30, 160, 120), (160, 80, 280, 200)]  # near the tiny detector's boxes, seen in the 224 input
    result = explain_cli(photo_file, "--model", "task_models:tiny_detector", "--task", "detection",
                         "--box", "70,30,160,120", "--box", "160, 80, 280, 200", "--label", "1", "--label", "2",
                         "--out", tmp_path)
    assert result.exit_code == 0, result.output
    assert "scores explained" in result.output and "detection[1]" in result.output
    manifest, maps = written_maps(tmp_path)
    by_hand = np.array([[*to_input(x0, y0), *to_input(x1, y1)] for x0, y0, x1, y1 in boxes]).clip(0, 224)
    assert by_hand[1, 2] == 224  # the second box reaches past the crop: it is cut at the input's edge
    task = manifest["images"][0]["task"]
    assert manifest["task"] == "detection" and manifest["params"]["score_fn"] == "detection"
    assert task["boxes"] == [list(map(float, b)) for b in boxes] and task["labels"] == [1, 2]
    np.testing.assert_allclose(task["input_boxes"], by_hand, atol=1e-3)
    photo = np.asarray(Image.open(photo_file))
    api = heatlens.explain("task_models:tiny_detector", photo, target=[0, 1], upsample=False,
                           score_fn=scores.detection(by_hand, [1, 2]))
    assert manifest["layer"] == api.layer
    np.testing.assert_allclose(np.stack(maps), api.maps[0], rtol=1e-5, atol=1e-6)
    assert [t["name"] for t in manifest["images"][0]["targets"]] == ["detection[0]", "detection[1]"]


def test_several_methods_explain_the_same_mapped_box(tmp_path, photo_file):
    result = explain_cli(photo_file, "--model", "task_models:tiny_detector", "--task", "detection", "--box",
                         "70,30,160,120", "--label", "1", "--method", "gradcam,eigencam", "--out", tmp_path)
    assert result.exit_code == 0, result.output
    manifest = json.loads((tmp_path / "manifest.json").read_text())
    (entry,) = manifest["images"]
    by_hand = [*to_input(70, 30), *to_input(160, 120)]
    np.testing.assert_allclose(entry["task"]["input_boxes"], [by_hand], atol=1e-3)
    photo = np.asarray(Image.open(photo_file))
    for record in entry["results"]:
        api = heatlens.explain("task_models:tiny_detector", photo, method=record["method"],
                               score_fn=scores.detection(by_hand, 1))  # a comparison keeps maps at photo size
        (target,) = record["targets"]
        np.testing.assert_allclose(np.load(tmp_path / target["map"]), api.maps[0, 0], rtol=1e-5, atol=1e-6)


def test_a_torchvision_detector_from_a_state_dict_sees_the_whole_photo(tmp_path, photo_file, detector_weights):
    model = f"torchvision:{DETECTOR}"
    network = heatlens.load_model(model, weights=str(detector_weights))
    photo = np.asarray(Image.open(photo_file))
    with torch.no_grad():
        (found,) = network.module(torch.from_numpy(network.prepare(photo[None]).transpose(0, 3, 1, 2)))
    box = found["boxes"][0].numpy().astype(np.float64).round(1)  # the detector takes the photo as it is
    result = explain_cli(photo_file, "--model", model, "--weights", detector_weights, "--task", "detection",
                         "--box", ",".join(f"{v:g}" for v in box), "--label", "person", "--json", "--out", tmp_path)
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    (image,) = report["images"]
    assert image["task"]["labels"] == [1] and report["task"] == "detection"
    np.testing.assert_allclose(image["task"]["input_boxes"], [box], atol=1e-3)  # no crop or resize: unchanged
    _, (cli_map,) = written_maps(tmp_path)
    api = heatlens.explain(network, photo, target=[0], upsample=False, score_fn=scores.detection(box, 1))
    assert image["layer"] == api.layer == "backbone.body.16"
    np.testing.assert_allclose(cli_map, api.maps[0, 0], rtol=1e-4, atol=1e-6)


def test_a_segmentation_mask_is_cropped_and_resized_as_the_photo(tmp_path, photo_file, segmenter_weights):
    region = np.zeros((HEIGHT, WIDTH), np.uint8)
    region[50:170, 90:230] = 255
    Image.fromarray(region).save(tmp_path / "mask.png")
    model = f"torchvision:{SEGMENTER}"
    result = explain_cli(photo_file, "--model", model, "--weights", segmenter_weights, "--preprocess", "imagenet",
                         "--task", "segmentation", "--class", "cat", "--class", "0", "--mask", tmp_path / "mask.png",
                         "--out", tmp_path / "out")
    assert result.exit_code == 0, result.output
    manifest, maps = written_maps(tmp_path / "out")
    task = manifest["images"][0]["task"]
    assert task["classes"] == [8, 0] and task["mask"] == str(tmp_path / "mask.png")  # VOC's 'cat' is class 8
    left, top = 58 * 320 / 341, 16 * 240 / 256  # the crop's corner in the photo (see to_input)
    by_pillow = Image.fromarray(region).resize((224, 224), Image.Resampling.NEAREST,
                                               box=(left, top, left + 224 * 320 / 341, top + 224 * 240 / 256))
    network = heatlens.load_model(model, weights=str(segmenter_weights), preprocess="imagenet")
    api = heatlens.explain(network, np.asarray(Image.open(photo_file)), target=[0, 1], upsample=False,
                           score_fn=scores.segment([8, 0], np.asarray(by_pillow) > 0))
    np.testing.assert_allclose(np.stack(maps), api.maps[0], rtol=1e-4, atol=1e-6)
    assert manifest["layer"] == api.layer == "backbone.16"


def test_a_mask_on_a_resized_photo_matches_pillows_nearest_resize():
    """A 64 x 48 photo becomes 693 x 520 in torchvision's segmentation preprocessing. Pillow samples each output
    pixel's centre in 16.16 fixed point, so where a centre falls exactly on a pixel boundary (row i of 520 over 48
    rows: (2i + 1) * 48 / 1040 whole) it may take the pixel before; heatlens takes the pixel the centre starts."""
    mask = np.random.default_rng(2).random((48, 64)) > 0.5
    mapped = input_mask(mask, (0.0, 0.0, 48.0, 64.0), (520, 693), "m.png")
    expected = np.asarray(Image.fromarray(mask).resize((693, 520), Image.Resampling.NEAREST))
    rows, cols = np.arange(520), np.arange(693)
    ties = ((2 * rows + 1) * 48 % 1040 == 0)[:, None] | ((2 * cols + 1) * 64 % 1386 == 0)[None, :]
    assert ties.any() and not ties.all()
    np.testing.assert_array_equal(mapped[~ties], expected[~ties])
    tie_rows = np.flatnonzero((2 * rows + 1) * 48 % 1040 == 0)
    np.testing.assert_array_equal(mapped[tie_rows], mask[(2 * tie_rows + 1) * 48 // 1040][:, ((2 * cols + 1) * 64)
                                                                                            // 1386])


def test_a_mask_beyond_a_padded_photo_is_outside():
    mask = np.ones((40, 80), bool)
    mapped = input_mask(mask, (-20.0, 0.0, 60.0, 80.0), (8, 8), "m.png")  # 'pad': 20 rows of border each side
    np.testing.assert_array_equal(mapped.any(axis=1), [False, False, True, True, True, True, False, False])


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--task", "detection", "--label", "1"], "--task detection needs --box"),
        (["--task", "detection", "--box", "1,2,3", "--label", "1"], "--box expects four numbers x0,y0,x1,y1"),
        (["--task", "detection", "--box", "10,10,5,20", "--label", "1"], "is empty: x0,y0,x1,y1 needs x0 < x1"),
        (["--task", "detection", "--box", "1,2,30,40"], "--task detection needs --label ID"),
        (["--task", "detection", "--box", "1,2,30,40", "--box", "5,5,9,9", "--label", "1", "--label", "2",
          "--label", "3"], "2 --box and 3 --label"),
        (["--task", "detection", "--box", "1,2,30,40", "--label", "1", "--target", "top1"],
         "--target does not go with --task detection"),
        (["--task", "detection", "--box", "1,2,30,40", "--label", "1", "-o", "score_fn=toy_models:all_cats"],
         "-o score_fn=... does not go with --task"),
        (["--task", "detection", "--box", "1,2,30,40", "--label", "1", "--class", "3"],
         "--class is an option of --task segmentation"),
        (["--task", "segmentation"], "--task segmentation needs --class"),
        (["--task", "segmentation", "--class", "1", "--box", "1,2,3,4"], "--box is an option of --task detection"),
        (["--box", "1,2,30,40"], "--box is an option of --task detection: add --task detection"),
        (["--mask", "m.png"], "--mask is an option of --task segmentation"),
        (["--task", "detect"], "--task takes detection or segmentation"),
        (["--task", "segmentation", "--class", "1", "--mask", "missing.png"], "no mask image at"),
        (["--task", "detection", "--box", "1,2,30,40", "--label", "1"], "is an image classifier"),
    ],
)
def test_task_misuse_is_one_line(tmp_path, args, message):
    result = explain_cli("--sample", "cat", *args, "--out", tmp_path)
    assert result.exit_code == 2, result.output
    assert message in result.output and "Traceback" not in result.output
    assert len(result.output.strip().splitlines()) == 1, result.output


@pytest.mark.parametrize(
    ("model", "args", "message"),
    [
        ("task_models:tiny_detector", ["--task", "detection", "--box", "0,0,400,20", "--label", "1"],
         "reaches outside the 320x240 photo"),
        ("task_models:tiny_detector", ["--task", "detection", "--box", "0,0,20,20", "--label", "1"],
         "lies outside the part of the photo the model sees"),
        ("task_models:tiny_detector", ["--task", "detection", "--box", "70,30,160,120", "--label", "dog"],
         "task_models:tiny_detector has no class names, so give the class id"),
        ("task_models:tiny_detector", ["--task", "detection", "--box", "200,150,230,170", "--label", "1"],
         "no detection of label 1 overlaps box"),
        ("task_models:tiny_segmenter", ["--task", "segmentation", "--class", "1", "--mask", "{small}"],
         "the mask must have the photo's size, 320x240 pixels, and it has 10x10"),
        ("task_models:tiny_segmenter", ["--task", "segmentation", "--class", "1", "--mask", "{empty}"],
         "marks no pixel"),
        ("task_models:tiny_segmenter", ["--task", "segmentation", "--class", "7"], "class_id 7 is out of range"),
        ("task_models:tiny_segmenter", ["--task", "detection", "--box", "70,30,160,120", "--label", "1"],
         "expected a detector's output"),
    ],
)
def test_task_errors_on_a_model_are_one_line(tmp_path, photo_file, model, args, message):
    Image.fromarray(np.full((10, 10), 255, np.uint8)).save(tmp_path / "small.png")
    Image.fromarray(np.zeros((HEIGHT, WIDTH), np.uint8)).save(tmp_path / "empty.png")
    args = [a.format(small=tmp_path / "small.png", empty=tmp_path / "empty.png") for a in args]
    result = explain_cli(photo_file, "--model", model, *args, "--out", tmp_path / "out")
    assert result.exit_code == 2, result.output
    assert message in result.output and "Traceback" not in result.output
    assert len(result.output.strip().splitlines()) == 1, result.output


def test_a_detector_without_task_or_with_the_other_task_is_told_what_to_give(tmp_path, photo_file,
                                                                              detector_weights):
    common = [photo_file, "--model", f"torchvision:{DETECTOR}", "--weights", detector_weights, "--out", tmp_path]
    plain = explain_cli(*common)
    assert plain.exit_code == 2 and "is a detection model, which has no classes to explain: add --task detection" \
        in plain.output
    other = explain_cli(*common, "--task", "segmentation", "--class", "1")
    assert other.exit_code == 2
    assert f"--task segmentation does not fit torchvision:{DETECTOR}, a detection model" in other.output


def test_a_segmenter_saved_with_its_auxiliary_head_loads(tmp_path):
    """torchvision's published DeepLabV3 and FCN weights carry an auxiliary classifier, which the builders add
    only when they load those weights themselves."""
    model = torchvision.models.get_model("deeplabv3_mobilenet_v3_large", weights=None, weights_backbone=None,
                                         aux_loss=True)
    torch.save(model.state_dict(), tmp_path / "deeplab.pth")
    result = runner.invoke(app, ["layers", "--model", "torchvision:deeplabv3_mobilenet_v3_large", "--weights",
                                 str(tmp_path / "deeplab.pth"), "--input-size", "64"], env={"COLUMNS": "200"})
    assert result.exit_code == 0, result.output
    assert "aux_classifier" in result.output
    (marked,) = [line for line in result.output.splitlines() if "<- default" in line]
    assert "backbone.16 " in marked
