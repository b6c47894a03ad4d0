"""Load and check ground truth and results files before pycocotools sees them.

pycocotools meets bad input with a bare ``KeyError``, an ``assert`` or a numpy
broadcasting error deep in ``COCOeval``; a user with 200,000 detections cannot
tell which one was wrong. Every check here names the file and the entry
(0-based list index, as ``jq '.[3]'`` counts) so the message alone is enough to
fix the input. Checking also builds *new* minimal dicts for pycocotools, which
adds keys to (mutates) whatever it is given; the caller's objects stay intact.

The checks follow SPEC section 6: one keypoint per digit (K = 1), categories
0 to 9, annotation ids from 1.
"""

from __future__ import annotations

import json
import math
import numbers
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

__all__ = [
    "EvaluationInputError",
    "GroundTruth",
    "Results",
    "NUM_KEYPOINTS",
    "NUM_CLASSES",
    "load_json",
    "check_ground_truth",
    "check_results",
]

NUM_KEYPOINTS = 1  # SPEC 6: each category names exactly one keypoint, "point"
NUM_CLASSES = 10  # digits 0..9; category ids equal the digit

PathOrObj = str | os.PathLike | dict | list


class EvaluationInputError(ValueError):
    """Ground truth or results the evaluator refuses; the message is one line naming the file and the entry."""


@dataclass
class GroundTruth:
    """Checked ground truth: a minimal COCO dict for pycocotools plus flat arrays for point matching.

    Attributes:
        name: how messages refer to it (the path as given, or ``<ground truth>``).
        coco: fresh COCO keypoints dict (``images``, ``annotations``, ``categories``) safe to hand to pycocotools.
        image_ids (int64[I]): image ids in file order.
        img (int64[G]), cls (int64[G]): image and category id of each annotation.
        xy (float64[G, 2]), area (float64[G]): its keypoint and COCO area.
    """

    name: str
    coco: dict
    image_ids: np.ndarray
    img: np.ndarray
    cls: np.ndarray
    xy: np.ndarray
    area: np.ndarray


@dataclass
class Results:
    """Checked results: fresh minimal result dicts for pycocotools plus flat arrays.

    Attributes:
        name: how messages refer to it.
        entries: new dicts ``{image_id, category_id, keypoints, score[, bbox]}``, one per input entry, same order.
        has_bbox: every entry has a ``bbox`` (mixed input is refused, so this is all-or-none).
        img (int64[D]), cls (int64[D]), xy (float64[D, 2]), score (float64[D]).
    """

    name: str
    entries: list[dict]
    has_bbox: bool
    img: np.ndarray
    cls: np.ndarray
    xy: np.ndarray
    score: np.ndarray


def load_json(source: PathOrObj, default_name: str) -> tuple[Any, str]:
    """Read a JSON file, or pass an already-loaded object through.

    Args:
        source: a path, or the parsed object itself.
        default_name: name used in messages when ``source`` is not a path.

    Returns:
        ``(obj, name)``.

    Raises:
        EvaluationInputError: the file is missing, unreadable or not valid JSON.
    """
    if not isinstance(source, (str, os.PathLike)):
        return source, default_name
    name = str(source)
    try:
        text = Path(source).read_text(encoding="utf-8")
    except FileNotFoundError:
        raise EvaluationInputError(f"{name}: no such file") from None
    except UnicodeDecodeError as e:
        raise EvaluationInputError(f"{name}: not UTF-8 text (byte {e.start})") from None
    except OSError as e:
        raise EvaluationInputError(f"{name}: cannot read: {e.strerror or e}") from None
    try:
        return json.loads(text), name
    except json.JSONDecodeError as e:
        raise EvaluationInputError(f"{name}: invalid JSON at line {e.lineno} column {e.colno}: {e.msg}") from None


def _short(v: Any, limit: int = 60) -> str:
    # An offending value can be a whole nested object; the message must stay one readable line.
    text = repr(v)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _is_int(v: Any) -> bool:
    # bool is an int subclass, but `true` is never a valid id.
    return (type(v) is int) or (isinstance(v, (int, np.integer)) and not isinstance(v, (bool, np.bool_)))


def _is_num(v: Any) -> bool:
    if type(v) is float or type(v) is int:  # fast path: what json.load produces
        return math.isfinite(v)
    return isinstance(v, numbers.Real) and not isinstance(v, (bool, np.bool_)) and math.isfinite(v)


def _numbers(v: Any, n: int) -> bool:
    """``v`` is a list or tuple of ``n`` finite numbers."""
    if not isinstance(v, (list, tuple)) or len(v) != n:
        return False
    for e in v:
        t = type(e)
        # Inline fast path: this runs for every detection's keypoints and box.
        if not ((t is float or t is int) and math.isfinite(e)) and not _is_num(e):
            return False
    return True


def _list_field(obj: dict, key: str, name: str) -> list:
    if key not in obj:
        raise EvaluationInputError(f"{name}: missing '{key}' (not a COCO ground truth file)")
    if not isinstance(obj[key], list):
        raise EvaluationInputError(f"{name}: '{key}' is not a list")
    return obj[key]


def check_ground_truth(gt: Any, name: str) -> GroundTruth:
    """Check a COCO keypoints ground truth dict (SPEC 6) and copy what the evaluator needs.

    Refused: a non-object file; missing ``images``/``annotations``/``categories``; category ids outside 0..9
    or repeated, or categories with other than one keypoint; repeated image ids; annotation ids <= 0 or
    repeated (``COCOeval`` stores matches as the matched annotation id with 0 meaning "unmatched", so an
    annotation with id 0 could never be matched); annotations on unknown images or categories; a bbox that is
    not 4 finite numbers with w, h >= 0; a non-positive area (the OKS scale); keypoints other than one
    labelled point ``[x, y, v>0]``; ``iscrowd`` other than 0 or ``num_keypoints`` other than 1 (COCOeval would
    silently ignore such digits).

    Args:
        gt: the parsed JSON.
        name: file name for messages.
    """
    if not isinstance(gt, dict):
        raise EvaluationInputError(f"{name}: not a JSON object (a COCO ground truth file is one)")
    images = _list_field(gt, "images", name)
    anns = _list_field(gt, "annotations", name)
    cats = _list_field(gt, "categories", name)

    cat_ids: set[int] = set()
    coco_cats = []
    for i, c in enumerate(cats):
        where = f"{name}: categories[{i}]"
        if not isinstance(c, dict) or not _is_int(c.get("id")):
            raise EvaluationInputError(f"{where}: needs an integer 'id'")
        cid = int(c["id"])
        if not 0 <= cid < NUM_CLASSES:
            raise EvaluationInputError(f"{where}: id {cid} is outside 0 to {NUM_CLASSES - 1}")
        if cid in cat_ids:
            raise EvaluationInputError(f"{where}: id {cid} appears twice")
        kp_names = c.get("keypoints", ["point"])
        if not isinstance(kp_names, list) or len(kp_names) != NUM_KEYPOINTS:
            raise EvaluationInputError(f"{where}: 'keypoints' must name exactly {NUM_KEYPOINTS} point")
        cat_ids.add(cid)
        coco_cats.append({"id": cid, "name": str(c.get("name", cid)), "keypoints": list(kp_names), "skeleton": []})

    image_ids: list[int] = []
    seen_images: set[int] = set()
    coco_images = []
    for i, im in enumerate(images):
        if not isinstance(im, dict) or not _is_int(im.get("id")):
            raise EvaluationInputError(f"{name}: images[{i}]: needs an integer 'id'")
        iid = int(im["id"])
        if iid in seen_images:
            raise EvaluationInputError(f"{name}: images[{i}]: id {iid} appears twice")
        seen_images.add(iid)
        image_ids.append(iid)
        coco_images.append({"id": iid, "width": im.get("width"), "height": im.get("height")})

    n = len(anns)
    img = np.empty(n, np.int64)
    cls = np.empty(n, np.int64)
    xy = np.empty((n, 2), np.float64)
    area = np.empty(n, np.float64)
    ann_ids: set[int] = set()
    coco_anns = []
    for i, a in enumerate(anns):
        where = f"{name}: annotations[{i}]"
        if not isinstance(a, dict):
            raise EvaluationInputError(f"{where}: not an object")
        for key in ("id", "image_id", "category_id", "bbox", "area", "keypoints"):
            if key not in a:
                raise EvaluationInputError(f"{where}: missing '{key}'")
        aid, iid, cid, bbox, ar, kp = a["id"], a["image_id"], a["category_id"], a["bbox"], a["area"], a["keypoints"]
        if not _is_int(aid) or aid <= 0:
            raise EvaluationInputError(
                f"{where}: id {_short(aid)} must be an integer >= 1 (COCOeval reads id 0 as unmatched)")
        if aid in ann_ids:
            raise EvaluationInputError(f"{where}: id {aid} appears twice")
        if not _is_int(iid) or iid not in seen_images:
            raise EvaluationInputError(f"{where}: image_id {_short(iid)} is not in 'images'")
        if not _is_int(cid) or cid not in cat_ids:
            raise EvaluationInputError(f"{where}: category_id {_short(cid)} is not in 'categories'")
        if not _numbers(bbox, 4) or bbox[2] < 0 or bbox[3] < 0:
            raise EvaluationInputError(f"{where}: bbox {_short(bbox)} is not [x, y, w, h] with w, h >= 0")
        if not _is_num(ar) or ar <= 0:
            raise EvaluationInputError(f"{where}: area {_short(ar)} must be a number > 0 (it scales the OKS)")
        if not _numbers(kp, 3 * NUM_KEYPOINTS) or kp[2] <= 0:
            raise EvaluationInputError(
                f"{where}: keypoints {_short(kp)} is not one labelled point [x, y, v] with v > 0")
        if a.get("iscrowd", 0) != 0:
            raise EvaluationInputError(f"{where}: iscrowd must be 0 (crowd regions are not part of the task)")
        if a.get("num_keypoints", NUM_KEYPOINTS) != NUM_KEYPOINTS:
            raise EvaluationInputError(f"{where}: num_keypoints must be {NUM_KEYPOINTS}")
        aid, iid, cid = int(aid), int(iid), int(cid)
        ann_ids.add(aid)
        img[i], cls[i], xy[i], area[i] = iid, cid, (kp[0], kp[1]), ar
        coco_anns.append({
            "id": aid, "image_id": iid, "category_id": cid, "bbox": [float(v) for v in bbox], "area": float(ar),
            "keypoints": [float(v) for v in kp], "num_keypoints": NUM_KEYPOINTS, "iscrowd": 0,
        })

    coco = {"images": coco_images, "annotations": coco_anns, "categories": coco_cats}
    return GroundTruth(name, coco, np.asarray(image_ids, np.int64), img, cls, xy, area)


def check_results(results: Any, name: str, gt: GroundTruth) -> Results:
    """Check a COCO results list against its ground truth and copy it.

    Refused: a non-list; an entry that is not an object; a missing or non-integer ``image_id`` or one absent
    from the ground truth; a ``category_id`` outside 0..9; ``keypoints`` missing or not ``3 * K`` finite
    numbers; a missing or non-finite ``score``; a ``bbox`` that is not 4 finite numbers with w, h >= 0; and a
    mix of entries with and without ``bbox`` (``loadRes`` picks its branch from the first entry alone, so a mix
    crashes it or silently drops the boxes).

    Args:
        results: the parsed JSON.
        name: file name for messages.
        gt: checked ground truth the image ids must belong to.
    """
    if not isinstance(results, list):
        raise EvaluationInputError(f"{name}: not a JSON list (a COCO results file is a list of detections)")
    known = set(gt.image_ids.tolist())
    has_bbox = bool(results) and isinstance(results[0], dict) and "bbox" in results[0]
    entries = []
    for i, r in enumerate(results):
        try:
            entries.append(_copy_result(r, known, has_bbox, gt.name))
        except _EntryError as e:
            raise EvaluationInputError(f"{name}: entry {i}: {e}") from None
    n = len(entries)
    kp = np.array([e["keypoints"] for e in entries], np.float64).reshape(n, 3 * NUM_KEYPOINTS)
    return Results(
        name, entries, has_bbox,
        img=np.fromiter((e["image_id"] for e in entries), np.int64, n),
        cls=np.fromiter((e["category_id"] for e in entries), np.int64, n),
        xy=kp[:, :2].copy(),
        score=np.fromiter((e["score"] for e in entries), np.float64, n),
    )


class _EntryError(Exception):
    """What is wrong with one result entry; check_results adds the file name and index."""


def _copy_result(r: Any, known: set[int], has_bbox: bool, gt_name: str) -> dict:
    # Runs once per detection (a million for 10,000 images at 100 each): plain checks, no per-entry f-strings
    # unless something is wrong.
    if not isinstance(r, dict):
        raise _EntryError("not an object")
    try:
        iid, cid, kp, score = r["image_id"], r["category_id"], r["keypoints"], r["score"]
    except KeyError as e:
        raise _EntryError(f"missing {e.args[0]!r}") from None
    if not _is_int(iid) or iid not in known:
        raise _EntryError(f"image_id {_short(iid)} is not in the ground truth {gt_name}")
    if not _is_int(cid) or not 0 <= cid < NUM_CLASSES:
        raise _EntryError(f"category_id {_short(cid)} is outside 0 to {NUM_CLASSES - 1}")
    if not _numbers(kp, 3 * NUM_KEYPOINTS):
        raise _EntryError(
            f"keypoints must be {3 * NUM_KEYPOINTS} finite numbers [x, y, v] per point (K = {NUM_KEYPOINTS}), "
            f"got {_short(kp)}")
    if not _is_num(score):
        raise _EntryError(f"score {_short(score)} is not a finite number")
    entry = {"image_id": int(iid), "category_id": int(cid), "keypoints": list(map(float, kp)),
             "score": float(score)}
    if ("bbox" in r) != has_bbox:
        which = "has no 'bbox' but entry 0 has one" if has_bbox else "has a 'bbox' but entry 0 has none"
        raise _EntryError(f"{which}; either every result has a bbox or none does")
    if has_bbox:
        bbox = r["bbox"]
        if not _numbers(bbox, 4) or bbox[2] < 0 or bbox[3] < 0:
            raise _EntryError(f"bbox {_short(bbox)} is not [x, y, w, h] with w, h >= 0")
        entry["bbox"] = list(map(float, bbox))
    return entry
