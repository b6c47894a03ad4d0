"""Score a COCO results file against a COCO keypoints ground truth (SPEC section 7).

    python tools/evaluate.py --gt test.json --results dets.json [--sigma 0.05] [--json]
    python tools/evaluate.py --gt test.json --oracle      # the ground truth as results: all scores perfect

Prints a table; with ``--json`` the last line is one JSON object with the scores (keys in
``ocrloc.evaluation.SCORE_KEYS``). Bad input prints ``error: FILE: entry N: ...`` on stderr and exits 2.
"""

from __future__ import annotations

import argparse
import json
import sys

from ocrloc.evaluation import DEFAULT_SIGMA, EvaluationInputError, evaluate, format_table, ground_truth_as_results


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    """Parse the command line.

    Args:
        argv: arguments without the program name; ``None`` reads ``sys.argv``.
    """
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--gt", required=True, help="COCO keypoints ground truth JSON (SPEC 6)")
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument("--results", help="COCO results JSON: a list of detections")
    source.add_argument("--oracle", action="store_true",
                        help="score the ground truth itself as results (checks the file and the scoring)")
    parser.add_argument("--sigma", type=float, default=DEFAULT_SIGMA,
                        help=f"OKS sigma of the point, > 0 (default {DEFAULT_SIGMA})")
    parser.add_argument("--json", action="store_true", help="also print the scores as one JSON line, last")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    """Run the evaluation; return the exit status (0, or 2 for bad input).

    Args:
        argv: arguments without the program name; ``None`` reads ``sys.argv``.
    """
    args = parse_args(argv)
    try:
        results = ground_truth_as_results(args.gt) if args.oracle else args.results
        scores = evaluate(args.gt, results, sigma=args.sigma)
    except EvaluationInputError as e:
        # A user error, not a bug: one line, no traceback, the same status argparse uses for bad usage.
        print(f"error: {e}", file=sys.stderr)
        return 2
    print(format_table(scores))
    if args.json:
        print(json.dumps(scores, allow_nan=False))
    return 0


if __name__ == "__main__":
    sys.exit(main())
