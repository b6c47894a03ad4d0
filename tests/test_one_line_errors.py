"""Every bad input of issue 14's list, through the installed command: one ``error: ...`` line
naming the file, key or value, exit code 2, and nothing half-written (a new output is not
created; an existing run folder is left byte for byte as it was)."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path
from typing import Callable, Dict, List, NamedTuple, Optional

import numpy as np
import pytest
import torch

from ocrloc.cli import main

TINY = ["data.preset=single", "data.rule=seed37", "data.val_count=4", "data.num_workers=0",
        "model.backbone=test_resnet", "model.fpn_channels=8", "model.head_channels=8", "train.batch_size=2",
        "train.log_every=1", "train.val_every=2", "train.steps=2", "optim.warmup_steps=1"]


def sets(*values: str) -> List[str]:
    return [a for v in values for a in ("--set", v)]


class Case(NamedTuple):
    argv: List[str]
    message: str                      # what the one line must say
    new: Optional[Path] = None        # an output that must not exist afterwards
    kept: Optional[Path] = None       # a folder that must be unchanged, byte for byte


class Inputs(NamedTuple):
    run: Path      # a finished tiny run
    split: Path    # a COCO folder (images/ + annotations.json) of the canvases the run trains on


@pytest.fixture(scope="module")
def inputs(tmp_path_factory, pools) -> Inputs:
    root = tmp_path_factory.mktemp("one_line")
    assert main(["train", "--out", str(root / "run"), "--no-progress", *sets(*TINY)]) == 0
    assert main(["make-dataset", "--preset", "single", "--rule", "seed37", "--split", "val", "--count", "4",
                 "--out", str(root / "split")]) == 0
    return Inputs(root / "run", root / "split")


def snapshot(folder: Path) -> Dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


# -- how each bad input is made -------------------------------------------------------------------


def _copy_run(inputs: Inputs, tmp: Path, last: Optional[Callable[[Path], None]] = None) -> Path:
    run = tmp / "run"
    shutil.copytree(inputs.run, run)
    if last is not None:
        last(run / "checkpoints" / "last.pt")
    return run


def _truncated(path: Path) -> None:
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])


def _empty(path: Path) -> None:
    path.write_bytes(b"")


def _random(path: Path) -> None:
    path.write_bytes(np.random.default_rng(0).integers(0, 256, 4096, dtype=np.uint8).tobytes())


class _RunsCode:
    def __reduce__(self):
        return (os.system, ("touch /tmp/ocrloc-crafted-checkpoint-ran",))


def _crafted(path: Path) -> None:
    torch.save({"model": {}, "config": {}, "payload": _RunsCode()}, path)


BAD_FILES = {"truncated": (_truncated, "truncated or corrupt"), "zero_byte": (_empty, "the file is empty, 0 bytes"),
             "random": (_random, "truncated or corrupt"), "crafted": (_crafted, "refused: the file holds Python objects")}


def _edit_split(inputs: Inputs, tmp: Path, edit: Callable[[dict, Path], None]) -> Path:
    folder = tmp / "split"
    shutil.copytree(inputs.split, folder)
    coco = json.loads((folder / "annotations.json").read_text())
    edit(coco, folder)
    (folder / "annotations.json").write_text(json.dumps(coco))
    return folder


def _train_on(inputs: Inputs, tmp: Path, edit: Callable[[dict, Path], None], message: str) -> Case:
    folder = _edit_split(inputs, tmp, edit)
    argv = ["train", "--out", str(tmp / "new"), "--no-progress",
            *sets(*TINY, f"data.train_path={folder}", f"data.val_path={folder}")]
    return Case(argv, message, new=tmp / "new")


def _train(tmp: Path, *values: str, message: str) -> Case:
    return Case(["train", "--out", str(tmp / "new"), "--no-progress", *sets(*TINY, *values)], message, new=tmp / "new")


def _resume(inputs: Inputs, tmp: Path, *values: str, last=None, message: str) -> Case:
    run = _copy_run(inputs, tmp, last)
    return Case(["train", "--out", str(run), "--resume", "--no-progress", *sets(*values)], message, kept=run)


def _blocker(tmp: Path) -> Path:
    blocker = tmp / "a_file"
    blocker.write_text("a file where a folder should be")
    return blocker


def _results(inputs: Inputs, tmp: Path, change: Dict) -> Case:
    gt = json.loads((inputs.split / "annotations.json").read_text())
    ann = gt["annotations"][0]
    result = {"image_id": ann["image_id"], "category_id": ann["category_id"], "keypoints": ann["keypoints"],
              "score": 0.9, **change}
    path = tmp / "results.json"
    path.write_text(json.dumps([result]))  # a NaN score is written as NaN, as Python's json does
    return Case(["evaluate", "--gt", str(inputs.split / "annotations.json"), "--results", str(path)],
                str(path))


def _drop_bbox(coco: dict, folder: Path) -> None:
    del coco["annotations"][1]["bbox"]


def _box_outside(coco: dict, folder: Path) -> None:
    coco["annotations"][1]["bbox"][0] = 500.0


def _corrupt_png(coco: dict, folder: Path) -> None:
    (folder / coco["images"][0]["file_name"]).write_bytes(b"\x89PNG\r\n\x1a\n" + b"garbage" * 20)


def _drop_file_name(coco: dict, folder: Path) -> None:
    del coco["images"][0]["file_name"]


def _unlisted(coco: dict, folder: Path) -> None:
    coco["images"] = coco["images"][1:]
    coco["annotations"] = [a for a in coco["annotations"] if a["image_id"] != 1]


CASES: Dict[str, Callable[[Inputs, Path], Case]] = {
    # train: the config, checked before anything is written
    "train.steps<=0": lambda i, t: _train(t, "train.steps=0", message="train.steps = 0 must be > 0"),
    "train.batch_size<=0": lambda i, t: _train(t, "train.batch_size=0", message="train.batch_size = 0 must be > 0"),
    "train.val_every<=0": lambda i, t: _train(t, "train.val_every=0", message="train.val_every = 0 must be > 0"),
    "train.log_every<=0": lambda i, t: _train(t, "train.log_every=-1", message="train.log_every = -1 must be > 0"),
    "data.val_count<=0": lambda i, t: _train(t, "data.val_count=0", message="data.val_count = 0 must be > 0"),
    "negative seed": lambda i, t: _train(t, "data.train_seed=-3", message="data.train_seed = -3 must be >= 0"),
    "unknown backbone": lambda i, t: _train(t, "model.backbone=nosuchnet", message="unknown timm model 'nosuchnet'"),
    "unknown model type": lambda i, t: _train(t, "model.type=yolo", message="model.type = 'yolo' is not one of"),
    "unknown rule": lambda i, t: _train(t, "data.rule=nosuch", message="unknown rule 'nosuch'"),
    "unknown preset": lambda i, t: _train(t, "data.preset=nosuch", message="data.preset = 'nosuch' is not one of"),
    "data root without MNIST": lambda i, t: _train(t, f"data.data_root={t}", message=f"MNIST not found in the data "
                                                   f"root {t} given by --data-root / data.data_root"),
    "out under a file": lambda i, t: Case(["train", "--out", str(_blocker(t) / "run"), "--no-progress",
                                           *sets(*TINY)], "Not a directory", new=t / "a_file" / "run"),
    # train: the data
    "annotation without bbox": lambda i, t: _train_on(i, t, _drop_bbox, "annotations[1]: missing 'bbox'"),
    "box outside its image": lambda i, t: _train_on(i, t, _box_outside, "annotations[1]: bbox"),
    # train --resume: the run as it is
    "resume a finished run": lambda i, t: _resume(i, t, message="is at step 2 and train.steps is 2: nothing to train"),
    "resume with fewer steps": lambda i, t: _resume(i, t, "train.steps=1", message="is at step 2 and train.steps is 1"),
    **{f"resume from a {kind} checkpoint": (lambda kind: lambda i, t: _resume(
        i, t, "train.steps=4", last=BAD_FILES[kind][0], message=BAD_FILES[kind][1]))(kind) for kind in BAD_FILES},
    # predict and export: checkpoints and images
    **{f"predict a {kind} checkpoint": (lambda kind: lambda i, t: Case(
        ["predict", "--checkpoint", str(_copy_run(i, t, BAD_FILES[kind][0]) / "checkpoints" / "last.pt"),
         "--images", str(i.split / "images"), "--out", str(t / "results.json")],
        BAD_FILES[kind][1], new=t / "results.json"))(kind) for kind in BAD_FILES},
    **{f"export a {kind} checkpoint": (lambda kind: lambda i, t: Case(
        ["export", "--checkpoint", str(_copy_run(i, t, BAD_FILES[kind][0]) / "checkpoints" / "last.pt"),
         "--out", str(t / "model.pt")], BAD_FILES[kind][1], new=t / "model.pt"))(kind) for kind in BAD_FILES},
    "export to a path under a file": lambda i, t: Case(
        ["export", "--checkpoint", str(i.run / "checkpoints" / "best.pt"), "--out", str(_blocker(t) / "model.pt")],
        "cannot write it", new=t / "a_file" / "model.pt"),
    "predict beside malformed annotations.json": lambda i, t: Case(
        ["predict", "--checkpoint", str(i.run / "checkpoints" / "best.pt"), "--images",
         str(_edit_split(i, t, _drop_file_name) / "images"), "--out", str(t / "results.json")],
        "annotations.json: images[0] has no 'file_name'", new=t / "results.json"),
    "predict an image annotations.json does not list": lambda i, t: Case(
        ["predict", "--checkpoint", str(i.run / "checkpoints" / "best.pt"), "--images",
         str(_edit_split(i, t, _unlisted) / "images"), "--out", str(t / "results.json")],
        "not listed in", new=t / "results.json"),
    # make-dataset
    "make-dataset --preview to a bad path": lambda i, t: Case(
        ["make-dataset", "--preset", "single", "--count", "2", "--out", str(t / "split"),
         "--preview", str(_blocker(t) / "preview.png")], "is not a folder", new=t / "split"),
    "make-dataset --out under a file": lambda i, t: Case(
        ["make-dataset", "--preset", "single", "--count", "2", "--out", str(_blocker(t) / "split")],
        "is not a folder", new=t / "a_file" / "split"),
    "make-dataset negative seed": lambda i, t: Case(
        ["make-dataset", "--preset", "single", "--count", "2", "--out", str(t / "split"), "--seed", "-1"],
        "--seed must be >= 0, got -1", new=t / "split"),
    "make-dataset data root without MNIST": lambda i, t: Case(
        ["make-dataset", "--preset", "single", "--count", "2", "--out", str(t / "split"), "--data-root", str(t)],
        "MNIST not found in the data root", new=t / "split"),
    # evaluate
    "evaluate a negative score": lambda i, t: _results(i, t, {"score": -0.2})._replace(message="score -0.2 is negative"),
    "evaluate a NaN score": lambda i, t: _results(i, t, {"score": float("nan")})._replace(
        message="score nan is not a finite number"),
    "evaluate a class the ground truth lacks": lambda i, t: _results(i, t, {"category_id": 77})._replace(
        message="category_id 77 is not a category of the ground truth"),
}


@pytest.mark.parametrize("name", list(CASES))
def test_every_bad_input_is_one_line_naming_it_with_exit_code_2(name, inputs, tmp_path, capsys):
    marker = Path("/tmp/ocrloc-crafted-checkpoint-ran")
    marker.unlink(missing_ok=True)
    case = CASES[name](inputs, tmp_path)
    before = snapshot(case.kept) if case.kept else None
    capsys.readouterr()
    assert main(case.argv) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and err.count("\n") == 1, err
    assert case.message in err, err
    if case.new is not None:
        assert not case.new.exists(), f"{case.new} was written"
    if case.kept is not None:
        assert snapshot(case.kept) == before, "the run folder changed"
    assert not marker.exists()  # a crafted checkpoint never ran its code


def test_a_corrupt_image_and_a_nan_loss_stop_a_training_in_one_line(inputs, tmp_path, capsys):
    """One line each: a corrupt image at the start, before the run folder is made (every image is
    read once first since issue 26); a NaN loss while training, and the run folder keeps what it had made."""
    folder = _edit_split(inputs, tmp_path, _corrupt_png)
    assert main(["train", "--out", str(tmp_path / "a"), "--no-progress",
                 *sets(*TINY, f"data.train_path={folder}", f"data.val_path={folder}")]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith(f"error: data.train_path: {folder / 'images'}")
    assert "cannot read image" in err and not (tmp_path / "a").exists()

    assert main(["train", "--out", str(tmp_path / "b"), "--no-progress",
                 *sets(*TINY, "train.steps=6", "optim.lr=1e30", "optim.grad_clip=0")]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "loss is nan" in err and "are in" in err
    assert (tmp_path / "b" / "checkpoints" / "last.pt").is_file()


def test_the_crafted_file_would_run_code_without_the_safe_loader(tmp_path):
    """The crafted case above is a real attack: the unsafe loader runs it."""
    marker = Path("/tmp/ocrloc-crafted-checkpoint-ran")
    marker.unlink(missing_ok=True)
    _crafted(tmp_path / "x.pt")
    torch.load(tmp_path / "x.pt", weights_only=False)  # the payload runs while unpickling
    ran = marker.exists()
    marker.unlink(missing_ok=True)
    assert ran


# --- Issue 26, inputs ---
# Each case failed on the main of 2026-12-06: a traceback, a late failure after the run folder was
# made, or no error at all (the input silently read, dropped or answered).


def _deep_json(path: Path) -> Path:
    path.write_text("[" * 100_000 + "]" * 100_000)  # deeper than the JSON decoder's stack
    return path


def _png_header(path: Path, width: int, height: int) -> Path:
    """A PNG that declares ``width`` x ``height`` and holds no pixel data: only a size check reads it."""
    import struct
    import zlib

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0))
                     + chunk(b"IEND", b""))
    return path


def _outside_image(coco: dict, folder: Path) -> Path:
    """A copy of the split's first image beside (outside) the split folder: a readable file of the right size."""
    outside = folder.parent / "outside.png"
    shutil.copy(folder / coco["images"][0]["file_name"], outside)
    return outside


def _absolute_file_name(coco: dict, folder: Path) -> None:
    coco["images"][0]["file_name"] = str(_outside_image(coco, folder))


def _climbing_file_name(coco: dict, folder: Path) -> None:
    _outside_image(coco, folder)
    coco["images"][0]["file_name"] = "images/../../outside.png"


def _no_annotations(coco: dict, folder: Path) -> None:
    coco["annotations"] = []


def _wrong_size(coco: dict, folder: Path) -> None:
    import cv2

    cv2.imwrite(str(folder / coco["images"][2]["file_name"]), np.zeros((40, 32), np.uint8))


def _predict(inputs: Inputs, tmp: Path, *extra: str, images: Optional[Path] = None, message: str) -> Case:
    return Case(["predict", "--checkpoint", str(inputs.run / "checkpoints" / "best.pt"), "--images",
                 str(images or inputs.split / "images"), "--out", str(tmp / "results.json"), *extra],
                message, new=tmp / "results.json")


def _report(inputs: Inputs, tmp: Path, gt: Path, results: Path, message: str) -> Case:
    return Case(["report", "--gt", str(gt), "--results", str(results), "--out", str(tmp / "report")], message,
                new=tmp / "report")


def _report_absolute(inputs: Inputs, tmp: Path) -> Case:
    folder = _edit_split(inputs, tmp, _absolute_file_name)
    results = _results(inputs, tmp, {}).argv[-1]
    return _report(inputs, tmp, folder / "annotations.json", Path(results),
                   f"annotations.json: image 1: file_name '{tmp / 'outside.png'}' is an absolute path")


INPUT_CASES: Dict[str, Callable[[Inputs, Path], Case]] = {
    # --set values and the strict config's floats
    "--set value not YAML": lambda i, t: _train(t, "train.steps=[1", message="--set train.steps=[1: the value '[1' "
                                                "is not valid YAML (while parsing a flow sequence: expected"),
    "--set value with a Python tag": lambda i, t: _train(t, "train.steps=!!python/tuple [1]", message=(
        "could not determine a constructor for the tag 'tag:yaml.org,2002:python/tuple'; only YAML's standard tags")),
    "optim.lr negative": lambda i, t: _train(t, "optim.lr=-1", message="optim.lr = -1.0 must be > 0"),
    "optim.lr NaN": lambda i, t: _train(t, "optim.lr=nan", message="optim.lr = nan must be a finite number"),
    "loss weight negative": lambda i, t: _train(t, "loss.heatmap=-1", message="loss.heatmap = -1.0 must be >= 0"),
    "iou threshold past 1": lambda i, t: _train(t, "postprocess.iou_threshold=2",
                                                message="postprocess.iou_threshold = 2.0 must be in [0, 1]"),
    # deeply nested JSON
    "evaluate deeply nested results": lambda i, t: Case(
        ["evaluate", "--gt", str(i.split / "annotations.json"), "--results", str(_deep_json(t / "deep.json"))],
        f"{t / 'deep.json'}: JSON nested too deeply to read"),
    "evaluate a deeply nested ground truth": lambda i, t: Case(
        ["evaluate", "--gt", str(_deep_json(t / "deep.json")), "--oracle"], f"{t / 'deep.json'}: JSON nested too"),
    "report deeply nested results": lambda i, t: _report(i, t, i.split / "annotations.json",
                                                         _deep_json(t / "deep.json"), "JSON nested too deeply"),
    # predict
    "predict --viz-count 0": lambda i, t: _predict(i, t, "--viz", str(t / "viz"), "--viz-count", "0",
                                                   message="--viz-count must be at least 1 with --viz, got 0"),
    "predict a 10000 x 10000 image": lambda i, t: _predict(
        i, t, images=_png_header(t / "huge" / "huge.png", 10000, 10000),
        message="huge.png): 10000 x 10000 px is 100,000,000 pixels, more than max_pixels 40,000,000"),
    "predict past --max-pixels": lambda i, t: _predict(i, t, "--max-pixels", "500",
                                                       message="32 x 32 px is 1,024 pixels, more than max_pixels 500"),
    "predict --max-pixels negative": lambda i, t: _predict(i, t, "--max-pixels", "-1",
                                                           message="--max-pixels must be >= 0 (0: no limit), got -1"),
    # COCO file_name outside the dataset folder
    "train on an absolute file_name": lambda i, t: _train_on(
        i, t, _absolute_file_name, f"annotations.json: images[0]: file_name '{t / 'outside.png'}' is an absolute path"),
    "train on a file_name climbing out": lambda i, t: _train_on(
        i, t, _climbing_file_name, "images[0]: file_name 'images/../../outside.png' climbs out of the dataset folder"),
    "report crops from an absolute file_name": _report_absolute,
    # found at the start, not when first sampled
    "train on a folder without annotations": lambda i, t: _train_on(
        i, t, _no_annotations, f"data.train_path: {t / 'split' / 'annotations.json'}: no annotations"),
    "train on a corrupt image": lambda i, t: _train_on(
        i, t, _corrupt_png, f"data.train_path: {t / 'split' / 'images' / '000000.png'}: cannot read image"),
    "train on an image of another size": lambda i, t: _train_on(
        i, t, _wrong_size, "000002.png: image is 32 x 40 px but"),
    # make-dataset
    "make-dataset glyphs128 with a rule": lambda i, t: Case(
        ["make-dataset", "--preset", "glyphs128", "--rule", "seed37", "--count", "2", "--out", str(t / "split")],
        "--rule seed37: --preset glyphs128 takes no rule", new=t / "split"),
}


@pytest.mark.parametrize("name", list(INPUT_CASES))
def test_issue_26_inputs_are_one_line_naming_them_with_exit_code_2(name, inputs, tmp_path, capsys):
    case = INPUT_CASES[name](inputs, tmp_path)
    capsys.readouterr()
    assert main(case.argv) == 2
    err = capsys.readouterr().err
    lines = [line for line in err.splitlines() if not line.startswith("note: ")]
    assert len(lines) == 1 and lines[0].startswith("error: "), err
    assert case.message in err, err
    if case.new is not None:
        assert not case.new.exists(), f"{case.new} was written"
    if name == "predict --viz-count 0":
        assert not (tmp_path / "viz").exists()


def test_issue_26_an_image_given_twice_to_predict_gets_one_image_id(inputs, tmp_path, capsys):
    """By name and through its folder: predicted once (one id, its detections once), with a note."""
    out = tmp_path / "results.json"
    capsys.readouterr()
    assert main(["predict", "--checkpoint", str(inputs.run / "checkpoints" / "best.pt"), "--images",
                 str(inputs.split / "images" / "000001.png"), str(inputs.split / "images"), "--out", str(out)]) == 0
    captured = capsys.readouterr()
    assert f"on 4 images to {out}" in captured.out  # the split's four, not five
    assert "note: 1 image(s) given more than once are predicted once" in captured.err
