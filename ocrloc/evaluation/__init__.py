"""The scores of ``docs/task.md``, "Scores": keypoint and box AP, point error, miss rate, class accuracy, and
recall and precision at a score threshold (:data:`DEFAULT_SCORE_THRESHOLD`, from :mod:`ocrloc.constants`).

The ground truth defines the task (categories with any ids, each with its own list of keypoint names); see
:mod:`ocrloc.evaluation.evaluator` for the scores and :mod:`ocrloc.evaluation.inputs` for what is checked.
"""

from ocrloc.constants import DEFAULT_SCORE_THRESHOLD

from .evaluator import DEFAULT_SIGMA, DETAIL_KEYS, SCORE_KEYS, evaluate, format_table, ground_truth_as_results
from .matching import POINT_MATCH_PX, PointMatches, match_points, match_within_px, oks
from .inputs import EvaluationInputError

__all__ = [
    "DEFAULT_SCORE_THRESHOLD",
    "DEFAULT_SIGMA",
    "DETAIL_KEYS",
    "SCORE_KEYS",
    "EvaluationInputError",
    "POINT_MATCH_PX",
    "PointMatches",
    "evaluate",
    "format_table",
    "ground_truth_as_results",
    "match_points",
    "match_within_px",
    "oks",
]
