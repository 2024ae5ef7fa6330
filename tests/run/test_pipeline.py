"""heatlens.run.run on one machine: one row per image with the model's own predictions and Grad-CAM maps (checked
against a hand-written torch Grad-CAM), corrupt files recorded, resuming that redoes only what is missing."""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from run_photos import write_corrupt, write_photos

from heatlens.errors import HeatlensError, TargetError
from heatlens.run import Plan, run
from heatlens.run.meter import Meter
from heatlens.run.shards import read_errors, read_rows, shard_files

GRADCAM = Plan(("gradcam",))


def torch_gradcam(module: torch.nn.Module, photo: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The oracle: softmax probabilities and the top-1 Grad-CAM at module.features, by hooks and autograd."""
    x = torch.from_numpy(photo.astype(np.float32).transpose(2, 0, 1)[None].copy())
    held = {}
    handle = module.features.register_forward_hook(lambda _m, _i, out: held.update(a=out))
    try:
        logits = module(x)
    finally:
        handle.remove()
    top = int(logits.argmax())
    (grads,) = torch.autograd.grad(logits[0, top], held["a"])
    cam = torch.relu((grads.mean(dim=(2, 3), keepdim=True) * held["a"]).sum(1))[0]
    return torch.softmax(logits, 1)[0].detach().numpy(), cam.detach().numpy()


def test_each_image_gets_the_models_predictions_and_its_gradcam(tiny_network, photos: Path, tmp_path: Path) -> None:
    summary = run(tiny_network, photos, tmp_path / "out", GRADCAM, batch_size=5, shard_size=4, progress=False)
    rows = read_rows(tmp_path / "out").to_pylist()
    assert (summary.images, summary.errors) == (12, 0)
    assert len(rows) == 12 and len(shard_files(tmp_path / "out")) == 3
    maps = read_rows(tmp_path / "out")["map_gradcam"].combine_chunks().to_numpy_ndarray()
    for row, cam in zip(rows, maps, strict=True):
        photo = np.asarray(Image.open(row["path"]).convert("RGB"))
        probs, expected = torch_gradcam(tiny_network.module, photo)
        assert row["pred_ids"] == list(np.argsort(-probs)[:4])
        np.testing.assert_allclose(row["pred_probs"], np.sort(probs)[::-1][:4], rtol=1e-5)
        assert row["target_ids"] == [row["pred_ids"][0]] and row["target_names"] == [["a", "b", "c", "d"][
            row["pred_ids"][0]]]
        assert cam.dtype == np.float16 and cam.shape == (1, *expected.shape)
        np.testing.assert_allclose(cam[0].astype(np.float32), expected, rtol=2e-3, atol=1e-3 * expected.max())
        assert (row["height"], row["width"], row["crop_box"]) == (64, 64, [0.0, 0.0, 64.0, 64.0])
    manifest = json.loads((tmp_path / "out" / "run.json").read_text())
    assert manifest["complete"] and manifest["rows"] == 12 and manifest["layers"] == {"gradcam": "features"}


def test_unreadable_images_are_recorded_with_their_reason_and_the_run_goes_on(tiny_network, photos: Path,
                                                                              tmp_path: Path) -> None:
    bad = write_corrupt(photos / "broken")
    summary = run(tiny_network, photos, tmp_path / "out", GRADCAM, batch_size=4, shard_size=5, progress=False)
    assert (summary.images, summary.errors) == (12, 3)
    listed = list(csv.DictReader(io.StringIO((tmp_path / "out" / "errors.csv").read_text())))
    assert sorted(r["path"] for r in listed) == sorted(str(p) for p in bad)
    assert all("ImageError" in r["error"] and "image" in r["error"] for r in listed)
    assert [e["path"] for e in read_errors(tmp_path / "out")] == [r["path"] for r in listed]
    assert read_rows(tmp_path / "out").num_rows == 12


def test_resume_redoes_only_the_missing_shards_and_equals_a_whole_run(tiny_network, photos: Path,
                                                                      tmp_path: Path) -> None:
    write_corrupt(photos / "broken")
    whole, cut = tmp_path / "whole", tmp_path / "cut"
    run(tiny_network, photos, whole, GRADCAM, batch_size=3, shard_size=4, progress=False)
    run(tiny_network, photos, cut, GRADCAM, batch_size=3, shard_size=4, progress=False)
    first, *rest = shard_files(cut)
    kept = {path: path.stat().st_mtime_ns for path in rest[1:]}
    first.unlink()
    rest[0].unlink()
    (cut / "shards" / f".{rest[0].name}.999.tmp").write_bytes(b"half a shard")
    summary = run(tiny_network, photos, cut, GRADCAM, batch_size=3, shard_size=4, resume=True, progress=False)
    assert summary.images + summary.errors == 8 and summary.resumed == 7
    assert {path: path.stat().st_mtime_ns for path in rest[1:]} == kept
    assert not list((cut / "shards").glob("*.tmp"))
    assert read_rows(cut).equals(read_rows(whole))
    assert (cut / "errors.csv").read_text() == (whole / "errors.csv").read_text()


def test_a_run_is_never_overwritten_and_resumes_only_with_its_own_settings(tiny_network, photos: Path,
                                                                           tmp_path: Path) -> None:
    out = tmp_path / "out"
    with pytest.raises(HeatlensError, match="there is no run to resume"):
        run(tiny_network, photos, out, GRADCAM, resume=True, progress=False)
    run(tiny_network, photos, out, GRADCAM, progress=False)
    with pytest.raises(HeatlensError, match="already holds a run: pass --resume"):
        run(tiny_network, photos, out, GRADCAM, progress=False)
    with pytest.raises(HeatlensError, match="was started with plan"):
        run(tiny_network, photos, out, Plan(("gradcam_plusplus",)), resume=True, progress=False)


def test_target_label_explains_each_images_label_from_the_manifest(tiny_network, tmp_path: Path) -> None:
    paths = write_photos(tmp_path / "data", 6)
    labels = ["b", "3", "a", "c", "0", "d"]
    manifest = tmp_path / "labels.csv"
    manifest.write_text("path,label\n" + "".join(f"{p},{lab}\n" for p, lab in zip(paths, labels, strict=True)))
    run(tiny_network, manifest, tmp_path / "out", Plan(("gradcam",), target="label"), batch_size=4, progress=False)
    rows = read_rows(tmp_path / "out").to_pylist()
    assert [r["target_ids"] for r in rows] == [[1], [3], [0], [2], [0], [3]]
    assert [r["label_id"] for r in rows] == [1, 3, 0, 2, 0, 3]
    manifest.write_text(f"path,label\n{paths[0]},9\n")
    with pytest.raises(TargetError, match=r"the label '9' is no class id of TinyCNN, which has classes 0\.\.3"):
        run(tiny_network, manifest, tmp_path / "nine", Plan(("gradcam",), target="label"), progress=False)
    manifest.write_text(f"path,label\n{paths[0]},b\n{paths[1]},\n")
    with pytest.raises(TargetError, match="needs a label for every image, and 1 have none"):
        run(tiny_network, manifest, tmp_path / "again", Plan(("gradcam",), target="label"), progress=False)


def test_overlays_and_metric_scores_are_written_per_target(tiny_network, tmp_path: Path) -> None:
    write_photos(tmp_path / "data", 3)
    plan = Plan(("gradcam", "gradcam_plusplus"), target=[0, 2], metrics=("deletion",),
                metric_options={"deletion": {"steps": 4}}, overlays=True)
    run(tiny_network, tmp_path / "data", tmp_path / "out", plan, progress=False)
    table = read_rows(tmp_path / "out")
    for row in table.to_pylist():
        assert row["target_ids"] == [0, 2]
        for method in plan.methods:
            assert len(row[f"deletion_{method}"]) == 2 and np.isfinite(row[f"deletion_{method}"]).all()
            for file in row[f"overlay_{method}"]:
                with Image.open(tmp_path / "out" / file) as picture:
                    assert (picture.format, picture.size) == ("JPEG", (64, 64))
    assert table["map_gradcam_plusplus"].type.shape == [2, 32, 32]


def test_the_meter_shows_rate_and_time_left() -> None:
    stream = io.StringIO()
    meter = Meter(total=100, done=20, stream=stream)
    meter.start -= 10.0
    assert meter.status(meter.start + 10.0).startswith("20/100 images (20%)")
    meter.done = 60
    assert meter.status(meter.start + 10.0) == "60/100 images (60%), 4.0 images/s, 0:00:10 left"


def test_a_full_disk_stops_the_run_with_the_fix_and_resuming_completes_it(tiny_network, photos: Path, tmp_path: Path,
                                                                          monkeypatch) -> None:
    import pyarrow.parquet as pq

    write_table = pq.write_table
    calls = []

    def full_after_one(table, where, **kwargs):
        calls.append(where)
        if len(calls) == 2:
            raise OSError(28, "No space left on device", str(where))
        return write_table(table, where, **kwargs)

    monkeypatch.setattr(pq, "write_table", full_after_one)
    with pytest.raises(HeatlensError, match=r"No space left on device.*rerun the same command with --resume"):
        run(tiny_network, photos, tmp_path / "cut", GRADCAM, shard_size=4, progress=False)
    monkeypatch.setattr(pq, "write_table", write_table)
    assert len(shard_files(tmp_path / "cut")) == 0 and not list((tmp_path / "cut" / "shards").glob("*.tmp"))
    run(tiny_network, photos, tmp_path / "cut", GRADCAM, shard_size=4, resume=True, progress=False)
    run(tiny_network, photos, tmp_path / "whole", GRADCAM, shard_size=4, progress=False)
    assert read_rows(tmp_path / "cut").equals(read_rows(tmp_path / "whole"))


class NanOnWhiteCorner(torch.nn.Module):
    """TinyCNN whose scores are NaN for an image with a white top-left pixel: one image the model cannot score."""

    def __init__(self) -> None:
        super().__init__()
        torch.manual_seed(0)
        from toy_models import TinyCNN

        self.features = TinyCNN().features
        self.head = torch.nn.Linear(8, 4)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        scores = self.head(self.features(x).mean(dim=(2, 3)))
        white = (x[:, :, 0, 0] == 255).all(dim=1, keepdim=True)
        return torch.where(white, torch.full_like(scores, float("nan")), scores)


def test_an_image_the_model_cannot_explain_is_recorded_and_a_wrong_setting_stops_the_run(tmp_path: Path) -> None:
    import heatlens

    network = heatlens.wrap(NanOnWhiteCorner(), preprocess=None)
    paths = write_photos(tmp_path / "data", 8)
    for bad in (paths[0], paths[4]):  # the first images of the first and of the second batch
        photo = np.asarray(Image.open(bad).convert("RGB")).copy()
        photo[0, 0] = 255
        Image.fromarray(photo).save(bad)
    summary = run(network, tmp_path / "data", tmp_path / "out", GRADCAM, batch_size=4, progress=False)
    assert (summary.images, summary.errors) == (6, 2)
    failed = read_errors(tmp_path / "out")
    assert [f["path"] for f in failed] == [str(paths[0]), str(paths[4])] and all("NaN" in f["error"] for f in failed)
    with pytest.raises(HeatlensError, match="unknown layer 'nope'"):
        run(network, tmp_path / "data", tmp_path / "again", Plan(("gradcam",), layer="nope"), progress=False)
