"""Regions in photo pixels land on the right model-input pixels (the default model's centre crop, a predict
function's photo as given, a padded fit), and the boxes CSV is read with clear errors for malformed files."""

from __future__ import annotations

import numpy as np
import pytest

import heatlens
from heatlens import metrics
from heatlens.errors import HeatlensError, MethodError
from heatlens.explanation import Explanation
from heatlens.metrics import localisation
from heatlens.metrics.regions import boxes_for, read_boxes, regions_on_grid
from heatlens.targets import resolve


def crop_geometry(height: int, width: int, resize: int, crop: int) -> tuple[float, float, int, int]:
    """The paper-style centre crop, by hand: (photo pixels per model pixel down, across, crop top, crop left) in
    the resized photo (short side to `resize`)."""
    scale = resize / min(height, width)
    rh, rw = max(crop, round(height * scale)), max(crop, round(width * scale))
    return height / rh, width / rw, (rh - crop) // 2, (rw - crop) // 2


def photo_box_of(rows: tuple[int, int], cols: tuple[int, int], geometry) -> tuple[float, float, float, float]:
    """The photo box (x_min, y_min, x_max, y_max) whose edges are the edges of model-input rows/cols."""
    sy, sx, top, left = geometry
    return ((cols[0] + left) * sx, (rows[0] + top) * sy, (cols[1] + left) * sx, (rows[1] + top) * sy)


def grid_explanation(network, photo: np.ndarray, maps: np.ndarray) -> Explanation:
    """An Explanation of one photo whose maps (1, 1, h, w) lie on the model-input grid."""
    targets = resolve([[0]], np.zeros((1, 1000), np.float32), None)
    return Explanation(maps=maps.astype(np.float32), targets=targets, method="gradcam", model=network.name,
                       input_box=network.input_box(*photo.shape[:2]), _images=photo[None])


def test_a_box_lands_on_its_pixels_through_the_default_models_centre_crop(lite0, cat):
    geometry = crop_geometry(*cat.shape[:2], lite0.preprocess.resize, lite0.preprocess.crop)
    box = photo_box_of((40, 100), (60, 150), geometry)
    expected = np.zeros((224, 224), bool)
    expected[40:100, 60:150] = True
    got = regions_on_grid([box], 1, cat.shape[:2], lite0.input_box(*cat.shape[:2]), (224, 224))
    np.testing.assert_array_equal(got.masks[0], expected)
    assert got.notes == []
    explanation = grid_explanation(lite0, cat, expected[None, None] + 0.0)
    for name in ("pointing_game", "energy_pointing_game", "relevance_mass", "relevance_rank"):
        assert metrics.compute(name, lite0, None, explanation, region=box).scores[0, 0] == pytest.approx(1.0)
    shifted = photo_box_of((40, 100), (61, 151), geometry)
    mass = localisation.relevance_mass(lite0, None, explanation, region=shifted).scores[0, 0]
    assert mass == pytest.approx(89 / 90)


def test_a_mask_at_the_photos_resolution_lands_where_its_box_does(lite0, cat):
    box = (120, 50, 300, 200)
    mask = np.zeros(cat.shape[:2], bool)
    mask[50:200, 120:300] = True
    photo_box = lite0.input_box(*cat.shape[:2])
    from_box = regions_on_grid(box, 1, cat.shape[:2], photo_box, (224, 224))
    from_mask = regions_on_grid(mask, 1, cat.shape[:2], photo_box, (224, 224))
    np.testing.assert_array_equal(from_box.masks, from_mask.masks)
    assert from_mask.kind == "masks" and from_box.kind == "boxes"
    sy, sx, top, left = crop_geometry(*cat.shape[:2], 256, 224)
    centre_y = ((np.arange(224) + top + 0.5) * sy)
    centre_x = ((np.arange(224) + left + 0.5) * sx)
    expected = ((centre_y >= 50) & (centre_y < 200))[:, None] & ((centre_x >= 120) & (centre_x < 300))[None]
    np.testing.assert_array_equal(from_box.masks[0], expected)


def test_a_box_outside_the_seen_crop_is_refused_and_one_across_its_edge_warned(lite0, cat):
    seen_left = lite0.input_box(*cat.shape[:2])[1]
    assert seen_left > 60  # the landscape photo's sides are cropped away
    with pytest.raises(MethodError, match="lies outside the part of the photo the model sees"):
        localisation.pointing_game(lite0, None, grid_explanation(lite0, cat, np.ones((1, 1, 224, 224))),
                              region=(0, 100, 60, 200))
    with pytest.warns(UserWarning, match="lies outside the part of the photo the model sees"):
        result = localisation.relevance_mass(lite0, None, grid_explanation(lite0, cat, np.ones((1, 1, 224, 224))),
                                        region=(seen_left - 40, 100, seen_left + 40, 200))
    assert any("50% of the region of image 0" in note for note in result.notes)


def test_a_predict_function_sees_the_photo_as_given_so_boxes_are_its_pixels():
    def predict(images: np.ndarray) -> np.ndarray:
        return np.stack([images.mean(axis=(1, 2, 3)), -images.mean(axis=(1, 2, 3))], axis=1)

    network = heatlens.wrap(predict)
    photo = np.random.default_rng(0).integers(0, 255, (40, 60, 3), dtype=np.uint8)
    explanation = heatlens.explain(network, photo, "occlusion", target=0, window=10, progress=False)
    expected = np.zeros((40, 60), bool)
    expected[5:17, 30:51] = True
    got = regions_on_grid((30, 5, 51, 17), 1, (40, 60), explanation.input_box, (40, 60))
    np.testing.assert_array_equal(got.masks[0], expected)
    explanation.maps = expected[None, None].astype(np.float32)
    result = localisation.relevance_rank(network, None, explanation, region=(30, 5, 51, 17))
    assert result.scores[0, 0] == 1.0
    assert result.curves["chance"][0] == pytest.approx(expected.mean())


def test_a_padded_fit_never_counts_the_border_as_the_object(lite0, cat):
    padded = heatlens.wrap(lite0, fit="pad")
    box = padded.input_box(*cat.shape[:2])
    whole = regions_on_grid((0, 0, cat.shape[1], cat.shape[0]), 1, cat.shape[:2], box, (224, 224)).masks[0]
    rows = np.nonzero(whole.any(axis=1))[0]
    assert whole.all(axis=0).sum() == 0 and whole.any(axis=0).all()  # every column, not every row
    height = round(cat.shape[0] * 224 / cat.shape[1])
    assert (rows[0], rows[-1] + 1) == ((224 - height) // 2, (224 - height) // 2 + height)


def test_boxes_of_one_image_make_their_union_and_a_tiny_box_keeps_one_pixel():
    union = regions_on_grid([(0, 0, 4, 4), (2, 2, 6, 6)], 1, (8, 8), None, (8, 8)).masks[0]
    assert union.sum() == 16 + 16 - 4
    tiny = regions_on_grid((10.2, 20.1, 10.4, 20.3), 1, (100, 100), None, (10, 10)).masks[0]
    assert tiny.sum() == 1 and tiny[2, 1]
    per_image = regions_on_grid(np.array([(0, 0, 2, 2), (4, 4, 8, 8)]), 2, (8, 8), None, (8, 8)).masks
    assert per_image[0].sum() == 4 and per_image[1].sum() == 16


@pytest.mark.parametrize(("region", "message"), [
    (None, "this metric needs region="),
    ([(5, 0, 2, 4), (0, 0, 1, 1)], "with x_min < x_max and y_min < y_max"),
    ([(0, 0, 1, 1), (0, 0, 9, 4)], "the box of image 1 .* reaches outside its photo of 8 x 6 pixels"),
    ((0, 0, 1, 1), "needs one region per image: 2 image"),
    ([(0, 0, 2, 2), (0, 0, 2, 2), (0, 0, 2, 2)], "needs one region per image: 2 image"),
    ([np.zeros((6, 8), bool), np.ones((6, 8), bool)], "the mask of image 0 is empty"),
    ([np.ones((4, 8), bool), np.ones((6, 8), bool)], "must have its photo's size 6 x 8"),
    ([np.full((6, 8), 0.5), np.ones((6, 8))], "must be boolean"),
    (["left", "right"], "the region of image 0 must be a box"),
])
def test_malformed_regions_get_a_clear_error(region, message):
    with pytest.raises(MethodError, match=message):
        regions_on_grid(region, 2, (6, 8), None, (6, 8))


def test_the_boxes_csv_gives_each_image_its_boxes(tmp_path):
    path = tmp_path / "boxes.csv"
    path.write_text("\ufeffimage,label,x_min,y_min,x_max,y_max\nphotos/cat.jpg,cat,1,2,30,40\n"
                    "photos/cat.jpg,cat,50,60,70,80\n\ndog.png,dog,0,0,5.5,6\n", encoding="utf-8")
    table = read_boxes(path)
    np.testing.assert_array_equal(table["photos/cat.jpg"], [[1, 2, 30, 40], [50, 60, 70, 80]])
    found = boxes_for(table, ["/data/cat.jpg", "dog.png"])
    np.testing.assert_array_equal(found[1], [[0, 0, 5.5, 6]])
    assert len(found[0]) == 2
    with pytest.raises(HeatlensError, match=r"the boxes file has no row for image 'bird\.jpg'"):
        boxes_for(table, ["bird.jpg"])


@pytest.mark.parametrize(("text", "message"), [
    ("image,x0,y0,x1,y1\na.jpg,1,2,3,4\n", "has no column x_min, y_min, x_max, y_max"),
    ("", "has no column image"),
    ("image,x_min,y_min,x_max,y_max\n", "has a header but no boxes"),
    ("image,x_min,y_min,x_max,y_max\na.jpg,1,2,three,4\n", "line 2 of the boxes file"),
    ("image,x_min,y_min,x_max,y_max\na.jpg,1,2,3\n", "must hold four numbers"),
    ("image,x_min,y_min,x_max,y_max\n,1,2,3,4\n", "line 2 of the boxes file .* names no image"),
    ("image,x_min,y_min,x_max,y_max\na.jpg,1,2,3,4\na.jpg,5,2,3,4\n", "the box on line 3 of"),
])
def test_a_malformed_boxes_csv_says_which_line_and_why(tmp_path, text, message):
    path = tmp_path / "boxes.csv"
    path.write_text(text, encoding="utf-8")
    with pytest.raises(HeatlensError, match=message):
        read_boxes(path)


def test_a_missing_or_unreadable_boxes_file_is_named(tmp_path):
    with pytest.raises(HeatlensError, match="no boxes file at"):
        read_boxes(tmp_path / "nothing.csv")
    binary = tmp_path / "boxes.csv"
    binary.write_bytes(b"\xff\xfe\xfa image")
    with pytest.raises(HeatlensError, match="cannot read the boxes file"):
        read_boxes(binary)
