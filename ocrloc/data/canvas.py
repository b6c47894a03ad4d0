"""The canvas generator: MNIST digits composed onto a canvas with boxes, classes and named points.

Everything follows ``docs/task.md`` ("Ink and ink box", "Named points", "Rules", "Benchmark
canvases"). Canvases are uint8 from the start: each resized
digit is rounded to uint8 and a pixel is ink when its value is >= 128 (128/255 is the
smallest uint8 intensity >= 0.5). Because the canvas is exactly what an 8-bit PNG stores,
points recomputed from a written PNG equal the annotated ones.

Canvas ``i`` of (preset, rule, split, seed) depends on nothing else: its random stream is
seeded from those five values, so any canvas can be regenerated alone (DataLoader workers,
``count`` only truncates a split).
"""

from __future__ import annotations

import zlib
from dataclasses import dataclass, field
from typing import Any, Dict, List, Optional, Tuple

import cv2
import numpy as np

from ocrloc.data.augment import CanvasAugment, CanvasAugmentConfig, DigitAugment, DigitAugmentConfig
from ocrloc.data.catalog import PRESETS, CanvasPreset, get_preset
from ocrloc.data.mnist import SPLITS, DigitPool
from ocrloc.data.points import (INK_THRESHOLD, POINT_NAMES, box_points, boxes_gap, ink_box, named_points,
                                parse_stroke_point, stroke_point)
from ocrloc.data.rules import get_rule, rule_classes
from ocrloc.data.target import Target, detection_target
from ocrloc.data.task import digits_task

__all__ = ["CanvasPreset", "PRESETS", "get_preset", "DigitInstance", "Canvas", "CanvasGenerator", "INK_THRESHOLD",
           "CATEGORIES", "canvas_target", "canvas_annotations"]

# The COCO categories of the MNIST canvases: digits 0-9 (category id = digit), one keypoint ``point`` each.
CATEGORIES: List[Dict[str, Any]] = digits_task().categories(supercategory="digit")

_MAX_DIGIT_DRAWS = 50  # fresh (digit, size) draws before giving up on placing one digit
_MAX_POSITIONS = 50  # positions tried for one (digit, size)


@dataclass
class DigitInstance:
    """One pasted digit.

    Attributes:
        label: digit class 0-9.
        bbox: ink box, COCO ``[x, y, w, h]`` in canvas pixels (integers).
        points: the seven named points and the further box points (:data:`~ocrloc.data.points.BOX_POINT_NAMES`)
            ``{name: (x, y)}`` in canvas pixels, and the stroke point its class wants when the
            rule asks for one (keyed by its spelling, :func:`~ocrloc.data.points.stroke_point`).
        source_index: index of the digit in its MNIST file.
        size: s, the side of the resized digit.
        origin: (x0, y0), where the resized digit's top-left pixel was pasted.
    """

    label: int
    bbox: Tuple[int, int, int, int]
    points: Dict[str, Tuple[float, float]]
    source_index: int
    size: int
    origin: Tuple[int, int]

    def point(self, rule: str) -> Tuple[float, float]:
        """The point that ``rule`` wants for this digit's class."""
        return self.points[get_rule(rule)[self.label]]


@dataclass
class Canvas:
    """A generated canvas: ``image`` is uint8 ``[H, W]``; ``digits`` in pasting order."""

    image: np.ndarray
    digits: List[DigitInstance] = field(default_factory=list)
    index: int = 0


def canvas_target(canvas: Canvas, rule: str, image_id: int) -> Target:
    """The training target of a generated canvas: the rule's point per digit."""
    table = get_rule(rule)
    return detection_target(
        [d.bbox for d in canvas.digits],
        [d.label for d in canvas.digits],
        [(*d.points[table[d.label]], 2.0) for d in canvas.digits],
        image_id,
    )


def canvas_annotations(canvas: Canvas, rule: str, image_id: int, first_annotation_id: int) -> List[Dict[str, Any]]:
    """COCO annotations of one canvas: the rule's point in ``keypoints``, all seven as ``points``.

    Args:
        canvas: a generated canvas.
        rule: rule name, picks the point per class.
        image_id: the canvas's COCO image id.
        first_annotation_id: id of its first annotation (ids are consecutive).
    """
    table = get_rule(rule)
    annotations = []
    for k, digit in enumerate(canvas.digits):
        x, y = digit.points[table[digit.label]]
        w, h = digit.bbox[2], digit.bbox[3]
        annotations.append(
            {
                "id": first_annotation_id + k,
                "image_id": image_id,
                "category_id": digit.label,
                "bbox": [float(v) for v in digit.bbox],
                "area": float(w * h),
                "keypoints": [x, y, 2],
                "num_keypoints": 1,
                "iscrowd": 0,
                "point_name": table[digit.label],
                "points": {name: list(digit.points[name]) for name in POINT_NAMES},
                "mnist_index": digit.source_index,
                "digit_size": digit.size,
            }
        )
    return annotations


def _stable_id(name: str) -> int:
    # Python's hash() of a str changes per process; crc32 does not.
    return zlib.crc32(name.encode("utf-8"))


class CanvasGenerator:
    """Generates canvas ``i`` of (preset, rule, split, seed) on demand.

    Args:
        preset: a :class:`CanvasPreset` or its name.
        rule: rule name; only its classes are drawn.
        split: ``train``, ``val`` or ``test``; must match ``pool.split``.
        seed: split seed.
        pool: the split's MNIST digits (:func:`ocrloc.data.mnist.load_digit_pool`).
        digit_augment, canvas_augment: augmentation configs; train split only.
    """

    def __init__(
        self,
        preset: CanvasPreset | str,
        rule: str,
        split: str,
        seed: int,
        pool: DigitPool,
        digit_augment: Optional[DigitAugmentConfig] = None,
        canvas_augment: Optional[CanvasAugmentConfig] = None,
    ) -> None:
        self.preset = get_preset(preset) if isinstance(preset, str) else preset
        self.rule = rule
        # The stroke points the rule asks for (class -> spelling): found on each digit's own ink.
        self.stroke_points = {c: p for c, p in get_rule(rule).items() if parse_stroke_point(p) is not None}
        self.task = digits_task()  # what its canvases hold: digits 0-9, one keypoint each
        self.classes = rule_classes(rule)
        if split not in SPLITS:
            raise ValueError(f"unknown split {split!r}; expected one of {', '.join(SPLITS)}")
        if pool.split != split:
            raise ValueError(f"the digit pool is of split {pool.split!r}, the generator of split {split!r}")
        augmenting = bool((digit_augment and digit_augment.enabled) or (canvas_augment and canvas_augment.enabled))
        if augmenting and split != "train":
            raise ValueError(f"augmentation is for the train split only; {split!r} canvases are always clean")
        lo, hi = self.preset.digit_size
        if hi > min(self.preset.height, self.preset.width) or lo < 1:
            raise ValueError(f"preset {self.preset.name!r}: digit sizes {lo}..{hi} do not fit the canvas")
        self.split = split
        self.seed = int(seed)
        self.pool = pool
        self.candidates = pool.indices_of(self.classes)
        if self.candidates.size == 0:
            raise ValueError(f"the {split} pool has no digits of classes {self.classes}")
        self.digit_augment = DigitAugment(digit_augment) if digit_augment and digit_augment.enabled else None
        self.canvas_augment = CanvasAugment(canvas_augment) if canvas_augment and canvas_augment.enabled else None
        self._stream_key = [self.seed, _stable_id(self.preset.name), _stable_id(rule), _stable_id(split)]

    def rng(self, index: int) -> np.random.Generator:
        """The random stream of canvas ``index``: a function of (preset, rule, split, seed, index) only."""
        if index < 0:
            raise IndexError(f"canvas index must be >= 0, got {index}")
        return np.random.default_rng(self._stream_key + [int(index)])

    def __call__(self, index: int) -> Canvas:
        return self.generate(index)

    def generate(self, index: int) -> Canvas:
        """Canvas ``index``; calling it twice gives identical canvases."""
        rng = self.rng(index)
        preset = self.preset
        image = np.zeros((preset.height, preset.width), dtype=np.uint8)
        count = int(rng.integers(preset.digits_per_canvas[0], preset.digits_per_canvas[1] + 1))
        digits: List[DigitInstance] = []
        for _ in range(count):
            digits.append(self._place_digit(rng, image, digits, index))
        if self.canvas_augment is not None:
            image = self._augment_canvas(rng, image, digits)
        return Canvas(image=image, digits=digits, index=index)

    # -- the data source protocol (ocrloc.data.source) -------------------------------------------------

    @property
    def image_size(self) -> Tuple[int, int]:
        return self.preset.height, self.preset.width

    def sample(self, index: int) -> Canvas:
        """Canvas ``index`` (:meth:`generate`)."""
        return self.generate(index)

    def target(self, canvas: Canvas, image_id: int) -> Target:
        """The training target of ``canvas``: the rule's point per digit (:func:`canvas_target`)."""
        return canvas_target(canvas, self.rule, image_id)

    def annotations(self, canvas: Canvas, image_id: int, first_annotation_id: int) -> List[Dict[str, Any]]:
        """The COCO annotations of ``canvas`` (:func:`canvas_annotations`)."""
        return canvas_annotations(canvas, self.rule, image_id, first_annotation_id)

    def categories(self) -> List[Dict[str, Any]]:
        return self.task.categories("digit")

    def info(self) -> Dict[str, Any]:
        return {"description": "ocrloc MNIST canvases", "preset": self.preset.name, "rule": self.rule,
                "split": self.split, "seed": self.seed}

    def _place_digit(self, rng: np.random.Generator, image: np.ndarray, placed: List[DigitInstance],
                     index: int) -> DigitInstance:
        preset = self.preset
        for _ in range(_MAX_DIGIT_DRAWS):
            pool_pos = int(self.candidates[rng.integers(self.candidates.size)])
            size = int(rng.integers(preset.digit_size[0], preset.digit_size[1] + 1))
            aug_seed = int(rng.integers(2**31))
            digit = self.pool.images[pool_pos]
            if self.digit_augment is not None:
                digit = self.digit_augment(digit, aug_seed)
            if size != digit.shape[0]:
                digit = cv2.resize(digit, (size, size), interpolation=cv2.INTER_LINEAR)
            ink = digit >= INK_THRESHOLD
            if not ink.any():  # an eroded or shrunk stroke can vanish; draw another digit
                continue
            ix, iy, iw, ih = ink_box(ink)
            for _ in range(_MAX_POSITIONS):
                x0 = int(rng.integers(0, preset.width - size + 1))
                y0 = int(rng.integers(0, preset.height - size + 1))
                box = (x0 + ix, y0 + iy, iw, ih)
                if all(boxes_gap(box, other.bbox) >= preset.min_gap for other in placed):
                    region = image[y0:y0 + size, x0:x0 + size]
                    np.maximum(region, digit, out=region)
                    # With ink boxes apart, the canvas equals this digit's own image on its
                    # ink, so the points are computed on the digit's own arrays, then shifted.
                    local = named_points(ink, digit)
                    label = int(self.pool.labels[pool_pos])
                    if label in self.stroke_points:
                        spec = self.stroke_points[label]
                        local[spec] = stroke_point(ink, spec)
                    points = {name: (x + x0, y + y0) for name, (x, y) in local.items()}
                    points.update(box_points(box))
                    return DigitInstance(
                        label=label,
                        bbox=box,
                        points=points,
                        source_index=int(self.pool.source_index[pool_pos]),
                        size=size,
                        origin=(x0, y0),
                    )
        raise RuntimeError(
            f"could not place digit {len(placed) + 1} on canvas {index} of preset {preset.name!r} "
            f"after {_MAX_DIGIT_DRAWS} draws: the preset packs too many digits for its canvas"
        )

    def _augment_canvas(self, rng: np.random.Generator, image: np.ndarray, digits: List[DigitInstance]) -> np.ndarray:
        assert self.canvas_augment is not None
        boxes = [d.bbox for d in digits]
        points = [d.points[name] for d in digits for name in POINT_NAMES]
        return self.canvas_augment(image, boxes, points, seed=int(rng.integers(2**31)))
