"""SPEC section 7 scores of a COCO results list against a COCO keypoints ground truth.

``evaluate(gt, results, sigma)`` returns one flat dict (the object ``tools/evaluate.py --json`` prints):

====================  =====================================================================================
key                   meaning
====================  =====================================================================================
``kpt_AP``            keypoint AP, OKS 0.50:0.05:0.95, pycocotools ``COCOeval(..., "keypoints")``
``kpt_AP50/75``       the same at OKS 0.50 / 0.75
``box_AP``            box AP (IoU 0.50:0.95, 100 detections per image); null when the results have no boxes
``mean_px``           mean pixel distance between a ground-truth point and its matched detection
``median_px``         its median
``p95_px``            its 95th percentile (numpy's linear interpolation)
``miss_rate``         share of ground-truth digits without a same-class match
``cls_acc``           share of ground-truth digits whose class-agnostic match has the right class
``per_class``         ``{"0": AP, ..., "9": AP}``, keypoint AP of each class; null for a class with no ground truth
``num_images``        images in the ground truth (all of them are scored, with or without detections)
``num_gt``            ground-truth digits
``num_dets``          detections in the results
====================  =====================================================================================

A score that is undefined (no ground truth at all; no matched point for the distances) is ``None``.
Results without any entry score AP 0, miss rate 1, class accuracy 0 and null distances.

Point error, miss rate and class accuracy come from a greedy matching at OKS >= 0.1 described in
:mod:`ocrloc.evaluation.matching` (same class, highest OKS for the errors; any class, nearest point for
class accuracy). Both use pycocotools' OKS with the ground truth's ``area``, and, unlike the AP, consider every
detection (no 20-per-image cut).

pycocotools pitfalls handled here:

- Keypoint-only results get ``area = 0`` and a zero-size ``bbox`` from ``COCO.loadRes`` (the extent of one
  point). ``COCOeval`` ignores unmatched detections whose area is outside an area range, so the 'medium' and
  'large' ranges would silently drop every false positive. Only the 'all' range is sound: the evaluation is
  run with ``areaRng = [all]`` alone (which also makes it three times faster) and precision is read at that
  index; ``COCOeval.summarize`` (which would ask for the other ranges) is never called.
- Keypoint AP keeps the 20 highest-scoring detections per image *and category* (``maxDets = [20]``, set
  explicitly rather than trusted to the keypoint defaults); box AP keeps 100.
- ``COCO.loadRes`` crashes on an empty list (it reads ``anns[0]``); empty results are scored without it.
- ``COCOeval`` records a match as the matched annotation's ``id`` with 0 meaning "none", so ground truth
  annotation ids must be >= 1; :func:`~ocrloc.evaluation.inputs.check_ground_truth` refuses id 0.
- ``loadRes`` and ``COCOeval`` add keys to the dicts they are given; they only ever see fresh copies.
- pycocotools prints progress to stdout; it is captured so the table and the JSON line stay clean.
- Category id 0 is handled correctly by pycocotools (category ids are only compared, never tested for
  truth); a test checks it.
"""

from __future__ import annotations

import contextlib
import gc
import io
import math
import numbers
from typing import Any, Iterator

import numpy as np
from pycocotools.coco import COCO
from pycocotools.cocoeval import COCOeval

from .matching import match_points
from .inputs import (
    NUM_CLASSES,
    NUM_KEYPOINTS,
    EvaluationInputError,
    GroundTruth,
    PathOrObj,
    Results,
    check_ground_truth,
    check_results,
    load_json,
)

__all__ = ["DEFAULT_SIGMA", "KPT_MAX_DETS", "BOX_MAX_DETS", "SCORE_KEYS", "evaluate", "format_table",
           "ground_truth_as_results"]

DEFAULT_SIGMA = 0.05  # SPEC 7: OKS 0.5 is ~2.9 px, 0.95 ~0.8 px on a 24 x 28 digit
KPT_MAX_DETS = 20  # SPEC 7 and the COCO keypoint convention
BOX_MAX_DETS = 100  # the COCO box convention
_AREA_ALL = [0.0, 1e5**2]  # pycocotools' 'all' range

SCORE_KEYS = (
    "kpt_AP", "kpt_AP50", "kpt_AP75", "box_AP", "mean_px", "median_px", "p95_px", "miss_rate", "cls_acc",
    "per_class", "num_images", "num_gt", "num_dets",
)


@contextlib.contextmanager
def _gc_paused() -> Iterator[None]:
    # Checking, copying and pycocotools build millions of small dicts and lists but hardly any reference
    # cycles; CPython's cyclic collector would rescan the growing heap again and again (over half of the
    # checking time on 10,000 images). Reference counting frees everything once the scores are out.
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.enable()


def _mean_valid(precision: np.ndarray) -> float | None:
    # pycocotools marks settings without ground truth with -1; like COCOeval.summarize, average the rest.
    valid = precision[precision > -1]
    return float(valid.mean()) if valid.size else None


def _coco_ap(coco_gt: COCO, coco_dt: COCO, iou_type: str, sigma: float) -> tuple[float | None, ...]:
    """AP, AP50, AP75 and per-class AP from one COCOeval run at the 'all' area range.

    Returns:
        ``(ap, ap50, ap75, per_class)`` with ``per_class`` mapping category id to AP or None.
    """
    ev = COCOeval(coco_gt, coco_dt, iou_type)
    p = ev.params
    p.areaRng, p.areaRngLbl = [list(_AREA_ALL)], ["all"]  # see the module docstring: the other ranges are unsound
    if iou_type == "keypoints":
        p.kpt_oks_sigmas = np.full(NUM_KEYPOINTS, float(sigma))
        p.maxDets = [KPT_MAX_DETS]
    else:
        p.maxDets = [BOX_MAX_DETS]
    ev.evaluate()
    ev.accumulate()
    precision = ev.eval["precision"][:, :, :, 0, -1]  # [T thresholds, R recall points, K categories]
    thr = np.asarray(p.iouThrs)
    ap50 = _mean_valid(precision[np.isclose(thr, 0.50)])
    ap75 = _mean_valid(precision[np.isclose(thr, 0.75)])
    per_class = {int(c): _mean_valid(precision[:, :, k]) for k, c in enumerate(p.catIds)}
    return _mean_valid(precision), ap50, ap75, per_class


def _ap_scores(g: GroundTruth, r: Results, sigma: float) -> dict[str, Any]:
    present = set(g.cls.tolist())
    if not r.entries:
        # loadRes cannot take an empty list; with nothing detected every present class has AP 0.
        zero = 0.0 if present else None
        per_class = {c: (0.0 if c in present else None) for c in range(NUM_CLASSES)}
        return {"kpt_AP": zero, "kpt_AP50": zero, "kpt_AP75": zero, "box_AP": None, "per_class": per_class}
    with contextlib.redirect_stdout(io.StringIO()):  # pycocotools reports progress on stdout
        coco_gt = COCO()
        coco_gt.dataset = g.coco
        coco_gt.createIndex()
        coco_dt = coco_gt.loadRes(r.entries)
        ap, ap50, ap75, per = _coco_ap(coco_gt, coco_dt, "keypoints", sigma)
        box_ap = _coco_ap(coco_gt, coco_dt, "bbox", sigma)[0] if r.has_bbox else None
    per_class = {c: per.get(c) for c in range(NUM_CLASSES)}
    return {"kpt_AP": ap, "kpt_AP50": ap50, "kpt_AP75": ap75, "box_AP": box_ap, "per_class": per_class}


def _point_scores(g: GroundTruth, r: Results, sigma: float) -> dict[str, float | None]:
    m = match_points(g.img, g.cls, g.xy, g.area, r.img, r.cls, r.xy, r.score, sigma)
    n_gt = len(g.img)
    found = m.det >= 0
    dist = m.dist[found]
    right = (m.agnostic_det >= 0) & (r.cls[np.maximum(m.agnostic_det, 0)] == g.cls) if len(r.cls) else found
    return {
        "mean_px": float(dist.mean()) if dist.size else None,
        "median_px": float(np.median(dist)) if dist.size else None,
        "p95_px": float(np.percentile(dist, 95)) if dist.size else None,
        "miss_rate": float(1.0 - found.mean()) if n_gt else None,
        "cls_acc": float(right.mean()) if n_gt else None,
    }


def evaluate(gt: PathOrObj, results: PathOrObj, sigma: float = DEFAULT_SIGMA) -> dict[str, Any]:
    """Score detections against ground truth (SPEC 7).

    Args:
        gt: COCO keypoints ground truth (SPEC 6), a path or the loaded dict. Not modified.
        results: COCO results list, a path or the loaded list. Not modified.
        sigma: OKS sigma of the keypoint (pycocotools ``kpt_oks_sigmas``), > 0.

    Returns:
        The scores, keys :data:`SCORE_KEYS` in that order (see the module docstring); ``per_class`` has the
        keys ``"0"`` to ``"9"``. JSON-serialisable.

    Raises:
        EvaluationInputError: a missing or invalid file, a malformed entry, or a bad sigma; the message is one
        line naming the file and entry.
    """
    if not isinstance(sigma, numbers.Real) or isinstance(sigma, bool) or not (math.isfinite(sigma) and sigma > 0):
        raise EvaluationInputError(f"sigma must be a finite number > 0, got {sigma!r}")
    with _gc_paused():
        g = check_ground_truth(*load_json(gt, "<ground truth>"))
        r = check_results(*load_json(results, "<results>"), gt=g)
        scores: dict[str, Any] = {**_ap_scores(g, r, sigma), **_point_scores(g, r, sigma)}
    scores["per_class"] = {str(c): ap for c, ap in scores["per_class"].items()}
    scores.update(num_images=len(g.image_ids), num_gt=len(g.img), num_dets=len(r.entries))
    return {k: scores[k] for k in SCORE_KEYS}


def _fmt(v: float | None, digits: int = 3) -> str:
    return "-" if v is None else f"{v:.{digits}f}"


def format_table(scores: dict[str, Any]) -> str:
    """Render :func:`evaluate`'s dict as a plain-text table (``-`` for an undefined score).

    Args:
        scores: the dict returned by :func:`evaluate`.
    """
    s = scores
    lines = [
        f"images {s['num_images']}   ground-truth digits {s['num_gt']}   detections {s['num_dets']}",
        "",
        f"{'keypoint AP':<16}{_fmt(s['kpt_AP']):>8}   AP50 {_fmt(s['kpt_AP50'])}   AP75 {_fmt(s['kpt_AP75'])}",
        f"{'box AP':<16}{_fmt(s['box_AP']):>8}",
        f"{'point error px':<16}{_fmt(s['mean_px'], 2):>8}   median {_fmt(s['median_px'], 2)}"
        f"   p95 {_fmt(s['p95_px'], 2)}",
        f"{'miss rate':<16}{_fmt(s['miss_rate']):>8}",
        f"{'class accuracy':<16}{_fmt(s['cls_acc']):>8}",
        "",
        "keypoint AP per class",
        "class " + "".join(f"{c:>7}" for c in s["per_class"]),
        "AP    " + "".join(f"{_fmt(ap):>7}" for ap in s["per_class"].values()),
    ]
    return "\n".join(lines)


def ground_truth_as_results(gt: PathOrObj) -> list[dict[str, Any]]:
    """The ground truth written as a results list with score 1 (a perfect detector).

    Scoring it checks a ground-truth file and the evaluator end to end: every score must be perfect.
    """
    data, _ = load_json(gt, "ground truth")
    return [
        {"image_id": a["image_id"], "category_id": a["category_id"], "bbox": list(a["bbox"]),
         "keypoints": list(a["keypoints"][:2]) + [1.0], "score": 1.0}
        for a in data.get("annotations", [])
    ]
