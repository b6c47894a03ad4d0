"""Stroke points (nearest_ink, first_ink) against brute-force readings on hand-made ink, and
through a rule file into a COCO folder."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
from PIL import Image

from ocrloc.data.canvas import CanvasGenerator
from ocrloc.data.splits import write_split
from ocrloc.data.points import ink_box, parse_stroke_point, stroke_point, stroke_reference
from ocrloc.data.rules import get_rule

# An L-shaped stroke with a dot: rows 2-9 of column 3, row 9 from column 3 to 8, and pixel (row 4, col 8).
INK = np.zeros((12, 12), bool)
INK[2:10, 3] = True
INK[9, 3:9] = True
INK[4, 8] = True


def brute_nearest(ink, rx, ry):
    best = None
    for r in range(ink.shape[0]):
        for c in range(ink.shape[1]):
            if ink[r, c]:
                d = math.hypot(c + 0.5 - rx, r + 0.5 - ry)
                if best is None or d < best[0]:
                    best = (d, (c + 0.5, r + 0.5))
    return best[1]


def test_the_ink_box_frames_the_reference():
    assert ink_box(INK) == (3, 2, 6, 8)
    assert stroke_reference((3, 2, 6, 8), "nearest_ink(1, 0.25)") == (9.0, 4.0)


@pytest.mark.parametrize("a,b", [(0, 0), (1, 0), (1, 1), (0.5, 0.5), (-0.3, 1.4), (0.9, 0.3)])
def test_nearest_ink_is_the_nearest_ink_pixel_center(a, b):
    x, y, w, h = ink_box(INK)
    assert stroke_point(INK, f"nearest_ink({a}, {b})") == brute_nearest(INK, x + a * w, y + b * h)


def test_nearest_ink_hand_checked():
    # The top-right corner (9, 2) is nearest the dot's center (8.5, 4.5).
    assert stroke_point(INK, "nearest_ink(1, 0)") == (8.5, 4.5)
    # A reference on an ink pixel's center is that pixel; one between two, the upper (row-major).
    assert stroke_point(INK, "nearest_ink(0.0833333333, 0.1875)") == (3.5, 3.5)
    assert stroke_point(INK, "nearest_ink(0.0833333333, 0.25)") == (3.5, 3.5)


def test_first_ink_walks_the_ray():
    # From (3, 6.5) on the left edge rightwards: the stem's pixel (3.5, 6.5) is on the ray, first.
    assert stroke_point(INK, "first_ink(0, 0.5625, 1, 0)") == (3.5, 6.5)
    # From (3, 6): the centers (3.5, 5.5) and (3.5, 6.5) are both 0.5 off the ray and tie along
    # it; row-major order takes the upper one.
    assert stroke_point(INK, "first_ink(0, 0.5, 1, 0)") == (3.5, 5.5)
    # From the box's top-right corner (9, 2) straight down: column 8 at distance 0.5 is on the ray;
    # its first ink is the dot (8.5, 4.5), before the foot of the L at (8.5, 9.5).
    assert stroke_point(INK, "first_ink(1, 0, 0, 1)") == (8.5, 4.5)
    # From (9, 5) leftwards along y = 5: the dot's center (8.5, 4.5) is exactly 0.5 off the ray and
    # comes first; then the stem at (3.5, 4.5) and (3.5, 5.5) would tie further along.
    assert stroke_point(INK, "first_ink(1, 0.375, -1, 0)") == (8.5, 4.5)


def test_first_ink_falls_back_to_the_nearest_ink_when_the_ray_meets_none():
    # From the top-left corner (3, 2) up and left, away from all ink.
    assert stroke_point(INK, "first_ink(0, 0, -1, -1)") == stroke_point(INK, "nearest_ink(0, 0)") == (3.5, 2.5)


@pytest.mark.parametrize("spec,message", [
    ("nearest_ink(1)", "nearest_ink takes 2 finite numbers"),
    ("first_ink(0, 0, 1)", "first_ink takes 4 finite numbers"),
    ("first_ink(0, 0, 0, 0)", "must not be (0, 0)"),
    ("nearest_ink(a, b)", "is not a list of numbers"),
    ("nearest_ink(nan, 0)", "finite numbers"),
])
def test_bad_spellings_are_refused_by_name(spec, message):
    with pytest.raises(ValueError, match=message.replace("(", r"\(").replace(")", r"\)")):
        parse_stroke_point(spec)


def test_names_are_not_stroke_points():
    assert parse_stroke_point("topleft") is None and parse_stroke_point("farthest_ink(1, 2)") is None


def test_a_rule_file_of_stroke_points_writes_them_as_keypoints(tmp_path, pools):
    rule = tmp_path / "rule.yaml"
    rule.write_text("0: nearest_ink(1.0, 0)\n1: first_ink( 0, 1, 1, -0.8 )\n7: center\n")
    assert get_rule(str(rule)) == {0: "nearest_ink(1, 0)", 1: "first_ink(0, 1, 1, -0.8)", 7: "center"}
    out = tmp_path / "coco"
    write_split(CanvasGenerator("canvas128", str(rule), "val", 3, pools["val"]), 12, out, progress=False)
    coco = json.loads((out / "annotations.json").read_text())
    names = {a["point_name"] for a in coco["annotations"]}
    assert names == {"nearest_ink(1, 0)", "first_ink(0, 1, 1, -0.8)", "center"}
    images = {i["id"]: np.asarray(Image.open(out / i["file_name"])) for i in coco["images"]}
    for ann in coco["annotations"]:
        if ann["point_name"] == "center":
            continue
        # Recomputed from the written PNG, on the ink inside the annotated box.
        x, y, w, h = (int(v) for v in ann["bbox"])
        ink = images[ann["image_id"]][y:y + h, x:x + w] >= 128
        px, py = stroke_point(ink, ann["point_name"])
        assert ann["keypoints"] == [px + x, py + y, 2]
        assert ink[int(py - 0.5), int(px - 0.5)]
