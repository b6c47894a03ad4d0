"""Train or reuse each config at one budget, score all on one test split, write a markdown table.

examples:
  ocrloc make-dataset --split test --rule all10 --count 1000 --seed 1000 --out data/test_all10
  ocrloc compare --rule all10 --steps 550 --test data/test_all10 --out runs/compare_all10 \\
      --configs compare/centernet compare/argmax compare/retinanet compare/ssd compare/fcos compare/keypointrcnn

A config is the name of one shipped in configs/ (compare/argmax) or a YAML file; its
file stem names its row.

Run folders are OUT/<config name>: a finished run is reused and a partial one resumed,
so the table can be extended one config at a time. The table is printed and written to
OUT/table.md (and --table) after every row; the rows go to OUT/rows.json.
`python tools/compare.py` takes the same arguments.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Optional, Sequence

from ocrloc.cli._common import fail, standalone_main


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The options of ``ocrloc compare``."""
    parser.add_argument("--configs", nargs="+", required=True,
                        help="config names or YAML files, one row each (the file stem names the row)")
    parser.add_argument("--rule", required=True, help="point rule of every row (all10, seed37, or a rule file)")
    parser.add_argument("--steps", type=int, required=True, help="training steps of every row (the shared budget)")
    parser.add_argument("--test", required=True, help="test split folder written by ocrloc make-dataset")
    parser.add_argument("--out", required=True, help="folder of the run folders and the table")
    parser.add_argument("--table", default=None, help="also write the markdown table here")
    parser.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                        help="override a value in every config (repeatable)")
    parser.add_argument("--device", default="auto",
                        help="auto (CUDA if available, else CPU), cpu, cuda, cuda:N (default: %(default)s)")
    parser.add_argument("--no-progress", action="store_true", help="no progress bars")


def run(args: argparse.Namespace) -> int:
    """Compare; return 0, or 2 for a bad config, rule, test split or missing MNIST."""
    from ocrloc.config import ConfigError
    from ocrloc.data.mnist import MnistNotFoundError
    from ocrloc.engine.compare import comparison_table, compare_configs
    from ocrloc.evaluation import EvaluationInputError
    from ocrloc.utils.io import write_json_atomic, write_text_atomic

    out = Path(args.out)
    title = (f"Rule `{args.rule}`, {args.steps} training steps per model, test split `{args.test}`"
             " (scored once, best.pt chosen on val).")

    def save(rows):
        write_json_atomic(rows, out / "rows.json")
        for path in [out / "table.md"] + ([Path(args.table)] if args.table else []):
            write_text_atomic(f"{title}\n\n{comparison_table(rows)}", path)

    try:
        rows = compare_configs(args.configs, args.rule, args.steps, args.test, out, args.overrides, args.device,
                               progress=not args.no_progress, on_row=save)
    except (ConfigError, FileNotFoundError, FileExistsError, ValueError, MnistNotFoundError,
            EvaluationInputError) as err:
        return fail(err)
    print(title + "\n\n" + comparison_table(rows))
    return 0


def main(argv: Optional[Sequence[str]] = None) -> int:
    """``python tools/compare.py``: parse ``argv`` (``None``: ``sys.argv[1:]``) and compare."""
    return standalone_main(__doc__, add_arguments, run, argv)


if __name__ == "__main__":
    sys.exit(main())
