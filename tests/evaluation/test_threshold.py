"""Recall and precision at a score threshold (issue 25): hand-made cases whose answers are counted by hand,
a brute-force cross-check, and the ``--threshold`` option of ``ocrloc evaluate``."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest

from ocrloc.cli import main
from ocrloc.constants import DEFAULT_SCORE_THRESHOLD
from ocrloc.evaluation import POINT_MATCH_PX, EvaluationInputError, evaluate, format_table
from tests.helpers import THRESHOLD_DETS as DETS, THRESHOLD_DIGITS as DIGITS, det, digits_ground_truth as make_gt
from tests.helpers import k1_ground_truth, k1_results, keypoints_ground_truth as make_gt_k
from tests.helpers import one_error_line as _one_error_line

TWO = ["center", "baseline"]  # two keypoint names



@pytest.mark.parametrize("threshold, found, kept", [
    (0.3, 2, 5),    # d1 and d6 find A and E; d1, d2, d3, d4, d6 are kept
    (0.0, 3, 6),    # d5 is kept and finds D too
    (0.85, 1, 3),   # d3, d1, d4 are kept; d1 alone finds (A)
    (0.9, 1, 2),    # d3, d1 (a score equal to the threshold is kept)
    (0.95, 0, 1),   # d3 alone, of the wrong class
])
def test_recall_and_precision_counted_by_hand(threshold, found, kept) -> None:
    s = evaluate(make_gt(DIGITS), DETS, threshold=threshold)
    assert s["score_threshold"] == threshold
    assert s["recall"] == pytest.approx(found / 6)
    assert s["precision"] == pytest.approx(found / kept)
    # The other scores do not depend on the threshold: every detection counts there.
    assert s["num_dets"] == 6 and s["miss_rate"] == evaluate(make_gt(DIGITS), DETS)["miss_rate"]


def test_the_match_is_3_px_and_the_distance_exact() -> None:
    assert POINT_MATCH_PX == 3.0
    assert math.hypot(2.1, 2.8) == pytest.approx(3.5)
    s = evaluate(make_gt([(1, 2, 80.0, 80.0, 20, 26)]), [det(1, 2, 82.9, 80.0, 0.5)], threshold=0.5)
    assert (s["recall"], s["precision"]) == (1.0, 1.0)
    s = evaluate(make_gt([(1, 2, 80.0, 80.0, 20, 26)]), [det(1, 2, 83.1, 80.0, 0.5)], threshold=0.5)
    assert (s["recall"], s["precision"]) == (0.0, 0.0)


def test_nothing_kept_has_no_precision_and_the_default_threshold_is_the_constant() -> None:
    s = evaluate(make_gt(DIGITS), DETS, threshold=1.0)
    assert s["recall"] == 0.0 and s["precision"] is None
    s = evaluate(make_gt(DIGITS), [])
    assert s["recall"] == 0.0 and s["precision"] is None and s["score_threshold"] == DEFAULT_SCORE_THRESHOLD
    assert "recall             0.000   precision -" in format_table(s)


def test_a_higher_scoring_duplicate_takes_the_object_and_the_nearest_is_taken() -> None:
    gt = make_gt([(1, 3, 20.0, 20.0, 20, 26), (1, 3, 24.0, 20.0, 20, 26)])  # two 3s, 4 px apart
    # One detection between them, nearer the second: it takes the second; the first is left to the other one.
    dets = [det(1, 3, 23.0, 20.0, 0.9), det(1, 3, 21.5, 20.0, 0.8)]
    s = evaluate(gt, dets, threshold=0.5)
    assert (s["recall"], s["precision"]) == (1.0, 1.0)
    # Both near the first only (the second is 4 px away from each): one of them is a duplicate.
    dets = [det(1, 3, 20.0, 20.0, 0.9), det(1, 3, 19.0, 20.0, 0.8)]
    s = evaluate(gt, dets, threshold=0.5)
    assert (s["recall"], s["precision"]) == (0.5, 0.5)


def test_every_labelled_keypoint_must_be_within_3_px() -> None:
    cats = [(1, "A", TWO)]
    gt = make_gt_k([(1, 1, [(30.0, 30.0), (30.0, 50.0)]),             # both keypoints labelled
                    (2, 1, [(30.0, 30.0), (0.0, 0.0, 0)])], cats, 2)  # the second not labelled
    dets = [{"image_id": 1, "category_id": 1, "keypoints": [31.0, 30.0, 1.0, 30.0, 53.5, 1.0], "score": 0.9},
            {"image_id": 2, "category_id": 1, "keypoints": [31.0, 30.0, 1.0, 90.0, 90.0, 1.0], "score": 0.9}]
    s = evaluate(gt, dets, threshold=0.5)
    # Object 1: its second keypoint is 3.5 px off, not found; object 2: the unlabelled keypoint does not count.
    assert (s["recall"], s["precision"]) == (0.5, 0.5)


def _brute_force(gt: dict, results: list, threshold: float) -> tuple:
    """The definition in plain Python: per image, detections by descending score (stable), each taking the
    nearest unmatched object of its class within 3 px."""
    objects = [(a["image_id"], a["category_id"], a["keypoints"][0], a["keypoints"][1]) for a in gt["annotations"]]
    taken = set()
    kept = [d for d in results if d["score"] >= threshold]
    found = 0
    for d in sorted(kept, key=lambda d: -d["score"]):
        best = None
        for k, (img, cls, x, y) in enumerate(objects):
            dist = math.hypot(d["keypoints"][0] - x, d["keypoints"][1] - y)
            if k not in taken and img == d["image_id"] and cls == d["category_id"] and dist <= 3.0:
                if best is None or dist < best[0]:
                    best = (dist, k)
        if best is not None:
            taken.add(best[1])
            found += 1
    return found / len(objects), (found / len(kept) if kept else None)


@pytest.mark.parametrize("threshold", [0.0, 0.25, 0.5, 0.8])
def test_the_k1_results_against_a_brute_force_count(threshold: float) -> None:
    gt = k1_ground_truth()  # moved points, wrong classes, duplicates, false positives, tied scores
    results = k1_results(gt, False)
    s = evaluate(gt, results, threshold=threshold)
    recall, precision = _brute_force(gt, results, threshold)
    assert s["recall"] == pytest.approx(recall) and s["precision"] == pytest.approx(precision)
    assert 0 < s["recall"] < 1  # the case is not trivial


@pytest.mark.parametrize("bad", [-0.1, 1.5, float("nan"), "0.5", True, None])
def test_a_bad_threshold_is_refused(bad) -> None:
    with pytest.raises(EvaluationInputError, match=r"score threshold must be a number in \[0, 1\]"):
        evaluate(make_gt(DIGITS), DETS, threshold=bad)


@pytest.fixture
def files(tmp_path: Path) -> tuple[Path, Path]:
    gt_path, res_path = tmp_path / "gt.json", tmp_path / "results.json"
    gt_path.write_text(json.dumps(make_gt(DIGITS)))
    res_path.write_text(json.dumps(DETS))
    return gt_path, res_path


def test_cli_threshold_option_and_json(files, capsys) -> None:
    gt_path, res_path = files
    assert main(["evaluate", "--gt", str(gt_path), "--results", str(res_path), "--threshold", "0.85", "--json"]) == 0
    lines = capsys.readouterr().out.strip().splitlines()
    scores = json.loads(lines[-1])
    assert scores["score_threshold"] == 0.85
    assert scores["recall"] == pytest.approx(1 / 6) and scores["precision"] == pytest.approx(1 / 3)
    assert "recall             0.167   precision 0.333   at score >= 0.85, within 3 px" in lines
    assert main(["evaluate", "--gt", str(gt_path), "--results", str(res_path), "--json"]) == 0
    assert json.loads(capsys.readouterr().out.strip().splitlines()[-1])["score_threshold"] == DEFAULT_SCORE_THRESHOLD


@pytest.mark.parametrize("bad", ["1.5", "-0.1", "nan", "abc", "inf"])
@pytest.mark.parametrize("command", ["evaluate", "report"])
def test_cli_bad_threshold_is_one_line_exit_2(command, bad, files, tmp_path, capsys) -> None:
    gt_path, res_path = files
    out = tmp_path / "report"
    args = [command, "--gt", str(gt_path), "--results", str(res_path), "--threshold", bad]
    assert main(args + (["--out", str(out)] if command == "report" else [])) == 2
    err = _one_error_line(capsys, bad)
    assert err.startswith("error: --threshold must be a number in [0, 1]"), err
    assert not out.exists()
