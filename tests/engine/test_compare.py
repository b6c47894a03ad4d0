"""tools/compare.py's engine: one budget, one test split, reused runs, the markdown table."""

from __future__ import annotations

import json

import pytest
import yaml

from ocrloc.config import config_to_dict, load_config
from ocrloc.data.canvas import CanvasGenerator
from ocrloc.data.splits import write_split
from ocrloc.engine.compare import TABLE_COLUMNS, compare_configs, comparison_table
from ocrloc.engine.runs import same_config, train_or_reuse
from tests.helpers import TINY_MODEL

TINY = {
    "data": {"preset": "canvas128", "val_count": 2, "num_workers": 0},
    "model": {"backbone": "test_resnet", "fpn_channels": 32, "head_channels": 8},
    "train": {"batch_size": 2, "val_every": 2, "log_every": 1},
    "optim": {"warmup_steps": 1},
}


def write_config(path, model_type, **model):
    data = json.loads(json.dumps(TINY))
    data["model"].update(type=model_type, **model)
    path.write_text(yaml.safe_dump(data))
    return path


@pytest.mark.slow  # trains, predicts and scores each compared family
def test_compare_trains_scores_and_reuses_each_run(tmp_path, pools):
    test_dir = tmp_path / "test"
    write_split(CanvasGenerator("canvas128", "seed37", "test", 5, pools["test"]), 3, test_dir, progress=False)
    configs = [write_config(tmp_path / "dense.yaml", "centernet"),
               write_config(tmp_path / "retina.yaml", "retinanet", head_stride=8)]
    seen = []
    rows = compare_configs(configs, "seed37", 2, test_dir, tmp_path / "out", progress=False,
                           on_row=lambda r: seen.append(len(r)))
    assert seen == [1, 2]
    assert [r["model"] for r in rows] == ["dense", "retina"]
    assert [r["type"] for r in rows] == ["centernet", "retinanet"]
    for r in rows:
        assert r["rule"] == "seed37" and r["steps"] == 2 and r["images"] == 4  # the same budget for every row
        assert r["params"] > 0 and r["wall_s"] > 0 and 0.0 <= r["kpt_AP"] <= 1.0
    scores = json.loads((tmp_path / "out" / "dense" / "test_scores.json").read_text())
    assert scores["value"]["num_images"] == 3

    # A second call reuses the finished runs and their scores: nothing is retrained.
    csv_before = (tmp_path / "out" / "dense" / "metrics.csv").read_text()
    again = compare_configs(configs, "seed37", 2, test_dir, tmp_path / "out", progress=False)
    assert (tmp_path / "out" / "dense" / "metrics.csv").read_text() == csv_before
    assert [r["kpt_AP"] for r in again] == [r["kpt_AP"] for r in rows]

    table = comparison_table(rows).splitlines()
    assert table[0] == "| " + " | ".join(TABLE_COLUMNS) + " |"
    assert len(table) == 4 and table[2].startswith("| dense | centernet | test_resnet |")
    # Recall and precision at the documented threshold close every row (issue 25: every table has them).
    assert table[0].endswith("| recall @ 0.5 | precision @ 0.5 |")
    for line, row in zip(table[2:], rows):
        assert row["score_threshold"] == 0.5 and 0.0 <= row["recall"] <= 1.0
        # Two training steps may leave no detection at 0.5: precision is then undefined, shown "-".
        precision = "-" if row["precision"] is None else f"{row['precision']:.3f}"
        assert line.split(" | ")[-2:] == [f"{row['recall']:.3f}", f"{precision} |"]


def test_a_run_folder_of_another_config_is_not_reused(tmp_path, pools):
    config = load_config(None, [*TINY_MODEL, "data.val_count=2", "data.num_workers=0", "train.batch_size=2", "train.steps=1"])
    train_or_reuse(config, tmp_path / "run", progress=False)
    other = load_config(None, [*TINY_MODEL, "model.head_channels=16", "data.val_count=2", "data.num_workers=0", "train.batch_size=2", "train.steps=1"])
    with pytest.raises(FileExistsError, match="holds a run of another config"):
        train_or_reuse(other, tmp_path / "run", progress=False)


def test_missing_test_split_is_named(tmp_path):
    with pytest.raises(FileNotFoundError, match="test split not found: .*annotations.json"):
        compare_configs([], "all10", 1, tmp_path / "nowhere", tmp_path / "out")


def test_a_saved_config_missing_a_newer_key_is_the_same_config():
    config = load_config(None, ["model.head_channels=8"])
    saved = config_to_dict(config)
    del saved["model"]["centernet"]["point_mode"]  # a run saved before the key existed: its default applies
    assert same_config(saved, config)
    assert not same_config(saved, load_config(None, ["model.head_channels=8", "model.centernet.point_mode=offset"]))
    saved["model"]["retired_key"] = 1  # a key that no longer exists: another config
    assert not same_config(saved, config)
