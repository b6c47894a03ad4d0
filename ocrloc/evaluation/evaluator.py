"""The scores (``docs/task.md``, "Scores") of a COCO results list against a COCO keypoints ground truth.

The ground truth defines the task: categories with any integer ids, each naming its own list of ``K_c >= 1``
keypoints (see :mod:`ocrloc.evaluation.inputs`). The MNIST digits are categories 0 to 9 with one keypoint
``"point"`` each; for them every score below is exactly what the evaluator gave before categories could carry
several keypoints (``tests/evaluation/test_k1_regression.py`` pins the numbers).

``evaluate(gt, results, sigma)`` returns one flat dict (the object ``ocrloc evaluate --json`` prints): the
headline keys :data:`SCORE_KEYS`, then the detail keys :data:`DETAIL_KEYS`.

=========================  ================================================================================
key                        meaning
=========================  ================================================================================
``kpt_AP``                 keypoint AP, OKS 0.50:0.05:0.95, pycocotools ``COCOeval(..., "keypoints")``,
                           the mean over categories with ground truth (see "AP with several K" below)
``kpt_AP50/75``            the same at OKS 0.50 / 0.75
``box_AP``                 box AP (IoU 0.50:0.95, 100 detections per image); null when the results have no boxes
``mean_px``                mean pixel distance between a labelled ground-truth keypoint (``v > 0``) and the same
                           keypoint of the matched detection, over all keypoints of all matched objects
``median_px``              its median
``p95_px``                 its 95th percentile (numpy's linear interpolation)
``miss_rate``              share of ground-truth objects without a same-class match
``cls_acc``                share of ground-truth objects whose class-agnostic match has the right class
``recall``                 at the score threshold: share of ground-truth objects found by a detection scoring
                           >= ``score_threshold`` of the same class with every labelled keypoint within 3 px
                           (:data:`~ocrloc.evaluation.matching.POINT_MATCH_PX`), one detection per object
``precision``              at the score threshold: share of the detections scoring >= ``score_threshold`` that
                           found an object so (a duplicate finds nothing); null when no detection scores that much
``score_threshold``        the threshold of ``recall`` and ``precision`` (default :data:`DEFAULT_SCORE_THRESHOLD`)
``per_class``              ``{"<category id>": AP}`` in ascending id order, keypoint AP of each category; null for
                           a category with no ground truth
``num_images``             images in the ground truth (all of them are scored, with or without detections)
``num_gt``                 ground-truth objects (annotations)
``num_dets``               detections in the results
``kpt_AP_per_keypoint``    ``{keypoint name: AP}``: keypoint AP of that keypoint alone (below); null where no
                           ground truth labels it
``point_px_per_keypoint``  ``{keypoint name: {"mean", "median", "p95"}}``: the point error of that keypoint alone
``class_names``            ``{"<category id>": name}``, the categories' names (for tables)
``confusions``             ``[[true id, predicted id, count], ...]``: the ten most frequent wrong classes among the
                           class-agnostic matches (what ``cls_acc`` counts as wrong), most frequent first
=========================  ================================================================================

Keypoint names are the ground truth's, in first-appearance order over its categories; a name used by several
categories is one keypoint (same name, same meaning).

A score that is undefined (no ground truth at all; no matched point for the distances) is ``None``.
Results without any entry score AP 0, miss rate 1, class accuracy 0 and null distances.

AP with several K. pycocotools' ``computeOks`` takes one ``kpt_oks_sigmas`` array for all categories, and it
must have one entry per keypoint of the annotations. Categories are therefore grouped by their array of
per-keypoint sigmas (with one sigma for all keypoints: by their keypoint count ``K_c``) and each group is one
``COCOeval`` run restricted to its categories (``params.catIds``). ``COCOeval`` evaluates and accumulates every
category on its own (matching, the 20-per-image cut and the precision curve are all per image *and category*),
so the per-category precision of a group run is exactly that of a single run over all categories; the
precision arrays ``[T, R, categories]`` of the groups are put side by side in ascending category id and
averaged over their defined (> -1) entries, the way ``COCOeval.summarize`` averages a single run. That mean is
the mean over categories with ground truth of each category's AP. With one group (e.g. the digits, K = 1 for
all) it *is* the single run.

AP per keypoint. ``kpt_AP_per_keypoint[n]`` is the keypoint AP of the task reduced to keypoint ``n``: the
categories that name ``n``; each of their ground-truth objects keeps only ``n`` (objects that do not label ``n``
are ignored, as ``COCOeval`` ignores objects without a labelled keypoint: a detection matching one is neither
a true nor a false positive); each detection keeps only its ``n``; the OKS is then that keypoint's alone,
``exp(-d_n^2 / (2 area (2 sigma_n)^2))``, with the object's own area; 20 detections per image and category; the
mean over those categories as above. For a category with a single keypoint this is its ``per_class`` AP, so
with K = 1 everywhere ``kpt_AP_per_keypoint == {"point": kpt_AP}`` (taken from the main run, no extra one).

Point error, miss rate and class accuracy come from a greedy matching at OKS >= 0.1 described in
:mod:`ocrloc.evaluation.matching` (same class, highest OKS for the errors; any class, nearest keypoints for
class accuracy). Both use pycocotools' OKS with the ground truth's ``area``, and, unlike the AP, consider every
detection (no 20-per-image cut).

Recall and precision at a threshold are what a user who keeps the detections scoring at least ``T`` gets: a
third greedy matching (:func:`~ocrloc.evaluation.matching.match_within_px`, descending score within an image)
of the detections scoring >= ``T`` alone, where a detection finds an object of its own class whose every
labelled keypoint lies within 3 px of its own, no OKS involved.

pycocotools pitfalls handled here:

- Keypoint-only results get a ``bbox`` and ``area`` from ``COCO.loadRes`` spanning their keypoints (zero for
  one point). ``COCOeval`` ignores unmatched detections whose area is outside an area range, so the 'medium'
  and 'large' ranges would silently drop false positives. Only the 'all' range is sound: the evaluation is
  run with ``areaRng = [all]`` alone (which also makes it three times faster) and precision is read at that
  index; ``COCOeval.summarize`` (which would ask for the other ranges) is never called.
- Keypoint AP keeps the 20 highest-scoring detections per image *and category* (``maxDets = [20]``, set
  explicitly rather than trusted to the keypoint defaults); box AP keeps 100.
- ``COCO.loadRes`` crashes on an empty list (it reads ``anns[0]``); empty results are scored without it.
- ``COCOeval`` records a match as the matched annotation's ``id`` with 0 meaning "none", so ground truth
  annotation ids must be >= 1; :func:`~ocrloc.evaluation.inputs.check_ground_truth` refuses id 0.
- ``COCOeval`` silently ignores an annotation whose ``num_keypoints`` is 0; the checks refuse annotations
  without a labelled keypoint and set ``num_keypoints`` to the labelled count.
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
from collections import Counter
from typing import Any, Iterator, Sequence

import numpy as np
from pycocotools.coco import COCO
from pycocotools.cocoeval import COCOeval, Params

from ocrloc.constants import DEFAULT_SCORE_THRESHOLD, DEFAULT_SIGMA

from .matching import POINT_MATCH_PX, PointMatches, match_points, match_within_px
from .inputs import (
    EvaluationInputError,
    GroundTruth,
    PathOrObj,
    Results,
    check_ground_truth,
    check_results,
    load_json,
)

__all__ = ["DEFAULT_SIGMA", "DEFAULT_SCORE_THRESHOLD", "KPT_MAX_DETS", "BOX_MAX_DETS", "SCORE_KEYS", "DETAIL_KEYS",
           "OKS_THRESHOLDS", "evaluate", "format_table", "ground_truth_as_results", "check_sigma", "check_threshold",
           "slot_sigmas_of", "keypoint_precision", "match_checked", "found_at_threshold", "recall_precision",
           "mean_valid_precision"]

KPT_MAX_DETS = 20  # docs/task.md, "Scores", and the COCO keypoint convention
BOX_MAX_DETS = 100  # the COCO box convention
_AREA_ALL = [0.0, 1e5**2]  # pycocotools' 'all' range
OKS_THRESHOLDS = np.asarray(Params(iouType="keypoints").iouThrs)  # OKS 0.50:0.05:0.95, as COCOeval uses them
_THRESHOLDS = OKS_THRESHOLDS
_RECALLS = len(Params(iouType="keypoints").recThrs)

SCORE_KEYS = (
    "kpt_AP", "kpt_AP50", "kpt_AP75", "box_AP", "mean_px", "median_px", "p95_px", "miss_rate", "cls_acc",
    "recall", "precision", "score_threshold", "per_class", "num_images", "num_gt", "num_dets",
)
DETAIL_KEYS = ("kpt_AP_per_keypoint", "point_px_per_keypoint", "class_names", "confusions")

Sigma = float | Sequence[float]


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


def check_sigma(sigma: Any) -> tuple[float, ...]:
    """The sigma values as given (one, or one per keypoint), each a finite number > 0."""
    if isinstance(sigma, (str, bytes)):
        values: list = [sigma]
    else:
        try:
            values = list(sigma)
        except TypeError:
            values = [sigma]
    if not values:
        raise EvaluationInputError("sigma must be one number > 0, or one per keypoint; got none")
    for v in values:
        if not isinstance(v, numbers.Real) or isinstance(v, (bool, np.bool_)) or not (math.isfinite(v) and v > 0):
            raise EvaluationInputError(f"sigma must be a finite number > 0, got {v!r}")
    return tuple(float(v) for v in values)


def check_threshold(threshold: Any) -> float:
    """The score threshold as a float: a number in [0, 1] (a detection scoring at least it is kept)."""
    if (not isinstance(threshold, numbers.Real) or isinstance(threshold, (bool, np.bool_))
            or not (math.isfinite(threshold) and 0.0 <= threshold <= 1.0)):
        raise EvaluationInputError(f"the score threshold must be a number in [0, 1], got {threshold!r}")
    return float(threshold)


def slot_sigmas_of(sigmas: tuple[float, ...], g: GroundTruth) -> np.ndarray:
    """The sigma of each keypoint slot: one value for all, or one per name of the categories' shared list."""
    if len(sigmas) == 1:
        return np.full(len(g.keypoint_names), sigmas[0])
    shared = g.shared_keypoints
    if shared is None:
        raise EvaluationInputError(
            f"sigma has {len(sigmas)} values, one per keypoint, but the categories of {g.name} do not share one "
            "keypoint list; give one sigma for every keypoint")
    if len(shared) != len(sigmas):
        raise EvaluationInputError(
            f"sigma has {len(sigmas)} values but the categories of {g.name} name {len(shared)} keypoint"
            f"{'s' if len(shared) > 1 else ''} ({', '.join(shared)}); give one sigma, or one per keypoint")
    out = np.empty(len(g.keypoint_names))
    out[list(list(g.categories.values())[0].slots)] = sigmas
    return out


def mean_valid_precision(precision: np.ndarray) -> float | None:
    """The mean of a COCOeval precision array's defined entries (None when there is none).

    pycocotools marks settings without ground truth with -1; like COCOeval.summarize, average the rest."""
    valid = precision[precision > -1]
    return float(valid.mean()) if valid.size else None


def _coco(dataset: dict) -> COCO:
    coco = COCO()
    coco.dataset = dataset
    coco.createIndex()
    return coco


def _run(coco_gt: COCO, coco_dt: COCO, iou_type: str, cat_ids: Sequence[int] | None = None,
         sigmas: Sequence[float] | None = None) -> dict[int, np.ndarray]:
    """One COCOeval run at the 'all' area range: category id -> precision ``[T thresholds, R recall points]``."""
    ev = COCOeval(coco_gt, coco_dt, iou_type)
    p = ev.params
    p.areaRng, p.areaRngLbl = [list(_AREA_ALL)], ["all"]  # see the module docstring: the other ranges are unsound
    if cat_ids is not None:
        p.catIds = sorted(cat_ids)
    if iou_type == "keypoints":
        p.kpt_oks_sigmas = np.asarray(sigmas, np.float64)
        p.maxDets = [KPT_MAX_DETS]
    else:
        p.maxDets = [BOX_MAX_DETS]
    ev.evaluate()
    ev.accumulate()
    precision = ev.eval["precision"][:, :, :, 0, -1]  # [T thresholds, R recall points, K categories]
    return {int(c): precision[:, :, k] for k, c in enumerate(p.catIds)}


def _no_detections(cat_ids: Sequence[int], present: set[int]) -> dict[int, np.ndarray]:
    # What COCOeval gives a category when nothing was detected: precision 0 with ground truth, else -1.
    shape = (len(_THRESHOLDS), _RECALLS)
    return {c: np.zeros(shape) if c in present else np.full(shape, -1.0) for c in cat_ids}


def _precision_by_sigma_group(coco_gt: COCO, coco_dt: COCO, g: GroundTruth, slot_sigmas: np.ndarray
                              ) -> dict[int, np.ndarray]:
    # pycocotools takes one sigma array per run: one run per group of categories whose keypoints share sigmas.
    groups: dict[tuple[float, ...], list[int]] = {}
    for c in g.categories.values():
        groups.setdefault(tuple(slot_sigmas[list(c.slots)].tolist()), []).append(c.id)
    per_cat: dict[int, np.ndarray] = {}
    for sigmas, ids in groups.items():
        per_cat.update(_run(coco_gt, coco_dt, "keypoints", ids, sigmas))
    return per_cat


def keypoint_precision(g: GroundTruth, r: Results, slot_sigmas: np.ndarray) -> dict[int, np.ndarray]:
    """COCOeval's keypoint precision of every category (ascending id), ``[T OKS thresholds, R recall points]``
    at the 'all' area range: the arrays behind :func:`evaluate`'s ``kpt_AP`` and ``per_class`` (the mean of
    their defined entries, :func:`mean_valid_precision`).

    Args:
        g: checked ground truth (:func:`ocrloc.evaluation.inputs.check_ground_truth`).
        r: checked results (:func:`ocrloc.evaluation.inputs.check_results`).
        slot_sigmas: the OKS sigma of each keypoint slot (:func:`slot_sigmas_of`).
    """
    with contextlib.redirect_stdout(io.StringIO()):  # pycocotools reports progress on stdout
        if not r.entries:  # loadRes cannot take an empty list
            per_cat = _no_detections(list(g.categories), set(g.cls.tolist()))
        else:
            coco_gt = _coco(g.coco)
            # loadRes adds keys to the dicts it is given: hand it copies, r.entries stay as checked.
            per_cat = _precision_by_sigma_group(coco_gt, coco_gt.loadRes([dict(e) for e in r.entries]), g,
                                                slot_sigmas)
    return {c: per_cat[c] for c in sorted(per_cat)}


def _summary(per_cat: dict[int, np.ndarray]) -> tuple[float | None, float | None, float | None]:
    """AP, AP50, AP75 over the categories' precision, side by side in ascending id (one COCOeval run's layout)."""
    if not per_cat:
        return None, None, None
    precision = np.stack([per_cat[c] for c in sorted(per_cat)], axis=2)
    return (mean_valid_precision(precision), mean_valid_precision(precision[np.isclose(_THRESHOLDS, 0.50)]),
            mean_valid_precision(precision[np.isclose(_THRESHOLDS, 0.75)]))


def _single_keypoint_task(g: GroundTruth, r: Results, slot: int, cat_ids: list[int]) -> tuple[dict, list[dict]]:
    """Ground truth and results of ``cat_ids`` reduced to the keypoint of ``slot`` (fresh dicts)."""
    index = {c: g.categories[c].slots.index(slot) for c in cat_ids}
    anns = []
    for a in g.coco["annotations"]:
        j = index.get(a["category_id"])
        if j is not None:
            kp = a["keypoints"][3 * j: 3 * j + 3]
            anns.append({"id": a["id"], "image_id": a["image_id"], "category_id": a["category_id"],
                         "bbox": list(a["bbox"]), "area": a["area"], "keypoints": kp,
                         "num_keypoints": int(kp[2] > 0), "iscrowd": 0})
    name = g.keypoint_names[slot]
    cats = [{"id": c, "name": g.categories[c].name, "keypoints": [name], "skeleton": []} for c in cat_ids]
    dets = []
    for e in r.entries:
        j = index.get(e["category_id"])
        if j is not None:
            dets.append({"image_id": e["image_id"], "category_id": e["category_id"],
                         "keypoints": e["keypoints"][3 * j: 3 * j + 3], "score": e["score"]})
    return {"images": g.coco["images"], "annotations": anns, "categories": cats}, dets


def _ap_scores(g: GroundTruth, r: Results, slot_sigmas: np.ndarray) -> dict[str, Any]:
    cats = g.categories
    present = set(g.cls.tolist())
    per_cat: dict[int, np.ndarray]
    with contextlib.redirect_stdout(io.StringIO()):  # pycocotools reports progress on stdout
        coco_gt = _coco(g.coco)
        if not r.entries:
            # loadRes cannot take an empty list; with nothing detected every present class has AP 0.
            coco_dt, box_ap = None, None
            per_cat = _no_detections(list(cats), present)
        else:
            coco_dt = coco_gt.loadRes(r.entries)
            per_cat = _precision_by_sigma_group(coco_gt, coco_dt, g, slot_sigmas)
            box_ap = _summary(_run(coco_gt, coco_dt, "bbox"))[0] if r.has_bbox else None

        per_keypoint: dict[str, float | None] = {}
        for slot, name in enumerate(g.keypoint_names):
            with_name = [c.id for c in cats.values() if slot in c.slots]
            # A category with one keypoint: its AP is already that keypoint's AP.
            precision = {c: per_cat[c] for c in with_name if len(cats[c].slots) == 1}
            several = [c for c in with_name if len(cats[c].slots) > 1]
            if several:
                gt_n, dets_n = _single_keypoint_task(g, r, slot, several)
                labelled = {a["category_id"] for a in gt_n["annotations"] if a["num_keypoints"]}
                if dets_n:
                    coco_gt_n = _coco(gt_n)
                    precision.update(_run(coco_gt_n, coco_gt_n.loadRes(dets_n), "keypoints", several,
                                          [slot_sigmas[slot]]))
                else:
                    precision.update(_no_detections(several, labelled))
            per_keypoint[name] = _summary(precision)[0]

    ap, ap50, ap75 = _summary(per_cat)
    per_class = {c: mean_valid_precision(per_cat[c]) for c in sorted(per_cat)}
    return {"kpt_AP": ap, "kpt_AP50": ap50, "kpt_AP75": ap75, "box_AP": box_ap, "per_class": per_class,
            "kpt_AP_per_keypoint": per_keypoint}


def _distance_stats(dist: np.ndarray) -> tuple[float | None, float | None, float | None]:
    if not dist.size:
        return None, None, None
    return float(dist.mean()), float(np.median(dist)), float(np.percentile(dist, 95))


def match_checked(g: GroundTruth, r: Results, slot_sigmas: np.ndarray) -> PointMatches:
    """:func:`~ocrloc.evaluation.matching.match_points` of checked ground truth and results: the matching
    behind the point scores, which the report and the drawings label with."""
    return match_points(g.img, g.cls, g.xy, g.labelled, g.area, r.img, r.cls, r.xy, r.has, r.score, slot_sigmas)


def found_at_threshold(g: GroundTruth, r: Results, threshold: float) -> np.ndarray:
    """:func:`~ocrloc.evaluation.matching.match_within_px` of checked ground truth and results: per ground-truth
    object, the detection scoring >= ``threshold`` that found it (same class, every labelled keypoint within
    :data:`~ocrloc.evaluation.matching.POINT_MATCH_PX`), -1 where none did."""
    return match_within_px(g.img, g.cls, g.xy, g.labelled, r.img, r.cls, r.xy, r.has, r.score, min_score=threshold,
                           max_px=POINT_MATCH_PX)


def recall_precision(g: GroundTruth, r: Results, threshold: float) -> dict[str, Any]:
    """``{"recall", "precision", "score_threshold"}`` at ``threshold`` (see the module docstring)."""
    found = found_at_threshold(g, r, threshold)
    n_found = int((found >= 0).sum())
    kept = int((r.score >= threshold).sum()) if len(r.score) else 0
    return {"recall": n_found / len(g.img) if len(g.img) else None,
            "precision": n_found / kept if kept else None,
            "score_threshold": threshold}


def _point_scores(g: GroundTruth, r: Results, slot_sigmas: np.ndarray) -> dict[str, Any]:
    m = match_checked(g, r, slot_sigmas)
    n_gt = len(g.img)
    found = m.det >= 0
    matched = m.dist[found]  # [F, N], NaN where the object does not label the keypoint
    everything = matched[~np.isnan(matched)]  # object-major: with one keypoint, the objects in file order
    mean, median, p95 = _distance_stats(everything)
    per_keypoint = {}
    for slot, name in enumerate(g.keypoint_names):
        column = matched[:, slot]
        k_mean, k_median, k_p95 = _distance_stats(column[~np.isnan(column)])
        per_keypoint[name] = {"mean": k_mean, "median": k_median, "p95": k_p95}
    right = (m.agnostic_det >= 0) & (r.cls[np.maximum(m.agnostic_det, 0)] == g.cls) if len(r.cls) else found
    # The class-agnostic matches that name another class: (true id, predicted id) -> count.
    wrong = (m.agnostic_det >= 0) & ~right
    pairs = Counter(zip(g.cls[wrong].tolist(), r.cls[m.agnostic_det[wrong]].tolist())) if len(r.cls) else Counter()
    return {
        "confusions": [[int(t), int(p), int(n)] for (t, p), n in pairs.most_common(10)],
        "mean_px": mean, "median_px": median, "p95_px": p95,
        "miss_rate": float(1.0 - found.mean()) if n_gt else None,
        "cls_acc": float(right.mean()) if n_gt else None,
        "point_px_per_keypoint": per_keypoint,
    }


def evaluate(gt: PathOrObj, results: PathOrObj, sigma: Sigma = DEFAULT_SIGMA,
             threshold: float = DEFAULT_SCORE_THRESHOLD) -> dict[str, Any]:
    """Score detections against ground truth (``docs/task.md``, "Scores").

    Args:
        gt: COCO keypoints ground truth, a path or the loaded dict. Not modified.
        results: COCO results list, a path or the loaded list. Not modified.
        sigma: OKS sigma (pycocotools ``kpt_oks_sigmas``), > 0: one number for every keypoint, or a sequence of
            one per keypoint name when all categories share one list of names (in that list's order). A
            one-element sequence is one number.
        threshold: the score threshold of ``recall`` and ``precision``, in [0, 1]: the detections scoring at
            least it are the ones a user keeps (default :data:`DEFAULT_SCORE_THRESHOLD`).

    Returns:
        The scores, keys :data:`SCORE_KEYS` then :data:`DETAIL_KEYS` (see the module docstring); ``per_class``
        and ``class_names`` are keyed by the category ids as text, ascending. JSON-serialisable.

    Raises:
        EvaluationInputError: a missing or invalid file, a malformed entry, or a bad sigma; the message is one
        line naming the file and entry; a bad sigma or threshold.
    """
    sigmas = check_sigma(sigma)
    threshold = check_threshold(threshold)
    with _gc_paused():
        g = check_ground_truth(*load_json(gt, "<ground truth>"))
        slot_sigmas = slot_sigmas_of(sigmas, g)
        r = check_results(*load_json(results, "<results>"), gt=g)
        scores: dict[str, Any] = {**_ap_scores(g, r, slot_sigmas), **_point_scores(g, r, slot_sigmas),
                                  **recall_precision(g, r, threshold)}
    scores["per_class"] = {str(c): ap for c, ap in scores["per_class"].items()}
    scores["class_names"] = {str(c.id): c.name for c in g.categories.values()}
    scores.update(num_images=len(g.image_ids), num_gt=len(g.img), num_dets=len(r.entries))
    return {k: scores[k] for k in SCORE_KEYS + DETAIL_KEYS}


def _fmt(v: float | None, digits: int = 3) -> str:
    return "-" if v is None else f"{v:.{digits}f}"


def format_table(scores: dict[str, Any]) -> str:
    """Render :func:`evaluate`'s dict as a plain-text table (``-`` for an undefined score).

    The per-class block names the classes by id, or by name when some name is not just its id (then the
    first line counts "objects" rather than "digits"); it wraps to several rows beyond 70 characters. A
    per-keypoint block (AP, point error) follows when the task has more than one keypoint name.

    Args:
        scores: the dict returned by :func:`evaluate` (the detail keys, and recall and precision, may be absent,
            as in older score files).
    """
    s = scores
    names = s.get("class_names") or {}
    by_name = any(names.get(c, c) != c for c in s["per_class"])
    labels = [str(names.get(c, c)) if by_name else c for c in s["per_class"]]
    lines = [
        f"images {s['num_images']}   ground-truth {'objects' if by_name else 'digits'} {s['num_gt']}"
        f"   detections {s['num_dets']}",
        "",
        f"{'keypoint AP':<16}{_fmt(s['kpt_AP']):>8}   AP50 {_fmt(s['kpt_AP50'])}   AP75 {_fmt(s['kpt_AP75'])}",
        f"{'box AP':<16}{_fmt(s['box_AP']):>8}",
        f"{'point error px':<16}{_fmt(s['mean_px'], 2):>8}   median {_fmt(s['median_px'], 2)}"
        f"   p95 {_fmt(s['p95_px'], 2)}",
        f"{'miss rate':<16}{_fmt(s['miss_rate']):>8}",
        f"{'class accuracy':<16}{_fmt(s['cls_acc']):>8}",
    ]
    if "recall" in s:  # older score files have no recall and precision at a threshold
        lines.append(f"{'recall':<16}{_fmt(s['recall']):>8}   precision {_fmt(s['precision'])}"
                     f"   at score >= {s['score_threshold']:g}, within {POINT_MATCH_PX:g} px")
    lines += [
        "",
        "keypoint AP per class",
    ]
    width = max([7] + [len(label) + 2 for label in labels])
    per_row = max(1, 70 // width)
    aps = list(s["per_class"].values())
    for start in range(0, max(len(labels), 1), per_row):
        lines += ["class " + "".join(f"{label:>{width}}" for label in labels[start:start + per_row]),
                  "AP    " + "".join(f"{_fmt(ap):>{width}}" for ap in aps[start:start + per_row])]
    kpt_ap = s.get("kpt_AP_per_keypoint") or {}
    if len(kpt_ap) > 1:
        px = s.get("point_px_per_keypoint") or {}
        col = max([10] + [len(n) + 2 for n in kpt_ap])
        lines += ["", "per keypoint", f"{'keypoint':<{col}}{'AP':>8}{'mean px':>10}{'median':>9}{'p95':>9}"]
        for n, ap in kpt_ap.items():
            e = px.get(n) or {}
            lines.append(f"{n:<{col}}{_fmt(ap):>8}{_fmt(e.get('mean'), 2):>10}{_fmt(e.get('median'), 2):>9}"
                         f"{_fmt(e.get('p95'), 2):>9}")
    confusions = s.get("confusions") or []
    if by_name and confusions:
        lines += ["", "most confused (true -> predicted: matched objects)"]
        lines += [f"  {names.get(str(t), t)} -> {names.get(str(p), p)}: {n}" for t, p, n in confusions]
    return "\n".join(lines)


def ground_truth_as_results(gt: PathOrObj) -> list[dict[str, Any]]:
    """The ground truth written as a results list with score 1 (a perfect detector).

    Scoring it checks a ground-truth file and the evaluator end to end: every score must be perfect.

    Raises:
        EvaluationInputError: the ground truth fails the checks :func:`evaluate` makes.
    """
    g = check_ground_truth(*load_json(gt, "<ground truth>"))
    out = []
    for a in g.coco["annotations"]:
        kp = a["keypoints"]
        out.append({"image_id": a["image_id"], "category_id": a["category_id"], "bbox": list(a["bbox"]),
                    "keypoints": [v for j in range(0, len(kp), 3) for v in (kp[j], kp[j + 1], 1.0)],
                    "score": 1.0})
    return out
