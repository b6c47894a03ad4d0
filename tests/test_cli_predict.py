"""``ocrloc predict`` and ``ocrloc export`` end to end: checkpoint -> results file the evaluator scores."""

from __future__ import annotations

import json

import torch

from ocrloc.cli import main
from ocrloc.config import config_to_dict, load_config
from ocrloc.data.canvas import CanvasGenerator
from ocrloc.data.coco import write_split
from ocrloc.engine.checkpoint import save_checkpoint
from ocrloc.models.build import build


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
    assert main(["predict", "--checkpoint", str(checkpoint), "--images", str(split / "images"), "--out", str(out),
                 "--viz", str(tmp_path / "viz"), "--batch-size", "2"]) == 0
    results = json.loads(out.read_text())
    gt = json.loads((split / "annotations.json").read_text())
    assert {r["image_id"] for r in results} == {im["id"] for im in gt["images"]}
    assert all(len(r["keypoints"]) == 3 and 0 <= r["category_id"] <= 9 for r in results)
    assert (tmp_path / "viz" / "grid.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert main(["evaluate", "--gt", str(split / "annotations.json"), "--results", str(out), "--json"]) == 0
    assert "kpt_AP" in capsys.readouterr().out.strip().splitlines()[-1]

    exported = tmp_path / "model.pt"
    assert main(["export", "--checkpoint", str(checkpoint), "--out", str(exported)]) == 0
    out2 = tmp_path / "results_exported.json"
    assert main(["predict", "--checkpoint", str(exported), "--images", str(split / "images"), "--out", str(out2)]) == 0
    again = json.loads(out2.read_text())
    assert len(again) == len(results)
    for a, b in zip(results, again):
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
