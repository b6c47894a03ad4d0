"""Tasks with K keypoints per category and any category ids: scores, sigma per keypoint, table, bad input."""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from ocrloc.evaluation import DETAIL_KEYS, SCORE_KEYS, EvaluationInputError, evaluate, format_table
from ocrloc.evaluation import ground_truth_as_results
from tests.helpers import BOX_AREA, keypoints_ground_truth as make_gt

REPO = Path(__file__).resolve().parents[2]
THRESHOLDS = np.linspace(0.5, 0.95, 10)  # pycocotools' OKS thresholds
AREA = BOX_AREA  # every object's box: one area, so one OKS per object and AP is a step function of it

# Categories (id, name, keypoint names): 1-based ids with gaps, one shared list of two keypoints.
TWO = ["center", "baseline"]
GAPPED = [(1, "A", TWO), (3, "B", TWO), (7, "C", TWO)]
# Different keypoint counts: 1, 3 and 2 keypoints; "center" is shared by two categories.
MIXED = [(2, "dot", ["center"]), (5, "bar", ["center", "top", "bottom"]), (40, "pair", ["left", "right"])]


def as_results(gt: dict, move: dict[str, tuple[float, float]] | None = None, score: float = 1.0) -> list[dict]:
    """The ground truth as results, keypoints named in ``move`` shifted by ``(dx, dy)``."""
    names = {c["id"]: c["keypoints"] for c in gt["categories"]}
    out = []
    for a in gt["annotations"]:
        kp = []
        for j, name in enumerate(names[a["category_id"]]):
            dx, dy = (move or {}).get(name, (0.0, 0.0))
            kp += [a["keypoints"][3 * j] + dx, a["keypoints"][3 * j + 1] + dy, 1.0]
        out.append({"image_id": a["image_id"], "category_id": a["category_id"], "keypoints": kp, "score": score})
    return out


def oks1(d: float, sigma: float) -> float:
    return math.exp(-d * d / (2 * AREA * (2 * sigma) ** 2))


def step_ap(oks: float) -> float:
    """AP of objects that all have this OKS to their (only, top-scored) detection."""
    return float(np.mean(oks >= THRESHOLDS))


GAPPED_OBJECTS = [
    (1, 1, [(20.0, 30.0), (20.0, 44.0)]), (1, 3, [(70.0, 30.0), (70.0, 46.0)]),
    (2, 7, [(40.0, 60.0), (41.0, 75.0)]), (3, 3, [(90.0, 90.0), (90.0, 104.0)]),
]
MIXED_OBJECTS = [
    (1, 2, [(20.0, 20.0)]), (1, 5, [(60.0, 40.0), (60.0, 30.0), (60.0, 52.0)]), (1, 40, [(100.0, 90.0), (112.0, 90.0)]),
    (2, 5, [(30.0, 80.0), (30.0, 70.0), (30.0, 92.0)]), (2, 2, [(90.0, 20.0)]), (3, 40, [(10.0, 10.0), (24.0, 11.0)]),
]


# --- scores --------------------------------------------------------------------------------------------------


def test_gapped_ids_two_keypoints_against_itself_is_perfect() -> None:
    gt = make_gt(GAPPED_OBJECTS, GAPPED)
    for results in (as_results(gt), ground_truth_as_results(gt)):
        s = evaluate(gt, results)
        assert list(s) == list(SCORE_KEYS + DETAIL_KEYS)
        for key in ("kpt_AP", "kpt_AP50", "kpt_AP75", "cls_acc"):
            assert s[key] == pytest.approx(1.0)
        assert s["per_class"] == {"1": pytest.approx(1.0), "3": pytest.approx(1.0), "7": pytest.approx(1.0)}
        assert s["class_names"] == {"1": "A", "3": "B", "7": "C"}
        assert s["kpt_AP_per_keypoint"] == {"center": pytest.approx(1.0), "baseline": pytest.approx(1.0)}
        assert (s["mean_px"], s["median_px"], s["p95_px"], s["miss_rate"]) == (0.0, 0.0, 0.0, 0.0)
        zero = {"mean": 0.0, "median": 0.0, "p95": 0.0}
        assert s["point_px_per_keypoint"] == {"center": zero, "baseline": zero}
        assert (s["num_images"], s["num_gt"], s["num_dets"]) == (3, 4, 4)
        json.dumps(s, allow_nan=False)


@pytest.mark.parametrize("sigma", [0.05, 0.07])
def test_moving_only_the_second_keypoint_gives_its_error_and_ap(sigma: float) -> None:
    gt = make_gt(GAPPED_OBJECTS, GAPPED)
    s = evaluate(gt, as_results(gt, {"baseline": (1.2, 1.6)}), sigma=sigma)  # 2 px away
    px = s["point_px_per_keypoint"]
    assert px["baseline"] == {"mean": pytest.approx(2.0), "median": pytest.approx(2.0), "p95": pytest.approx(2.0)}
    assert px["center"] == {"mean": 0.0, "median": 0.0, "p95": 0.0}
    # Overall: four zeros and four 2s.
    assert s["mean_px"] == pytest.approx(1.0) and s["median_px"] == pytest.approx(1.0)
    assert s["p95_px"] == pytest.approx(2.0)
    both = (1.0 + oks1(2.0, sigma)) / 2  # OKS: the mean over the two keypoints
    assert s["kpt_AP"] == pytest.approx(step_ap(both), abs=1e-9)
    assert s["kpt_AP50"] == pytest.approx(float(both >= 0.5)) and s["kpt_AP75"] == pytest.approx(float(both >= 0.75))
    for ap in s["per_class"].values():
        assert ap == pytest.approx(step_ap(both), abs=1e-9)
    assert s["kpt_AP_per_keypoint"]["center"] == pytest.approx(1.0)
    assert s["kpt_AP_per_keypoint"]["baseline"] == pytest.approx(step_ap(oks1(2.0, sigma)), abs=1e-9)
    assert s["miss_rate"] == 0.0 and s["cls_acc"] == 1.0
    assert step_ap(both) not in (0.0, 1.0) and step_ap(both) != step_ap(oks1(2.0, sigma))  # the test means something


def test_unlabelled_keypoint_is_left_out_of_its_error_and_ap() -> None:
    objects = [list(o) for o in GAPPED_OBJECTS]
    objects[2][2] = [objects[2][2][0], (0.0, 0.0, 0)]  # image 2's object does not label its baseline
    gt = make_gt([tuple(o) for o in objects], GAPPED)
    results = as_results(gt, {"baseline": (0.0, 1.0)})
    results[2]["keypoints"][3:5] = [120.0, 5.0]  # its detection's baseline is anywhere
    s = evaluate(gt, results)
    assert s["point_px_per_keypoint"]["baseline"]["mean"] == pytest.approx(1.0)  # three labelled baselines, 1 px
    assert s["point_px_per_keypoint"]["baseline"]["p95"] == pytest.approx(1.0)
    assert s["mean_px"] == pytest.approx(3.0 / 7.0)  # 4 centers at 0, 3 baselines at 1
    assert s["kpt_AP_per_keypoint"]["baseline"] == pytest.approx(step_ap(oks1(1.0, 0.05)), abs=1e-9)
    assert s["per_class"]["7"] == pytest.approx(1.0)  # its OKS is the center's alone, as in COCOeval


def test_categories_with_different_keypoint_counts() -> None:
    gt = make_gt(MIXED_OBJECTS, MIXED)
    s = evaluate(gt, as_results(gt))
    assert s["kpt_AP"] == pytest.approx(1.0) and s["mean_px"] == 0.0
    assert list(s["per_class"]) == ["2", "5", "40"] and all(ap == pytest.approx(1.0) for ap in s["per_class"].values())
    assert list(s["kpt_AP_per_keypoint"]) == ["center", "top", "bottom", "left", "right"]

    moved = evaluate(gt, as_results(gt, {"top": (0.0, 1.5), "right": (2.0, 0.0)}))
    bar = step_ap((2 + oks1(1.5, 0.05)) / 3)
    pair = step_ap((1 + oks1(2.0, 0.05)) / 2)
    assert moved["per_class"] == {"2": pytest.approx(1.0), "5": pytest.approx(bar, abs=1e-9),
                                  "40": pytest.approx(pair, abs=1e-9)}
    # Three keypoint-count groups, one COCOeval run each; AP is the mean over categories, as one run's would be.
    assert moved["kpt_AP"] == pytest.approx((1.0 + bar + pair) / 3, abs=1e-9)
    assert moved["kpt_AP_per_keypoint"] == {
        "center": pytest.approx(1.0), "top": pytest.approx(step_ap(oks1(1.5, 0.05)), abs=1e-9),
        "bottom": pytest.approx(1.0), "left": pytest.approx(1.0),
        "right": pytest.approx(step_ap(oks1(2.0, 0.05)), abs=1e-9)}
    px = moved["point_px_per_keypoint"]
    assert px["top"]["mean"] == pytest.approx(1.5) and px["right"]["mean"] == pytest.approx(2.0)
    assert px["center"]["mean"] == 0.0 and px["left"]["p95"] == 0.0


def _noisy_results(gt: dict, seed: int) -> list[dict]:
    rng = np.random.default_rng(seed)
    out = []
    for r in as_results(gt):
        for _ in range(int(rng.integers(1, 3))):  # duplicates now and then
            kp = list(r["keypoints"])
            for j in range(0, len(kp), 3):
                kp[j] += float(rng.normal(0, 1.2))
                kp[j + 1] += float(rng.normal(0, 1.2))
            out.append({**r, "keypoints": kp, "score": float(rng.uniform(0.1, 1.0))})
    return out


def test_combined_ap_is_the_mean_of_each_category_alone_and_per_keypoint_ap_is_the_reduced_task() -> None:
    gt = make_gt(MIXED_OBJECTS, MIXED)
    results = _noisy_results(gt, 3)
    s = evaluate(gt, results)
    alone = []
    for cid, name, kps in MIXED:
        gt_c = {**gt, "annotations": [a for a in gt["annotations"] if a["category_id"] == cid],
                "categories": [c for c in gt["categories"] if c["id"] == cid]}
        ap = evaluate(gt_c, [r for r in results if r["category_id"] == cid])["kpt_AP"]
        assert s["per_class"][str(cid)] == pytest.approx(ap, abs=1e-12)
        alone.append(ap)
    assert s["kpt_AP"] == pytest.approx(np.mean(alone), abs=1e-12)
    assert 0.0 < s["kpt_AP"] < 1.0
    # AP of one keypoint = the keypoint AP of the task cut down to that keypoint (every object labels it here).
    for name in ("center", "top", "right"):
        cats = [(cid, n, [name]) for cid, n, kps in MIXED if name in kps]
        index = {cid: kps.index(name) for cid, _, kps in MIXED if name in kps}
        gt_n = make_gt([(img, cid, [pts[index[cid]]]) for img, cid, pts in MIXED_OBJECTS if cid in index], cats)
        res_n = [{**r, "keypoints": r["keypoints"][3 * index[r["category_id"]]:3 * index[r["category_id"]] + 3]}
                 for r in results if r["category_id"] in index]
        for a, b in zip(gt_n["annotations"], (a for a in gt["annotations"] if a["category_id"] in index)):
            a["bbox"], a["area"] = b["bbox"], b["area"]
        assert s["kpt_AP_per_keypoint"][name] == pytest.approx(evaluate(gt_n, res_n)["kpt_AP"], abs=1e-12)


def test_sigma_per_keypoint() -> None:
    gt = make_gt(GAPPED_OBJECTS, GAPPED)
    results = as_results(gt, {"center": (1.0, 0.0), "baseline": (0.0, 2.0)})
    s = evaluate(gt, results, sigma=[0.04, 0.1])
    both = (oks1(1.0, 0.04) + oks1(2.0, 0.1)) / 2
    assert s["kpt_AP"] == pytest.approx(step_ap(both), abs=1e-9)
    assert s["kpt_AP_per_keypoint"] == {"center": pytest.approx(step_ap(oks1(1.0, 0.04)), abs=1e-9),
                                        "baseline": pytest.approx(step_ap(oks1(2.0, 0.1)), abs=1e-9)}
    assert evaluate(gt, results, sigma=(0.1, 0.04))["kpt_AP"] != s["kpt_AP"]  # the order is the keypoints'
    assert evaluate(gt, results, sigma=[0.05]) == evaluate(gt, results, sigma=0.05)  # one value: every keypoint
    assert evaluate(gt, results, sigma=[0.05, 0.05]) == evaluate(gt, results, sigma=0.05)
    with pytest.raises(EvaluationInputError, match=r"sigma has 3 values but the categories of <ground truth> name "
                                                   r"2 keypoints \(center, baseline\)"):
        evaluate(gt, results, sigma=[0.05, 0.05, 0.05])
    mixed = make_gt(MIXED_OBJECTS, MIXED)
    with pytest.raises(EvaluationInputError, match="do not share one keypoint list; give one sigma"):
        evaluate(mixed, as_results(mixed), sigma=[0.05, 0.05])
    for bad in ([0.05, -1.0], [], [0.05, float("inf")], "0.05"):
        with pytest.raises(EvaluationInputError, match="sigma must be"):
            evaluate(gt, results, sigma=bad)


def test_class_accuracy_across_keypoint_lists() -> None:
    # A confident "dot" (center only) on a "bar": compared on the shared "center", it is the nearest object.
    gt = make_gt([(1, 5, [(60.0, 40.0), (60.0, 30.0), (60.0, 52.0)])], MIXED, num_images=1)
    s = evaluate(gt, [{"image_id": 1, "category_id": 2, "keypoints": [60.0, 40.5, 1.0], "score": 0.9}])
    assert s["cls_acc"] == 0.0 and s["miss_rate"] == 1.0 and s["mean_px"] is None
    assert s["point_px_per_keypoint"]["top"] == {"mean": None, "median": None, "p95": None}
    # A "pair" has no keypoint name in common with a "bar": it cannot match it at all.
    pair = {"image_id": 1, "category_id": 40, "keypoints": [60.0, 40.0, 1, 60.0, 30.0, 1], "score": 0.9}
    bar = {"image_id": 1, "category_id": 5, "keypoints": [60.5, 40, 1, 60, 30, 1, 60, 52, 1], "score": 0.5}
    s = evaluate(gt, [pair, bar])
    assert s["cls_acc"] == 1.0 and s["miss_rate"] == 0.0
    assert s["mean_px"] == pytest.approx(0.5 / 3)


def test_empty_results_and_no_detections_for_a_keypoint() -> None:
    gt = make_gt(MIXED_OBJECTS, MIXED)
    s = evaluate(gt, [])
    assert s["kpt_AP"] == 0.0 and s["per_class"] == {"2": 0.0, "5": 0.0, "40": 0.0}
    assert s["kpt_AP_per_keypoint"] == dict.fromkeys(["center", "top", "bottom", "left", "right"], 0.0)
    assert s["point_px_per_keypoint"]["left"] == {"mean": None, "median": None, "p95": None}
    only_dots = [r for r in as_results(gt) if r["category_id"] == 2]
    s = evaluate(gt, only_dots)
    assert s["per_class"] == {"2": pytest.approx(1.0), "5": 0.0, "40": 0.0}
    assert s["kpt_AP_per_keypoint"]["center"] == pytest.approx(0.5)  # dots 1, bars 0
    assert s["kpt_AP_per_keypoint"]["top"] == 0.0 and s["kpt_AP_per_keypoint"]["left"] == 0.0
    assert s["miss_rate"] == pytest.approx(4 / 6)


def test_category_without_ground_truth_is_null() -> None:
    gt = make_gt([o for o in MIXED_OBJECTS if o[1] != 40], MIXED)
    s = evaluate(gt, as_results(gt))
    assert s["per_class"]["40"] is None and s["kpt_AP_per_keypoint"]["left"] is None
    assert s["kpt_AP"] == pytest.approx(1.0)


# --- table ---------------------------------------------------------------------------------------------------


def test_table_names_classes_and_lists_keypoints() -> None:
    gt = make_gt(GAPPED_OBJECTS, GAPPED)
    table = format_table(evaluate(gt, as_results(gt, {"baseline": (1.2, 1.6)})))
    lines = table.splitlines()
    assert lines[0] == "images 3   ground-truth objects 4   detections 4"
    i = lines.index("keypoint AP per class")
    assert lines[i + 1].split() == ["class", "A", "B", "C"]
    j = lines.index("per keypoint")
    assert lines[j + 1].split() == ["keypoint", "AP", "mean", "px", "median", "p95"]
    assert lines[j + 2].split() == ["center", "1.000", "0.00", "0.00", "0.00"]
    assert lines[j + 3].split()[0] == "baseline" and lines[j + 3].split()[2:] == ["2.00", "2.00", "2.00"]


def test_table_wraps_many_classes_and_keeps_ids_when_names_are_ids() -> None:
    cats = [(c, str(c), ["point"]) for c in range(1, 31)]
    gt = make_gt([(1, c, [(4.0 * c, 50.0)]) for c in range(1, 31)], cats, num_images=1, size=140)  # boxes reach x = 136
    table = format_table(evaluate(gt, as_results(gt)))
    lines = table.splitlines()
    assert lines[0].startswith("images 1   ground-truth digits 30")
    assert all(len(line) <= 76 for line in lines)
    rows = [line.split()[1:] for line in lines if line.startswith("class ") and "accuracy" not in line]
    assert sum(rows, []) == [str(c) for c in range(1, 31)] and len(rows) == 3
    assert "per keypoint" not in table


# --- bad input -----------------------------------------------------------------------------------------------


def _set(path: list, value):
    def edit(obj):
        for key in path[:-1]:
            obj = obj[key]
        obj[path[-1]] = value
    return edit


BAD_GT = {
    "category_without_keypoints": (lambda g: g["categories"][1].pop("keypoints"),
                                   "names no keypoints ('keypoints' must be a non-empty list of keypoint names, got None)"),
    "category_empty_keypoints": (_set(["categories", 2, "keypoints"], []),
                                 "names no keypoints ('keypoints' must be a non-empty list of keypoint names, got [])"),
    "keypoint_name_twice": (_set(["categories", 0, "keypoints"], ["center", "center"]),
                            "categories[0]: keypoint name 'center' appears twice"),
    "duplicate_category_id": (_set(["categories", 2, "id"], 3), "categories[2]: id 3 appears twice"),
    "duplicate_image_id": (_set(["images", 1, "id"], 1), "images[1]: id 1 appears twice"),
    "image_without_size": (lambda g: g["images"][2].pop("height"), "images[2]: needs 'width' and 'height' > 0"),
    "keypoint_count": (_set(["annotations", 2, "keypoints"], [40.0, 60.0, 2]),
                       "annotations[2]: keypoints must be 6 finite numbers [x, y, v] per point for category 7 "
                       "(2 points: center, baseline)"),
    "keypoint_outside_x": (_set(["annotations", 0, "keypoints", 3], 128.5),
                           "annotations[0]: keypoint 'baseline' (128.5, 44.0) is outside image 1 "
                           "(0 <= x <= 128, 0 <= y <= 128)"),
    "keypoint_outside_y": (_set(["annotations", 3, "keypoints", 1], -0.25),
                           "annotations[3]: keypoint 'center' (90.0, -0.25) is outside image 3"),
    "nothing_labelled": (_set(["annotations", 1, "keypoints"], [70.0, 30.0, 0, 70.0, 46.0, 0]),
                         "annotations[1]: keypoints [70.0, 30.0, 0, 70.0, 46.0, 0] labels none of its 2 points"),
    "negative_visibility": (_set(["annotations", 1, "keypoints", 5], -1),
                            "annotations[1]: keypoints [70.0, 30.0, 2, 70.0, 46.0, -1] has a negative visibility"),
    "num_keypoints": (_set(["annotations", 1, "num_keypoints"], 1),
                      "annotations[1]: num_keypoints must be 2 (its keypoints with v > 0), got 1"),
    "flat_box": (_set(["annotations", 2, "bbox", 3], 0),
                 "annotations[2]: bbox [36.0, 56.0, 20, 0] has width or height <= 0 (on image 2 (000002.png))"),
    "box_outside": (_set(["annotations", 3, "bbox", 1], 100.0),
                    "annotations[3]: bbox [86.0, 100.0, 20, 30] is outside image 3 (000003.png), 128 x 128 px "
                    "(x1, y1 >= -1, x + w <= width + 1, y + h <= height + 1)"),
    "bbox_not_numbers": (_set(["annotations", 0, "bbox"], [1, 2, 3, None]),
                         "annotations[0]: bbox [1, 2, 3, None] is not [x, y, w, h], 4 finite numbers"),
}


@pytest.mark.parametrize("case", sorted(BAD_GT))
def test_bad_ground_truth_is_named(case: str, tmp_path: Path) -> None:
    gt = make_gt(GAPPED_OBJECTS, GAPPED)
    results = as_results(gt)
    edit, message = BAD_GT[case]
    edit(gt)
    path = tmp_path / "gt.json"
    path.write_text(json.dumps(gt))
    with pytest.raises(EvaluationInputError) as e:
        evaluate(path, results)
    text = str(e.value)
    assert text.startswith(f"{path}: ") and message in text and "\n" not in text


def test_keypoints_on_the_image_border_are_inside() -> None:
    gt = make_gt([(1, 1, [(0.0, 0.0), (128.0, 128.0)])], GAPPED, num_images=1)
    gt["annotations"][0]["bbox"] = [0.0, 0.0, 128.0, 128.0]  # the whole image: inside too
    assert evaluate(gt, as_results(gt))["kpt_AP"] == pytest.approx(1.0)


BAD_RESULTS = {
    "unknown_category": (_set([0, "category_id"], 2),
                         "entry 0: category_id 2 is not a category of the ground truth {gt} (ids: 1, 3, 7)"),
    "keypoint_count": (_set([1, "keypoints"], [70.0, 30.0, 1.0]),
                       "entry 1: keypoints must be 6 finite numbers [x, y, v] per point (K = 2 for category 3: "
                       "center, baseline), got [70.0, 30.0, 1.0]"),
    "negative_score": (_set([2, "score"], -0.5), "entry 2: score -0.5 is negative (scores must be >= 0)"),
}


@pytest.mark.parametrize("case", sorted(BAD_RESULTS))
def test_bad_result_is_named(case: str, tmp_path: Path) -> None:
    gt = make_gt(GAPPED_OBJECTS, GAPPED)
    results = as_results(gt)
    edit, message = BAD_RESULTS[case]
    edit(results)
    gt_path, res_path = tmp_path / "gt.json", tmp_path / "results.json"
    gt_path.write_text(json.dumps(gt))
    res_path.write_text(json.dumps(results))
    with pytest.raises(EvaluationInputError) as e:
        evaluate(gt_path, res_path)
    text = str(e.value)
    assert text.startswith(f"{res_path}: ") and message.format(gt=gt_path) in text and "\n" not in text


def test_zero_score_is_accepted() -> None:
    gt = make_gt(GAPPED_OBJECTS, GAPPED)
    assert evaluate(gt, as_results(gt, score=0.0))["kpt_AP"] == pytest.approx(1.0)


# --- command line --------------------------------------------------------------------------------------------


def ocrloc_evaluate(*args: str) -> subprocess.CompletedProcess:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([str(REPO), env.get("PYTHONPATH", "")]).rstrip(os.pathsep)
    return subprocess.run([sys.executable, "-m", "ocrloc", "evaluate", *args], capture_output=True, text=True,
                          env=env, timeout=60, cwd=REPO)


def test_cli_sigma_per_keypoint_and_bad_input(tmp_path: Path) -> None:
    gt = make_gt(GAPPED_OBJECTS, GAPPED)
    gt_path, res_path = tmp_path / "gt.json", tmp_path / "results.json"
    gt_path.write_text(json.dumps(gt))
    res_path.write_text(json.dumps(as_results(gt, {"baseline": (1.2, 1.6)})))
    proc = ocrloc_evaluate("--gt", str(gt_path), "--results", str(res_path), "--sigma", "0.05", "0.1", "--json")
    assert proc.returncode == 0, proc.stderr
    lines = proc.stdout.strip().splitlines()
    scores = json.loads(lines[-1])
    assert scores == evaluate(gt_path, res_path, sigma=[0.05, 0.1])
    assert "per keypoint" in lines and scores["kpt_AP_per_keypoint"]["baseline"] == pytest.approx(
        step_ap(oks1(2.0, 0.1)), abs=1e-9)

    out = tmp_path / "out"
    out.mkdir()
    for args, expected in [
        (["--sigma", "0.05", "0.1", "0.2"], "error: sigma has 3 values but the categories of"),
        (["--sigma", "0.05", "-1"], "error: sigma must be a finite number > 0, got -1.0"),
    ]:
        proc = ocrloc_evaluate("--gt", str(gt_path), "--results", str(res_path), *args)
        assert proc.returncode == 2 and proc.stdout == "" and proc.stderr.startswith(expected)
        assert len(proc.stderr.strip().splitlines()) == 1
    gt["annotations"][0]["keypoints"][3] = 200.0
    gt_path.write_text(json.dumps(gt))
    proc = ocrloc_evaluate("--gt", str(gt_path), "--oracle", "--json")
    assert proc.returncode == 2 and proc.stdout == ""
    assert proc.stderr.strip() == (f"error: {gt_path}: annotations[0]: keypoint 'baseline' (200.0, 44.0) is outside "
                                   "image 1 (0 <= x <= 128, 0 <= y <= 128)")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["gt.json", "out", "results.json"] and not any(out.iterdir())


def test_confusions_count_the_wrong_classes_of_the_class_agnostic_matches():
    from ocrloc.evaluation import evaluate, format_table

    cats = [{"id": 65, "name": "A", "keypoints": ["center"]}, {"id": 66, "name": "B", "keypoints": ["center"]}]
    images = [{"id": 1, "width": 100, "height": 100}]
    anns = [{"id": k + 1, "image_id": 1, "category_id": cid, "bbox": [x - 5, 40, 10, 20], "area": 200.0,
             "keypoints": [x, 50, 2], "num_keypoints": 1, "iscrowd": 0}
            for k, (cid, x) in enumerate([(65, 10), (65, 40), (66, 70)])]
    gt = {"images": images, "annotations": anns, "categories": cats}
    # Both A's are called B, the B is right.
    results = [{"image_id": 1, "category_id": 66, "keypoints": [x, 50, 0.9], "score": 0.9} for x in (10, 40, 70)]
    scores = evaluate(gt, results)
    assert scores["confusions"] == [[65, 66, 2]]
    assert scores["cls_acc"] == pytest.approx(1 / 3)
    assert "A -> B: 2" in format_table(scores)
