"""Draw an evaluation as pictures: one folder of PNGs and an index.html showing them.

From a COCO keypoints ground truth and a results file (and optionally a training run folder) it writes
precision-recall curves per class (OKS 0.50 and 0.75), a confusion matrix (true class vs the class of the
matched detection, misses as their own column), a reliability diagram of the scores (score bins vs the fraction
of their detections that are correct: same class, every point within 3 px) with recall and precision at
--threshold, point-error histograms and cumulative curves per class (and
per keypoint name), the worst-placed points of each class on their crops (the images named by the ground
truth, relative to its folder), and with --run the loss and validation curves of its metrics.csv.
report.json beside the PNGs holds the numbers they draw; the scores are `ocrloc evaluate`'s.

examples:
  ocrloc report --gt data/test_all10/annotations.json --results runs/quickstart/test_results.json \\
      --run runs/quickstart --out runs/quickstart/report
  ocrloc report --gt glyphs_test/annotations.json --results dets.json --sigma 0.05 --worst 5 --out report/
  ocrloc report --gt test.json --results dets.json --threshold 0.5 --out report/   # recall, precision at 0.5

The folder is written whole or not at all (an older report there is replaced). Bad input prints
`error: FILE: ...` (or `error: --threshold ...`) on stderr and exits 2. `python tools/report.py` takes the same arguments.
"""

from __future__ import annotations

import argparse
import sys
from typing import Optional, Sequence

from ocrloc.cli._common import fail, score_threshold, standalone_main
from ocrloc.constants import DEFAULT_SCORE_THRESHOLD, DEFAULT_SIGMA


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The options of ``ocrloc report``."""
    parser.add_argument("--gt", required=True, help="COCO keypoints ground truth JSON; the gallery reads the images "
                                                    "its file_name entries name, relative to its folder")
    parser.add_argument("--results", required=True, help="COCO results JSON for it (what ocrloc predict writes)")
    parser.add_argument("--out", required=True, help="report folder to write (index.html, PNGs, report.json)")
    parser.add_argument("--run", default=None, metavar="RUN_DIR",
                        help="a training run folder: also draw the loss and validation curves of its metrics.csv")
    parser.add_argument("--sigma", type=float, nargs="+", default=DEFAULT_SIGMA, metavar="SIGMA",
                        help=f"OKS sigma, as for ocrloc evaluate: one value, or one per keypoint name "
                             f"(default {DEFAULT_SIGMA})")
    parser.add_argument("--threshold", default=DEFAULT_SCORE_THRESHOLD, metavar="T",
                        help="score threshold in [0, 1] of the recall and precision the report gives: the "
                             "detections scoring >= T are the ones kept (default %(default)s)")
    parser.add_argument("--worst", type=int, default=8, metavar="N",
                        help="worst-placed points drawn per class (default: %(default)s)")


def run(args: argparse.Namespace) -> int:
    """Write the report; return the exit status (0, or 2 for bad input)."""
    try:
        threshold = score_threshold(args.threshold)
    except ValueError as err:
        return fail(err)
    from ocrloc.report import EvaluationInputError, ReportError, write_report

    try:
        index = write_report(args.gt, args.results, args.out, args.run, sigma=args.sigma, worst_per_class=args.worst,
                             threshold=threshold)
    except (EvaluationInputError, ReportError) as err:
        # A user error, not a bug: one line, no traceback, the same status argparse uses for bad usage.
        return fail(err)
    print(f"wrote {index}")
    return 0


def main(argv: Optional[Sequence[str]] = None) -> int:
    """``python tools/report.py``: parse ``argv`` (``None``: ``sys.argv[1:]``) and write the report."""
    return standalone_main(__doc__, add_arguments, run, argv)


if __name__ == "__main__":
    sys.exit(main())
