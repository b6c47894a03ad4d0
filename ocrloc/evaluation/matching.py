"""Greedy one-to-one matching of detections to ground-truth objects, for point error and class accuracy.

pycocotools matches too, but only inside its AP loop and once per OKS threshold; the point error and
class accuracy (``docs/task.md``, "Scores") need one matching at OKS >= 0.1, so it is done here, per image,
with numpy.

OKS is pycocotools' ``COCOeval.computeOks`` over the ground truth's labelled keypoints (``v > 0``):
``mean_k exp(-d_k^2 / (2 * (area + eps) * (2 * sigma_k)^2))`` with ``area`` the ground truth's COCO area,
``sigma_k`` the sigma of keypoint ``k`` and ``eps = np.spacing(1)``; with one keypoint it is
``exp(-d^2 / (2 * (area + eps) * (2 * sigma)^2))``.

Keypoints are compared by *slot* (keypoint name, see :mod:`ocrloc.evaluation.inputs`): a detection and a ground
truth of the same category share all of the category's slots. A detection of another category is compared on
the slots both categories have (same name, same meaning); with none in common it cannot match that ground
truth at all.

Two matchings, both greedy over detections in descending score (stable for ties, as pycocotools'
mergesort), each detection taking at most one ground truth and each ground truth at most one detection:

- *same class*: a detection may take an unmatched ground truth of its own class with OKS >= 0.1, and takes
  the one with the highest OKS. Gives the point errors and the miss rate.
- *class-agnostic*: a detection may take any unmatched ground truth with OKS >= 0.1 (over the shared labelled
  keypoints), and takes the *nearest* one: the smallest mean squared pixel distance over those keypoints
  (with one keypoint: the nearest point, as ``docs/task.md`` says; OKS would prefer larger digits). Gives class
  accuracy.

Unlike the AP (``maxDets = 20``), no detection is cut: a point that is found is found.

A third, stricter matching (:func:`match_within_px`) gives recall and precision at a score threshold, the
numbers a user who thresholds scores sees: a detection *finds* a ground-truth object when it has the same class
and every keypoint the object labels lies within :data:`POINT_MATCH_PX` pixels of the object's. Greedy as the
others (descending score within an image, stable), each detection taking the unmatched object it finds with the
smallest mean squared distance over those keypoints. Detections below the threshold take part in nothing; as
higher scores go first, the match of a detection at or above any threshold is the same as at threshold 0.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Iterator, Sequence

import numpy as np

__all__ = ["OKS_MATCH_THRESHOLD", "POINT_MATCH_PX", "PointMatches", "oks", "keypoint_variances", "greedy_match",
           "match_points", "match_within_px"]

# docs/task.md, "Scores": a detection farther than this from a digit's point does not "find" it.
OKS_MATCH_THRESHOLD = 0.1

# docs/task.md, "Scores" (recall and precision at a threshold): a detection of the right class finds an object
# when every keypoint the object labels is at most this many pixels from the detection's.
POINT_MATCH_PX = 3.0


def oks(d2: np.ndarray, area: np.ndarray, sigma: float) -> np.ndarray:
    """Object keypoint similarity of one point, as ``COCOeval.computeOks``.

    Args:
        d2 (float64[..., G]): squared pixel distances to each ground truth.
        area (float64[G]): the ground truths' COCO areas.
        sigma: the keypoint's OKS sigma.
    """
    return np.exp(-d2 / ((2.0 * sigma) ** 2) / (area + np.spacing(1)) / 2.0)


def keypoint_variances(sigmas: Sequence[float]) -> np.ndarray:
    """``(2 * sigma_k) ** 2`` per keypoint slot, computed as :func:`oks` does (the same bits for one point)."""
    return np.array([(2.0 * float(s)) ** 2 for s in sigmas], np.float64)


def greedy_match(allowed: np.ndarray, preference: np.ndarray) -> np.ndarray:
    """Match detections, taken in row order, to columns they are allowed, preferring the highest value.

    Args:
        allowed (bool[D, G]): detection i may take ground truth j; rows in descending score.
        preference (float64[D, G]): among allowed unmatched columns a row takes the arg-max (first on ties).

    Returns:
        int64[G]: the matched row of each column, -1 where none.
    """
    n_gt = allowed.shape[1]
    match = np.full(n_gt, -1, np.int64)
    free = np.ones(n_gt, bool)
    left = n_gt
    # Only rows with some allowed column can match; usually a handful per image, so the Python loop is short.
    for i in np.flatnonzero(allowed.any(axis=1)):
        cand = allowed[i] & free
        if not cand.any():
            continue
        j = int(np.argmax(np.where(cand, preference[i], -np.inf)))
        match[j] = i
        free[j] = False
        left -= 1
        if left == 0:
            break
    return match


@dataclass
class PointMatches:
    """Per ground truth, the outcome of both matchings.

    Attributes:
        det (int64[G]): index of the same-class matched detection, -1 for a miss.
        dist (float64[G, N]): pixel distance of each keypoint slot to that detection's; NaN for a miss and for
            slots the ground truth does not label.
        agnostic_det (int64[G]): index of the class-agnostic matched detection, -1 where none.
    """

    det: np.ndarray
    dist: np.ndarray
    agnostic_det: np.ndarray


def _group_bounds(sorted_keys: np.ndarray, keys: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    return np.searchsorted(sorted_keys, keys, "left"), np.searchsorted(sorted_keys, keys, "right")


def _image_groups(gt_img: np.ndarray, det_img: np.ndarray, det_score: np.ndarray, dets: np.ndarray
                  ) -> Iterator[tuple[np.ndarray, np.ndarray]]:
    """Per image that has ground truth and some of the detections ``dets`` (indices): that image's
    ground-truth indices and its detections' indices, by descending score (stable, like pycocotools'
    mergesort). Both sides are sorted by image once, so each image is a contiguous slice."""
    g_order = np.argsort(gt_img, kind="stable")
    d_order = dets[np.lexsort((-det_score[dets], det_img[dets]))]
    images = np.unique(gt_img[g_order])
    g_lo, g_hi = _group_bounds(gt_img[g_order], images)
    d_lo, d_hi = _group_bounds(det_img[d_order], images)
    for k in np.flatnonzero(d_hi > d_lo):
        yield g_order[g_lo[k]:g_hi[k]], d_order[d_lo[k]:d_hi[k]]


def match_points(
    gt_img: np.ndarray, gt_cls: np.ndarray, gt_xy: np.ndarray, gt_labelled: np.ndarray, gt_area: np.ndarray,
    det_img: np.ndarray, det_cls: np.ndarray, det_xy: np.ndarray, det_has: np.ndarray, det_score: np.ndarray,
    sigmas: Sequence[float],
) -> PointMatches:
    """Run both greedy matchings on every image.

    Args:
        gt_img (int64[G]), gt_cls (int64[G]), gt_area (float64[G]): ground truths.
        gt_xy (float64[G, N, 2]), gt_labelled (bool[G, N]): their keypoints by slot, and which are labelled.
        det_img (int64[D]), det_cls (int64[D]), det_score (float64[D]): detections.
        det_xy (float64[D, N, 2]), det_has (bool[D, N]): their keypoints by slot, and which slots they have.
        sigmas: OKS sigma of each slot (N values).

    Returns:
        PointMatches indexed like the ground-truth arrays; detection indices index the detection arrays.
    """
    n_gt, n_slots = len(gt_img), gt_xy.shape[1]
    det = np.full(n_gt, -1, np.int64)
    agnostic = np.full(n_gt, -1, np.int64)
    dist = np.full((n_gt, n_slots), np.nan)
    if n_gt == 0 or len(det_img) == 0:
        return PointMatches(det, dist, agnostic)
    variances = keypoint_variances(sigmas)

    for gt_idx, det_idx in _image_groups(gt_img, det_img, det_score, np.arange(len(det_img))):
        diff = det_xy[det_idx, None] - gt_xy[None, gt_idx]  # [D_i, G_i, N, 2]
        d2 = (diff * diff).sum(-1)  # [D_i, G_i, N]
        g_lab = gt_labelled[gt_idx]
        shared = det_has[det_idx, None, :] & g_lab[None, :, :]  # keypoints compared: labelled in the GT, in the detection
        count = shared.sum(-1)
        per = np.where(shared, np.exp(-d2 / variances / (gt_area[gt_idx][None, :, None] + np.spacing(1)) / 2.0), 0.0)
        sim = per.sum(-1) / np.maximum(count, 1)  # [D_i, G_i]; one keypoint: exactly oks()
        near = (count > 0) & (sim >= OKS_MATCH_THRESHOLD)
        if not near.any():
            continue
        same = near & (det_cls[det_idx, None] == gt_cls[None, gt_idx])
        if same.any():
            m = greedy_match(same, sim)
            hit = m >= 0
            cols = np.flatnonzero(hit)
            det[gt_idx[hit]] = det_idx[m[hit]]
            dist[gt_idx[hit]] = np.where(g_lab[cols], np.sqrt(d2[m[hit], cols]), np.nan)
        mean_d2 = np.where(shared, d2, 0.0).sum(-1) / np.maximum(count, 1)  # one keypoint: d2 itself
        a = greedy_match(near, -mean_d2)
        hit = a >= 0
        agnostic[gt_idx[hit]] = det_idx[a[hit]]
    return PointMatches(det, dist, agnostic)


def match_within_px(
    gt_img: np.ndarray, gt_cls: np.ndarray, gt_xy: np.ndarray, gt_labelled: np.ndarray,
    det_img: np.ndarray, det_cls: np.ndarray, det_xy: np.ndarray, det_has: np.ndarray, det_score: np.ndarray,
    min_score: float = 0.0, max_px: float = POINT_MATCH_PX,
) -> np.ndarray:
    """Greedy same-class matching where every labelled keypoint must be within ``max_px`` pixels.

    Detections scoring below ``min_score`` match nothing. A ground truth that labels a keypoint the
    detection does not have is not found by it (with the same class, the detection has all of them).

    Args: as :func:`match_points` (no areas, no sigmas: distances alone decide).

    Returns:
        int64[G]: the index of the detection that found each ground truth, -1 where none did.
    """
    n_gt = len(gt_img)
    found = np.full(n_gt, -1, np.int64)
    keep = np.flatnonzero(det_score >= min_score)
    if n_gt == 0 or keep.size == 0:
        return found
    for gt_idx, det_idx in _image_groups(gt_img, det_img, det_score, keep):
        diff = det_xy[det_idx, None] - gt_xy[None, gt_idx]  # [D_i, G_i, N, 2]
        d2 = (diff * diff).sum(-1)  # [D_i, G_i, N]
        labelled = gt_labelled[gt_idx][None, :, :]
        close = np.sqrt(d2) <= max_px
        # Every keypoint the object labels: the detection has it, and it is close; at least one is labelled.
        every = np.all(~labelled | (det_has[det_idx, None, :] & close), axis=-1) & labelled.any(-1)
        allowed = every & (det_cls[det_idx, None] == gt_cls[None, gt_idx])
        if not allowed.any():
            continue
        count = np.maximum(labelled.sum(-1), 1)
        mean_d2 = np.where(labelled, d2, 0.0).sum(-1) / count
        m = greedy_match(allowed, -mean_d2)
        hit = m >= 0
        found[gt_idx[hit]] = det_idx[m[hit]]
    return found
