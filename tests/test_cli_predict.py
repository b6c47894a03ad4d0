"""``ocrloc predict`` and ``ocrloc export`` end to end: checkpoint -> results file the evaluator scores."""

from __future__ import annotations

import json
import os
import pathlib

import numpy as np
import pytest
import torch
from PIL import Image

from ocrloc.api import Predictor
from ocrloc.cli import main
from ocrloc.engine.images import UNLISTED, images_and_ids
from ocrloc.config import config_to_dict, load_config
from ocrloc.data.canvas import CanvasGenerator
from ocrloc.data.splits import write_split
from ocrloc.engine.checkpoint import save_checkpoint
from ocrloc.models.build import build
from tests.helpers import TINY_DETECTOR, one_error_line as _one_error_line
from ocrloc.visualize import TRUTH_COLOR


def test_predict_writes_results_with_the_splits_image_ids_and_export_runs(tmp_path, pools, capsys):
    torch.manual_seed(0)
    config = load_config(None, ["model.backbone=test_resnet", "model.fpn_channels=8", "model.head_channels=8",
                                "postprocess.score_threshold=0.0", "data.rule=seed37"])
    detector = build(config)
    checkpoint = tmp_path / "best.pt"
    save_checkpoint({"model": detector.model.state_dict(), "config": config_to_dict(config), "step": 0,
                     "meta": {"rule": "seed37", "preset": "canvas128", "train_size": [128, 128]}}, checkpoint)
    split = tmp_path / "test"
    write_split(CanvasGenerator("canvas128", "seed37", "test", 5, pools["test"]), 3, split)

    out = tmp_path / "results.json"
    # --threshold 0: the untrained model's scores are far below the default 0.5
    assert main(["predict", "--checkpoint", str(checkpoint), "--images", str(split / "images"), "--out", str(out),
                 "--viz", str(tmp_path / "viz"), "--batch-size", "2", "--threshold", "0"]) == 0
    results = json.loads(out.read_text())
    gt = json.loads((split / "annotations.json").read_text())
    assert {r["image_id"] for r in results} == {im["id"] for im in gt["images"]}
    assert all(len(r["keypoints"]) == 3 and 0 <= r["category_id"] <= 9 for r in results)
    assert (tmp_path / "viz" / "grid.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    for image in gt["images"]:  # one drawing per image, 4x, with the truth of the annotations.json beside them
        drawing = np.asarray(Image.open(tmp_path / "viz" / pathlib.Path(image["file_name"]).name).convert("RGB"))
        assert drawing.shape[1] == 4 * image["width"]
        assert (drawing == TRUTH_COLOR).all(-1).any()
    assert main(["evaluate", "--gt", str(split / "annotations.json"), "--results", str(out), "--json"]) == 0
    assert "kpt_AP" in capsys.readouterr().out.strip().splitlines()[-1]

    exported = tmp_path / "model.pt"
    assert main(["export", "--checkpoint", str(checkpoint), "--out", str(exported)]) == 0
    out2 = tmp_path / "results_exported.json"
    assert main(["predict", "--exported", str(exported), "--images", str(split / "images"), "--out", str(out2),
                 "--threshold", "0"]) == 0
    again = json.loads(out2.read_text())
    assert len(again) == len(results)
    # The untrained model scores the canvases' blank areas exactly alike: which of those tied peaks fill
    # the last of the 100 places, and in what order tied peaks come, depends on the batch (topk's ties).
    # Compared: each image's detections scoring above its lowest kept score, tied ones in a fixed order.
    def canonical(found):
        by_image = {}
        for r in found:
            by_image.setdefault(r["image_id"], []).append(r)
        kept = []
        for image_id, rows in sorted(by_image.items()):
            lowest = min(r["score"] for r in rows)
            rows = [r for r in rows if r["score"] > lowest + 1e-5]
            kept += sorted(rows, key=lambda r: (-round(r["score"], 5), r["category_id"], [round(v, 2) for v in r["bbox"]]))
        return kept

    expected, exported_found = canonical(results), canonical(again)
    assert len(expected) == len(exported_found) >= 3 * 50
    for a, b in zip(expected, exported_found):
        assert a["image_id"] == b["image_id"] and a["category_id"] == b["category_id"]
        assert max(abs(x - y) for x, y in zip(a["bbox"] + a["keypoints"], b["bbox"] + b["keypoints"])) < 1e-4


def test_predict_bad_checkpoint_is_one_line(tmp_path, capsys):
    bad = tmp_path / "junk.pt"
    bad.write_bytes(b"not a checkpoint")
    (tmp_path / "a.png").write_bytes(b"")
    assert main(["predict", "--checkpoint", str(bad), "--images", str(tmp_path), "--out", str(tmp_path / "r.json")]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and err.count("\n") == 1 and str(bad) in err
    assert not (tmp_path / "r.json").exists()


# -- bad checkpoints and image ids: one `error:` line, exit 2, nothing written ------------------------

TINY = TINY_DETECTOR  # random weights: keep every peak, so results carry every image id


class _Touch:
    """Unpickling this creates ``marker`` (a crafted checkpoint could run any code instead)."""

    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return pathlib.Path.touch, (self.marker,)


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory):
    torch.manual_seed(0)
    config = load_config(None, TINY)
    path = tmp_path_factory.mktemp("ckpt") / "best.pt"
    save_checkpoint({"model": build(config).model.state_dict(), "config": config_to_dict(config), "step": 0,
                     "meta": {"rule": "all10", "preset": "canvas128", "train_size": [128, 128]}}, path)
    return path


def _bad_checkpoint(kind, folder, good):
    path = folder / f"{kind}.pt"
    if kind == "truncated":
        path.write_bytes(good.read_bytes()[:good.stat().st_size // 2])
    elif kind == "zero_bytes":
        path.write_bytes(b"")
    elif kind == "random_bytes":
        path.write_bytes(np.random.default_rng(0).bytes(2048))
    elif kind == "crafted":
        torch.save({"model": {}, "config": {}, "x": _Touch(folder / "pwned")}, path)
    return path


BAD_CHECKPOINTS = {"truncated": "truncated or corrupt", "zero_bytes": "the file is empty",
                   "random_bytes": "truncated or corrupt", "crafted": "refused: the file holds Python objects"}


def _images(folder, count, listed=None, first_id=1):
    """``count`` grey PNGs in ``folder/images``; ``folder/annotations.json`` lists the first
    ``listed`` of them (all by default) with ids from ``first_id``."""
    (folder / "images").mkdir(parents=True)
    names = [f"{k:03d}.png" for k in range(count)]
    for k, name in enumerate(names):
        Image.fromarray(np.full((32, 32), 40 * k, np.uint8)).save(folder / "images" / name)
    if listed is not False:
        entries = [{"id": first_id + k, "file_name": f"images/{name}", "height": 32, "width": 32}
                   for k, name in enumerate(names[:listed])]
        (folder / "annotations.json").write_text(json.dumps({"images": entries, "annotations": [], "categories": []}))
    return folder / "images"


@pytest.mark.parametrize("kind", sorted(BAD_CHECKPOINTS))
def test_predict_and_export_refuse_a_bad_checkpoint_in_one_line(tmp_path, capsys, checkpoint, kind):
    bad = _bad_checkpoint(kind, tmp_path, checkpoint)
    images = _images(tmp_path / "split", 2)
    out = tmp_path / "results.json"
    assert main(["predict", "--checkpoint", str(bad), "--images", str(images), "--out", str(out)]) == 2
    assert BAD_CHECKPOINTS[kind] in _one_error_line(capsys, bad)
    assert main(["export", "--checkpoint", str(bad), "--out", str(tmp_path / "model.ts")]) == 2
    assert BAD_CHECKPOINTS[kind] in _one_error_line(capsys, bad)
    assert not out.exists() and not (tmp_path / "model.ts").exists()
    assert not (tmp_path / "pwned").exists()  # the crafted file's code never ran
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []  # no temporaries


def test_export_to_an_unwritable_place_is_one_line(tmp_path, capsys, checkpoint):
    blocker = tmp_path / "file"
    blocker.write_text("")
    assert main(["export", "--checkpoint", str(checkpoint), "--out", str(blocker / "model.ts")]) == 2
    _one_error_line(capsys, blocker / "model.ts")


def test_an_image_the_annotation_file_does_not_list_is_an_error_unless_skipped(tmp_path, capsys, checkpoint):
    images = _images(tmp_path / "split", 3, listed=2, first_id=7)
    annotations = tmp_path / "split" / "annotations.json"
    out = tmp_path / "results.json"
    args = ["predict", "--checkpoint", str(checkpoint), "--images", str(images), "--out", str(out), "--threshold", "0"]
    assert main(args) == 2
    assert "not listed in" in _one_error_line(capsys, images / "002.png", annotations)
    assert not out.exists()

    assert main(args + ["--unlisted", "skip"]) == 0
    err = capsys.readouterr().err
    assert f"note: skipped 1 image(s) not listed in {annotations} (--unlisted skip): 002.png" in err
    assert {r["image_id"] for r in json.loads(out.read_text())} == {7, 8}

    assert main(args + ["--unlisted", "new-ids"]) == 0
    assert "002.png" in capsys.readouterr().err
    assert {r["image_id"] for r in json.loads(out.read_text())} == {7, 8, 9}  # 9: above every listed id


def test_image_ids_with_and_without_annotations(tmp_path):
    plain = _images(tmp_path / "plain", 3, listed=False)
    assert images_and_ids([plain]) == ([(plain / f"{k:03d}.png", k + 1) for k in range(3)], [])  # as before
    split = _images(tmp_path / "split", 2, first_id=1)
    chosen, notes = images_and_ids([split, plain])
    # Images without an annotation file, given with a split, are numbered above the split's ids.
    assert [i for _, i in chosen] == [1, 2, 3, 4, 5] and "new ids 3..5" in notes[0]
    chosen, notes = images_and_ids([split / "001.png"])
    assert chosen == [(split / "001.png", 2)] and notes == []
    other = _images(tmp_path / "other", 2, first_id=2)  # ids 2, 3: 2 is also split's 001.png
    with pytest.raises(ValueError, match="image id 2 is given to both"):
        images_and_ids([split, other])
    only_unlisted = _images(tmp_path / "empty", 2, listed=0)
    with pytest.raises(ValueError, match="no images left to predict"):
        images_and_ids([only_unlisted], "skip")


def test_a_file_given_twice_gets_one_image_id(tmp_path):
    """Issue 26: the same image twice got two ids (its detections counted twice by any evaluation);
    now each distinct file once, at its first place, with a note, with or without an annotation file."""
    plain = _images(tmp_path / "plain", 2, listed=False)
    (tmp_path / "link.png").symlink_to(plain / "001.png")
    chosen, notes = images_and_ids([plain / "001.png", plain, plain / "001.png", tmp_path / "link.png"])
    assert chosen == [(plain / "001.png", 1), (plain / "000.png", 2)]
    assert len(notes) == 1 and notes[0].startswith("3 image(s) given more than once are predicted once")
    split = _images(tmp_path / "split", 2, first_id=5)
    chosen, notes = images_and_ids([split / "000.png", split / "000.png"])
    assert chosen == [(split / "000.png", 5)] and "1 image(s) given more than once" in notes[0]


@pytest.mark.parametrize("content, expected", [
    ("{not json", "invalid JSON"),
    ("[]", "needs an 'images' list"),
    ('{"annotations": []}', "needs an 'images' list"),
    ('{"images": [{"id": 1}]}', "images[0] has no 'file_name'"),
    ('{"images": [{"file_name": "images/000.png"}]}', "images[0] (images/000.png) has no integer 'id'"),
    ('{"images": [{"file_name": "images/000.png", "id": "1"}]}', "has no integer 'id'"),
    ('{"images": [7]}', "images[0] is a int, not an object"),
])
def test_a_malformed_annotation_file_beside_the_images_is_one_line(tmp_path, capsys, checkpoint, content, expected):
    images = _images(tmp_path / "split", 1, listed=False)
    annotations = tmp_path / "split" / "annotations.json"
    annotations.write_text(content)
    out = tmp_path / "results.json"
    assert main(["predict", "--checkpoint", str(checkpoint), "--images", str(images), "--out", str(out)]) == 2
    assert expected in _one_error_line(capsys, annotations)
    assert not out.exists()


def test_predict_help_says_how_ids_are_chosen(capsys):
    with pytest.raises(SystemExit):
        main(["predict", "--help"])
    help_text = " ".join(capsys.readouterr().out.split())
    assert "image ids:" in help_text and "--unlisted {error,skip,new-ids}" in help_text
    assert "numbered 1, 2, ... in the order given" in help_text


def test_a_folder_given_as_checkpoint_is_one_line(tmp_path, capsys):
    images = _images(tmp_path / "split", 1)
    assert main(["predict", "--checkpoint", str(tmp_path), "--images", str(images),
                 "--out", str(tmp_path / "r.json")]) == 2
    assert "a folder" in _one_error_line(capsys, tmp_path)
    assert not os.path.exists(tmp_path / "r.json")


def test_the_unlisted_choices_are_the_engines():
    import argparse

    from ocrloc.cli.predict import add_arguments

    parser = argparse.ArgumentParser()
    add_arguments(parser)
    (action,) = [a for a in parser._actions if a.dest == "unlisted"]
    assert tuple(action.choices) == UNLISTED


def _strokes(seed: int) -> np.ndarray:
    """A 96 x 128 uint8 canvas of light strokes on black."""
    rng = np.random.default_rng(seed)
    image = np.zeros((96, 128), np.uint8)
    for _ in range(6):
        y, x = rng.integers(0, 84), rng.integers(0, 116)
        image[y:y + rng.integers(4, 12), x:x + rng.integers(2, 12)] = rng.integers(120, 256)
    return image


@pytest.mark.parametrize("fmt,suffix", [("torchscript", ".pt"), ("export", ".pt2"), ("onnx", ".onnx")])
def test_predict_exported_runs_every_format_with_the_checkpoint_s_results_and_reports_polarity(
        tmp_path, capsys, checkpoint, fmt, suffix):
    if fmt == "onnx":
        pytest.importorskip("onnxruntime")
        pytest.importorskip("ocrloc.export.onnx", reason="needs onnx and onnxscript")
    folder = tmp_path / "pages"
    folder.mkdir()
    Image.fromarray(_strokes(0)).save(folder / "a_canvas.png")
    Image.fromarray(255 - _strokes(1)).save(folder / "b_page.png")  # dark ink on a light page
    exported = tmp_path / f"model{suffix}"
    assert main(["export", "--checkpoint", str(checkpoint), "--out", str(exported), "--format", fmt]) == 0
    capsys.readouterr()

    def predict(*model: str) -> list:
        out = tmp_path / "results.json"
        assert main(["predict", *model, "--images", str(folder), "--out", str(out), "--threshold", "0"]) == 0
        printed = capsys.readouterr().out
        assert ("polarity auto: 1 image read as dark_on_light, 1 image read as light_on_dark (inverted first)"
                in printed)
        # by place and class: random weights give near-equal scores whose order rounding may swap
        return sorted(json.loads(out.read_text()), key=lambda r: (r["image_id"], r["category_id"], *r["bbox"]))

    # The command gives what the Python API gives on the file (whose detections tests/test_api.py holds to the
    # checkpoint's; here the untrained model's 100th-best peaks tie to 1e-7 and ONNX may keep the other one),
    # and the checkpoint's for the first 90 detections of each image by score.
    got = predict("--exported", str(exported))
    api = Predictor.from_exported(exported)
    paths = [folder / "a_canvas.png", folder / "b_page.png"]
    assert [d.polarity for d in api(paths)] == ["light_on_dark", "dark_on_light"]
    from_api = sorted((r for k, d in enumerate(api(paths, score_threshold=0)) for r in d.to_coco(k + 1)),
                      key=lambda r: (r["image_id"], r["category_id"], *r["bbox"]))
    assert len(got) == len(from_api) > 0 and {r["image_id"] for r in got} == {1, 2}
    for a, b in zip(from_api, got):
        assert a["category_id"] == b["category_id"] and a["image_id"] == b["image_id"]
        assert max(abs(x - y) for x, y in zip(a["bbox"] + a["keypoints"], b["bbox"] + b["keypoints"])) < 1e-6
    expected = predict("--checkpoint", str(checkpoint))

    def best(results: list, image_id: int) -> list:
        ranked = sorted((r for r in results if r["image_id"] == image_id), key=lambda r: -r["score"])[:90]
        return sorted(ranked, key=lambda r: (r["category_id"], *r["bbox"]))

    for image_id in (1, 2):
        for a, b in zip(best(expected, image_id), best(got, image_id), strict=True):
            assert a["category_id"] == b["category_id"]
            assert max(abs(x - y) for x, y in zip(a["bbox"] + a["keypoints"], b["bbox"] + b["keypoints"])) < 1e-4
    # The default threshold: only detections scoring at least 0.5 are written, and the line says so.
    out = tmp_path / "default.json"
    assert main(["predict", "--exported", str(exported), "--images", str(folder), "--out", str(out)]) == 0
    assert "scoring at least 0.5 on 2 images" in capsys.readouterr().out
    written = json.loads(out.read_text())
    assert all(r["score"] >= 0.5 for r in written) and len(written) == sum(r["score"] >= 0.5 for r in got)
    # An explicit polarity is obeyed, and reported.
    assert main(["predict", "--exported", str(exported), "--images", str(folder), "--out", str(out),
                 "--polarity", "light_on_dark"]) == 0
    assert "polarity light_on_dark: 2 images read as light_on_dark\n" in capsys.readouterr().out


def test_predict_refuses_a_threshold_outside_0_1_in_one_line(tmp_path, capsys, checkpoint):
    images = _images(tmp_path / "split", 1)
    for bad in ("1.5", "-0.1", "many"):
        assert main(["predict", "--checkpoint", str(checkpoint), "--images", str(images),
                     "--out", str(tmp_path / "r.json"), "--threshold", bad]) == 2
        assert f"--threshold must be a number in [0, 1]" in _one_error_line(capsys, bad)
    assert not (tmp_path / "r.json").exists()
