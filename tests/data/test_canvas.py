"""The canvas generator: determinism, placement rules, split disjointness, augmentation."""

from __future__ import annotations

import numpy as np
import pytest

import ocrloc  # noqa: F401
import albumentations as A

from ocrloc.data.augment import CanvasAugment, CanvasAugmentConfig, DigitAugmentConfig
from ocrloc.data.canvas import INK_THRESHOLD, PRESETS, CanvasGenerator, boxes_gap
from ocrloc.data.mnist import SPLITS
from ocrloc.data.points import box_points, ink_box, named_points
from ocrloc.data.rules import RULES, rule_classes

from tests.helpers import brute_force_points


def same_canvas(a, b) -> bool:
    return np.array_equal(a.image, b.image) and a.digits == b.digits


def test_canvases_are_deterministic_and_index_independent(pools):
    first = CanvasGenerator("canvas128", "all10", "test", 7, pools["test"])
    second = CanvasGenerator("canvas128", "all10", "test", 7, pools["test"])
    in_order = [first(i) for i in range(12)]
    # A fresh generator asked for canvas 11 alone, then out of order, gives the same canvases.
    assert same_canvas(second(11), in_order[11])
    for i in (3, 0, 8):
        assert same_canvas(second(i), in_order[i])
    assert not np.array_equal(in_order[0].image, in_order[1].image)


@pytest.mark.parametrize("change", [{"seed": 8}, {"rule": "seed37"}, {"split": "val"}])
def test_each_part_of_the_key_changes_the_canvases(pools, change):
    key = {"preset": "canvas128", "rule": "all10", "split": "test", "seed": 7}
    base = CanvasGenerator(**key, pool=pools["test"])
    key.update(change)
    other = CanvasGenerator(**key, pool=pools[key["split"]])
    assert not any(np.array_equal(base(i).image, other(i).image) for i in range(5))


def test_canvas128_follows_the_preset(pools):
    preset = PRESETS["canvas128"]
    gen = CanvasGenerator(preset, "all10", "train", 0, pools["train"])
    counts, sizes = set(), set()
    for i in range(300):
        canvas = gen(i)
        assert canvas.image.shape == (128, 128) and canvas.image.dtype == np.uint8
        counts.add(len(canvas.digits))
        for k, digit in enumerate(canvas.digits):
            sizes.add(digit.size)
            x0, y0 = digit.origin
            assert 0 <= x0 <= 128 - digit.size and 0 <= y0 <= 128 - digit.size  # wholly inside
            for other in canvas.digits[k + 1:]:
                assert boxes_gap(digit.bbox, other.bbox) >= 2, (i, digit.bbox, other.bbox)
    assert counts == {1, 2, 3, 4, 5}
    assert min(sizes) >= 18 and max(sizes) <= 36 and len(sizes) > 12


def test_boxes_gap_counts_empty_pixels_between_boxes():
    assert boxes_gap((0, 0, 5, 5), (7, 0, 3, 3)) == 2  # columns 5 and 6 are empty
    assert boxes_gap((0, 0, 5, 5), (6, 0, 3, 3)) == 1
    assert boxes_gap((0, 0, 5, 5), (2, 8, 3, 3)) == 3
    assert boxes_gap((0, 0, 5, 5), (2, 2, 3, 3)) < 0


def test_annotated_points_and_boxes_match_the_final_ink(pools):
    """Recompute every digit's points from the finished canvas alone, by brute force."""
    gen = CanvasGenerator("canvas128", "all10", "test", 3, pools["test"])
    for i in range(10):
        canvas = gen(i)
        intensity = canvas.image / 255.0
        for digit in canvas.digits:
            x, y, w, h = digit.bbox
            # Boxes are 2 px apart, so the ink inside this box is this digit's ink.
            crop = np.zeros_like(intensity)
            crop[y:y + h, x:x + w] = intensity[y:y + h, x:x + w]
            assert (crop >= 0.5).sum() == (canvas.image[y:y + h, x:x + w] >= INK_THRESHOLD).sum()
            want = brute_force_points(crop)
            left, top = want["topleft"]
            right, bottom = 2 * want["center"][0] - left, 2 * want["center"][1] - top
            want.update(topright=(right, top), bottomleft=(left, bottom), bottomright=(right, bottom),
                        top_middle=((left + right) / 2, top), bottom_middle=((left + right) / 2, bottom),
                        left_middle=(left, (top + bottom) / 2), right_middle=(right, (top + bottom) / 2))
            assert set(digit.points) == set(want)
            for name, point in digit.points.items():
                assert point == pytest.approx(want[name], abs=1e-9), (i, name)


@pytest.mark.parametrize("rule", sorted(RULES))
def test_only_the_rules_classes_are_drawn(pools, rule):
    gen = CanvasGenerator("canvas128", rule, "val", 0, pools["val"])
    labels = {d.label for i in range(80) for d in gen(i).digits}
    assert labels == set(rule_classes(rule))


def test_splits_draw_from_disjoint_mnist_digits(pools):
    assert SPLITS["train"][:1] == SPLITS["val"][:1] == (True,) and SPLITS["test"][0] is False
    used = {}
    for split in ("train", "val", "test"):
        gen = CanvasGenerator("canvas128", "all10", split, 0, pools[split])
        used[split] = {d.source_index for i in range(200) for d in gen(i).digits}
    assert max(used["train"]) < 55_000
    assert min(used["val"]) >= 55_000 and max(used["val"]) < 60_000
    assert pools["test"].source_file == "t10k" and pools["train"].source_file == pools["val"].source_file == "train"
    # The pools themselves partition the training file.
    assert pools["train"].images.shape[0] == 55_000 and pools["val"].images.shape[0] == 5_000
    assert pools["test"].images.shape[0] == 10_000


def test_single_preset_is_one_native_digit_on_32x32(pools):
    gen = CanvasGenerator("single", "seed37", "test", 0, pools["test"])
    offsets = set()
    for i in range(40):
        canvas = gen(i)
        assert canvas.image.shape == (32, 32) and len(canvas.digits) == 1
        digit = canvas.digits[0]
        assert digit.size == 28
        offsets.add(digit.origin)
        src = pools["test"].images[digit.source_index]
        x0, y0 = digit.origin
        np.testing.assert_array_equal(canvas.image[y0:y0 + 28, x0:x0 + 28], src)
    assert len(offsets) > 5


def test_augmentation_is_refused_outside_train(pools):
    with pytest.raises(ValueError, match="train split only"):
        CanvasGenerator("canvas128", "all10", "val", 0, pools["val"], digit_augment=DigitAugmentConfig(enabled=True))
    with pytest.raises(ValueError, match="pool is of split"):
        CanvasGenerator("canvas128", "all10", "train", 0, pools["val"])


def test_digit_augmentation_is_seeded_and_points_follow_the_ink(pools):
    aug = DigitAugmentConfig(enabled=True, affine_p=1.0, thickness_p=0.5, elastic_p=0.5)
    gen = CanvasGenerator("canvas128", "all10", "train", 0, pools["train"], digit_augment=aug)
    clean = CanvasGenerator("canvas128", "all10", "train", 0, pools["train"])
    assert same_canvas(gen(4), gen(4))
    assert not np.array_equal(gen(4).image, clean(4).image)
    for digit in gen(4).digits:
        x, y, w, h = digit.bbox
        ink = np.zeros((128, 128), bool)
        ink[y:y + h, x:x + w] = gen(4).image[y:y + h, x:x + w] >= INK_THRESHOLD
        recomputed = {**named_points(ink, gen(4).image), **box_points(ink_box(ink))}
        assert set(recomputed) == set(digit.points)
        for name, point in digit.points.items():
            assert recomputed[name] == pytest.approx(point, abs=1e-9), name


def test_canvas_augmentation_changes_pixels_not_labels(pools):
    noisy_cfg = CanvasAugmentConfig(enabled=True, noise_p=1.0, blur_p=1.0, brightness_contrast_p=1.0)
    noisy = CanvasGenerator("canvas128", "all10", "train", 5, pools["train"], canvas_augment=noisy_cfg)
    clean = CanvasGenerator("canvas128", "all10", "train", 5, pools["train"])
    for i in range(5):
        a, b = noisy(i), clean(i)
        assert a.digits == b.digits
        assert not np.array_equal(a.image, b.image)
    assert same_canvas(noisy(2), noisy(2))


def test_geometric_canvas_transforms_are_rejected():
    with pytest.raises(ValueError, match="HorizontalFlip moves pixels"):
        CanvasAugment(CanvasAugmentConfig(enabled=True), extra=[A.HorizontalFlip(p=1.0)])
