"""What the test modules share, in one place: the tiny configs, the export families, hand-made ground
truths and results, the one-error-line check. Test modules import these from here, never from one another;
``tests/conftest.py`` holds the fixtures (MNIST pools) and the ``slow`` marker."""

from __future__ import annotations

import random
from typing import List

import numpy as np
import torch

# ---------------------------------------------------------------------------------------------------------
# Tiny configs (``--set`` items). A test adds what it is about after them: a later item wins.

# The smallest detector: the test backbone, 8-channel FPN and heads (builds in milliseconds).
TINY_MODEL = ["model.backbone=test_resnet", "model.fpn_channels=8", "model.head_channels=8"]
# The argmax-feature detector (the quickstart's family) at that size.
TINY_ARGMAX = ["model.type=argmax", *TINY_MODEL, "model.argmax.argmax_channels=2"]
# Random weights give near-uniform heatmaps: keep every peak, so outputs have detections (and every image id).
KEEP_EVERY_PEAK = "postprocess.score_threshold=0.0"
TINY_DETECTOR = [*TINY_MODEL, KEEP_EVERY_PEAK]
# A training of seconds: one digit per 32 x 32 canvas, batches of 2, 4 val canvases, no DataLoader worker,
# a log row per step; the test sets train.steps.
TINY_TRAINING = [
    "data.preset=single", "data.rule=seed37", "data.val_count=4", "data.num_workers=0",
    *TINY_MODEL,
    "train.batch_size=2", "train.log_every=1", "train.val_every=3", "optim.warmup_steps=2",
]


def sets(*items: str) -> List[str]:
    """``--set`` arguments of the ``ocrloc`` command for ``items``."""
    return [arg for item in items for arg in ("--set", item)]


# ---------------------------------------------------------------------------------------------------------
# Every detector family at its tiny size (the export and deployment tests run each one).

# fpn_channels 32: FCOS normalises with GroupNorm(32).
BASELINE = ["model.head_stride=8", "model.fpn_channels=32"]
FAMILIES = {
    "centernet_offset": ["model.type=centernet", "model.centernet.point_mode=offset"],
    "centernet_heatmap": ["model.type=centernet", "model.centernet.point_mode=heatmap"],
    "argmax": ["model.type=argmax", "model.argmax.argmax_channels=2"],
    # the quickstart's shape: heads at stride 8 on a backbone built only up to stride 16
    "argmax_map": ["model.type=argmax", "model.argmax.argmax_channels=2", "model.argmax.map_channels=8",
                   "model.head_stride=8", "model.max_stride=16"],
    "study": ["model.type=study", "data.preset=single", "model.study.head=extremes", "model.study.inputs=[canvas]"],
    **{kind: [f"model.type={kind}", *BASELINE] for kind in ("retinanet", "ssd", "fcos", "keypointrcnn")},
}


def whole_and_resumed(tmp_path, sets: List[str], steps: int = 4):
    """Train ``sets`` for ``steps`` steps in one go, and again stopped at half and resumed; their
    ``last.pt`` checkpoints (whole, resumed) and the whole run's folder, for an exact-resume check."""
    from ocrloc.config import load_config  # here: the evaluation tests import this file without the engine
    from ocrloc.engine.checkpoint import load_checkpoint
    from ocrloc.engine.trainer import Trainer

    whole, split = tmp_path / "whole", tmp_path / "split"
    Trainer(load_config(None, sets + [f"train.steps={steps}"]), whole, progress=False).fit()
    Trainer(load_config(None, sets + [f"train.steps={steps // 2}"]), split, progress=False).fit()
    Trainer(load_config(None, sets + [f"train.steps={steps}"]), split, resume=True, progress=False).fit()
    return load_checkpoint(whole / "checkpoints" / "last.pt"), load_checkpoint(split / "checkpoints" / "last.pt"), whole


def choose_the_point_map(head) -> None:
    """Make every class take the argmax head's point map instead of the closed-form read-out (random
    weights name every detection alike, so one model cannot exercise both), with scores spread
    widely enough that rounding cannot swap the arg-max cell."""
    with torch.no_grad():
        torch.nn.init.normal_(head.point_map.slot_out, std=0.5)
        head.choice_count.fill_(1.0)
        head.choice_error[:, 0] = 1.0
        head.choice_error[:, 1] = 0.0
    assert head.uses_map().all()


def tiny_detector(family: str):
    """A tiny ``family`` detector for the export tests: ``argmax`` places points with its closed-form
    read-out (moved away from the crop center), ``argmax_map`` with its point map."""
    from ocrloc.config import load_config  # here: the evaluation tests import this file without the models
    from ocrloc.models.build import build

    torch.manual_seed(0)
    detector = build(load_config(None, [*TINY_DETECTOR, *FAMILIES[family], "data.rule=seed37"])).eval()
    if family.startswith("argmax"):
        torch.nn.init.normal_(detector.model.head.point.weight, std=0.1)
    if family == "argmax_map":
        choose_the_point_map(detector.model.head)
    return detector

# ---------------------------------------------------------------------------------------------------------
# Errors: the project's one-line `error: ...` on stderr.

def one_error_line(capsys, *named) -> str:
    """The captured stderr: exactly one line, starting ``error: ``, naming each of ``named``."""
    err = capsys.readouterr().err
    assert err.startswith("error: ") and err.count("\n") == 1, err
    for name in named:
        assert str(name) in err, err
    return err

# ---------------------------------------------------------------------------------------------------------
# Hand-made ground truths and results (docs/task.md, "Ground-truth and results files").

def digits_ground_truth(digits: list[tuple[int, int, float, float, float, float]], num_images: int | None = None) -> dict:
    """A digits ground truth (docs/task.md, "Ground-truth and results files") from
    ``(image_id, class, point_x, point_y, w, h)``; boxes start 3 px up-left of it."""
    ids = sorted({d[0] for d in digits}) if num_images is None else list(range(1, num_images + 1))
    anns = []
    for k, (img, cls, px, py, w, h) in enumerate(digits):
        anns.append({
            "id": k + 1, "image_id": img, "category_id": cls, "bbox": [px - 3, py - 3, w, h], "area": w * h,
            "keypoints": [px, py, 2], "num_keypoints": 1, "iscrowd": 0,
            "points": {"center": [px, py]}, "rule": "all10",  # extra fields are allowed (docs/task.md)
        })
    return {
        "images": [{"id": i, "file_name": f"{i:06d}.png", "width": 128, "height": 128} for i in ids],
        "annotations": anns,
        "categories": [{"id": c, "name": str(c), "keypoints": ["point"], "skeleton": []} for c in range(10)],
    }


def det(img: int, cls: int, x: float, y: float, score: float = 1.0) -> dict:
    """One detection (a COCO result with one keypoint) of class ``cls`` at (x, y)."""
    return {"image_id": img, "category_id": cls, "keypoints": [x, y, 1.0], "score": score}


# The hand-made case of tests/evaluation/test_threshold.py, whose answers are counted by hand:
# six digits (image, class, x, y, w, h) on two images and six detections.
THRESHOLD_DIGITS = [
    (1, 3, 20.0, 20.0, 20, 26),    # A: found by d1 (1 px); d2, a duplicate, finds nothing
    (1, 5, 60.0, 60.0, 20, 26),    # B: only a detection of the wrong class is on it
    (1, 7, 100.0, 100.0, 20, 26),  # C: its detection is 3.5 px off
    (2, 1, 40.0, 40.0, 20, 26),    # D: its detection scores under 0.3
    (2, 2, 80.0, 80.0, 20, 26),    # E: its detection is exactly 3 px off (within)
    (2, 9, 100.0, 30.0, 20, 26),   # F: nothing near it
]
THRESHOLD_DETS = [
    det(1, 3, 21.0, 20.0, 0.9),          # d1: A
    det(1, 3, 20.0, 21.0, 0.8),          # d2: a duplicate of A, scoring lower: a false positive
    det(1, 4, 60.0, 60.0, 0.95),         # d3: on B, wrong class
    det(1, 7, 102.1, 102.8, 0.85),       # d4: on C, 3.5 px off (0.7 x a 3-4-5 step)
    det(2, 1, 40.0, 40.0, 0.2),          # d5: on D, under a 0.3 threshold
    det(2, 2, 83.0, 80.0, 0.6),          # d6: on E, 3 px off
]

# Every object's box in keypoints_ground_truth: one area, so one OKS per object and AP is a step function of it.
BOX_W, BOX_H = 20, 30
BOX_AREA = float(BOX_W * BOX_H)


def keypoints_ground_truth(objects: list[tuple], categories: list[tuple], num_images: int = 3, size: int = 128) -> dict:
    """COCO keypoints ground truth from ``(image_id, category_id, [(x, y[, v]) per keypoint])``."""
    anns = []
    for k, (img, cid, points) in enumerate(objects):
        kp = []
        for p in points:
            kp += [p[0], p[1], p[2] if len(p) > 2 else 2]
        # The box is drawn around the labelled points: an unlabelled one (v = 0) may sit anywhere, e.g. (0, 0).
        shown = [p for p in points if len(p) < 3 or p[2] > 0]
        x0, y0 = min(p[0] for p in shown) - 4, min(p[1] for p in shown) - 4
        anns.append({"id": k + 1, "image_id": img, "category_id": cid, "bbox": [x0, y0, BOX_W, BOX_H], "area": BOX_AREA,
                     "keypoints": kp, "num_keypoints": sum(1 for v in kp[2::3] if v > 0), "iscrowd": 0})
    return {
        "images": [{"id": i, "file_name": f"{i:06d}.png", "width": size, "height": size}
                   for i in range(1, num_images + 1)],
        "annotations": anns,
        "categories": [{"id": cid, "name": name, "keypoints": list(kps), "skeleton": []}
                       for cid, name, kps in categories],
    }


def k1_ground_truth() -> dict:
    """A fixed digits ground truth of 16 images (classes 0-8, one keypoint "point" each), from a seeded ``random``."""
    rnd = random.Random(20240611)
    images, anns = [], []
    for i in range(1, 17):
        images.append({"id": i, "file_name": f"{i:06d}.png", "width": 128, "height": 128})
        for _ in range(rnd.randint(0, 6)):
            w, h = rnd.randint(14, 30), rnd.randint(18, 32)
            x0, y0 = round(rnd.uniform(0, 128 - w), 2), round(rnd.uniform(0, 128 - h), 2)
            px, py = round(x0 + rnd.uniform(0.3, 0.7) * w, 2), round(y0 + rnd.uniform(0.3, 0.7) * h, 2)
            anns.append({"id": len(anns) + 1, "image_id": i, "category_id": rnd.randrange(9),
                         "bbox": [x0, y0, w, h], "area": float(w * h), "keypoints": [px, py, 2],
                         "num_keypoints": 1, "iscrowd": 0})
    cats = [{"id": c, "name": str(c), "supercategory": "digit", "keypoints": ["point"], "skeleton": []}
            for c in range(10)]
    return {"images": images, "annotations": anns, "categories": cats}


def k1_results(gt: dict, with_bbox: bool) -> list[dict]:
    """Results made from ``gt`` by a seeded perturbation: moved points, wrong classes, misses, duplicates,
    false positives, tied scores, perturbed boxes."""
    rnd = random.Random(7)
    out = []

    def add(img: int, cls: int, x: float, y: float, box: list[float], score: float) -> None:
        r = {"image_id": img, "category_id": cls, "keypoints": [round(x, 3), round(y, 3), 1.0],
             "score": round(score, 2)}  # rounded scores tie now and then
        if with_bbox:
            r["bbox"] = [round(v, 2) for v in box]
        out.append(r)

    for a in gt["annotations"]:
        if rnd.random() < 0.1:
            continue  # missed
        px, py = a["keypoints"][:2]
        spread = rnd.choice([0.3, 1.0, 2.5, 6.0])
        cls = a["category_id"] if rnd.random() > 0.12 else rnd.randrange(10)
        bx, by, bw, bh = a["bbox"]
        box = [bx + rnd.gauss(0, 1.5), by + rnd.gauss(0, 1.5),
               bw * rnd.uniform(0.85, 1.15), bh * rnd.uniform(0.85, 1.15)]
        add(a["image_id"], cls, px + rnd.gauss(0, spread), py + rnd.gauss(0, spread), box, rnd.uniform(0.3, 1.0))
        if rnd.random() < 0.2:  # a duplicate, lower or higher scored
            add(a["image_id"], cls, px + rnd.gauss(0, 1.0), py + rnd.gauss(0, 1.0), box, rnd.uniform(0.1, 1.0))
    for img in range(1, 17):  # false positives
        for _ in range(rnd.randint(0, 3)):
            x, y = rnd.uniform(0, 128), rnd.uniform(0, 128)
            add(img, rnd.randrange(10), x, y, [x - 10, y - 12, 20, 24], rnd.uniform(0.0, 0.6))
    return out

# ---------------------------------------------------------------------------------------------------------
# Data

def brute_force_points(intensity: np.ndarray) -> dict:
    """docs/task.md, "Named points", written as loops over pixels, with ink = intensity >= 0.5."""
    pixels = [(r, c) for r in range(intensity.shape[0]) for c in range(intensity.shape[1]) if intensity[r, c] >= 0.5]
    r_min = min(r for r, _ in pixels)
    r_max = max(r for r, _ in pixels)
    c_min = min(c for _, c in pixels)
    c_max = max(c for _, c in pixels)
    w, h = c_max - c_min + 1, r_max - r_min + 1

    def median(values):
        values = sorted(values)
        n = len(values)
        return values[n // 2] if n % 2 else (values[n // 2 - 1] + values[n // 2]) / 2

    total = sum(intensity[r, c] for r, c in pixels)
    return {
        "topleft": (c_min, r_min),
        "center": (c_min + w / 2, r_min + h / 2),
        "centroid": (sum(intensity[r, c] * (c + 0.5) for r, c in pixels) / total,
                     sum(intensity[r, c] * (r + 0.5) for r, c in pixels) / total),
        "topmost": (median([c + 0.5 for r, c in pixels if r == r_min]), r_min),
        "bottommost": (median([c + 0.5 for r, c in pixels if r == r_max]), r_max + 1),
        "leftmost": (c_min, median([r + 0.5 for r, c in pixels if c == c_min])),
        "rightmost": (c_max + 1, median([r + 0.5 for r, c in pixels if c == c_max])),
    }
