"""Any COCO keypoint folder: 1-based, gapped category ids and two keypoints per category train,
predict, evaluate and export through the same commands as the MNIST canvases."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from ocrloc.cli import main
from ocrloc.config import load_config
from ocrloc.data.canvas import CanvasGenerator
from ocrloc.data.splits import write_split
from ocrloc.data.datasets import CocoKeypointDataset
from ocrloc.data.task import Task
from ocrloc.models.build import build
from tests.helpers import TINY_ARGMAX, TINY_DETECTOR, TINY_MODEL

IDS = {d: 1 + 3 * d for d in range(10)}  # 1, 4, 7, ...: COCO's 1-based habit, with gaps
KEYPOINTS = ["topleft", "center"]


def gapped_two_point_folder(generator: CanvasGenerator, count: int, out: Path) -> Path:
    """A written MNIST split relabelled as a user's dataset: ids ``IDS``, names ``digit d``, and the
    ink box's top-left corner and center as two named keypoints per character."""
    write_split(generator, count, out)
    coco = json.loads((out / "annotations.json").read_text())
    coco["categories"] = [{"id": IDS[d], "name": f"digit {d}", "supercategory": "character", "keypoints": KEYPOINTS,
                           "skeleton": []} for d in range(10)]
    for ann in coco["annotations"]:
        digit = ann["category_id"]
        ann["category_id"] = IDS[digit]
        ann["keypoints"] = [v for name in KEYPOINTS for v in (*ann["points"][name], 2)]
        ann["num_keypoints"] = len(KEYPOINTS)
    (out / "annotations.json").write_text(json.dumps(coco))
    return out


@pytest.fixture(scope="module")
def folders(tmp_path_factory, pools):
    root = tmp_path_factory.mktemp("gapped")
    return {split: gapped_two_point_folder(CanvasGenerator("canvas128", "all10", split, 3, pools[split]), count,
                                           root / split)
            for split, count in (("train", 24), ("val", 6))}


def test_the_dataset_defines_the_task(folders):
    dataset = CocoKeypointDataset(folders["val"])
    assert dataset.task.class_ids == tuple(IDS[d] for d in range(10)) and dataset.task.num_keypoints == 2
    assert dataset.task.class_names[3] == "digit 3" and dataset.task.keypoint_names[0] == tuple(KEYPOINTS)
    _, target = dataset[0]
    assert target["keypoints"].shape[1:] == (2, 3) and target["labels"].max() <= 9  # contiguous indices inside


@pytest.mark.parametrize("family", ["argmax", "centernet_heatmap", "keypointrcnn", "keypointrcnn_shared"])
def test_every_point_family_takes_k_keypoints(folders, family):
    overrides = {"argmax": ["model.type=argmax", "model.argmax.argmax_channels=2"],
                 "centernet_heatmap": ["model.type=centernet"],
                 "keypointrcnn": ["model.type=keypointrcnn", "model.head_stride=8", "model.fpn_channels=32"],
                 "keypointrcnn_shared": ["model.type=keypointrcnn", "model.head_stride=8", "model.fpn_channels=32",
                                         "model.baseline.shared_keypoints=true"]}[family]
    config = load_config(None, [*TINY_DETECTOR, *overrides])
    dataset = CocoKeypointDataset(folders["train"])
    detector = build(config, dataset.task)
    images = torch.stack([dataset[i][0] for i in range(2)])
    targets = [dataset[i][1] for i in range(2)]
    loss, terms = detector.criterion(detector.model.train()(images, targets), targets)
    assert torch.isfinite(loss)
    loss.backward()
    with torch.no_grad():
        (det, _) = detector.eval().predictor(images)
    assert det["keypoints"].shape[1:] == (2, 3) and det["labels"].max() < 10
    if family.startswith("keypointrcnn"):  # K channels for all classes, or K per class
        channels = detector.model.detector.roi_heads.keypoint_predictor.kps_score_lowres.out_channels
        assert channels == (2 if family.endswith("shared") else 20)


@pytest.mark.slow  # trains, predicts, scores and exports
def test_a_gapped_two_keypoint_folder_trains_predicts_evaluates_and_exports(folders, tmp_path, capsys):
    run = tmp_path / "run"
    sets = [*TINY_ARGMAX, "data.num_workers=0", f"data.train_path={folders['train']}",
            f"data.val_path={folders['val']}", "train.steps=4", "train.batch_size=4", "train.val_every=4",
            "train.log_every=2", "optim.warmup_steps=2", "postprocess.score_threshold=0.0"]
    assert main(["train", "--out", str(run), "--no-progress", *[a for s in sets for a in ("--set", s)]]) == 0
    state = torch.load(run / "checkpoints" / "best.pt", weights_only=False)
    meta = state["meta"]
    assert Task.from_dict(meta["task"]).class_ids == tuple(IDS.values())
    assert meta["train_size"] == [128, 128] and meta["preset"] is None and meta["rule"] is None

    results = tmp_path / "results.json"
    assert main(["predict", "--checkpoint", str(run / "checkpoints" / "best.pt"), "--images",
                 str(folders["val"] / "images"), "--out", str(results), "--threshold", "0"]) == 0
    entries = json.loads(results.read_text())
    assert entries and {e["category_id"] for e in entries} <= set(IDS.values())
    assert all(len(e["keypoints"]) == 3 * len(KEYPOINTS) for e in entries)
    capsys.readouterr()
    assert main(["evaluate", "--gt", str(folders["val"] / "annotations.json"), "--results", str(results),
                 "--json"]) == 0
    scores = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert set(scores["kpt_AP_per_keypoint"]) == set(KEYPOINTS)

    exported = tmp_path / "model.pt"
    assert main(["export", "--checkpoint", str(run / "checkpoints" / "best.pt"), "--out", str(exported)]) == 0
    import torchvision  # noqa: F401  (registers torchvision::nms for the loaded file)

    module = torch.jit.load(str(exported))
    assert module.class_ids == list(IDS.values()) and module.keypoint_names[0] == KEYPOINTS
    assert module.class_names[2] == "digit 2"


def test_glyph_canvases_are_a_task_of_62_classes_with_five_keypoints(tmp_path, capsys):
    from ocrloc.data.datasets import SyntheticCanvasDataset
    from ocrloc.data.glyphs import GLYPH_POINT_NAMES, GlyphCanvasGenerator

    out = tmp_path / "glyphs"
    assert main(["make-dataset", "--preset", "glyphs128", "--split", "val", "--count", "6", "--out", str(out)]) == 0
    dataset = CocoKeypointDataset(out)
    assert dataset.task.num_classes == 62 and dataset.task.num_keypoints == len(GLYPH_POINT_NAMES) == 5
    assert dataset.task.class_ids[:2] == (ord("0"), ord("1")) and dataset.task.class_names[10] == "A"
    on_the_fly = SyntheticCanvasDataset(GlyphCanvasGenerator("glyphs128", "val", 0), 6)
    assert on_the_fly.task == dataset.task
    (image, target), (written_image, written) = on_the_fly[2], dataset[2]
    assert torch.equal(image, written_image) and torch.equal(target["labels"], written["labels"])
    assert torch.allclose(target["keypoints"], written["keypoints"])
    assert main(["make-dataset", "--preset", "glyphs128", "--augment", "--split", "train", "--count", "2",
                 "--out", str(tmp_path / "aug")]) == 2
    assert "apply to the MNIST presets" in capsys.readouterr().err


def test_a_category_without_keypoint_names_is_a_one_line_error(folders, tmp_path, capsys):
    bad = tmp_path / "bad"
    bad.mkdir()
    coco = json.loads((folders["val"] / "annotations.json").read_text())
    del coco["categories"][2]["keypoints"]
    (bad / "annotations.json").write_text(json.dumps(coco))
    assert main(["train", "--out", str(tmp_path / "run"), "--set", f"data.train_path={bad}"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "category 7 ('digit 2') names no keypoints" in err and str(bad) in err
    assert not (tmp_path / "run").exists()  # nothing half-written


def test_a_training_folder_is_held_to_the_evaluators_checks(folders, tmp_path, capsys):
    bad = tmp_path / "outside"
    bad.mkdir()
    coco = json.loads((folders["val"] / "annotations.json").read_text())
    coco["annotations"][1]["keypoints"][0] = 500.0  # a keypoint outside its 128 x 128 image
    (bad / "annotations.json").write_text(json.dumps(coco))
    with pytest.raises(ValueError, match=r"annotations\[1\].*outside"):
        CocoKeypointDataset(bad)
    sets = [f"data.train_path={folders['train']}", f"data.val_path={bad}", "data.num_workers=0",
            *TINY_MODEL, "train.steps=1",
            "train.batch_size=2", "train.val_every=1", "optim.warmup_steps=1"]
    assert main(["train", "--out", str(tmp_path / "run"), "--no-progress", *[a for s in sets for a in ("--set", s)]]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: data.val_path: ") and err.count("\n") == 1 and "outside" in err
    assert not (tmp_path / "run").exists()  # the data is checked before the run folder is made
