"""``ocrloc report`` / ``write_report``: the files it writes, and that its numbers are the evaluator's."""

from __future__ import annotations

import errno
import json
import os
import re
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from ocrloc.cli import main
from ocrloc.evaluation import evaluate, match_points
from ocrloc.evaluation.inputs import check_ground_truth, check_results
from ocrloc.report import ReportError, write_report
from ocrloc.report.analysis import read_metrics, time_to_accuracy
from ocrloc.utils.io import writer_tag
from tests.helpers import one_error_line as _one_error_line  # one `error:` line naming the inputs

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def _ann(aid, image_id, category_id, x, y, size=10):
    return {"id": aid, "image_id": image_id, "category_id": category_id, "bbox": [x - 5, y - 5, size, size],
            "area": float(size * size), "keypoints": [x, y, 2], "num_keypoints": 1, "iscrowd": 0}


def _det(image_id, category_id, x, y, score):
    return {"image_id": image_id, "category_id": category_id, "keypoints": [x, y, score], "score": score}


SIGMA = 0.08  # not the default: the report must score with the sigma it is given


@pytest.fixture(scope="module")
def small(tmp_path_factory):
    """Two 64 x 64 images, three classes; results with one right-class match per 'a', one 'b' named 'a'
    (a misclassification), one 'c' nothing comes near (a miss) and one stray detection."""
    tmp_path = tmp_path_factory.mktemp("small")
    gt = {
        "images": [{"id": 1, "file_name": "images/1.png", "width": 64, "height": 64},
                   {"id": 2, "file_name": "images/2.png", "width": 64, "height": 64}],
        "categories": [{"id": c, "name": n, "keypoints": ["p"]} for c, n in ((1, "a"), (2, "b"), (3, "c"))],
        "annotations": [_ann(1, 1, 1, 10, 10), _ann(2, 1, 2, 40, 40), _ann(3, 2, 1, 20, 20), _ann(4, 2, 3, 50, 50)],
    }
    results = [_det(1, 1, 10.5, 10, 0.9), _det(1, 1, 40, 41, 0.8), _det(2, 1, 20, 21, 0.7), _det(2, 2, 5, 60, 0.3)]
    (tmp_path / "images").mkdir()
    for k in (1, 2):
        Image.fromarray(np.full((64, 64), 30 * k, np.uint8)).save(tmp_path / "images" / f"{k}.png")
    gt_path, results_path = tmp_path / "gt.json", tmp_path / "results.json"
    gt_path.write_text(json.dumps(gt))
    results_path.write_text(json.dumps(results))
    return gt_path, results_path


def _pngs(folder: Path) -> list[Path]:
    return sorted(folder.glob("*.png"))


@pytest.fixture(scope="module")
def small_report(small, tmp_path_factory):
    """The report of ``small`` with a run's metrics.csv, written once for the tests that only read it."""
    gt_path, results_path = small
    tmp_path = tmp_path_factory.mktemp("small_report")
    run = tmp_path / "run"
    run.mkdir()
    run.joinpath("metrics.csv").write_text(
        "phase,step,images,wall_s,loss,loss_heatmap,kpt_AP,mean_px\n"
        "train,10,320,30,2.5,1.5,,\ntrain,20,640,60,1.5,0.9,,\nval,20,640,60,1.7,,0.61,0.9\n")
    index = write_report(gt_path, results_path, tmp_path / "report", run, sigma=SIGMA)
    assert index == tmp_path / "report" / "index.html"
    return index


def test_report_writes_valid_pngs_that_index_html_shows(small_report):
    index = small_report
    tmp_path = index.parent.parent
    pngs = _pngs(index.parent)
    names = {p.name for p in pngs}
    assert {"pr_curves.png", "confusion.png", "reliability.png", "point_error_histograms.png",
            "point_error_cumulative.png", "worst_points_01.png", "training_loss.png", "validation_scores.png",
            "time_to_accuracy.png"} <= names
    page = index.read_text()
    for png in pngs:
        data = png.read_bytes()
        assert data[:8] == PNG_SIGNATURE
        with Image.open(png) as im:
            im.load()
            assert im.width > 100 and im.height > 100
        assert f'src="{png.name}"' in page
    assert set(re.findall(r'src="([^"]+)"', page)) == names  # and nothing it shows is missing
    assert "keypoint AP" in page and "class accuracy" in page
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]  # no temporary folder left


def test_confusion_matrix_counts_are_the_evaluators_matching(small, small_report):
    gt_path, results_path = small
    cm = json.loads((small_report.parent / "report.json").read_text())["confusion"]
    assert cm["class_ids"] == [1, 2, 3] and cm["columns"] == ["a", "b", "c", "missed"]
    # Known by construction: both 'a' right, the 'b' named 'a', the 'c' missed.
    assert cm["matrix"] == [[2, 0, 0, 0], [1, 0, 0, 0], [0, 0, 0, 1]]

    # And counted independently from the evaluator's own class-agnostic matching.
    g = check_ground_truth(json.loads(gt_path.read_text()), "gt")
    r = check_results(json.loads(results_path.read_text()), "results", gt=g)
    m = match_points(g.img, g.cls, g.xy, g.labelled, g.area, r.img, r.cls, r.xy, r.has, r.score, [SIGMA])
    expected = np.zeros((3, 4), int)
    for true_id, det in zip(g.cls, m.agnostic_det):
        expected[true_id - 1, 3 if det < 0 else r.cls[det] - 1] += 1
    assert cm["matrix"] == expected.tolist()
    scores = evaluate(gt_path, results_path, sigma=SIGMA)
    assert np.trace(np.asarray(cm["matrix"])[:, :3]) / 4 == pytest.approx(scores["cls_acc"])
    assert cm["unmatched_detections"] == 1


def test_pr_numbers_are_the_evaluators_ap(small, small_report):
    gt_path, results_path = small
    report = json.loads((small_report.parent / "report.json").read_text())
    scores = evaluate(gt_path, results_path, sigma=SIGMA)
    assert scores["kpt_AP"] != evaluate(gt_path, results_path)["kpt_AP"]  # the sigma matters here
    precision = np.stack([np.asarray(v["precision"]) for v in report["pr"]["per_class"].values()], axis=2)
    assert precision.shape == (10, 101, 3)
    assert precision[precision > -1].mean() == pytest.approx(scores["kpt_AP"], abs=1e-6)
    assert precision[0][precision[0] > -1].mean() == pytest.approx(scores["kpt_AP50"], abs=1e-6)
    for c, ap in scores["per_class"].items():
        assert report["pr"]["per_class"][c]["AP"] == pytest.approx(ap, abs=1e-6)
    assert report["scores"] == scores
    assert report["point_errors"]["all"]["mean"] == pytest.approx(scores["mean_px"])
    worst_a = report["worst_points"]["1"]
    assert [round(p["error_px"], 6) for p in worst_a] == [1.0, 0.5]  # largest error first


def test_many_classes_and_several_keypoints(tmp_path):
    """62 classes of 2 named points: the confusion matrix shows the most confused classes, a per-keypoint
    figure is drawn, gallery pages hold 10 classes each; without image files the cells show the points."""
    rng = np.random.default_rng(0)
    cats = [{"id": 100 + k, "name": f"g{k}", "keypoints": ["top", "bottom"]} for k in range(62)]
    images, anns, dets = [], [], []
    for i in range(1, 63):
        images.append({"id": i, "file_name": f"images/{i}.png", "width": 64, "height": 64})
        cid = 100 + (i - 1)
        x, y = rng.uniform(15, 45, 2)
        anns.append({"id": i, "image_id": i, "category_id": cid, "bbox": [x - 8, y - 8, 16, 16], "area": 256.0,
                     "keypoints": [x, y - 6, 2, x, y + 6, 2], "num_keypoints": 2, "iscrowd": 0})
        named = cid if i % 7 else 100 + (i % 62)  # every 7th object gets another class's name
        dx = rng.normal(0, 0.5, 2)
        dets.append({"image_id": i, "category_id": named, "score": 0.9,
                     "keypoints": [x + dx[0], y - 6, 0.9, x, y + 6 + dx[1], 0.9]})
    gt_path, results_path = tmp_path / "gt.json", tmp_path / "results.json"
    gt_path.write_text(json.dumps({"images": images, "annotations": anns, "categories": cats}))
    results_path.write_text(json.dumps(dets))
    index = write_report(gt_path, results_path, tmp_path / "report", worst_per_class=1)
    names = {p.name for p in _pngs(index.parent)}
    assert "point_error_keypoints.png" in names
    # The 54 classes with a same-class match (every 7th object is named wrongly), 10 per page.
    assert {f"worst_points_{k:02d}.png" for k in range(1, 7)} <= names and "worst_points_07.png" not in names
    report = json.loads((index.parent / "report.json").read_text())
    matrix = np.asarray(report["confusion"]["matrix"])
    assert matrix.shape == (62, 63) and matrix.sum() == 62
    assert np.trace(matrix[:, :62]) / 62 == pytest.approx(report["scores"]["cls_acc"])
    assert set(report["point_errors"]["per_keypoint"]) == {"top", "bottom"}
    assert "could not be read" in index.read_text()


def test_a_missing_results_file_is_one_line_and_writes_nothing(small, tmp_path, capsys):
    gt_path, _ = small
    missing = tmp_path / "nope.json"
    out = tmp_path / "report"
    assert main(["report", "--gt", str(gt_path), "--results", str(missing), "--out", str(out)]) == 2
    assert "no such file" in _one_error_line(capsys, missing)
    assert not out.exists() and not [p for p in tmp_path.iterdir() if p.name.startswith(".")]


def test_results_for_another_ground_truth_are_one_line(small, tmp_path, capsys):
    gt_path, _ = small
    other = tmp_path / "other_results.json"
    other.write_text(json.dumps([_det(99, 1, 10, 10, 0.9)]))  # image 99: not in this ground truth
    out = tmp_path / "report"
    assert main(["report", "--gt", str(gt_path), "--results", str(other), "--out", str(out)]) == 2
    assert "image_id 99 is not in the ground truth" in _one_error_line(capsys, other)
    wrong_class = tmp_path / "wrong_class.json"
    wrong_class.write_text(json.dumps([_det(1, 7, 10, 10, 0.9)]))
    assert main(["report", "--gt", str(gt_path), "--results", str(wrong_class), "--out", str(out)]) == 2
    assert "category_id 7 is not a category" in _one_error_line(capsys, wrong_class)
    assert not out.exists()


def test_a_run_folder_without_metrics_and_a_foreign_out_folder_are_one_line(small, tmp_path, capsys):
    gt_path, results_path = small
    args = ["report", "--gt", str(gt_path), "--results", str(results_path)]
    assert main(args + ["--out", str(tmp_path / "report"), "--run", str(tmp_path / "norun")]) == 2
    _one_error_line(capsys, tmp_path / "norun" / "metrics.csv")
    busy = tmp_path / "busy"
    busy.mkdir()
    (busy / "keep.txt").write_text("mine")
    assert main(args + ["--out", str(busy)]) == 2
    assert "not a report" in _one_error_line(capsys, busy)
    assert (busy / "keep.txt").read_text() == "mine"


def test_a_failure_leaves_the_older_report_whole(small, tmp_path, monkeypatch):
    gt_path, results_path = small
    out = tmp_path / "report"
    assert main(["report", "--gt", str(gt_path), "--results", str(results_path), "--out", str(out)]) == 0
    before = {p.name: p.read_bytes() for p in out.iterdir()}

    from ocrloc.report import figures

    def broken(fig, path):
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(figures, "save", broken)
    with pytest.raises(ReportError) as err:  # a full disk is one line naming the folder and the cause
        write_report(gt_path, results_path, out)
    assert str(err.value) == f"{out}: cannot write the report (No space left on device)"
    assert {p.name: p.read_bytes() for p in out.iterdir()} == before
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]
    with pytest.raises(ReportError, match="worst_per_class"):
        write_report(gt_path, results_path, out, worst_per_class=0)


KILLED_REPORT = textwrap.dedent("""
    import os, signal, sys
    from ocrloc.report import figures
    from ocrloc.report.writer import write_report
    figures.save = lambda fig, path: os.kill(os.getpid(), signal.SIGKILL)  # killed while drawing: no finally runs
    write_report(sys.argv[1], sys.argv[2], sys.argv[3])
""")


def test_the_folder_of_a_killed_report_is_removed_by_the_next_report(small, tmp_path):
    gt_path, results_path = small
    out = tmp_path / "rep_x"
    killed = subprocess.run([sys.executable, "-c", KILLED_REPORT, str(gt_path), str(results_path), str(out)],
                            capture_output=True, text=True, timeout=120)
    assert killed.returncode == -signal.SIGKILL, killed.stderr
    [left] = [p for p in tmp_path.iterdir() if p.name.startswith(".rep_x.")]  # what a kill leaves
    live = tmp_path / f".rep_x.{writer_tag()}.abcd1234.tmp"  # a report still being written, by this process
    live.mkdir()
    write_report(gt_path, results_path, out)
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted([live.name, "rep_x"])
    assert (out / "index.html").is_file()


def test_the_trainers_pr_numbers_without_scores_or_matching_are_the_reports(small):
    from ocrloc.report.analysis import analyse, pr_numbers, pr_summary, precision_of

    gt_path, results_path = small
    assert pr_numbers(*precision_of(gt_path, results_path)) == pr_summary(analyse(gt_path, results_path))


# --- scores a user thresholds: the reliability diagram, recall and precision at --threshold (issue 25) ----------


def test_reliability_bins_counted_by_hand():
    from ocrloc.report.analysis import reliability_numbers

    scores = [0.05, 0.15, 0.15, 0.55, 0.95, 0.95, 1.0, 0.3]
    correct = [False, True, False, True, True, True, False, True]
    rel = reliability_numbers(np.array(scores), np.array(correct))
    bins = rel["bins"]
    assert [(b["lo"], b["hi"]) for b in bins] == [(k / 10, (k + 1) / 10) for k in range(10)]
    assert [b["count"] for b in bins] == [1, 1 + 1, 0, 1, 0, 1, 0, 0, 0, 3]  # 0.3 in [0.3, 0.4); 1.0 in the last
    assert [b["correct"] for b in bins] == [0, 1, 0, 1, 0, 1, 0, 0, 0, 2]
    assert [b["accuracy"] for b in bins] == [0.0, 0.5, None, 1.0, None, 1.0, None, None, None, pytest.approx(2 / 3)]
    assert bins[9]["mean_score"] == pytest.approx((0.95 + 0.95 + 1.0) / 3) and bins[2]["mean_score"] is None
    # ECE: (1 * 0.05 + 2 * |0.5 - 0.15| + 1 * 0.7 + 1 * 0.45 + 3 * |2/3 - 29/30|) / 8
    assert rel["ece"] == pytest.approx((0.05 + 0.7 + 0.7 + 0.45 + 0.9) / 8)
    assert (rel["num_dets"], rel["num_correct"]) == (8, 5)
    empty = reliability_numbers(np.zeros(0), np.zeros(0, bool))
    assert empty["ece"] is None and all(b["count"] == 0 for b in empty["bins"])


def test_reliability_counts_a_detection_correct_as_recall_and_precision_do():
    """The hand-made case of tests/evaluation/test_threshold.py at threshold 0: of a duplicate, a wrong class,
    a point 3.5 px off, a low score and a point exactly 3 px off, the low score and the 3 px point are correct."""
    from ocrloc.report.analysis import analyse, reliability
    from tests.helpers import THRESHOLD_DETS as DETS, THRESHOLD_DIGITS as DIGITS, digits_ground_truth as make_gt

    rel = reliability(analyse(make_gt(DIGITS), DETS))
    by_bin = {k: (b["count"], b["correct"]) for k, b in enumerate(rel["bins"]) if b["count"]}
    # 0.2: D found; 0.6: E found (3 px); 0.8 (duplicate) and 0.85 (3.5 px): wrong; 0.9: A found, 0.95: wrong class.
    assert by_bin == {2: (1, 1), 6: (1, 1), 8: (2, 0), 9: (2, 1)}
    assert rel["ece"] == pytest.approx((0.8 + 0.4 + 2 * 0.825 + 2 * 0.425) / 6)


def test_the_bins_give_the_evaluators_precision_at_each_edge():
    from ocrloc.report.analysis import analyse, reliability
    from tests.helpers import k1_ground_truth, k1_results

    gt = k1_ground_truth()
    results = k1_results(gt, False)
    bins = reliability(analyse(gt, results))["bins"]
    for k in (2, 5, 8):
        scores = evaluate(gt, results, threshold=k / 10)
        kept = sum(b["count"] for b in bins[k:])
        assert sum(b["correct"] for b in bins[k:]) / kept == pytest.approx(scores["precision"])
        assert sum(b["correct"] for b in bins[k:]) / scores["num_gt"] == pytest.approx(scores["recall"])


def test_the_default_report_gives_recall_and_precision_at_the_default_threshold(small, small_report):
    from ocrloc.evaluation import DEFAULT_SCORE_THRESHOLD

    gt_path, results_path = small
    report = json.loads((small_report.parent / "report.json").read_text())
    scores = evaluate(gt_path, results_path, sigma=SIGMA, threshold=DEFAULT_SCORE_THRESHOLD)
    assert report["at_threshold"] == {"score_threshold": DEFAULT_SCORE_THRESHOLD, "recall": scores["recall"],
                                      "precision": scores["precision"], "match_px": 3.0}
    assert report["inputs"]["threshold"] == DEFAULT_SCORE_THRESHOLD


def test_report_threshold_writes_the_diagram_and_the_numbers(small, tmp_path, capsys):
    """``small`` at threshold 0.75: the 0.9 (an 'a' found) and 0.8 (the 'b' named 'a') detections are kept, so
    recall 1/4 and precision 1/2; at threshold 0 the 0.7 detection is correct too and the 0.3 one is not."""
    gt_path, results_path = small
    out = tmp_path / "report"
    assert main(["report", "--gt", str(gt_path), "--results", str(results_path), "--out", str(out),
                 "--threshold", "0.75"]) == 0
    report = json.loads((out / "report.json").read_text())
    assert report["at_threshold"] == {"score_threshold": 0.75, "recall": 0.25, "precision": 0.5, "match_px": 3.0}
    assert report["scores"]["recall"] == 0.25 and report["scores"]["score_threshold"] == 0.75
    rel = report["reliability"]
    assert [(b["count"], b["correct"]) for b in rel["bins"]] == [(0, 0)] * 3 + [(1, 0)] + [(0, 0)] * 3 + [
        (1, 1), (1, 0), (1, 1)]
    assert rel["ece"] == pytest.approx((0.1 + 0.8 + 0.3 + 0.3) / 4)
    png = out / "reliability.png"
    assert png.read_bytes()[:8] == PNG_SIGNATURE
    with Image.open(png) as im:
        assert im.width > 300 and im.height > 300
    page = (out / "index.html").read_text()
    assert 'src="reliability.png"' in page
    rows = dict(re.findall(r"<tr><th>([^<]+)</th><td>([^<]+)</td></tr>", page))
    assert rows["recall at score \u2265 0.75 (same class, every point within 3 px)"] == "0.250"
    assert rows["precision at score \u2265 0.75"] == "0.500"
    assert rows["expected calibration error (score vs fraction correct, 10 bins)"] == "0.375"
    assert "score threshold: <code>0.75</code>" in page


def test_time_to_accuracy_is_the_first_validation_at_each_target_in_training_minutes(tmp_path):
    """Minutes from the val rows' wall_s (training time), the first row at or above each target; a target
    never reached is None; a run without validation rows has no curve."""
    metrics = tmp_path / "metrics.csv"
    metrics.write_text("phase,step,wall_s,kpt_AP\ntrain,25,30,\nval,25,30,0.80\nval,50,90,0.951\n"
                       "val,75,150,0.949\nval,100,210,0.969\n")
    tta = time_to_accuracy(read_metrics(metrics))
    assert tta["steps"] == [25, 50, 75, 100] and tta["minutes"] == pytest.approx([0.5, 1.5, 2.5, 3.5])
    assert tta["reached"] == {"0.95": pytest.approx(1.5), "0.97": None}
    assert time_to_accuracy(read_metrics(metrics), targets=(0.9, 0.969))["reached"] == {
        "0.9": pytest.approx(1.5), "0.969": pytest.approx(3.5)}
    metrics.write_text("phase,step,wall_s,loss\ntrain,25,30,1.0\n")
    assert time_to_accuracy(read_metrics(metrics)) is None
