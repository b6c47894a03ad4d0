"""The seven named points of a digit's ink (SPEC sections 2 and 3).

Coordinates are COCO continuous pixel coordinates: pixel (row r, column c) covers
[c, c+1) x [r, r+1) and its center is (c + 0.5, r + 0.5). x is the column axis.
"""

from __future__ import annotations

from typing import Dict, Tuple

import numpy as np

__all__ = ["POINT_NAMES", "BOX_POINT_NAMES", "ink_box", "named_points", "box_points"]

POINT_NAMES: Tuple[str, ...] = (
    "topleft",
    "center",
    "centroid",
    "topmost",
    "bottommost",
    "leftmost",
    "rightmost",
)

# Further points of the ink box a rule file may ask for (the SPEC's seven above already hold
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


def named_points(ink: np.ndarray, intensity: np.ndarray) -> Dict[str, Tuple[float, float]]:
    """All seven named points of one digit, exactly as SPEC section 3 defines them.

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
