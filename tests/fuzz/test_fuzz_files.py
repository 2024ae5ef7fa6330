"""The image-file fuzz campaign: generated and mutated files through heatlens.load_image, heatlens.explain and
the `heatlens explain` command (typer's CliRunner), classified like the explain() campaign.

Every PIL mode in every format Pillow writes, EXIF orientations, 16-bit greys, bombs, huge text and ICC
chunks, huge and thin images, non-images and odd paths are read as they are; hypothesis then truncates,
flips, renames and splices them (seeded). A reading that succeeds must give (H, W, 3) uint8 of the right
size and, where the file has one right answer, the right pixels; the last tests assert no bad outcome.
"""

from __future__ import annotations

import json
import time
import warnings
from pathlib import Path
from typing import Any

import fuzz_files as ff
import numpy as np
import pytest
from fuzz_ledger import LEDGER, SCALE, Case, campaign, time_limit
from fuzz_models import first_difference, global_state, torch_state
from hypothesis import assume
from hypothesis import strategies as st

import heatlens

torch = pytest.importorskip("torch")

from toy_models import TinyCNN
from typer.testing import CliRunner

from heatlens.cli import app
from heatlens.preprocess import ResizeCrop

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")  # Pillow's IM plugin, on reading
CAMPAIGN = ff.CAMPAIGN
MUTATED, EXPLAINED, COMMANDS = 1500 * SCALE, 300 * SCALE, 60 * SCALE
METHODS = {  # cheap settings: the files, not the methods, are under test here
    "gradcam": {}, "saliency": {}, "eigencam": {}, "occlusion": {"window": 4, "stride": 4, "batch_size": 16},
    "rise": {"n_masks": 4, "cells": 3, "batch_size": 4}, "lime": {"num_samples": 6, "segmentation": "slic"},
}
runner = CliRunner()
STATE: dict[str, Any] = {}


@pytest.fixture(scope="module")
def corpus(tmp_path_factory) -> dict[str, Any]:
    """The generated files, built once; the campaign runs the first time a test asks for it."""
    if "corpus" not in STATE:
        folder = tmp_path_factory.mktemp("fuzz-files")
        rng = np.random.default_rng(12)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            STATE["corpus"] = _build_corpus(folder, rng)
    return STATE["corpus"]


def _build_corpus(folder: Path, rng: np.random.Generator) -> dict[str, Any]:
    return {
        "folder": folder,
        "saved": ff.saved_files(folder, rng),
        "exif": ff.exif_files(folder, rng),
        "sixteen": ff.sixteen_bit_files(folder),
        "crafted": ff.crafted_files(folder),
        "pil": ff.pil_images(rng),
    }


@pytest.fixture(scope="module", autouse=True)
def one_torch_thread():
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


# ---------------------------------------------------------------- load_image

def base_files(corpus: dict[str, Any]) -> list[ff.ImageFile]:
    return corpus["saved"] + corpus["exif"] + corpus["sixteen"] + corpus["crafted"]


def run_loads(corpus: dict[str, Any]) -> None:
    for item in base_files(corpus):
        kind = item.path.suffix.lstrip(".") or "none"
        LEDGER.add(ff.load_case("load / generated file", kind, item.path, f"load_image({item.label!r} file)", item))
    for label, image in corpus["pil"]:
        LEDGER.add(ff.load_case("load / PIL image", label.split()[1], image, f"load_image({label})"))


def run_mutations(corpus: dict[str, Any]) -> None:
    sources = [f for f in corpus["saved"] + corpus["exif"] + corpus["sixteen"] if f.path.stat().st_size < 1 << 20]
    folder: Path = corpus["folder"] / "mutated"
    folder.mkdir(exist_ok=True)
    seen: set[str] = set()

    @campaign("files: mutations", MUTATED)
    def cases(data: st.DataObject) -> None:
        base = data.draw(st.sampled_from(sources), label="file")
        how = data.draw(st.sampled_from(ff.MUTATIONS), label="mutation")
        rng = np.random.default_rng(data.draw(st.integers(0, 2**32 - 1), label="numpy seed"))
        blob, label, ext = ff.mutate(base.path.read_bytes(), how, rng)
        repro = f"load_image({base.label!r} file, {label})"
        assume(repro not in seen)
        path = folder / f"{len(seen)}{'.' + ext if ext else base.path.suffix}"
        path.write_bytes(blob)
        expect = ff.ImageFile(path, label, base.size if how in ("wrong extension", "append garbage") else None)
        LEDGER.add(ff.load_case("load / mutated file", how, path, repro, expect))
        seen.add(repro)

    cases()


# ---------------------------------------------------------------- explain() on files

def explain_network() -> Any:
    if "network" not in STATE:
        torch.manual_seed(0)
        STATE["model"] = TinyCNN().eval()
        STATE["network"] = heatlens.wrap(STATE["model"], preprocess=ResizeCrop(resize=18, crop=16))
    return STATE["network"]


def explain_case(path: Path, repro: str, method: str, kind: str) -> Case:
    case = Case(CAMPAIGN, "explain / file", repro, adapter=kind)
    network, model = explain_network(), STATE["model"]
    before, kept, kept_global = ff.digest(path), torch_state(model), global_state()
    result = None
    try:
        with warnings.catch_warnings(), time_limit(ff.LIMIT_S):
            warnings.simplefilter("ignore")
            result = heatlens.explain(network, path, method=method, target="top1", **METHODS[method])
    except KeyboardInterrupt:
        raise
    except BaseException as exc:  # classifying every ending is the point
        case.ended_with(exc)
    if result is not None:
        maps = result.maps
        if not np.isfinite(maps).all() or not np.isfinite(result.logits).all():
            case.flag("nonfinite", "maps or logits hold NaN or inf")
        try:
            decoded = heatlens.load_image(path)
        except heatlens.HeatlensError as exc:
            case.flag("wrong_answer", f"explain() read a file load_image refuses ({exc})")
        else:
            if maps.shape != (1, 1, *decoded.shape[:2]):
                case.flag("wrong_shape", f"maps {maps.shape} for a {decoded.shape[:2]} image")
    if first_difference(kept, torch_state(model)) or first_difference(kept_global, global_state()):
        case.flag("model_changed", first_difference(kept, torch_state(model))
                  or first_difference(kept_global, global_state()) or "")
        STATE.pop("network")
    if ff.digest(path) != before:
        case.flag("input_changed", "the file changed")
    return case


def drawn_file(data: st.DataObject, base: Any, stem: Path) -> tuple[Path, str, str]:
    """(path, label, kind) of a corpus file as made, or of a mutated copy written next to `stem`."""
    if not (base.path.is_file() and data.draw(st.booleans(), label="mutate")):
        return base.path, base.label, "as made"
    kind = data.draw(st.sampled_from(ff.MUTATIONS), label="mutation")
    rng = np.random.default_rng(data.draw(st.integers(0, 2**32 - 1), label="numpy seed"))
    blob, how, ext = ff.mutate(base.path.read_bytes(), kind, rng)
    path = stem.with_name(f"{stem.name}{'.' + ext if ext else base.path.suffix}")
    path.write_bytes(blob)
    return path, f"{base.label}, {how}", kind


def explainable_files(corpus: dict[str, Any]) -> list:
    """The readable corpus files small enough to explain many times (not the 6000-pixel-wide ones)."""
    return [f for f in base_files(corpus) if not f.must_refuse and "6000" not in f.label]


def run_explains(corpus: dict[str, Any]) -> None:
    sources = explainable_files(corpus)
    folder: Path = corpus["folder"] / "explained"
    folder.mkdir(exist_ok=True)
    seen: set[str] = set()

    @campaign("files: explain", EXPLAINED)
    def cases(data: st.DataObject) -> None:
        base = data.draw(st.sampled_from(sources), label="file")
        method = data.draw(st.sampled_from(sorted(METHODS)), label="method")
        path, label, kind = drawn_file(data, base, folder / str(len(seen)))
        repro = f"explain(tiny torch, {label!r} file, method={method!r}, {METHODS[method]})"
        assume(repro not in seen)
        LEDGER.add(explain_case(path, repro, method, kind))
        seen.add(repro)

    cases()


# ---------------------------------------------------------------- the command line

def command_case(args: list[str], repro: str, kind: str, group: str = "cli / file",
                 expect_ok: bool = False, check: Any = None) -> Case:
    """`heatlens explain ...`: exit 0 with a manifest, or exit 2 with one `error:` line and no traceback."""
    case = Case(CAMPAIGN, group, repro, adapter=kind)
    with warnings.catch_warnings(), time_limit(ff.LIMIT_S):
        warnings.simplefilter("ignore")
        result = runner.invoke(app, args)
    errors = [line for line in (result.stderr or "").splitlines() if line.startswith("error:")]
    text = (result.stderr or "") + (result.output or "")
    if result.exception is not None and not isinstance(result.exception, SystemExit):
        case.ended_with(result.exception)
    elif result.exit_code == 0:
        case.ending = "ok"
    elif result.exit_code == 2 and len(errors) == 1 and "Traceback" not in text:
        case.ending, case.message = "typed", errors[0][:300]
    else:
        case.ending = "untyped"
        case.message = f"exit {result.exit_code}: " + (errors[0] if errors else text.strip()[-200:])
        case.flag("untyped", case.message)
    if expect_ok and case.ending == "typed":
        case.flag("refused", case.message)
    if check is not None and case.ending == "ok":
        problem = check()
        if problem:
            case.flag("wrong_answer", problem)
    return case


def _manifest_problem(out: Path, images: int, failed: int | None = None) -> str | None:
    manifest = out / "manifest.json"
    if not manifest.is_file():
        return "exit 0 without a manifest.json"
    data = json.loads(manifest.read_text())
    entries = data.get("images", [])
    overlays = [t.get("overlay") for e in entries for t in e.get("targets", [])]
    if len(entries) != images:
        return f"manifest lists {len(entries)} images, expected {images}"
    if len(set(overlays)) != len(overlays) or not all((out / o).is_file() for o in overlays if o):
        return f"overlays missing or shared: {overlays}"
    if failed is not None and len(data.get("failed", [])) != failed:
        return f"manifest lists {len(data.get('failed', []))} failed files, expected {failed}"
    return None


MODEL = ["--model", "toy_models:tiny_cnn"]


def run_commands(corpus: dict[str, Any]) -> None:
    sources = explainable_files(corpus)
    folder: Path = corpus["folder"] / "cli"
    folder.mkdir(exist_ok=True)
    seen: set[str] = set()

    @campaign("files: cli", COMMANDS)
    def cases(data: st.DataObject) -> None:
        base = data.draw(st.sampled_from(sources), label="file")
        path, label, kind = drawn_file(data, base, folder / str(len(seen)))
        repro = f"heatlens explain <{label} file> --model toy_models:tiny_cnn"
        assume(repro not in seen)
        out = folder / f"out-{len(seen)}"
        LEDGER.add(command_case(["explain", str(path), *MODEL, "--out", str(out)], repro, kind,
                                check=lambda: _manifest_problem(out, 1)))
        seen.add(repro)

    cases()
    run_special_commands(corpus)


def run_special_commands(corpus: dict[str, Any]) -> None:
    """Folder runs, output and class files, factories, and bad option texts, each with a known right end."""
    root: Path = corpus["folder"] / "special"
    root.mkdir(exist_ok=True)
    good = ff._png_bytes(np.random.default_rng(3).integers(0, 256, (30, 20, 3), dtype=np.uint8))
    mixed = root / "mixed"
    mixed.mkdir()
    (mixed / "good.png").write_bytes(good)
    (mixed / "._good.png").write_bytes(b"\0\5\26\7" + bytes(200))  # a macOS AppleDouble file
    (mixed / ".hidden.png").write_bytes(b"junk")
    (mixed / "bad.png").write_bytes(good[: len(good) // 2])
    collide = root / "collide"
    collide.mkdir()
    for name in ("a.jpg", "a.png", "a-2.jpg", "A.PNG"):
        (collide / name).write_bytes(good)
    nested = root / "nested"
    (nested / "sub").mkdir(parents=True)
    (nested / "sub" / "x.png").write_bytes(good)
    (root / "classes.bin").write_bytes(bytes(range(256)) * 4)
    (root / "three.txt").write_text("a\nb\nc\n")
    (root / "an-existing-file").write_text("not a folder")
    photo = root / "photo.png"
    photo.write_bytes(good)
    crafted = {f.path.name: f.path for f in corpus["crafted"]}
    out = lambda name: str(root / f"out-{name}")  # noqa: E731 - a local shorthand

    specials: list[tuple[str, list[str], bool, Any]] = [
        ("folder with AppleDouble, hidden and corrupt files", [str(mixed), *MODEL, "--out", out("mixed")], True,
         lambda: _manifest_problem(root / "out-mixed", 1, failed=1)),
        ("folder whose stems collide", [str(collide), *MODEL, "--out", out("collide")], True,
         lambda: _manifest_problem(root / "out-collide", 4)),
        ("--recursive into a sub-folder", [str(nested), "--recursive", *MODEL, "--out", out("nested")], True,
         lambda: _manifest_problem(root / "out-nested", 1)),
        ("a folder with only a sub-folder", [str(nested), *MODEL, "--out", out("nested-flat")], False, None),
        ("--out is an existing file", [str(photo), *MODEL, "--out", str(root / "an-existing-file")], False, None),
        ("--classes is a binary file", [str(photo), *MODEL, "--classes", str(root / "classes.bin"),
                                        "--out", out("c1")], False, None),
        ("--classes is a folder", [str(photo), *MODEL, "--classes", str(root), "--out", out("c2")], False, None),
        ("--classes has 3 names for 4 outputs", [str(photo), *MODEL, "--classes", str(root / "three.txt"),
                                                 "--out", out("c3")], False, None),
        ("a factory that needs arguments", [str(photo), "--model", "toy_models:count_hooks", "--out", out("f1")],
         False, None),
        ("a factory that does not exist", [str(photo), "--model", "toy_models:nope", "--out", out("f2")], False,
         None),
        ("a module that does not exist", [str(photo), "--model", "no_such_module:f", "--out", out("f3")], False,
         None),
        ("--target ²", [str(photo), *MODEL, "--target", "²", "--out", out("t1")], False, None),
        ("--target top0", [str(photo), *MODEL, "--target", "top0", "--out", out("t2")], False, None),
        ("--target 1.7", [str(photo), *MODEL, "--target", "1.7", "--out", out("t3")], False, None),
        ("--target ,", [str(photo), *MODEL, "--target", ",", "--out", out("t4")], False, None),
        ("--target 2**32+1", [str(photo), *MODEL, "--target", str(2**32 + 1), "--out", out("t5")], False, None),
        ("-o window=2.5", [str(photo), *MODEL, "--method", "occlusion", "-o", "window=2.5", "--out", out("o1")],
         False, None),
        ("-o seed=-1", [str(photo), *MODEL, "--method", "rise", "-o", "seed=-1", "--out", out("o2")], False, None),
        ("-o nope", [str(photo), *MODEL, "-o", "nope", "--out", out("o3")], False, None),
        ("-o n_masks=2.5", [str(photo), *MODEL, "--method", "rise", "-o", "n_masks=2.5", "--out", out("o4")],
         False, None),
        ("--layer nope", [str(photo), *MODEL, "--layer", "nope", "--out", out("l1")], False, None),
        ("--layer with a trailing comma", [str(photo), *MODEL, "--layer", "features,", "--out", out("l2")], False,
         None),
        ("--method nope", [str(photo), *MODEL, "--method", "nope", "--out", out("m1")], False, None),
        ("a 6000 x 6000 PNG", [str(crafted["huge-6000.png"]), *MODEL, "--out", out("huge")], True,
         lambda: _manifest_problem(root / "out-huge", 1)),
        ("a 1 x 20000 PNG with rise", [str(crafted["thin-1x20000.png"]), *MODEL, "--method", "rise", "-o",
                                       "n_masks=8", "--out", out("thin")], True,
         lambda: _manifest_problem(root / "out-thin", 1)),
        ("a PNG with a 16 MB zTXt chunk", [str(crafted["ztxt-16mb.png"]), *MODEL, "--out", out("z")], False, None),
        ("a PNG with a 64 MB ICC profile", [str(crafted["icc-64mb.png"]), *MODEL, "--out", out("icc")], False,
         None),
        ("a PNG bomb", [str(crafted["bomb-20000.png"]), *MODEL, "--out", out("bomb")], False, None),
        ("a corrupt GIF", [str(crafted["gif-screen-bomb.gif"]), *MODEL, "--out", out("gif")], False, None),
        ("a zero-byte file", [str(crafted["empty.png"]), *MODEL, "--out", out("empty")], False, None),
    ]
    for label, args, expect_ok, check in specials:
        LEDGER.add(command_case(["explain", *args], f"heatlens explain: {label}", label, "cli / special",
                                expect_ok, check))


# ---------------------------------------------------------------- the campaign

def run_campaign(corpus: dict[str, Any]) -> None:
    if STATE.get("ran"):
        return
    STATE["ran"] = True
    started = time.perf_counter()
    run_loads(corpus)
    run_mutations(corpus)
    run_explains(corpus)
    run_commands(corpus)
    LEDGER.seconds[CAMPAIGN] += time.perf_counter() - started


@pytest.mark.parametrize("group", ["load / generated file", "load / PIL image", "load / mutated file",
                                   "explain / file", "cli / file", "cli / special"])
def test_group_ran_and_some_cases_succeeded(corpus, group):
    run_campaign(corpus)
    cases = [c for c in LEDGER.cases[CAMPAIGN] if c.group == group]
    assert len(cases) >= 20, f"only {len(cases)} {group} cases"
    assert any(c.ending == "ok" for c in cases), f"no {group} case ended ok"
    if group != "load / PIL image":
        assert any(c.ending == "typed" for c in cases), f"no {group} case was refused: the corpus has no bad files?"


@pytest.mark.parametrize("outcome", ["untyped", "timeout", "nonfinite", "wrong_shape", "wrong_answer",
                                     "model_changed", "input_changed", "refused"])
def test_no_file_case_ends(corpus, outcome):
    run_campaign(corpus)
    assert LEDGER.cases[CAMPAIGN], "no file case ran"
    assert not LEDGER.with_flag(CAMPAIGN, outcome), LEDGER.failure_message(CAMPAIGN, outcome)
