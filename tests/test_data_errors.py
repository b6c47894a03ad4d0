"""Bad data ends in one line naming the file, the entry or the root, never in a silent fallback, a
traceback or a half-written folder (issue 14, "Trust"): the data root, COCO annotations and images,
mixed image sizes, results scores, and make-dataset's output and preview paths."""

from __future__ import annotations

import json
import os
import shutil
import signal
import time
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch
from torch.utils.data import DataLoader

from ocrloc.cli import main
from ocrloc.data import splits as splits_module
from ocrloc.data.canvas import CanvasGenerator
from ocrloc.data.coco import ANNOTATIONS_FILE
from ocrloc.data.splits import remove_stale_temporaries, write_split
from ocrloc.data.datasets import CocoKeypointDataset, ImageFileError, collate_detection
from ocrloc.data.mnist import _RAW_FILES
from ocrloc.utils import io as io_module
from tests.helpers import KEEP_EVERY_PEAK, TINY_MODEL

TINY_TRAIN = ["model.type=argmax", *TINY_MODEL, "data.num_workers=0", "train.steps=2", "train.batch_size=2",
              "train.val_every=2", "train.log_every=1", "optim.warmup_steps=1", KEEP_EVERY_PEAK]


def sets(*values: str) -> list[str]:
    return [a for v in values for a in ("--set", v)]


def one_error_line(err: str) -> str:
    """The single ``error: ...`` line of a command's stderr (failing when there is more)."""
    assert err.count("\n") == 1 and err.startswith("error: "), err
    return err[len("error: "):].rstrip("\n")


@pytest.fixture(scope="module")
def split(pools, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("errors") / "split"
    write_split(CanvasGenerator("canvas128", "all10", "test", 3, pools["test"]), 4, out, progress=False)
    return out


def copy_split(split: Path, dest: Path, edit=None) -> Path:
    shutil.copytree(split, dest)
    if edit is not None:
        data = json.loads((dest / ANNOTATIONS_FILE).read_text())
        edit(data)
        (dest / ANNOTATIONS_FILE).write_text(json.dumps(data))
    return dest


# --- 1. the data root ------------------------------------------------------------------------------------------


def test_a_named_data_root_without_mnist_is_refused_not_replaced(tmp_path, monkeypatch, capsys):
    # ./data would have answered before: a complete (if empty-filed) MNIST layout.
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("OCRLOC_DATA", raising=False)
    (tmp_path / "data" / "MNIST" / "raw").mkdir(parents=True)
    for name in _RAW_FILES:
        (tmp_path / "data" / "MNIST" / "raw" / name).write_bytes(b"")
    empty = tmp_path / "empty"
    empty.mkdir()

    assert main(["make-dataset", "--count", "2", "--out", str(tmp_path / "out"), "--data-root", str(empty)]) == 2
    line = one_error_line(capsys.readouterr().err)
    assert line.startswith(f"MNIST not found in the data root {empty} given by --data-root / data.data_root: "
                           f"{empty / 'MNIST' / 'raw'} lacks train-images-idx3-ubyte, ")
    assert not (tmp_path / "out").exists()

    monkeypatch.setenv("OCRLOC_DATA", str(empty))
    assert main(["make-dataset", "--count", "2", "--out", str(tmp_path / "out")]) == 2
    assert one_error_line(capsys.readouterr().err).startswith(
        f"MNIST not found in the data root {empty} given by OCRLOC_DATA: ")

    run = tmp_path / "run"
    assert main(["train", "--out", str(run), "--no-progress", *sets(*TINY_TRAIN)]) == 2
    assert f"data root {empty} given by OCRLOC_DATA" in one_error_line(capsys.readouterr().err)
    assert not run.exists()  # config.yaml never records a root that was not used


# --- 2. annotations, checked when the dataset is built -----------------------------------------------------------


def _drop(key: str, i: int = 1):
    return lambda d: d["annotations"][i].pop(key)


def _set(key: str, value, i: int = 1):
    return lambda d: d["annotations"][i].__setitem__(key, value)


def _box_edit(fn, i: int = 1):
    def edit(d):
        d["annotations"][i]["bbox"] = fn(d["annotations"][i]["bbox"])
    return edit


BAD_ANNOTATIONS = {
    "no_bbox": (_drop("bbox"), "annotations[1]: missing 'bbox'"),
    "short_bbox": (_set("bbox", [1.0, 2.0, 3.0]), "annotations[1]: bbox [1.0, 2.0, 3.0] is not [x, y, w, h], "
                                                  "4 finite numbers"),
    "nan_bbox": (_set("bbox", [1.0, float("nan"), 3.0, 4.0]), "annotations[1]: bbox [1.0, nan, 3.0, 4.0] is not"),
    "text_bbox": (_set("bbox", "10 10 5 5"), "annotations[1]: bbox '10 10 5 5' is not [x, y, w, h]"),
    "zero_width": (_box_edit(lambda b: [b[0], b[1], 0.0, b[3]]), "has width or height <= 0 (on image "),
    "negative_height": (_box_edit(lambda b: [b[0], b[1], b[2], -3.0]), "has width or height <= 0 (on image "),
    "box_past_right": (_box_edit(lambda b: [126.0, b[1], 4.0, b[3]]), "annotations[1]: bbox [126.0, "),
    "box_left_of_image": (_box_edit(lambda b: [-1.5, b[1], b[2], b[3]]), "is outside image "),
    "no_category_id": (_drop("category_id"), "annotations[1]: missing 'category_id'"),
    "unknown_category": (_set("category_id", 42), "annotations[1]: category_id 42 is not in 'categories'"),
    "no_image_id": (_drop("image_id"), "annotations[1]: missing 'image_id'"),
    "unknown_image": (_set("image_id", 99), "annotations[1]: image_id 99 is not in 'images'"),
    "no_keypoints": (_drop("keypoints"), "annotations[1]: missing 'keypoints'"),
    "keypoint_outside": (lambda d: d["annotations"][1]["keypoints"].__setitem__(0, 140.0),
                         "annotations[1]: keypoint 'point' (140.0, "),
    "no_file_name": (lambda d: d["images"][2].pop("file_name"), "images[2]: needs a 'file_name'"),
}


@pytest.mark.parametrize("case", sorted(BAD_ANNOTATIONS))
def test_a_bad_annotation_is_one_error_naming_file_entry_and_image(case, split, tmp_path):
    edit, message = BAD_ANNOTATIONS[case]
    folder = copy_split(split, tmp_path / "bad", edit)
    with pytest.raises(ValueError) as info:
        CocoKeypointDataset(folder)
    text = str(info.value)
    assert "\n" not in text and text.startswith(f"{folder / ANNOTATIONS_FILE}: ")
    assert message in text
    if case.startswith("box_") or case in ("zero_width", "negative_height"):
        image_id = json.loads((split / ANNOTATIONS_FILE).read_text())["annotations"][1]["image_id"]
        assert f"image {image_id} (images/{image_id - 1:06d}.png)" in text  # the image, by id and file


def test_boxes_within_one_pixel_and_invisible_keypoints_outside_are_accepted(split, tmp_path):
    def edit(d):
        first = d["annotations"][0]
        first["bbox"] = [-1.0, -0.5, 129.0, 129.0]  # 1 px past every edge: rounding, inclusive pixels
        d["categories"] = [{**c, "keypoints": ["point", "spare"]} for c in d["categories"]]
        for a in d["annotations"]:
            a["keypoints"] = a["keypoints"] + [500.0, -20.0, 0]  # an unlabelled point may lie anywhere

    dataset = CocoKeypointDataset(copy_split(split, tmp_path / "edge", edit))
    assert dataset.task.num_keypoints == 2 and len(dataset) == 4


def test_a_training_folder_with_a_box_outside_its_image_is_refused_before_the_run_starts(split, tmp_path, capsys):
    folder = copy_split(split, tmp_path / "outside", _box_edit(lambda b: [b[0], 120.0, b[2], 40.0], i=0))
    run = tmp_path / "run"
    assert main(["train", "--out", str(run), "--no-progress", *sets(*TINY_TRAIN, f"data.train_path={folder}")]) == 2
    line = one_error_line(capsys.readouterr().err)
    assert line.startswith(f"data.train_path: {folder / ANNOTATIONS_FILE}: annotations[0]: bbox ")
    assert "is outside image 1 (images/000000.png), 128 x 128 px" in line
    assert not run.exists()


# --- 3. images of different sizes --------------------------------------------------------------------------------


def mixed_size_folder(split: Path, dest: Path) -> Path:
    """The split with image 2 cut to its top-left 96 x 112 (x, y) pixels, declared so, its boxes kept inside."""
    folder = copy_split(split, dest)
    data = json.loads((folder / ANNOTATIONS_FILE).read_text())
    image = cv2.imread(str(folder / "images" / "000001.png"), cv2.IMREAD_GRAYSCALE)
    cv2.imwrite(str(folder / "images" / "000001.png"), image[:112, :96])
    data["images"][1].update(width=96, height=112)
    data["annotations"] = [a for a in data["annotations"] if a["image_id"] != 2 or
                           (a["bbox"][0] + a["bbox"][2] <= 96 and a["bbox"][1] + a["bbox"][3] <= 112)]
    for k, a in enumerate(data["annotations"]):
        a["id"] = k + 1
    (folder / ANNOTATIONS_FILE).write_text(json.dumps(data))
    return folder


def test_images_of_different_sizes_are_zero_padded_into_one_batch(split, tmp_path):
    dataset = CocoKeypointDataset(mixed_size_folder(split, tmp_path / "mixed"))
    items = [dataset[i] for i in range(3)]
    assert items[1][0].shape == (1, 112, 96)
    images, targets = collate_detection(items)
    assert isinstance(images, torch.Tensor) and images.shape == (3, 1, 128, 128)
    assert torch.equal(images[1, :, :112, :96], items[1][0])
    assert images[1, :, 112:].abs().sum() == 0 and images[1, :, :, 96:].abs().sum() == 0  # zeros right and bottom
    assert torch.equal(images[0], items[0][0]) and torch.equal(images[2], items[2][0])
    for (_, before), after in zip(items, targets):  # boxes and points are where they were
        assert torch.equal(before["boxes"], after["boxes"]) and torch.equal(before["keypoints"], after["keypoints"])


def test_a_folder_of_mixed_sizes_trains(split, tmp_path, capsys):
    folder = mixed_size_folder(split, tmp_path / "mixed")
    run = tmp_path / "run"
    assert main(["train", "--out", str(run), "--no-progress",
                 *sets(*TINY_TRAIN, "train.batch_size=4", f"data.train_path={folder}", f"data.val_path={folder}")]) == 0
    assert (run / "checkpoints" / "last.pt").is_file()


def test_an_image_whose_size_differs_from_its_entry_is_named(split, tmp_path):
    folder = copy_split(split, tmp_path / "resized")
    path = folder / "images" / "000002.png"
    cv2.imwrite(str(path), np.zeros((90, 100), np.uint8))
    dataset = CocoKeypointDataset(folder)
    with pytest.raises(ImageFileError) as info:
        dataset[2]
    assert str(info.value) == (f"{path}: image is 100 x 90 px but {folder / ANNOTATIONS_FILE} declares 128 x 128 "
                               "for image 3")


# --- 4. corrupt or missing image files ---------------------------------------------------------------------------


def _garbage(path: Path) -> None:
    path.write_bytes(bytes(range(256)) * 3)


def _truncated(path: Path) -> None:
    path.write_bytes(path.read_bytes()[:200])


BAD_IMAGES = {
    "garbage": (_garbage, "corrupt, truncated or not an image format OpenCV decodes"),
    "truncated": (_truncated, "corrupt, truncated or not an image format OpenCV decodes"),
    "empty": (lambda p: p.write_bytes(b""), "empty file"),
    "missing": (lambda p: p.unlink(), "no such file"),
    "a_folder": (lambda p: (p.unlink(), p.mkdir()), "Is a directory"),
}


@pytest.mark.parametrize("case", sorted(BAD_IMAGES))
def test_an_unreadable_image_is_one_line_naming_the_file(case, split, tmp_path, capfd):
    spoil, reason = BAD_IMAGES[case]
    folder = copy_split(split, tmp_path / "spoilt")
    path = folder / "images" / "000001.png"
    spoil(path)
    dataset = CocoKeypointDataset(folder)  # images are read per item, not at construction
    capfd.readouterr()
    with pytest.raises(ImageFileError) as info:
        dataset[1]
    assert isinstance(info.value, ValueError)
    assert str(info.value) == f"{path}: cannot read image ({reason})"
    assert capfd.readouterr().err == ""  # no OpenCV warning beside it
    dataset[0]  # the other images still read


def test_the_error_out_of_a_dataloader_worker_is_the_same_one_line(split, tmp_path):
    folder = copy_split(split, tmp_path / "spoilt")
    path = folder / "images" / "000000.png"
    _garbage(path)
    loader = DataLoader(CocoKeypointDataset(folder), batch_size=2, num_workers=1, collate_fn=collate_detection)
    with pytest.raises(ImageFileError) as info:
        next(iter(loader))
    assert str(info.value) == f"{path}: cannot read image (corrupt, truncated or not an image format OpenCV decodes)"


def test_check_images_reads_every_image_once_and_names_the_first_bad_one(split, tmp_path):
    """Issue 26: what the trainer runs at the start, so a bad file is not found hours in."""
    CocoKeypointDataset(split).check_images()
    folder = copy_split(split, tmp_path / "spoilt")
    _truncated(folder / "images" / "000002.png")  # the header still reads: only decoding finds it
    with pytest.raises(ImageFileError, match=r"000002.png: cannot read image \(corrupt, truncated"):
        CocoKeypointDataset(folder).check_images()


@pytest.mark.parametrize("file_name, message", [
    ("/etc/hostname", "file_name '/etc/hostname' is an absolute path; a file_name is read relative to the "
                      "annotation file's folder and must stay inside it"),
    ("../outside.png", "file_name '../outside.png' climbs out of the dataset folder"),
    ("images/../../outside.png", "file_name 'images/../../outside.png' climbs out of the dataset folder"),
])
def test_a_file_name_outside_the_dataset_folder_is_refused_by_name(split, tmp_path, file_name, message):
    """Issue 26: an absolute or climbing file_name was read from wherever it pointed."""
    folder = copy_split(split, tmp_path / "split", lambda d: d["images"][1].update(file_name=file_name))
    with pytest.raises(ValueError) as info:
        CocoKeypointDataset(folder)
    assert str(info.value).startswith(f"{folder / ANNOTATIONS_FILE}: images[1]: {message}")
    inside = copy_split(split, tmp_path / "inside",
                        lambda d: d["images"][1].update(file_name="images/../images/000001.png"))
    assert CocoKeypointDataset(inside)[1][0].shape == (1, 128, 128)  # '..' that stays inside is a path like any


def test_an_image_without_annotations_gives_an_empty_target(split, tmp_path):
    """A background image (no annotation) in a folder that has others: an empty target of the folder's K,
    where numpy's reshape by -1 used to fail (and, for a folder with none, stopped a training mid-run)."""
    folder = copy_split(split, tmp_path / "split",
                        lambda d: d.update(annotations=[a for a in d["annotations"] if a["image_id"] != 2]))
    image, target = CocoKeypointDataset(folder)[1]
    assert target["boxes"].shape == (0, 4) and target["keypoints"].shape == (0, 1, 3) and target["labels"].shape == (0,)


# --- 5. results scores -------------------------------------------------------------------------------------------


@pytest.mark.parametrize("score, keypoints, message", [
    (-0.2, None, "entry 1: score -0.2 is negative (scores must be >= 0)"),
    (float("nan"), None, "entry 1: score nan is not a finite number"),
    (float("inf"), None, "entry 1: score inf is not a finite number"),
    (0.5, [float("nan"), 10.0, 1.0], "entry 1: keypoints must be 3 finite numbers"),
    (0.5, [10.0, float("-inf"), 1.0], "entry 1: keypoints must be 3 finite numbers"),
])
def test_evaluate_refuses_negative_or_non_finite_results_by_entry(split, tmp_path, capsys, score, keypoints, message):
    gt = split / ANNOTATIONS_FILE
    results = [{"image_id": a["image_id"], "category_id": a["category_id"], "keypoints": a["keypoints"], "score": 1.0}
               for a in json.loads(gt.read_text())["annotations"]]
    results[1]["score"] = score
    if keypoints is not None:
        results[1]["keypoints"] = keypoints
    path = tmp_path / "results.json"
    path.write_text(json.dumps(results))  # json writes NaN / Infinity, and reads them back
    assert main(["evaluate", "--gt", str(gt), "--results", str(path)]) == 2
    line = one_error_line(capsys.readouterr().err)
    assert line.startswith(f"{path}: {message}")


def test_results_are_not_held_to_the_ground_truth_box_checks(split, tmp_path, capsys):
    gt = split / ANNOTATIONS_FILE
    results = [{"image_id": a["image_id"], "category_id": a["category_id"], "keypoints": a["keypoints"],
                "score": 0.9, "bbox": [-20.0, 100.0, 200.0, 0.0]}  # a detector's box may spill over or be flat
               for a in json.loads(gt.read_text())["annotations"]]
    path = tmp_path / "results.json"
    path.write_text(json.dumps(results))
    assert main(["evaluate", "--gt", str(gt), "--results", str(path)]) == 0


# --- 6. make-dataset: nothing half-written ---------------------------------------------------------------------


def test_a_bad_preview_path_is_refused_before_any_canvas_is_made(tmp_path, capsys, monkeypatch):
    def no_split(*args, **kwargs):
        raise AssertionError("canvases were generated")

    monkeypatch.setattr(splits_module, "split_coco", no_split)
    blocker = tmp_path / "a_file"
    blocker.write_text("")
    out = tmp_path / "out"
    cases = {
        str(blocker / "preview.png"): f"--preview {blocker / 'preview.png'}: {blocker} is not a folder",
        str(tmp_path): f"--preview {tmp_path} is a folder; give a file such as {tmp_path / 'preview.png'}",
    }
    for preview, message in cases.items():
        assert main(["make-dataset", "--count", "3", "--out", str(out), "--preview", preview]) == 2
        assert one_error_line(capsys.readouterr().err) == message
    assert main(["make-dataset", "--count", "3", "--out", str(out), "--preview", str(tmp_path / "p.png"),
                 "--preview-count", "0"]) == 2
    assert one_error_line(capsys.readouterr().err) == "--preview-count must be >= 1, got 0"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a_file"]  # no output folder, no temporary


def test_an_unusable_out_is_one_line(tmp_path, capsys):
    blocker = tmp_path / "a_file"
    blocker.write_text("")
    assert main(["make-dataset", "--count", "3", "--out", str(blocker / "split")]) == 2
    assert one_error_line(capsys.readouterr().err) == f"--out {blocker / 'split'}: {blocker} is not a folder"
    assert main(["make-dataset", "--count", "3", "--out", str(blocker)]) == 2
    assert one_error_line(capsys.readouterr().err) == f"{blocker} exists and is not a folder; choose another --out"
    if os.geteuid() != 0:  # root writes anywhere
        locked = tmp_path / "locked"
        locked.mkdir(mode=0o500)
        assert main(["make-dataset", "--count", "3", "--out", str(locked / "split")]) == 2
        assert one_error_line(capsys.readouterr().err) == f"--out {locked / 'split'}: {locked} is not writable"
    assert sorted(p.name for p in tmp_path.iterdir()) in (["a_file"], ["a_file", "locked"])


def _dead_pid() -> int:
    pid = os.fork()
    if pid == 0:
        os._exit(0)
    os.waitpid(pid, 0)
    return pid


def test_a_killed_writer_leaves_a_temporary_that_the_next_run_removes(tmp_path, pools):
    out = tmp_path / "split"
    pid = os.fork()
    if pid == 0:  # the writer, killed with SIGKILL in the middle of its split: no `finally` runs
        try:
            def slow(generator, count, image_writer, progress):
                image_writer("images/000000.png", np.zeros((8, 8), np.uint8))
                time.sleep(60)

            splits_module.split_coco = slow
            write_split(None, 3, out, progress=False)
        finally:
            os._exit(1)
    deadline = time.monotonic() + 30
    while not list(tmp_path.glob(".split.*/images/000000.png")):
        assert time.monotonic() < deadline, "the writer never started"
        time.sleep(0.05)
    os.kill(pid, signal.SIGKILL)
    os.waitpid(pid, 0)
    [leftover] = tmp_path.glob(".split.*")
    host = io_module._host()
    assert leftover.name.startswith(f".split.tmp-{host}-{pid}.") and leftover.name.endswith(".tmp")

    # Beside it: a live writer of the same output, another host's writer, another output's dead writer,
    # and an old-layout leftover from before writers were named.
    live = tmp_path / f".split.tmp-{host}-{os.getpid()}.abcd1234.tmp"
    other_host = tmp_path / f".split.tmp-elsewhere-{_dead_pid()}.abcd1234.tmp"
    other_output = tmp_path / f".split2.tmp-{host}-{_dead_pid()}.abcd1234.tmp"
    dotted_output = tmp_path / f".split.v2.tmp-{host}-{_dead_pid()}.abcd1234.tmp"
    legacy = tmp_path / ".split.k2j4x9q0.tmp"
    for folder in (live, other_host, other_output, dotted_output, legacy):
        folder.mkdir()
    past = time.time() - 3600
    os.utime(legacy, (past, past))

    write_split(CanvasGenerator("canvas128", "all10", "test", 3, pools["test"]), 2, out, progress=False)
    assert len(list((out / "images").glob("*.png"))) == 2
    assert not leftover.exists() and not legacy.exists()
    assert live.exists() and other_host.exists() and other_output.exists() and dotted_output.exists()
    assert remove_stale_temporaries(out, time.time()) == []
