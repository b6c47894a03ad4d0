"""Behaviour of ocrloc.evaluation and tools/evaluate.py on small hand-built ground truths."""

from __future__ import annotations

import copy
import json
import math
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from ocrloc.evaluation import (DETAIL_KEYS, SCORE_KEYS, EvaluationInputError, evaluate, format_table,
                               ground_truth_as_results)
from tests.helpers import det, digits_ground_truth as make_gt

REPO = Path(__file__).resolve().parents[2]
THRESHOLDS = np.linspace(0.5, 0.95, 10)  # pycocotools' OKS thresholds
REQUIRED_KEYS = {
    "kpt_AP", "kpt_AP50", "kpt_AP75", "box_AP", "mean_px", "p95_px", "miss_rate", "cls_acc", "per_class",
    "median_px", "num_images", "num_gt", "num_dets", "kpt_AP_per_keypoint", "point_px_per_keypoint", "class_names", "confusions",
    "recall", "precision", "score_threshold",  # issue 25: what a user who thresholds the scores gets
}


def perfect(gt: dict, with_bbox: bool) -> list[dict]:
    out = []
    for a in gt["annotations"]:
        d = det(a["image_id"], a["category_id"], *a["keypoints"][:2])
        if with_bbox:
            d["bbox"] = list(a["bbox"])
        out.append(d)
    return out


def expected_ap(d: float, area: float, sigma: float) -> float:
    """Keypoint AP of one digit with one detection ``d`` px away, from the OKS formula alone."""
    oks = math.exp(-d * d / (2 * area * (2 * sigma) ** 2))
    return float(np.mean(oks >= THRESHOLDS))


# Classes 0 (category id 0 must work in pycocotools), 3 and 7 over three images, two digits sharing image 1.
DIGITS = [
    (1, 0, 20.5, 30.5, 20, 26), (1, 3, 80.0, 70.0, 24, 28), (2, 7, 50.0, 50.0, 18, 30), (3, 3, 10.0, 90.0, 30, 30),
]


@pytest.mark.parametrize("with_bbox", [True, False])
def test_ground_truth_as_predictions_is_perfect(with_bbox: bool) -> None:
    gt = make_gt(DIGITS)
    results = perfect(gt, with_bbox)
    gt_before, results_before = copy.deepcopy(gt), copy.deepcopy(results)
    s = evaluate(gt, results)
    for key in ("kpt_AP", "kpt_AP50", "kpt_AP75", "cls_acc"):
        assert s[key] == pytest.approx(1.0)
    assert s["box_AP"] == (pytest.approx(1.0) if with_bbox else None)
    assert s["mean_px"] == 0.0 and s["median_px"] == 0.0 and s["p95_px"] == 0.0
    assert s["miss_rate"] == 0.0
    assert set(s["per_class"]) == {str(c) for c in range(10)}
    for c, ap in s["per_class"].items():
        assert ap == (pytest.approx(1.0) if c in {"0", "3", "7"} else None)
    assert (s["num_images"], s["num_gt"], s["num_dets"]) == (3, 4, 4)
    assert list(s) == list(SCORE_KEYS + DETAIL_KEYS)
    assert s["kpt_AP_per_keypoint"] == {"point": s["kpt_AP"]}
    assert s["point_px_per_keypoint"] == {"point": {"mean": 0.0, "median": 0.0, "p95": 0.0}}
    assert s["class_names"] == {str(c): str(c) for c in range(10)}
    # pycocotools adds keys to what it is given; the caller's objects must come back untouched.
    assert gt == gt_before and results == results_before


def test_category_zero_is_scored_like_any_other() -> None:
    gt = make_gt(DIGITS)
    results = perfect(gt, with_bbox=False)
    results[0]["keypoints"][0] += 10.0  # the class-0 digit's point, now far off
    s = evaluate(gt, results)
    assert s["per_class"]["0"] == pytest.approx(0.0)
    assert s["per_class"]["3"] == pytest.approx(1.0) and s["per_class"]["7"] == pytest.approx(1.0)
    assert s["miss_rate"] == pytest.approx(0.25)


@pytest.mark.parametrize("d, sigma", [(0.5, 0.05), (1.0, 0.05), (2.0, 0.05), (3.0, 0.05), (2.0, 0.1), (4.0, 0.1)])
def test_moved_point_gives_the_oks_of_the_formula(d: float, sigma: float) -> None:
    w, h = 20, 25
    gt = make_gt([(1, 4, 60.0, 60.0, w, h)])
    results = [det(1, 4, 60.0 + 0.6 * d, 60.0 + 0.8 * d)]  # a 3-4-5 step: exactly d px away
    s = evaluate(gt, results, sigma=sigma)
    ap = expected_ap(d, w * h, sigma)
    oks = math.exp(-d * d / (2 * w * h * (2 * sigma) ** 2))
    assert s["kpt_AP"] == pytest.approx(ap, abs=1e-6)
    assert s["per_class"]["4"] == pytest.approx(ap, abs=1e-6)
    assert s["kpt_AP50"] == pytest.approx(float(oks >= 0.5), abs=1e-6)
    assert s["kpt_AP75"] == pytest.approx(float(oks >= 0.75), abs=1e-6)
    assert s["mean_px"] == pytest.approx(d) and s["p95_px"] == pytest.approx(d)
    assert s["miss_rate"] == 0.0 and s["cls_acc"] == 1.0


def test_point_beyond_oks_0_1_is_a_miss() -> None:
    area, sigma = 500.0, 0.05
    d = 5.0  # OKS exp(-25 / 10) = 0.082 < 0.1
    assert math.exp(-d * d / (2 * area * (2 * sigma) ** 2)) < 0.1
    s = evaluate(make_gt([(1, 4, 60.0, 60.0, 20, 25)]), [det(1, 4, 63.0, 64.0)], sigma=sigma)
    assert s["miss_rate"] == 1.0 and s["cls_acc"] == 0.0
    assert s["mean_px"] is None and s["p95_px"] is None and s["median_px"] is None
    assert s["kpt_AP"] == pytest.approx(0.0)


def test_wrong_class_is_a_miss_and_wrong() -> None:
    s = evaluate(make_gt([(1, 3, 40.0, 40.0, 24, 28)]), [det(1, 7, 40.0, 40.0)])
    assert s["cls_acc"] == 0.0 and s["miss_rate"] == 1.0
    assert s["kpt_AP"] == pytest.approx(0.0) and s["per_class"]["3"] == pytest.approx(0.0)
    assert s["per_class"]["7"] is None  # no ground truth of class 7
    assert s["mean_px"] is None


def test_class_accuracy_takes_the_most_confident_detection() -> None:
    # A confident wrong-class detection near the digit wins the class-agnostic matching, though a same-class
    # one also found it: the point error counts the same-class one, class accuracy the confident one.
    gt = make_gt([(1, 3, 40.0, 40.0, 30, 30)])
    s = evaluate(gt, [det(1, 5, 43.0, 40.0, score=0.9), det(1, 3, 40.5, 40.0, score=0.8)])
    assert s["miss_rate"] == 0.0 and s["mean_px"] == pytest.approx(0.5)
    assert s["cls_acc"] == 0.0


def test_greedy_by_score_and_duplicates() -> None:
    gt = make_gt([(1, 2, 30.0, 30.0, 24, 28), (1, 6, 90.0, 90.0, 24, 28)])
    base = [det(1, 2, 31.0, 30.0, 0.9), det(1, 6, 90.0, 92.0, 0.8)]
    s = evaluate(gt, base)
    assert s["mean_px"] == pytest.approx(1.5) and s["p95_px"] == pytest.approx(1.0 + 0.95 * 1.0)
    # Lower-scored duplicates (one of them closer) take nothing: greedy by score, one detection per digit.
    dup = base + [det(1, 2, 31.0, 30.0, 0.5), det(1, 2, 30.2, 30.0, 0.4), det(1, 6, 90.0, 92.0, 0.3)]
    t = evaluate(gt, dup)
    for key in ("mean_px", "median_px", "p95_px", "miss_rate", "cls_acc"):
        assert t[key] == pytest.approx(s[key])


def test_point_error_statistics_on_a_known_distribution() -> None:
    dists = 0.25 * np.arange(1, 21)  # 0.25 .. 5.0 px, all within OKS 0.1 of a 30 x 30 digit
    gt = make_gt([(i + 1, i % 10, 60.0, 60.0, 30, 30) for i in range(20)])
    results = [det(i + 1, i % 10, 60.0 + d, 60.0) for i, d in enumerate(dists)]
    s = evaluate(gt, results)
    assert s["mean_px"] == pytest.approx(dists.mean())
    assert s["median_px"] == pytest.approx(np.median(dists))
    assert s["p95_px"] == pytest.approx(np.percentile(dists, 95))
    assert s["p95_px"] == pytest.approx(4.7625)  # linear interpolation between 4.75 and 5.0
    assert s["miss_rate"] == 0.0 and s["num_images"] == 20


def test_images_without_detections_count_and_empty_results() -> None:
    gt = make_gt(DIGITS, num_images=5)  # images 4 and 5 have no digit
    s = evaluate(gt, [])
    assert s["kpt_AP"] == 0.0 and s["per_class"]["3"] == 0.0 and s["per_class"]["1"] is None
    assert s["box_AP"] is None and s["miss_rate"] == 1.0 and s["cls_acc"] == 0.0
    assert s["mean_px"] is None and s["num_images"] == 5 and s["num_dets"] == 0
    half = [r for r in perfect(gt, with_bbox=False) if r["image_id"] == 1]
    s = evaluate(gt, half)
    assert s["miss_rate"] == pytest.approx(0.5) and s["cls_acc"] == pytest.approx(0.5)
    assert s["per_class"]["0"] == pytest.approx(1.0) and s["per_class"]["7"] == pytest.approx(0.0)
    assert "keypoint AP" in format_table(s)


# --- bad input -----------------------------------------------------------------------------------------------


@pytest.fixture
def files(tmp_path: Path) -> tuple[Path, Path]:
    gt = make_gt(DIGITS)
    gt_path, res_path = tmp_path / "gt.json", tmp_path / "results.json"
    gt_path.write_text(json.dumps(gt))
    res_path.write_text(json.dumps(perfect(gt, with_bbox=False)))
    return gt_path, res_path


def write_results(path: Path, edit) -> None:
    results = json.loads(path.read_text())
    edit(results)
    path.write_text(json.dumps(results))


BAD_RESULTS = {
    "no_keypoints": (lambda r: r[1].pop("keypoints"), "entry 1: missing 'keypoints'"),
    "short_keypoints": (lambda r: r[2].update(keypoints=[1.0, 2.0]), "entry 2: keypoints must be 3 finite numbers"),
    "no_score": (lambda r: r[0].pop("score"), "entry 0: missing 'score'"),
    "text_score": (lambda r: r[3].update(score="high"), "entry 3: score 'high' is not a finite number"),
    "unknown_image": (lambda r: r[3].update(image_id=999), "entry 3: image_id 999 is not in the ground truth"),
    "category_10": (lambda r: r[1].update(category_id=10),
                    "entry 1: category_id 10 is not a category of the ground truth"),
    "category_-1": (lambda r: r[2].update(category_id=-1),
                    "entry 2: category_id -1 is not a category of the ground truth"),
    "mixed_bbox": (lambda r: r[2].update(bbox=[0, 0, 5, 5]), "entry 2: has a 'bbox' but entry 0 has none"),
    "not_an_object": (lambda r: r.__setitem__(0, None), "entry 0: not an object"),
    "negative_score": (lambda r: r[3].update(score=-0.2), "entry 3: score -0.2 is negative (scores must be >= 0)"),
    "nan_score": (lambda r: r[1].update(score=float("nan")), "entry 1: score nan is not a finite number"),
    "inf_score": (lambda r: r[2].update(score=float("-inf")), "entry 2: score -inf is not a finite number"),
    "nan_keypoint": (lambda r: r[0].update(keypoints=[float("nan"), 1.0, 1.0]),
                     "entry 0: keypoints must be 3 finite numbers"),
    "inf_keypoint": (lambda r: r[0].update(keypoints=[1.0, float("inf"), 1.0]),
                     "entry 0: keypoints must be 3 finite numbers"),
}


@pytest.mark.parametrize("case", sorted(BAD_RESULTS))
def test_bad_result_entry_is_named(case: str, files: tuple[Path, Path]) -> None:
    gt_path, res_path = files
    edit, message = BAD_RESULTS[case]
    write_results(res_path, edit)
    with pytest.raises(EvaluationInputError) as e:
        evaluate(gt_path, res_path)
    assert str(e.value).startswith(f"{res_path}: ")
    assert message in str(e.value)
    if case == "unknown_image":
        assert str(e.value).endswith(f"ground truth {gt_path}")


def test_bad_files_and_sigma(files: tuple[Path, Path], tmp_path: Path) -> None:
    gt_path, res_path = files
    with pytest.raises(EvaluationInputError, match=r"missing\.json: no such file"):
        evaluate(tmp_path / "missing.json", res_path)
    broken = tmp_path / "broken.json"
    broken.write_text('[\n  {"image_id": 1,\n   "score": }\n]')
    with pytest.raises(EvaluationInputError, match=r"broken\.json: invalid JSON at line 3 column 13"):
        evaluate(gt_path, broken)
    res_path.write_text(json.dumps({"image_id": 1}))
    with pytest.raises(EvaluationInputError, match=r"results\.json: not a JSON list"):
        evaluate(gt_path, res_path)
    for sigma in (0.0, -0.05, float("nan")):
        with pytest.raises(EvaluationInputError, match="sigma must be a finite number > 0"):
            evaluate(gt_path, [], sigma=sigma)


def test_bad_ground_truth() -> None:
    gt = make_gt(DIGITS)
    del gt["annotations"]
    with pytest.raises(EvaluationInputError, match=r"<ground truth>: missing 'annotations'"):
        evaluate(gt, [])
    gt = make_gt(DIGITS)
    gt["annotations"][2]["id"] = 0  # COCOeval would read a match to id 0 as "unmatched"
    with pytest.raises(EvaluationInputError, match=r"annotations\[2\]: id 0 must be an integer >= 1"):
        evaluate(gt, [])
    gt = make_gt(DIGITS)
    gt["annotations"][1]["image_id"] = 42
    with pytest.raises(EvaluationInputError, match=r"annotations\[1\]: image_id 42 is not in 'images'"):
        evaluate(gt, [])


# --- command line --------------------------------------------------------------------------------------------


def run_tool(*args: str) -> subprocess.CompletedProcess:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([str(REPO), env.get("PYTHONPATH", "")]).rstrip(os.pathsep)
    return subprocess.run([sys.executable, str(REPO / "tools" / "evaluate.py"), *args],
                          capture_output=True, text=True, env=env, timeout=60)


def test_tool_json_line(files: tuple[Path, Path]) -> None:
    gt_path, res_path = files
    proc = run_tool("--gt", str(gt_path), "--results", str(res_path), "--json")
    assert proc.returncode == 0, proc.stderr
    lines = proc.stdout.strip().splitlines()
    scores = json.loads(lines[-1])
    assert set(scores) == REQUIRED_KEYS
    assert set(scores["per_class"]) == {str(c) for c in range(10)}
    assert scores["kpt_AP"] == pytest.approx(1.0) and scores["box_AP"] is None
    assert any("keypoint AP" in line for line in lines[:-1])  # the table comes first
    assert "loading" not in proc.stdout.lower() and "DONE" not in proc.stdout  # pycocotools kept quiet


@pytest.mark.parametrize("case", ["missing", "invalid_json", "bad_entry", "sigma"])
def test_tool_bad_input_exits_2_with_one_line(case: str, files: tuple[Path, Path], tmp_path: Path) -> None:
    gt_path, res_path = files
    args = ["--gt", str(gt_path), "--results", str(res_path)]
    if case == "missing":
        args[1], expected = str(tmp_path / "nope.json"), f"error: {tmp_path / 'nope.json'}: no such file"
    elif case == "invalid_json":
        res_path.write_text("[{]")
        expected = f"error: {res_path}: invalid JSON at line 1 column 3"
    elif case == "bad_entry":
        write_results(res_path, lambda r: r[3].update(image_id=999))
        expected = f"error: {res_path}: entry 3: image_id 999 is not in the ground truth {gt_path}"
    else:
        args += ["--sigma", "-1"]
        expected = "error: sigma must be a finite number > 0"
    proc = run_tool(*args)
    assert proc.returncode == 2
    assert proc.stdout == ""
    assert "Traceback" not in proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1
    assert proc.stderr.startswith(expected)


def test_oracle_scores_the_ground_truth_itself_as_perfect(files: tuple[Path, Path]) -> None:
    gt_path, _ = files
    results = ground_truth_as_results(gt_path)
    assert len(results) == len(DIGITS) and all(r["score"] == 1.0 for r in results)
    scores = evaluate(gt_path, results)
    assert scores["kpt_AP"] == pytest.approx(1.0) and scores["box_AP"] == pytest.approx(1.0)
    proc = run_tool("--gt", str(gt_path), "--oracle", "--json")
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout.strip().splitlines()[-1])["cls_acc"] == pytest.approx(1.0)
