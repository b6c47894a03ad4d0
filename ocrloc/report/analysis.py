"""The numbers a report draws, computed with the evaluator's own checks, OKS and matching.

Nothing here re-implements scoring: the inputs are checked by :mod:`ocrloc.evaluation.inputs`, the
precision-recall arrays are pycocotools' ``COCOeval.eval['precision']`` from the evaluator's own run
(:func:`ocrloc.evaluation.evaluator._run`, same area range, ``maxDets`` and per-keypoint sigmas), and the
confusion matrix, point errors and worst points come from :func:`ocrloc.evaluation.match_points`, the
matching behind ``cls_acc``, ``miss_rate`` and ``mean_px``. So the report's numbers are the evaluator's:

* the mean of the defined (> -1) precision entries of all classes is ``kpt_AP``;
* the diagonal of the confusion matrix over the ground-truth count is ``cls_acc``;
* the point errors are the ones ``mean_px`` / ``median_px`` / ``p95_px`` summarise;
* a detection is *correct* in the reliability diagram when the matching behind ``recall`` and ``precision``
  (:func:`ocrloc.evaluation.evaluator.found_at_threshold`: same class, every labelled keypoint within 3 px)
  at threshold 0 gives it an object; as that matching takes higher scores first, the correct detections
  scoring >= T are exactly the ones ``precision`` at T counts.
"""

from __future__ import annotations

import csv
import math
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Dict, List, Optional, Sequence

import numpy as np
from pycocotools.cocoeval import Params

from ocrloc.evaluation import DEFAULT_SCORE_THRESHOLD, DEFAULT_SIGMA, PointMatches, evaluate
# The evaluator's own COCOeval runs (its pitfall handling included), not a second copy of them.
from ocrloc.evaluation.evaluator import (OKS_THRESHOLDS, check_sigma, check_threshold, found_at_threshold,
                                         keypoint_precision, match_checked, mean_valid_precision, slot_sigmas_of)
from ocrloc.evaluation.inputs import GroundTruth, PathOrObj, Results, check_ground_truth, check_results, load_json

__all__ = ["ReportError", "ReportData", "OKS_THRESHOLDS", "RECALLS", "RELIABILITY_BINS", "analyse", "precision_of",
           "pr_numbers", "pr_summary", "confusion_matrix", "point_errors", "worst_points", "reliability",
           "reliability_numbers", "read_metrics", "TIME_TO_ACCURACY_TARGETS", "time_to_accuracy"]

# The keypoint AP levels whose first training minute a run's report states (DAWNBench's "time to accuracy").
TIME_TO_ACCURACY_TARGETS = (0.95, 0.97)

RECALLS = np.asarray(Params(iouType="keypoints").recThrs)  # the 101 recall points of COCOeval's precision
RELIABILITY_BINS = 10  # equal-width score bins over [0, 1] of the reliability diagram


class ReportError(ValueError):
    """Input a report cannot be made from (other than what the evaluator refuses); one line naming the file."""


@dataclass
class ReportData:
    """Everything the figures of one report are drawn from.

    Attributes:
        gt: the checked ground truth.
        results: the checked results.
        scores: :func:`ocrloc.evaluation.evaluate`'s dict for the same inputs and sigma.
        precision: category id -> COCOeval precision ``[T OKS thresholds, R recall points]`` (-1: no ground truth).
        matches: the evaluator's matching (same-class and class-agnostic) of every ground-truth object.
        sigma: the sigma values used (one, or one per keypoint name).
        file_names: image id -> the ground truth's ``file_name`` (None when it has none).
        threshold: the score threshold of ``scores["recall"]`` and ``scores["precision"]``.
    """

    gt: GroundTruth
    results: Results
    scores: Dict[str, Any]
    precision: Dict[int, np.ndarray]
    matches: PointMatches
    sigma: tuple
    file_names: Dict[int, Optional[str]]
    threshold: float = DEFAULT_SCORE_THRESHOLD


def analyse(gt: PathOrObj, results: PathOrObj, sigma: Any = None,
            threshold: float = DEFAULT_SCORE_THRESHOLD) -> ReportData:
    """Check and score ``results`` against ``gt`` and keep what the figures need.

    Args:
        gt: COCO keypoints ground truth, a path or the loaded dict.
        results: COCO results list, a path or the loaded list.
        sigma: OKS sigma, one value or one per keypoint name (None: the evaluator's default).
        threshold: the score threshold of recall and precision, in [0, 1].

    Raises:
        EvaluationInputError: what :func:`ocrloc.evaluation.evaluate` refuses (a bad threshold too), one line
            naming the file.
    """
    sigmas = check_sigma(DEFAULT_SIGMA if sigma is None else sigma)
    threshold = check_threshold(threshold)
    gt_obj, gt_name = load_json(gt, "<ground truth>")
    res_obj, res_name = load_json(results, "<results>")
    g = check_ground_truth(gt_obj, gt_name)
    slot_sigmas = slot_sigmas_of(sigmas, g)
    r = check_results(res_obj, res_name, gt=g)
    # The headline scores from the evaluator itself (it checks its own copies: the objects stay intact).
    scores = evaluate(gt_obj, res_obj, sigma=sigmas, threshold=threshold)
    precision = keypoint_precision(g, r, slot_sigmas)
    matches = match_checked(g, r, slot_sigmas)
    file_names = {int(im["id"]): im.get("file_name") if isinstance(im.get("file_name"), str) else None
                  for im in gt_obj["images"]}
    return ReportData(g, r, scores, precision, matches, sigmas, file_names, threshold)


def pr_summary(data: ReportData) -> Dict[str, Any]:
    """The precision-recall numbers the PR figure draws, as plain data (``report.json``'s ``"pr"``): see
    :func:`pr_numbers`."""
    return pr_numbers(data.precision, {c: data.gt.categories[c].name for c in data.precision})


def precision_of(gt: PathOrObj, results: PathOrObj, sigma: Any = None) -> tuple:
    """``(precision, class_names)`` for :func:`pr_numbers`: the evaluator's checks and its keypoint precision
    arrays alone (no scores, no matching: what the trainer's PR curves need at every validation)."""
    g = check_ground_truth(*load_json(gt, "<ground truth>"))
    r = check_results(*load_json(results, "<results>"), gt=g)
    precision = keypoint_precision(g, r, slot_sigmas_of(check_sigma(DEFAULT_SIGMA if sigma is None else sigma), g))
    return precision, {c: g.categories[c].name for c in precision}


def pr_numbers(precision: Dict[int, np.ndarray], class_names: Dict[int, str]) -> Dict[str, Any]:
    """The precision-recall numbers of COCOeval's keypoint ``precision`` arrays per category id, as plain data.

    ``per_class[id]["precision"]`` is the full ``[T, R]`` COCOeval array; ``kpt_AP`` is the mean of its defined
    entries over all classes (the evaluator's ``kpt_AP``), ``AP50`` / ``AP75`` the same at one threshold.
    """
    stacked = np.stack([precision[c] for c in precision], axis=2) if precision else np.zeros((0, 0, 0))
    at = {t: int(np.flatnonzero(np.isclose(OKS_THRESHOLDS, t))[0]) for t in (0.5, 0.75)}
    per_class = {}
    for c, p in precision.items():
        per_class[str(c)] = {"name": class_names[c], "AP": mean_valid_precision(p),
                             "AP50": mean_valid_precision(p[at[0.5]]), "AP75": mean_valid_precision(p[at[0.75]]),
                             "precision": np.round(p, 6).tolist()}
    return {
        "oks_thresholds": [round(float(t), 2) for t in OKS_THRESHOLDS],
        "recall": [round(float(x), 2) for x in RECALLS],
        "kpt_AP": mean_valid_precision(stacked) if stacked.size else None,
        "kpt_AP50": mean_valid_precision(stacked[at[0.5]]) if stacked.size else None,
        "kpt_AP75": mean_valid_precision(stacked[at[0.75]]) if stacked.size else None,
        "per_class": per_class,
    }


def confusion_matrix(data: ReportData) -> Dict[str, Any]:
    """True class vs predicted class of the class-agnostic match (the matching behind ``cls_acc``).

    Returns:
        ``{"class_ids", "class_names", "columns", "matrix", "unmatched_detections"}``: ``matrix[i][j]`` counts the
        ground-truth objects of class ``class_ids[i]`` whose match has class ``class_ids[j]``; the last column
        (``"missed"``) those with no detection within OKS 0.1 of any class. ``unmatched_detections``: detections
        no ground truth took (any score).
    """
    g, r, m = data.gt, data.results, data.matches
    ids = list(g.categories)
    index = {c: k for k, c in enumerate(ids)}
    matrix = np.zeros((len(ids), len(ids) + 1), np.int64)
    for true_id, det in zip(g.cls.tolist(), m.agnostic_det.tolist()):
        column = len(ids) if det < 0 else index[int(r.cls[det])]
        matrix[index[true_id], column] += 1
    return {"class_ids": ids, "class_names": [g.categories[c].name for c in ids],
            "columns": [g.categories[c].name for c in ids] + ["missed"], "matrix": matrix.tolist(),
            "unmatched_detections": int(len(r.cls) - (m.agnostic_det >= 0).sum())}


def point_errors(data: ReportData) -> Dict[str, Any]:
    """Pixel distance of every labelled keypoint of every same-class matched object (what ``mean_px`` averages).

    Returns:
        ``{"per_class": {id: [px, ...]}, "per_keypoint": {name: [px, ...]}, "all": [px, ...]}``; classes and
        keypoints without a matched point have an empty list.
    """
    g, m = data.gt, data.matches
    found = m.det >= 0
    per_class = {}
    for c in g.categories:
        d = m.dist[found & (g.cls == c)]
        per_class[str(c)] = d[~np.isnan(d)].tolist()
    per_keypoint = {}
    for slot, name in enumerate(g.keypoint_names):
        d = m.dist[found, slot]
        per_keypoint[name] = d[~np.isnan(d)].tolist()
    everything = m.dist[found]
    return {"per_class": per_class, "per_keypoint": per_keypoint,
            "all": everything[~np.isnan(everything)].tolist()}


def worst_points(data: ReportData, per_class: int) -> Dict[str, List[Dict[str, Any]]]:
    """The ``per_class`` worst-placed keypoints of each class among its same-class matched objects.

    Returns:
        ``{category id: [{"annotation_id", "image_id", "keypoint", "gt": [x, y], "pred": [x, y], "error_px",
        "bbox", "score"}, ...]}``, largest error first.
    """
    g, r, m = data.gt, data.results, data.matches
    anns = g.coco["annotations"]
    out: Dict[str, List[Dict[str, Any]]] = {}
    for c in g.categories:
        rows, slots = np.nonzero((m.det >= 0)[:, None] & (g.cls == c)[:, None] & ~np.isnan(m.dist))
        errors = m.dist[rows, slots]
        order = np.argsort(-errors, kind="stable")[:max(per_class, 0)]
        picked = []
        for k in order.tolist():
            i, s, det = int(rows[k]), int(slots[k]), int(m.det[rows[k]])
            picked.append({"annotation_id": anns[i]["id"], "image_id": int(g.img[i]), "keypoint": g.keypoint_names[s],
                           "gt": g.xy[i, s].tolist(), "pred": r.xy[det, s].tolist(), "error_px": float(errors[k]),
                           "bbox": list(anns[i]["bbox"]), "score": float(r.score[det])})
        out[str(c)] = picked
    return out


def reliability(data: ReportData, bins: int = RELIABILITY_BINS) -> Dict[str, Any]:
    """Score vs fraction correct of every detection (threshold 0: each one counts), in equal score bins.

    A detection is correct when the matching behind ``recall`` / ``precision`` gives it a ground-truth object
    (same class, every labelled keypoint within 3 px, one detection per object); see the module docstring.
    """
    found = found_at_threshold(data.gt, data.results, 0.0)
    correct = np.zeros(len(data.results.score), bool)
    correct[found[found >= 0]] = True
    return reliability_numbers(data.results.score, correct, bins)


def reliability_numbers(scores: np.ndarray, correct: np.ndarray, bins: int = RELIABILITY_BINS) -> Dict[str, Any]:
    """The numbers of a reliability diagram, as plain data (``report.json``'s ``"reliability"``).

    Bin ``k`` of ``bins`` holds the scores in ``[k / bins, (k + 1) / bins)``, the last one 1.0 as well.

    Returns:
        ``{"bins": [{"lo", "hi", "count", "correct", "accuracy", "mean_score"}, ...], "num_dets", "num_correct",
        "ece"}``: ``accuracy`` is the fraction of the bin's detections that are correct and ``mean_score`` their
        mean score (both None for an empty bin); ``ece``, the expected calibration error, is the mean over
        detections of ``|accuracy - mean_score|`` of their bin (the count-weighted mean over bins; None without
        detections).
    """
    scores = np.asarray(scores, np.float64)
    correct = np.asarray(correct, bool)
    which = np.clip(np.floor(scores * bins).astype(np.int64), 0, bins - 1) if scores.size else scores.astype(np.int64)
    rows, ece = [], 0.0
    for k in range(bins):
        inside = which == k
        count = int(inside.sum())
        right = int(correct[inside].sum())
        accuracy = right / count if count else None
        mean_score = float(scores[inside].mean()) if count else None
        if count:
            ece += count * abs(accuracy - mean_score)
        rows.append({"lo": round(k / bins, 6), "hi": round((k + 1) / bins, 6), "count": count, "correct": right,
                     "accuracy": accuracy, "mean_score": mean_score})
    return {"bins": rows, "num_dets": int(scores.size), "num_correct": int(correct.sum()),
            "ece": ece / scores.size if scores.size else None}


def read_metrics(path: str | os.PathLike) -> Dict[str, Dict[str, List[tuple]]]:
    """A run's ``metrics.csv`` as curves: ``{phase: {column: [(step, value), ...]}}``, empty cells left out.

    Raises:
        ReportError: the file is missing, unreadable, or not a metrics file (no ``phase`` / ``step`` columns, a
            step that is not a whole number); one line naming the file.
    """
    path = Path(path)
    try:
        with open(path, newline="", encoding="utf-8") as f:
            reader = csv.DictReader(f)
            fields = reader.fieldnames or []
            if "phase" not in fields or "step" not in fields:
                raise ReportError(f"{path}: not a metrics file (needs 'phase' and 'step' columns, got "
                                  f"{', '.join(fields[:6]) or 'none'})")
            rows = list(reader)
    except FileNotFoundError:
        raise ReportError(f"{path}: no such file (a run folder holds the metrics.csv ocrloc train writes)") from None
    except (OSError, UnicodeDecodeError, csv.Error) as err:
        raise ReportError(f"{path}: cannot read it ({getattr(err, 'strerror', None) or err})") from None
    curves: Dict[str, Dict[str, List[tuple]]] = {}
    for n, row in enumerate(rows, start=2):
        try:
            step = int(row["step"])
        except (TypeError, ValueError):
            raise ReportError(f"{path}: line {n}: step {row.get('step')!r} is not a whole number") from None
        phase = curves.setdefault(row.get("phase") or "?", {})
        for key, text in row.items():
            if key in ("phase", "step") or key is None or not text:
                continue
            try:
                value = float(text)
            except (TypeError, ValueError):
                continue  # a text column (none today): not a curve
            if math.isfinite(value):
                phase.setdefault(key, []).append((step, value))
    return curves



def time_to_accuracy(curves: Dict[str, Dict[str, List[tuple]]], targets: Sequence[float] = TIME_TO_ACCURACY_TARGETS,
                     score: str = "kpt_AP") -> Dict[str, Any] | None:
    """Validation ``score`` against minutes of training, and the first minute each target was reached.

    Minutes are the ``wall_s`` of the run's validation rows (training time only: the trainer stops its
    clock while validating and saving), as DAWNBench states time to accuracy. ``None`` when the run has
    no validation row with both columns.

    Returns:
        ``{"score": score, "minutes": [...], "values": [...], "steps": [...], "reached": {"0.95": minutes or
        None, ...}}``: ``reached`` is the first validation at or above the target (None: never).
    """
    val = curves.get("val", {})
    walls = dict(val.get("wall_s", []))
    rows = [(step, walls[step] / 60.0, value) for step, value in val.get(score, []) if step in walls]
    if not rows:
        return None
    rows.sort()
    reached = {f"{t:g}": next((minutes for _, minutes, value in rows if value >= t), None) for t in targets}
    return {"score": score, "steps": [r[0] for r in rows], "minutes": [r[1] for r in rows],
            "values": [r[2] for r in rows], "reached": reached}
