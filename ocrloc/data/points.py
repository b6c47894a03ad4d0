"""The named points of a digit's ink, the ink box's points, and stroke points found by a search.

Coordinates are COCO continuous pixel coordinates: pixel (row r, column c) covers
[c, c+1) x [r, r+1) and its center is (c + 0.5, r + 0.5). x is the column axis.

* :data:`POINT_NAMES`: the seven named points of the task (``docs/task.md``, "Named points").
* :data:`BOX_POINT_NAMES`: the ink box's other corners and the middles of its edges.
* **Stroke points** (:func:`stroke_point`): a pixel of the stroke found by a search over the ink,
  written ``nearest_ink(a, b)`` or ``first_ink(a, b, dx, dy)`` with a reference point given in
  fractions of the ink box. They are none of the named points, no box point and no mix of them:
  the points a closed-form read-out of the ink's extremes cannot give (``docs/data.md``, "Stroke
  points").
"""

from __future__ import annotations

import math
import re
from typing import Dict, Optional, Tuple

import numpy as np

__all__ = ["INK_THRESHOLD", "POINT_NAMES", "BOX_POINT_NAMES", "STROKE_SEARCHES", "ink_box", "boxes_gap", "named_points",
           "box_points", "parse_stroke_point", "stroke_point", "stroke_reference"]

# A uint8 pixel is ink when its value is >= 128 (128/255 >= 0.5 > 127/255): the MNIST canvases and the printed
# glyphs alike (docs/task.md, "Ink and ink box").
INK_THRESHOLD = 128

POINT_NAMES: Tuple[str, ...] = (
    "topleft",
    "center",
    "centroid",
    "topmost",
    "bottommost",
    "leftmost",
    "rightmost",
)

# Further points of the ink box a rule file may ask for (the seven named points above already hold
# its top-left corner and its center): the other corners and the middles of the four edges.
BOX_POINT_NAMES: Tuple[str, ...] = (
    "topright",
    "bottomleft",
    "bottomright",
    "top_middle",
    "bottom_middle",
    "left_middle",
    "right_middle",
)


def ink_box(ink: np.ndarray) -> Tuple[int, int, int, int]:
    """Bounding box of the ink in COCO ``[x, y, w, h]`` (integers: ink is whole pixels).

    Args:
        ink: bool array ``[H, W]``, True where the pixel is ink.

    Raises:
        ValueError: if there is no ink at all.
    """
    rows = np.flatnonzero(ink.any(axis=1))
    cols = np.flatnonzero(ink.any(axis=0))
    if rows.size == 0:
        raise ValueError("the ink mask is empty: a digit without ink has no points")
    r_min, r_max = int(rows[0]), int(rows[-1])
    c_min, c_max = int(cols[0]), int(cols[-1])
    return c_min, r_min, c_max - c_min + 1, r_max - r_min + 1


def boxes_gap(a: Tuple[int, int, int, int], b: Tuple[int, int, int, int]) -> int:
    """Distance in pixels between two COCO pixel boxes: the larger of the empty columns or
    rows between them (negative when they overlap on both axes)."""
    gap_x = max(b[0] - (a[0] + a[2]), a[0] - (b[0] + b[2]))
    gap_y = max(b[1] - (a[1] + a[3]), a[1] - (b[1] + b[3]))
    return max(gap_x, gap_y)


def named_points(ink: np.ndarray, intensity: np.ndarray) -> Dict[str, Tuple[float, float]]:
    """All seven named points of one digit, exactly as ``docs/task.md``, "Named points", defines them.

    The medians are numpy medians: with an even number of ink pixels in the extreme row
    or column, the mean of the two middle pixel centers.

    Args:
        ink: bool array ``[H, W]``, True on the digit's ink pixels.
        intensity: array ``[H, W]`` of canvas intensities (any scale; only ratios matter,
            it weights the centroid).

    Returns:
        ``{name: (x, y)}`` for every name in :data:`POINT_NAMES`, as Python floats.
    """
    c_min, r_min, w, h = ink_box(ink)
    r_max, c_max = r_min + h - 1, c_min + w - 1
    rows, cols = np.nonzero(ink)
    weights = intensity[rows, cols].astype(np.float64)
    if weights.sum() <= 0:
        raise ValueError("the ink has zero total intensity: the centroid is undefined")
    centers_x = cols + 0.5
    centers_y = rows + 0.5
    return {
        "topleft": (float(c_min), float(r_min)),
        "center": (c_min + w / 2.0, r_min + h / 2.0),
        "centroid": (
            float(np.average(centers_x, weights=weights)),
            float(np.average(centers_y, weights=weights)),
        ),
        "topmost": (float(np.median(centers_x[rows == r_min])), float(r_min)),
        "bottommost": (float(np.median(centers_x[rows == r_max])), float(r_max + 1)),
        "leftmost": (float(c_min), float(np.median(centers_y[cols == c_min]))),
        "rightmost": (float(c_max + 1), float(np.median(centers_y[cols == c_max]))),
    }


def box_points(bbox: Tuple[float, float, float, float]) -> Dict[str, Tuple[float, float]]:
    """The :data:`BOX_POINT_NAMES` points of a COCO box ``[x, y, w, h]`` (edges at ``x`` and
    ``x + w``: the ink box's ``c_min`` and ``c_max + 1``)."""
    x, y, w, h = (float(v) for v in bbox)
    return {
        "topright": (x + w, y),
        "bottomleft": (x, y + h),
        "bottomright": (x + w, y + h),
        "top_middle": (x + w / 2.0, y),
        "bottom_middle": (x + w / 2.0, y + h),
        "left_middle": (x, y + h / 2.0),
        "right_middle": (x + w, y + h / 2.0),
    }


# A stroke point's spelling: a search and its numbers, e.g. ``first_ink(0.5, 0.5, 0.3, -1)``.
STROKE_SEARCHES: Dict[str, int] = {"nearest_ink": 2, "first_ink": 4}  # name -> how many numbers
_STROKE_PATTERN = re.compile(r"^\s*([a-z_]+)\s*\((.*)\)\s*$")


def parse_stroke_point(spec: str) -> Optional[Tuple[str, Tuple[float, ...]]]:
    """``(search, numbers)`` of a stroke point's spelling, or None for anything that is not one
    (a point name, say).

    Raises:
        ValueError: for a known search with the wrong count of numbers, a number that is not
            one, or a ``first_ink`` direction of length 0.
    """
    match = _STROKE_PATTERN.match(spec) if isinstance(spec, str) else None
    if match is None or match.group(1) not in STROKE_SEARCHES:
        return None
    name, body = match.group(1), match.group(2)
    try:
        numbers = tuple(float(v) for v in body.split(",")) if body.strip() else ()
    except ValueError:
        raise ValueError(f"stroke point {spec!r}: {body!r} is not a list of numbers") from None
    if len(numbers) != STROKE_SEARCHES[name] or not all(math.isfinite(v) for v in numbers):
        raise ValueError(f"stroke point {spec!r}: {name} takes {STROKE_SEARCHES[name]} finite numbers")
    if name == "first_ink" and numbers[2] == 0 and numbers[3] == 0:
        raise ValueError(f"stroke point {spec!r}: the direction (dx, dy) must not be (0, 0)")
    return name, numbers


def stroke_reference(bbox: Tuple[float, float, float, float], spec: str) -> Tuple[float, float]:
    """The reference point of a stroke point in the coordinates of the COCO box ``[x, y, w, h]``:
    ``(x + a w, y + b h)`` (where a box detector, which has no point head, puts it)."""
    parsed = parse_stroke_point(spec)
    if parsed is None:
        raise ValueError(f"{spec!r} is not a stroke point")
    a, b = parsed[1][:2]
    x, y, w, h = (float(v) for v in bbox)
    return x + a * w, y + b * h


def stroke_point(ink: np.ndarray, spec: str) -> Tuple[float, float]:
    """The stroke point ``spec`` of one character's ink (``ink [H, W]`` bool, in its own array's
    pixels), as the center of one ink pixel.

    With the ink box ``[x, y, w, h]`` (:func:`ink_box`) and the reference ``R = (x + a w, y + b h)``:

    * ``nearest_ink(a, b)``: the ink pixel whose center is nearest to ``R`` (Euclidean);
    * ``first_ink(a, b, dx, dy)``: walking from ``R`` along the direction ``(dx, dy)`` (pixels,
      y down), the first ink pixel whose center lies within half a pixel of that ray
      (perpendicular distance <= 0.5, position along the ray >= 0); where no ink pixel does,
      ``nearest_ink(a, b)``.

    Ties go to the first pixel in row-major order.

    Raises:
        ValueError: for an empty ``ink`` or a spelling that is not a stroke point.
    """
    parsed = parse_stroke_point(spec)
    if parsed is None:
        raise ValueError(f"{spec!r} is not a stroke point; known searches: {', '.join(STROKE_SEARCHES)}")
    name, numbers = parsed
    x, y, w, h = ink_box(ink)
    rows, cols = np.nonzero(ink)  # row-major order
    ox = cols + 0.5 - (x + numbers[0] * w)
    oy = rows + 0.5 - (y + numbers[1] * h)
    if name == "first_ink":
        dx, dy = numbers[2], numbers[3]
        norm = math.hypot(dx, dy)
        dx, dy = dx / norm, dy / norm
        along = ox * dx + oy * dy
        on_ray = (np.abs(ox * dy - oy * dx) <= 0.5) & (along >= 0)
        if on_ray.any():
            candidates = np.flatnonzero(on_ray)
            i = int(candidates[np.argmin(along[candidates])])
            return float(cols[i] + 0.5), float(rows[i] + 0.5)
    i = int(np.argmin(ox * ox + oy * oy))
    return float(cols[i] + 0.5), float(rows[i] + 0.5)
