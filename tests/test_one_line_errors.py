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
from tests.helpers import TINY_TRAINING, sets

TINY = [*TINY_TRAINING, "train.val_every=2", "train.steps=2", "optim.warmup_steps=1"]


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


def _error_of(case: Case, capsys) -> str:
    """Run the command of ``case``; it must exit 2. Returns what it printed on stderr."""
    capsys.readouterr()
    assert main(case.argv) == 2
    return capsys.readouterr().err


@pytest.mark.parametrize("name", list(CASES))
def test_every_bad_input_is_one_line_naming_it_with_exit_code_2(name, inputs, tmp_path, capsys):
    marker = Path("/tmp/ocrloc-crafted-checkpoint-ran")
    marker.unlink(missing_ok=True)
    case = CASES[name](inputs, tmp_path)
    before = snapshot(case.kept) if case.kept else None
    err = _error_of(case, capsys)
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


# --- Issue 26, files and outputs ---

# This issue's imports, here so that the block stays in one piece beside the input half's.
import errno  # noqa: E402
import subprocess  # noqa: E402
import sys  # noqa: E402
import textwrap  # noqa: E402


@pytest.fixture(scope="module")
def exported(inputs, tmp_path_factory) -> Path:
    """The tiny run exported as TorchScript, under a checkpoint's name."""
    path = tmp_path_factory.mktemp("exported") / "best.pt"
    assert main(["export", "--checkpoint", str(inputs.run / "checkpoints" / "best.pt"), "--out", str(path)]) == 0
    return path


def test_predict_runs_an_exported_file_only_through_exported(inputs, exported, tmp_path, capsys, monkeypatch):
    """--checkpoint reads data only: an exported file (a program) is refused unloaded, saying how to run it."""
    calls = []
    real_load = torch.jit.load
    monkeypatch.setattr(torch.jit, "load", lambda *a, **k: calls.append(a) or real_load(*a, **k))
    out = tmp_path / "results.json"
    capsys.readouterr()
    assert main(["predict", "--checkpoint", str(exported), "--images", str(inputs.split / "images"),
                 "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"error: {exported}: an exported TorchScript file, not a checkpoint") and err.count("\n") == 1
    assert f"ocrloc predict --exported {exported}" in err
    assert calls == [] and not out.exists()
    assert main(["predict", "--exported", str(exported), "--images", str(inputs.split / "images"),
                 "--out", str(out)]) == 0
    assert len(calls) == 1 and out.is_file()


def _link_to_precious(link: Path, tmp: Path) -> Path:
    """Make ``link`` a symbolic link to a file outside the run (holding ``link``'s bytes, if any)."""
    target = tmp / f"precious_{link.name.lstrip('.')}"
    target.write_bytes(link.read_bytes() if link.is_file() else b"not the run's to write\n")
    link.unlink(missing_ok=True)
    link.symlink_to(target)
    return target


@pytest.mark.parametrize("name", [".lock", "metrics.csv"])
def test_a_run_folders_lock_and_metrics_are_never_opened_through_a_symlink(name, inputs, tmp_path, capsys):
    """A link in place of the lock (a new run) or of metrics.csv (a resume): refused in one line, the file
    it points to untouched (the lock used to truncate it and write its JSON there; the CSV appended to it)."""
    if name == ".lock":
        run = tmp_path / "run"
        run.mkdir()
        argv = ["train", "--out", str(run), "--no-progress", *sets(*TINY)]
    else:
        run = _copy_run(inputs, tmp_path)
        argv = ["train", "--out", str(run), "--resume", "--no-progress", *sets("train.steps=4")]
    target = _link_to_precious(run / name, tmp_path)
    before, checkpoints = target.read_bytes(), snapshot(run / "checkpoints") if (run / "checkpoints").is_dir() else {}
    capsys.readouterr()
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert err == f"error: {run / name} is a symbolic link; ocrloc never opens a run folder's own files through " \
                  f"one (it would write wherever the link points): remove it\n"
    assert target.read_bytes() == before and (run / name).is_symlink()
    assert (snapshot(run / "checkpoints") if (run / "checkpoints").is_dir() else {}) == checkpoints


# A file-size limit stands in for a full disk: a write past it fails with EFBIG ("File too large") as on a
# full disk with ENOSPC, in Python's writers and in torch's C++ one alike (which aborted the process).
FULL_DISK = textwrap.dedent("""
    import io, json, resource, signal, sys
    from ocrloc.cli import main
    signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # the write fails instead of the process being killed
    answers = []
    for limit, argv in json.loads(sys.argv[1]):
        sys.stderr = io.StringIO()
        resource.setrlimit(resource.RLIMIT_FSIZE, (limit, resource.RLIM_INFINITY))
        status = main(argv)
        resource.setrlimit(resource.RLIMIT_FSIZE, (resource.RLIM_INFINITY, resource.RLIM_INFINITY))
        answers.append([status, sys.stderr.getvalue()])
    sys.__stdout__.write("ANSWERS " + json.dumps(answers))
""")


def test_a_full_disk_is_one_line_naming_the_file_in_every_command_that_writes(inputs, tmp_path):
    """Export, a training's checkpoint, make-dataset, predict and report: one line naming the file and the
    cause, exit 2, no temporary beside the output, what was there before left as it was."""
    run = _copy_run(inputs, tmp_path)
    checkpoints = snapshot(run / "checkpoints")
    out = tmp_path / "out"
    out.mkdir()
    best = str(inputs.run / "checkpoints" / "best.pt")
    results = str(tmp_path / "results.json")
    assert main(["predict", "--checkpoint", best, "--images", str(inputs.split / "images"), "--out", results,
                 "--threshold", "0"]) == 0
    commands = {  # (file-size limit in bytes, command, what the line says); each output is larger than its limit
        "export": (65536, ["export", "--checkpoint", best, "--out", str(out / "model.pt")],
                   f"--out {out / 'model.pt'}: cannot write it (File too large)"),
        "train": (262144, ["train", "--out", str(run), "--resume", "--no-progress", "--set", "train.steps=4"],
                  f"{run / 'checkpoints'}/"),
        "make-dataset": (100, ["make-dataset", "--preset", "single", "--rule", "seed37", "--count", "4",
                               "--out", str(out / "split")],
                         f"{out / 'split'}: cannot write the split (File too large)"),
        "predict": (100, ["predict", "--checkpoint", best, "--images", str(inputs.split / "images"),
                          "--out", str(out / "results.json"), "--threshold", "0"],
                    f"{out / 'results.json'}: cannot write it (File too large)"),
        "report": (4096, ["report", "--gt", str(inputs.split / "annotations.json"), "--results", results,
                          "--out", str(out / "report")], f"{out / 'report'}: cannot write the report (File too large)"),
    }
    job = json.dumps([[limit, argv] for limit, argv, _ in commands.values()])
    done = subprocess.run([sys.executable, "-c", FULL_DISK, job], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0 and "ANSWERS " in done.stdout, done.stderr[-3000:]
    answers = json.loads(done.stdout.split("ANSWERS ", 1)[1])
    for (name, (_, _, message)), (status, err) in zip(commands.items(), answers):
        last = err.rstrip("\n").split("\n")[-1]  # after the progress bars (\r-separated) of make-dataset and predict
        assert status == 2 and last.startswith("error: ") and message in last, (name, err)
        assert err.count("error") == 1 and "Traceback" not in err, (name, err)
    assert "cannot write it (File too large)" in answers[1][1]  # the checkpoint's own name, then the cause
    assert list(out.iterdir()) == []  # nothing half-written, no temporary
    assert snapshot(run / "checkpoints") == checkpoints  # the run keeps its last good checkpoint
    assert not [p for p in (run, run / "checkpoints") for p in p.iterdir() if p.name.endswith(".tmp")]


def _truth_as_results(inputs: Inputs, tmp: Path) -> str:
    gt = json.loads((inputs.split / "annotations.json").read_text())
    path = tmp / "results.json"
    path.write_text(json.dumps([{"image_id": a["image_id"], "category_id": a["category_id"],
                                 "keypoints": a["keypoints"], "score": 1.0} for a in gt["annotations"]]))
    return str(path)


def _predict_to(inputs: Inputs, out: Path) -> List[str]:
    return ["predict", "--checkpoint", str(inputs.run / "checkpoints" / "best.pt"), "--images",
            str(inputs.split / "images"), "--out", str(out)]


def _report_to(inputs: Inputs, tmp: Path, out: Path) -> List[str]:
    return ["report", "--gt", str(inputs.split / "annotations.json"), "--results", _truth_as_results(inputs, tmp),
            "--out", str(out)]


OUTPUT_CASES: Dict[str, Callable[[Inputs, Path], Case]] = {
    "predict --out a folder": lambda i, t: Case(_predict_to(i, t), f"--out {t} is a folder; name the file to write"),
    "predict --out under a file": lambda i, t: Case(
        _predict_to(i, _blocker(t) / "results.json"), f"--out {t / 'a_file' / 'results.json'}: {t / 'a_file'} is not a folder"),
    "report --out under a file": lambda i, t: Case(_report_to(i, t, _blocker(t) / "report"),
                                                   f"{t / 'a_file' / 'report'}: {t / 'a_file'} is not a folder"),
}


@pytest.mark.parametrize("name", list(OUTPUT_CASES))
def test_an_output_that_cannot_be_written_is_one_line_naming_it(name, inputs, tmp_path, capsys):
    case = OUTPUT_CASES[name](inputs, tmp_path)
    err = _error_of(case, capsys)
    assert err.startswith("error: ") and err.count("\n") == 1 and case.message in err, err
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]  # no temporary left


def test_a_report_on_a_read_only_disk_is_one_line(inputs, tmp_path, capsys, monkeypatch):
    from ocrloc.report import writer

    def read_only(*args, **kwargs):
        raise OSError(errno.EROFS, os.strerror(errno.EROFS))

    monkeypatch.setattr(writer.tempfile, "mkdtemp", read_only)
    capsys.readouterr()
    assert main(_report_to(inputs, tmp_path, tmp_path / "report")) == 2
    assert capsys.readouterr().err == f"error: {tmp_path / 'report'}: cannot write the report (Read-only file system)\n"


def test_make_dataset_on_a_full_disk_names_the_folder(tmp_path, capsys, monkeypatch):
    from ocrloc.data import splits

    def full(*args, **kwargs):
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(splits, "write_json_atomic", full)
    capsys.readouterr()
    out = tmp_path / "split"
    assert main(["make-dataset", "--preset", "single", "--rule", "seed37", "--count", "2", "--out", str(out)]) == 2
    last = capsys.readouterr().err.rstrip("\n").split("\n")[-1]
    assert last == f"error: {out}: cannot write the split (No space left on device)"
    assert list(tmp_path.iterdir()) == []  # neither the split nor its temporary folder


BROKEN_YAML = "train:\n  steps: 10\n  batch_size: [1, 2\nmodel:\n  type: argmax\n"
BROKEN_YAML_LINE = ("invalid YAML at line 4, column 6: expected ',' or ']', but got ':' (while parsing a flow sequence "
                    "from line 3, column 15)")


def _broken_config_yaml(inputs: Inputs, tmp: Path) -> Case:
    run = _copy_run(inputs, tmp)
    (run / "config.yaml").write_text(BROKEN_YAML)
    return Case(["train", "--out", str(run), "--resume", "--no-progress", *sets("train.steps=4")],
                f"{run / 'config.yaml'}: {BROKEN_YAML_LINE}", kept=run)


def _broken_file(tmp: Path) -> Path:
    (tmp / "broken.yaml").write_text(BROKEN_YAML)
    return tmp / "broken.yaml"


YAML_CASES: Dict[str, Callable[[Inputs, Path], Case]] = {
    "train --config": lambda i, t: Case(["train", "--config", str(_broken_file(t)), "--out", str(t / "new")],
                                        f"{t / 'broken.yaml'}: {BROKEN_YAML_LINE}", new=t / "new"),
    "train --resume, its config.yaml": _broken_config_yaml,
    "make-dataset --rule": lambda i, t: Case(["make-dataset", "--rule", str(_broken_file(t)), "--count", "1",
                                              "--out", str(t / "new")],
                                             f"rule file {t / 'broken.yaml'}: cannot read it ({BROKEN_YAML_LINE})",
                                             new=t / "new"),
}


@pytest.mark.parametrize("name", list(YAML_CASES))
def test_a_yaml_error_is_one_line_naming_the_file_line_and_column(name, inputs, tmp_path, capsys):
    """PyYAML's message spans 4 to 8 lines (each place quoted, a caret under it): one line instead."""
    case = YAML_CASES[name](inputs, tmp_path)
    before = snapshot(case.kept) if case.kept else None
    capsys.readouterr()
    assert main(case.argv) == 2
    assert capsys.readouterr().err == f"error: {case.message}\n"
    if case.new is not None:
        assert not case.new.exists()
    if case.kept is not None:
        assert snapshot(case.kept) == before


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
    err = _error_of(case, capsys)
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
