"""The K = 1 scores, number for number, as the evaluator gave them before categories could carry K keypoints.

A fixed ground truth (digit classes 0 to 9, class 9 without any digit, one keypoint "point" each, 16 images)
and results made from it by a seeded perturbation (Python's ``random``, stable across versions): moved points,
wrong classes, misses, duplicates, false positives, tied scores, perturbed boxes. The expected values are the
``repr`` of what the evaluator of commit 7572f13 (before the change) returned; they are compared with a
relative tolerance of 1e-12 only so that a numpy summation change cannot fail the test spuriously.

Recall and precision at a score threshold (issue 25) came later: they are not in the old numbers, and the
table's line for them is checked as it is now.
"""

from __future__ import annotations

import pytest

from ocrloc.evaluation import SCORE_KEYS, evaluate, format_table
from tests.helpers import k1_ground_truth, k1_results


# evaluate(k1_ground_truth(), k1_results(gt, with_bbox), sigma) before the change.
LATER_KEYS = ("recall", "precision", "score_threshold")  # issue 25: added after the change, not pinned here
EXPECTED = {
    "bbox/0.05": {
        "kpt_AP": 0.1878272625797378,
        "kpt_AP50": 0.26737038783243405,
        "kpt_AP75": 0.20521417221087188,
        "box_AP": 0.36636099782139386,
        "mean_px": 2.1492950599546625,
        "median_px": 1.7512624018119047,
        "p95_px": 5.000948770460029,
        "miss_rate": 0.3125,
        "cls_acc": 0.6875,
        "per_class": {
            "0": 0.45957784789467954, "1": 0.12343234323432342, "2": 0.2524752475247525, "3": 0.12871287128712872,
            "4": 0.11023102310231024, "5": 0.11782178217821782, "6": 0.2268788307402169, "7": 0.2713154172560113,
            "8": 0.0, "9": None,
        },
        "num_images": 16,
        "num_gt": 48,
        "num_dets": 86,
    },
    "bbox/0.1": {
        "kpt_AP": 0.33580728707791413,
        "kpt_AP50": 0.46468789736116467,
        "kpt_AP75": 0.3182504758412349,
        "box_AP": 0.36636099782139386,
        "mean_px": 3.0454683291672153,
        "median_px": 1.9669823093672583,
        "p95_px": 8.121169853989782,
        "miss_rate": 0.20833333333333337,
        "cls_acc": 0.7916666666666666,
        "per_class": {
            "0": 0.5445073078736445, "1": 0.2561276127612761, "2": 0.2524752475247525, "3": 0.23267326732673269,
            "4": 0.19834983498349837, "5": 0.1739273927392739, "6": 0.5736462217650337, "7": 0.4568953323903819,
            "8": 0.3336633663366337, "9": None,
        },
        "num_images": 16,
        "num_gt": 48,
        "num_dets": 86,
    },
    "nobbox/0.05": {
        "kpt_AP": 0.1878272625797378,
        "kpt_AP50": 0.26737038783243405,
        "kpt_AP75": 0.20521417221087188,
        "box_AP": None,
        "mean_px": 2.1492950599546625,
        "median_px": 1.7512624018119047,
        "p95_px": 5.000948770460029,
        "miss_rate": 0.3125,
        "cls_acc": 0.6875,
        "per_class": {
            "0": 0.45957784789467954, "1": 0.12343234323432342, "2": 0.2524752475247525, "3": 0.12871287128712872,
            "4": 0.11023102310231024, "5": 0.11782178217821782, "6": 0.2268788307402169, "7": 0.2713154172560113,
            "8": 0.0, "9": None,
        },
        "num_images": 16,
        "num_gt": 48,
        "num_dets": 86,
    },
    "nobbox/0.1": {
        "kpt_AP": 0.33580728707791413,
        "kpt_AP50": 0.46468789736116467,
        "kpt_AP75": 0.3182504758412349,
        "box_AP": None,
        "mean_px": 3.0454683291672153,
        "median_px": 1.9669823093672583,
        "p95_px": 8.121169853989782,
        "miss_rate": 0.20833333333333337,
        "cls_acc": 0.7916666666666666,
        "per_class": {
            "0": 0.5445073078736445, "1": 0.2561276127612761, "2": 0.2524752475247525, "3": 0.23267326732673269,
            "4": 0.19834983498349837, "5": 0.1739273927392739, "6": 0.5736462217650337, "7": 0.4568953323903819,
            "8": 0.3336633663366337, "9": None,
        },
        "num_images": 16,
        "num_gt": 48,
        "num_dets": 86,
    },
}


# format_table of the "bbox/0.05" scores before the change (plus the later recall line, at threshold 0.5).
TABLE = """\
images 16   ground-truth digits 48   detections 86

keypoint AP        0.188   AP50 0.267   AP75 0.205
box AP             0.366
point error px      2.15   median 1.75   p95 5.00
miss rate          0.312
class accuracy     0.688
recall             0.333   precision 0.320   at score >= 0.5, within 3 px

keypoint AP per class
class       0      1      2      3      4      5      6      7      8      9
AP      0.460  0.123  0.252  0.129  0.110  0.118  0.227  0.271  0.000      -
"""


@pytest.mark.parametrize("case", sorted(EXPECTED))
def test_k1_scores_are_unchanged(case: str) -> None:
    with_bbox, sigma = case.split("/")
    gt = k1_ground_truth()
    scores = evaluate(gt, k1_results(gt, with_bbox == "bbox"), sigma=float(sigma))
    expected = EXPECTED[case]
    assert set(SCORE_KEYS) == set(expected) | set(LATER_KEYS)
    for key in expected:
        assert key in scores
        if key == "per_class":
            assert list(scores[key]) == list(expected[key])
            for c, ap in expected[key].items():
                assert scores[key][c] == (None if ap is None else pytest.approx(ap, rel=1e-12, abs=1e-15)), c
        elif expected[key] is None or isinstance(expected[key], int):
            assert scores[key] == expected[key], key
        else:
            assert scores[key] == pytest.approx(expected[key], rel=1e-12, abs=1e-15), key
    assert format_table(scores).startswith(f"images {expected['num_images']}")


def test_k1_table_is_unchanged() -> None:
    gt = k1_ground_truth()
    # An explicit threshold: the table's recall line must not move when DEFAULT_SCORE_THRESHOLD is re-measured.
    assert format_table(evaluate(gt, k1_results(gt, True), threshold=0.5)) + "\n" == TABLE
