"""Score a COCO results file against a COCO keypoints ground truth (docs/task.md, "Scores").

The ground truth defines the task: its categories (any ids) and each category's list of keypoint names;
annotations and results carry 3 numbers [x, y, v] per keypoint of their category.

examples:
  ocrloc evaluate --gt data/test_all10/annotations.json --results runs/quickstart/test_results.json
  ocrloc evaluate --gt test.json --results dets.json --sigma 0.05 --json
  ocrloc evaluate --gt test.json --results dets.json --threshold 0.5   # recall and precision at score >= 0.5
  ocrloc evaluate --gt glyphs.json --results dets.json --sigma 0.05 0.08   # one sigma per keypoint name
  ocrloc evaluate --gt test.json --oracle      # the ground truth as results: all scores perfect

Recall and precision are those of the detections scoring >= --threshold: a detection finds a ground-truth
object of its own class whose every labelled keypoint is within 3 px of its own, one detection per object.

Prints a table (with a per-keypoint block when the categories name more than one keypoint); with --json the
last line is one JSON object with the scores (keys in ocrloc.evaluation.SCORE_KEYS, then DETAIL_KEYS). Bad
input prints `error: FILE: entry N: ...` (or `error: --threshold ...`) on stderr and exits 2. `python tools/evaluate.py` takes the same
arguments.
"""

from __future__ import annotations

import argparse
import json
import sys
from typing import Optional, Sequence

from ocrloc.cli._common import fail, score_threshold, standalone_main
from ocrloc.constants import DEFAULT_SCORE_THRESHOLD, DEFAULT_SIGMA


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The options of ``ocrloc evaluate``."""
    parser.add_argument("--gt", required=True,
                        help="COCO keypoints ground truth JSON (docs/task.md, 'Ground-truth and results files')")
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument("--results", help="COCO results JSON: a list of detections")
    source.add_argument("--oracle", action="store_true",
                        help="score the ground truth itself as results (checks the file and the scoring)")
    parser.add_argument("--sigma", type=float, nargs="+", default=DEFAULT_SIGMA, metavar="SIGMA",
                        help="OKS sigma, > 0: one value for every keypoint, or one per keypoint name (in the "
                             "categories' keypoint order; only when all categories share one list of names) "
                             f"(default {DEFAULT_SIGMA})")
    parser.add_argument("--threshold", default=DEFAULT_SCORE_THRESHOLD, metavar="T",
                        help="score threshold in [0, 1] of recall and precision: the detections scoring >= T are "
                             "the ones kept (default %(default)s)")
    parser.add_argument("--json", action="store_true", help="also print the scores as one JSON line, last")


def run(args: argparse.Namespace) -> int:
    """Run the evaluation; return the exit status (0, or 2 for bad input)."""
    try:
        threshold = score_threshold(args.threshold)
    except ValueError as err:
        return fail(err)
    from ocrloc.evaluation import EvaluationInputError, evaluate, format_table, ground_truth_as_results

    try:
        results = ground_truth_as_results(args.gt) if args.oracle else args.results
        scores = evaluate(args.gt, results, sigma=args.sigma, threshold=threshold)
    except EvaluationInputError as err:
        # A user error, not a bug: one line, no traceback, the same status argparse uses for bad usage.
        return fail(err)
    print(format_table(scores))
    if args.json:
        print(json.dumps(scores, allow_nan=False))
    return 0


def main(argv: Optional[Sequence[str]] = None) -> int:
    """``python tools/evaluate.py``: parse ``argv`` (``None``: ``sys.argv[1:]``) and evaluate."""
    return standalone_main(__doc__, add_arguments, run, argv)


if __name__ == "__main__":
    sys.exit(main())
