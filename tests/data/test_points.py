"""Named points against a brute-force reading of docs/task.md, "Named points", on hand-made ink."""

from __future__ import annotations

import numpy as np
import pytest

from ocrloc.data.points import POINT_NAMES, ink_box, named_points
from tests.helpers import brute_force_points


def check(intensity: np.ndarray) -> dict:
    got = named_points(intensity >= 0.5, intensity)
    want = brute_force_points(intensity)
    assert set(got) == set(POINT_NAMES)
    for name in POINT_NAMES:
        assert got[name] == pytest.approx(want[name], abs=1e-9), name
    return got


def test_one_pixel_digit_has_all_points_at_that_pixel():
    img = np.zeros((10, 12))
    img[4, 7] = 0.8
    pts = check(img)
    assert pts["topleft"] == (7.0, 4.0)
    assert pts["center"] == (7.5, 4.5)
    assert pts["centroid"] == pytest.approx((7.5, 4.5))
    assert pts["topmost"] == (7.5, 4.0)
    assert pts["bottommost"] == (7.5, 5.0)
    assert pts["leftmost"] == (7.0, 4.5)
    assert pts["rightmost"] == (8.0, 4.5)
    assert ink_box(img >= 0.5) == (7, 4, 1, 1)


def test_thin_vertical_one():
    img = np.zeros((20, 20))
    img[3:15, 9] = 1.0
    pts = check(img)
    assert pts["topmost"] == (9.5, 3.0)
    assert pts["bottommost"] == (9.5, 15.0)
    # The whole column is both the leftmost and the rightmost column: median of its 12 centers.
    assert pts["leftmost"] == (9.0, 9.0)
    assert pts["rightmost"] == (10.0, 9.0)
    assert pts["center"] == (9.5, 9.0)


def test_ties_in_extreme_rows_take_the_mean_of_the_two_middle_centers():
    img = np.zeros((8, 8))
    img[2, [1, 2, 5, 6]] = 1.0  # top row: four pixels, an even count
    img[3:6, 3] = 1.0
    img[6, [2, 4]] = 1.0  # bottom row: two pixels
    pts = check(img)
    assert pts["topmost"] == ((2.5 + 5.5) / 2, 2.0)
    assert pts["bottommost"] == ((2.5 + 4.5) / 2, 7.0)
    assert pts["leftmost"] == (1.0, 2.5)
    assert pts["rightmost"] == (7.0, 2.5)


def test_centroid_is_intensity_weighted_and_ignores_faint_pixels():
    img = np.zeros((6, 6))
    img[1, 1] = 1.0
    img[1, 3] = 0.5  # exactly the threshold: ink, half weight
    img[4, 4] = 0.49  # below the threshold: not ink, no weight
    pts = check(img)
    assert pts["centroid"] == pytest.approx(((1.5 * 1.0 + 3.5 * 0.5) / 1.5, 1.5))
    assert pts["rightmost"] == (4.0, 1.5)


@pytest.mark.parametrize("seed", range(20))
def test_random_blobs_match_brute_force(seed):
    rng = np.random.default_rng(seed)
    img = rng.random((rng.integers(3, 16), rng.integers(3, 16)))
    img[img < 0.6] = 0.0
    img[rng.integers(img.shape[0]), rng.integers(img.shape[1])] = 1.0  # never empty
    check(img)


def test_empty_ink_is_an_error():
    with pytest.raises(ValueError, match="empty"):
        named_points(np.zeros((4, 4), bool), np.zeros((4, 4)))
