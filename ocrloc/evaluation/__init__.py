"""Scores of SPEC section 7: keypoint and box AP, point error, miss rate, class accuracy."""

from .evaluator import DEFAULT_SIGMA, SCORE_KEYS, evaluate, format_table, ground_truth_as_results
from .matching import PointMatches, match_points, oks
from .inputs import EvaluationInputError

__all__ = [
    "DEFAULT_SIGMA",
    "SCORE_KEYS",
    "EvaluationInputError",
    "PointMatches",
    "evaluate",
    "format_table",
    "ground_truth_as_results",
    "match_points",
    "oks",
]
