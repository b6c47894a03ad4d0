"""Rules as data: rule files, the points they may ask for, and make_dataset --rule FILE."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from ocrloc.data.canvas import CanvasGenerator
from ocrloc.data.canvas import canvas_target
from ocrloc.data.points import BOX_POINT_NAMES, POINT_NAMES, box_points
from ocrloc.data.rules import KNOWN_POINTS, RULE_POINT_NAMES, get_rule, rule_classes

REPO = Path(__file__).resolve().parents[2]


def test_box_points_are_the_corners_and_edge_middles_of_the_ink_box():
    points = box_points((10, 20, 6, 8))  # x 10..16, y 20..28
    assert points == {"topright": (16.0, 20.0), "bottomleft": (10.0, 28.0), "bottomright": (16.0, 28.0),
                      "top_middle": (13.0, 20.0), "bottom_middle": (13.0, 28.0), "left_middle": (10.0, 24.0),
                      "right_middle": (16.0, 24.0)}
    assert set(points) == set(BOX_POINT_NAMES) and not set(BOX_POINT_NAMES) & set(POINT_NAMES)


def test_a_rule_file_is_a_rule(tmp_path, pools):
    path = tmp_path / "mine.yaml"
    path.write_text("0: bottomright\n'4': top_middle\n9: leftmost\n")
    assert dict(get_rule(str(path))) == {0: "bottomright", 4: "top_middle", 9: "leftmost"}
    assert rule_classes(str(path)) == (0, 4, 9)
    (tmp_path / "mine.json").write_text(json.dumps({"0": "center"}))
    assert dict(get_rule(str(tmp_path / "mine.json"))) == {0: "center"}
    # Canvases of the rule draw its classes only, and their targets hold its points.
    generator = CanvasGenerator("canvas128", str(path), "val", 0, pools["val"])
    for index in range(5):
        canvas = generator.generate(index)
        target = canvas_target(canvas, str(path), index + 1)
        for digit, keypoint in zip(canvas.digits, target["keypoints"][:, 0, :2].tolist()):
            assert digit.label in (0, 4, 9)
            x, y, w, h = digit.bbox
            expected = {0: (x + w, y + h), 4: (x + w / 2, y), 9: digit.points["leftmost"]}[digit.label]
            assert keypoint == pytest.approx(expected)


@pytest.mark.parametrize("text, message", [
    ("[topleft]", "expected a mapping of classes to point names"),
    ("3: middle\n", "class 3 wants unknown point 'middle'"),
    ("12: center\n", "class 12 outside 0..9"),
    ("three: center\n", "class 'three' is not an integer"),
    ("0: [unclosed\n", "cannot read it"),
])
def test_bad_rule_files_name_the_file_and_the_class(tmp_path, text, message):
    path = tmp_path / "bad.yaml"
    path.write_text(text)
    with pytest.raises(ValueError, match=message) as err:
        get_rule(str(path))
    assert "bad.yaml" in str(err.value)


def test_unknown_names_and_missing_files():
    with pytest.raises(ValueError, match=r"unknown rule 'all11'; known rules: all10, seed37, or a rule file"):
        get_rule("all11")
    with pytest.raises(FileNotFoundError, match="rule file not found: nowhere.yaml"):
        get_rule("nowhere.yaml")
    assert set(RULE_POINT_NAMES) == set(POINT_NAMES) | set(BOX_POINT_NAMES)


def make_dataset(*args):
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    return subprocess.run([sys.executable, str(REPO / "tools" / "make_dataset.py"), *map(str, args)],
                          cwd=REPO, env=env, capture_output=True, text=True, timeout=120)


def test_make_dataset_writes_a_rule_file_s_points_and_refuses_a_bad_one(tmp_path):
    rule = tmp_path / "corners.yaml"
    rule.write_text("\n".join(f"{c}: {'topright' if c % 2 else 'bottomleft'}" for c in range(10)) + "\n")
    run = make_dataset("--rule", rule, "--split", "val", "--count", "4", "--out", tmp_path / "out", "--no-images")
    assert run.returncode == 0, run.stderr
    coco = json.loads((tmp_path / "out" / "annotations.json").read_text())
    assert coco["info"]["rule"] == str(rule)
    for ann in coco["annotations"]:
        x, y, w, h = ann["bbox"]
        assert ann["keypoints"][:2] == ([x + w, y] if ann["category_id"] % 2 else [x, y + h])
        assert ann["point_name"] == ("topright" if ann["category_id"] % 2 else "bottomleft")
    rule.write_text("3: nowhere\n")
    run = make_dataset("--rule", rule, "--split", "val", "--count", "4", "--out", tmp_path / "bad")
    assert run.returncode == 2 and not (tmp_path / "bad").exists()
    assert run.stderr.strip().splitlines() == [f"error: rule file {rule}: class 3 wants unknown point 'nowhere'; "
                                               f"known points: {KNOWN_POINTS}"]


def test_train_refuses_a_bad_rule_file_in_one_line_before_writing_anything(tmp_path):
    rule = tmp_path / "bad.json"
    rule.write_text('{"4": "northmost"}')
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    run = subprocess.run([sys.executable, str(REPO / "tools" / "train.py"), "--out", str(tmp_path / "run"),
                          "--set", f"data.rule={rule}"], cwd=REPO, env=env, capture_output=True, text=True, timeout=120)
    assert run.returncode == 2 and not (tmp_path / "run").exists()
    assert run.stderr.strip().splitlines() == [f"error: rule file {rule}: class 4 wants unknown point 'northmost'; "
                                               f"known points: {KNOWN_POINTS}"]
