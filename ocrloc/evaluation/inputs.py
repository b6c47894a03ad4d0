"""Load and check ground truth and results files before pycocotools sees them.

pycocotools meets bad input with a bare ``KeyError``, an ``assert`` or a numpy
broadcasting error deep in ``COCOeval``; a user with 200,000 detections cannot
tell which one was wrong. Every check here names the file and the entry
(0-based list index, as ``jq '.[3]'`` counts) so the message alone is enough to
fix the input. Checking also builds *new* minimal dicts for pycocotools, which
adds keys to (mutates) whatever it is given; the caller's objects stay intact.

The ground truth defines the task: its categories (any integer ids, in any order, with gaps) and, for each
category ``c``, its list of ``K_c >= 1`` keypoint names (``categories[i].keypoints``). Categories may share
one list or have different ones. Annotations carry ``3 * K_c`` numbers ``[x1, y1, v1, x2, y2, v2, ...]`` for
their category, a keypoint with ``v > 0`` being labelled; results carry ``3 * K_c`` numbers for their
``category_id`` too. The MNIST digits are the case of categories 0 to 9 that all name one keypoint
``"point"``.

Keypoints are kept in flat arrays over *keypoint slots*: one slot per distinct keypoint name in the ground
truth (first appearance order). A category uses the slots of its names; the other slots of its annotations and
detections are unused (``False`` in the ``labelled`` / ``has`` masks, coordinates 0).
"""

from __future__ import annotations

import json
import math
import numbers
import os
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

__all__ = [
    "EvaluationInputError",
    "Category",
    "GroundTruth",
    "Results",
    "load_json",
    "check_ground_truth",
    "check_results",
    "image_file",
]

PathOrObj = str | os.PathLike | dict | list

# Pixels a ground-truth box may reach past its image's edge (rounding, inclusive-pixel conventions).
BOX_TOLERANCE = 1.0


class EvaluationInputError(ValueError):
    """Ground truth or results the evaluator refuses; the message is one line naming the file and the entry."""


@dataclass(frozen=True)
class Category:
    """One category of the ground truth.

    Attributes:
        id: its ``id``.
        name: its ``name`` (the id as text when it has none).
        keypoints: its keypoint names, in annotation order (``K_c = len(keypoints) >= 1``).
        slots: the keypoint slot of each of its names (index into :attr:`GroundTruth.keypoint_names`).
    """

    id: int
    name: str
    keypoints: tuple[str, ...]
    slots: tuple[int, ...]


@dataclass
class GroundTruth:
    """Checked ground truth: a minimal COCO dict for pycocotools plus flat arrays for point matching.

    Attributes:
        name: how messages refer to it (the path as given, or ``<ground truth>``).
        coco: fresh COCO keypoints dict (``images``, ``annotations``, ``categories``) safe to hand to pycocotools.
        categories: the categories by id, in ascending id order.
        keypoint_names: the distinct keypoint names of all categories, first appearance order (the N slots).
        image_ids (int64[I]): image ids in file order.
        img (int64[G]), cls (int64[G]): image and category id of each annotation.
        xy (float64[G, N, 2]): its keypoints by slot (0 in the slots its category does not use).
        labelled (bool[G, N]): the keypoint is one of its category's and labelled (``v > 0``).
        area (float64[G]): its COCO area (the OKS scale).
    """

    name: str
    coco: dict
    categories: dict[int, Category]
    keypoint_names: tuple[str, ...]
    image_ids: np.ndarray
    img: np.ndarray
    cls: np.ndarray
    xy: np.ndarray
    labelled: np.ndarray
    area: np.ndarray

    @property
    def shared_keypoints(self) -> tuple[str, ...] | None:
        """The keypoint list every category has, or None when the categories' lists differ."""
        lists = {c.keypoints for c in self.categories.values()}
        return next(iter(lists)) if len(lists) == 1 else None


@dataclass
class Results:
    """Checked results: fresh minimal result dicts for pycocotools plus flat arrays.

    Attributes:
        name: how messages refer to it.
        entries: new dicts ``{image_id, category_id, keypoints, score[, bbox]}``, one per input entry, same order.
        has_bbox: every entry has a ``bbox`` (mixed input is refused, so this is all-or-none).
        img (int64[D]), cls (int64[D]), score (float64[D]).
        xy (float64[D, N, 2]): keypoints by slot of the ground truth (0 in slots its category does not use).
        has (bool[D, N]): the slot is one of its category's.
    """

    name: str
    entries: list[dict]
    has_bbox: bool
    img: np.ndarray
    cls: np.ndarray
    xy: np.ndarray
    has: np.ndarray
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
    except RecursionError:  # the decoder recurses per level: a crafted file can nest deeper than Python's stack
        raise EvaluationInputError(f"{name}: JSON nested too deeply to read (more than ~{sys.getrecursionlimit()} "
                                   f"levels); a COCO file is a few levels deep") from None


def image_file(folder: str | os.PathLike, file_name: str, where: str) -> Path:
    """The path of a ground truth's image: ``file_name`` under ``folder`` (the annotation file's).

    A ``file_name`` is a path relative to the dataset folder; one that is absolute, or climbs out
    with ``..``, would have training read, and ``ocrloc report`` draw, a file from wherever it
    points, so it is refused by name (checked on the name as written: a folder inside the dataset
    that is a link to elsewhere, such as ``images -> /data/scans``, is the dataset's own choice).

    Raises:
        EvaluationInputError: ``"{where}: file_name '...' is an absolute path; ..."`` or ``"... climbs
            out of the dataset folder {folder} with '..'; ..."``.
    """
    rule = "a file_name is read relative to the annotation file's folder and must stay inside it"
    if os.path.isabs(file_name):
        raise EvaluationInputError(f"{where}: file_name {file_name!r} is an absolute path; {rule}")
    if os.path.normpath(file_name).split(os.sep)[0] == os.pardir:
        raise EvaluationInputError(f"{where}: file_name {file_name!r} climbs out of the dataset folder {folder} "
                                   f"with '..'; {rule}")
    return Path(folder) / file_name


def _short(v: Any, limit: int = 60) -> str:
    # An offending value can be a whole nested object; the message must stay one readable line.
    try:
        text = repr(v)
    except RecursionError:  # nested deeper than repr's stack (JSON loads a little deeper than it prints)
        return f"a {type(v).__name__} nested too deeply to show"
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


def _points(k: int) -> str:
    return "1 point" if k == 1 else f"{k} points"


def _check_categories(cats: list, name: str) -> tuple[dict[int, Category], tuple[str, ...], list[dict]]:
    by_id: dict[int, Category] = {}
    slot_of: dict[str, int] = {}
    coco_cats = []
    for i, c in enumerate(cats):
        where = f"{name}: categories[{i}]"
        if not isinstance(c, dict) or not _is_int(c.get("id")):
            raise EvaluationInputError(f"{where}: needs an integer 'id'")
        cid = int(c["id"])
        if cid in by_id:
            raise EvaluationInputError(f"{where}: id {cid} appears twice")
        kp_names = c.get("keypoints")
        if not isinstance(kp_names, list) or not kp_names:
            raise EvaluationInputError(
                f"{where}: category {cid} ({c.get('name')!r}) names no keypoints ('keypoints' must be a non-empty "
                f"list of keypoint names, got {_short(kp_names)})")
        for n in kp_names:
            if not isinstance(n, str) or not n:
                raise EvaluationInputError(f"{where}: keypoint name {_short(n)} is not a non-empty string")
        if len(set(kp_names)) != len(kp_names):
            twice = next(n for n in kp_names if kp_names.count(n) > 1)
            raise EvaluationInputError(f"{where}: keypoint name {twice!r} appears twice")
        label = c.get("name", cid)
        label = str(cid) if label is None else str(label)
        slots = tuple(slot_of.setdefault(n, len(slot_of)) for n in kp_names)
        by_id[cid] = Category(cid, label, tuple(kp_names), slots)
        coco_cats.append({"id": cid, "name": label, "keypoints": list(kp_names), "skeleton": []})
    return dict(sorted(by_id.items())), tuple(slot_of), coco_cats


def check_ground_truth(gt: Any, name: str) -> GroundTruth:
    """Check a COCO keypoints ground truth dict and copy what the evaluator needs.

    Refused: a non-object file; missing ``images``/``annotations``/``categories``; a category without an
    integer id, with an id already used, or without a non-empty ``keypoints`` list of distinct names; a
    repeated image id, or an image without ``width``/``height`` numbers > 0; annotation ids <= 0 or repeated
    (``COCOeval`` stores matches as the matched annotation id with 0 meaning "unmatched", so an annotation
    with id 0 could never be matched); annotations on unknown images or categories; a bbox that is not 4
    finite numbers, has w or h <= 0, or reaches more than :data:`BOX_TOLERANCE` (1 px) past its image (results are
    not held to this: a detector's box may spill over); a non-positive area (the OKS scale); keypoints that are not
    ``3 * K_c`` finite numbers for the category, a negative ``v``, no labelled keypoint at all (COCOeval would silently
    ignore the annotation), or a labelled keypoint outside its image (``0 <= x <= width``,
    ``0 <= y <= height``); ``iscrowd`` other than 0, or ``num_keypoints`` other than the number of labelled
    keypoints.

    Args:
        gt: the parsed JSON.
        name: file name for messages.
    """
    if not isinstance(gt, dict):
        raise EvaluationInputError(f"{name}: not a JSON object (a COCO ground truth file is one)")
    images = _list_field(gt, "images", name)
    anns = _list_field(gt, "annotations", name)
    cats = _list_field(gt, "categories", name)
    categories, keypoint_names, coco_cats = _check_categories(cats, name)

    image_ids: list[int] = []
    size: dict[int, tuple[float, float]] = {}
    label: dict[int, str] = {}  # how messages name an image: its id and, when it has one, its file
    coco_images = []
    for i, im in enumerate(images):
        if not isinstance(im, dict) or not _is_int(im.get("id")):
            raise EvaluationInputError(f"{name}: images[{i}]: needs an integer 'id'")
        iid = int(im["id"])
        if iid in size:
            raise EvaluationInputError(f"{name}: images[{i}]: id {iid} appears twice")
        w, h = im.get("width"), im.get("height")
        if not (_is_num(w) and _is_num(h) and w > 0 and h > 0):
            raise EvaluationInputError(
                f"{name}: images[{i}]: needs 'width' and 'height' > 0 (keypoints must lie in the image), "
                f"got {_short(w)} x {_short(h)}")
        size[iid] = (w, h)
        file_name = im.get("file_name")
        label[iid] = f"image {iid} ({file_name})" if isinstance(file_name, str) and file_name else f"image {iid}"
        image_ids.append(iid)
        coco_images.append({"id": iid, "width": w, "height": h})

    n, n_slots = len(anns), len(keypoint_names)
    img = np.empty(n, np.int64)
    cls = np.empty(n, np.int64)
    xy = np.zeros((n, n_slots, 2), np.float64)
    labelled = np.zeros((n, n_slots), bool)
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
        if not _is_int(iid) or iid not in size:
            raise EvaluationInputError(f"{where}: image_id {_short(iid)} is not in 'images'")
        if not _is_int(cid) or cid not in categories:
            raise EvaluationInputError(f"{where}: category_id {_short(cid)} is not in 'categories'")
        if not _numbers(bbox, 4):
            raise EvaluationInputError(f"{where}: bbox {_short(bbox)} is not [x, y, w, h], 4 finite numbers")
        if bbox[2] <= 0 or bbox[3] <= 0:
            raise EvaluationInputError(f"{where}: bbox {_short(bbox)} has width or height <= 0 (on {label[int(iid)]})")
        w, h = size[int(iid)]
        bx, by, bw, bh = bbox
        # A box past the image trains on regions no pixel shows (a 30x loss, silently); 1 px of slack
        # lets rounded or inclusive-pixel (x2 = x + w - 1 vs x + w) conventions through.
        if bx < -BOX_TOLERANCE or by < -BOX_TOLERANCE or bx + bw > w + BOX_TOLERANCE or by + bh > h + BOX_TOLERANCE:
            tol = f"{BOX_TOLERANCE:g}"
            raise EvaluationInputError(
                f"{where}: bbox {_short(bbox)} is outside {label[int(iid)]}, {_short(w)} x {_short(h)} px "
                f"(x1, y1 >= -{tol}, x + w <= width + {tol}, y + h <= height + {tol})")
        if not _is_num(ar) or ar <= 0:
            raise EvaluationInputError(f"{where}: area {_short(ar)} must be a number > 0 (it scales the OKS)")
        cat = categories[int(cid)]
        k = len(cat.keypoints)
        if not _numbers(kp, 3 * k):
            raise EvaluationInputError(
                f"{where}: keypoints must be {3 * k} finite numbers [x, y, v] per point for category {cid} "
                f"({_points(k)}: {', '.join(cat.keypoints)}), got {_short(kp)}")
        vis = kp[2::3]
        if min(vis) < 0:
            raise EvaluationInputError(f"{where}: keypoints {_short(kp)} has a negative visibility v")
        n_labelled = sum(1 for v in vis if v > 0)
        if n_labelled == 0:
            what = "is not one labelled point [x, y, v] with v > 0" if k == 1 else \
                f"labels none of its {k} points [x, y, v] (v > 0 on none)"
            raise EvaluationInputError(f"{where}: keypoints {_short(kp)} {what}; COCOeval would ignore it")
        for j in range(k):
            x, y, v = kp[3 * j], kp[3 * j + 1], kp[3 * j + 2]
            if v > 0 and not (0 <= x <= w and 0 <= y <= h):
                raise EvaluationInputError(
                    f"{where}: keypoint '{cat.keypoints[j]}' ({x}, {y}) is outside image {iid} "
                    f"(0 <= x <= {w}, 0 <= y <= {h})")
        if a.get("iscrowd", 0) != 0:
            raise EvaluationInputError(f"{where}: iscrowd must be 0 (crowd regions are not part of the task)")
        if a.get("num_keypoints", n_labelled) != n_labelled:
            raise EvaluationInputError(
                f"{where}: num_keypoints must be {n_labelled} (its keypoints with v > 0), "
                f"got {_short(a.get('num_keypoints'))}")
        aid, iid, cid = int(aid), int(iid), int(cid)
        ann_ids.add(aid)
        img[i], cls[i], area[i] = iid, cid, ar
        for j, s in enumerate(cat.slots):
            xy[i, s] = kp[3 * j], kp[3 * j + 1]
            labelled[i, s] = kp[3 * j + 2] > 0
        coco_anns.append({
            "id": aid, "image_id": iid, "category_id": cid, "bbox": [float(v) for v in bbox], "area": float(ar),
            "keypoints": [float(v) for v in kp], "num_keypoints": n_labelled, "iscrowd": 0,
        })

    coco = {"images": coco_images, "annotations": coco_anns, "categories": coco_cats}
    return GroundTruth(name, coco, categories, keypoint_names, np.asarray(image_ids, np.int64), img, cls, xy,
                       labelled, area)


def check_results(results: Any, name: str, gt: GroundTruth) -> Results:
    """Check a COCO results list against its ground truth and copy it.

    Refused: a non-list; an entry that is not an object; a missing or non-integer ``image_id`` or one absent
    from the ground truth; a ``category_id`` the ground truth has no category for; ``keypoints`` missing or
    not ``3 * K_c`` finite numbers for that category; a missing, non-finite or negative ``score``; a ``bbox``
    that is not 4 finite numbers with w, h >= 0; and a mix of entries with and without ``bbox``
    (``loadRes`` picks its branch from the first entry alone, so a mix crashes it or silently drops the boxes).

    Args:
        results: the parsed JSON.
        name: file name for messages.
        gt: checked ground truth the image and category ids must belong to.
    """
    if not isinstance(results, list):
        raise EvaluationInputError(f"{name}: not a JSON list (a COCO results file is a list of detections)")
    known = set(gt.image_ids.tolist())
    lengths = {cid: 3 * len(c.keypoints) for cid, c in gt.categories.items()}
    has_bbox = bool(results) and isinstance(results[0], dict) and "bbox" in results[0]
    entries = []
    for i, r in enumerate(results):
        try:
            entries.append(_copy_result(r, known, lengths, has_bbox, gt))
        except _EntryError as e:
            raise EvaluationInputError(f"{name}: entry {i}: {e}") from None
    n, n_slots = len(entries), len(gt.keypoint_names)
    cls = np.fromiter((e["category_id"] for e in entries), np.int64, n)
    xy = np.zeros((n, n_slots, 2), np.float64)
    has = np.zeros((n, n_slots), bool)
    for cid in np.unique(cls).tolist():
        cat = gt.categories[cid]
        rows = np.flatnonzero(cls == cid)
        kp = np.array([entries[i]["keypoints"] for i in rows], np.float64).reshape(len(rows), len(cat.slots), 3)
        slots = np.asarray(cat.slots)
        xy[rows[:, None], slots[None, :]] = kp[:, :, :2]
        has[rows[:, None], slots[None, :]] = True
    return Results(
        name, entries, has_bbox,
        img=np.fromiter((e["image_id"] for e in entries), np.int64, n),
        cls=cls, xy=xy, has=has,
        score=np.fromiter((e["score"] for e in entries), np.float64, n),
    )


class _EntryError(Exception):
    """What is wrong with one result entry; check_results adds the file name and index."""


def _copy_result(r: Any, known: set[int], lengths: dict[int, int], has_bbox: bool, gt: GroundTruth) -> dict:
    # Runs once per detection (a million for 10,000 images at 100 each): plain checks, no per-entry f-strings
    # unless something is wrong.
    if not isinstance(r, dict):
        raise _EntryError("not an object")
    try:
        iid, cid, kp, score = r["image_id"], r["category_id"], r["keypoints"], r["score"]
    except KeyError as e:
        raise _EntryError(f"missing {e.args[0]!r}") from None
    if not _is_int(iid) or iid not in known:
        raise _EntryError(f"image_id {_short(iid)} is not in the ground truth {gt.name}")
    n = lengths.get(cid) if _is_int(cid) else None
    if n is None:
        ids = list(gt.categories)
        listed = ", ".join(map(str, ids[:12])) + (", ..." if len(ids) > 12 else "")
        raise _EntryError(f"category_id {_short(cid)} is not a category of the ground truth {gt.name} "
                          f"(ids: {listed})")
    if not _numbers(kp, n):
        cat = gt.categories[cid]
        raise _EntryError(
            f"keypoints must be {n} finite numbers [x, y, v] per point (K = {n // 3} for category {cid}: "
            f"{', '.join(cat.keypoints)}), got {_short(kp)}")
    if not _is_num(score):
        raise _EntryError(f"score {_short(score)} is not a finite number")
    if score < 0:
        raise _EntryError(f"score {_short(score)} is negative (scores must be >= 0)")
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
