"""The scores of ``docs/task.md``, "Scores": keypoint and box AP, point error, miss rate, class accuracy.

The ground truth defines the task (categories with any ids, each with its own list of keypoint names); see
:mod:`ocrloc.evaluation.evaluator` for the scores and :mod:`ocrloc.evaluation.inputs` for what is checked.
"""

from .evaluator import DEFAULT_SIGMA, DETAIL_KEYS, SCORE_KEYS, evaluate, format_table, ground_truth_as_results
from .matching import PointMatches, match_points, oks
from .inputs import EvaluationInputError

__all__ = [
    "DEFAULT_SIGMA",
    "DETAIL_KEYS",
    "SCORE_KEYS",
    "EvaluationInputError",
    "PointMatches",
    "evaluate",
    "format_table",
    "ground_truth_as_results",
    "match_points",
    "oks",
]
