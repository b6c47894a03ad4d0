#!/usr/bin/env python
"""Train or reuse each config at one budget, score all on one test split, write a markdown table.

    python tools/make_dataset.py --split test --rule all10 --count 1000 --seed 1000 --out data/test_all10
    python tools/compare.py --rule all10 --steps 550 --test data/test_all10 --out runs/compare_all10 \\
        --configs configs/compare/*.yaml

Run folders are ``OUT/<config name>``: a finished run is reused and a partial one resumed,
so the table can be extended one config at a time. The table is printed and written to
``OUT/table.md`` (and ``--table``) after every row; the rows go to ``OUT/rows.json``.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from ocrloc.config import ConfigError
from ocrloc.data.mnist import MnistNotFoundError
from ocrloc.engine.compare import comparison_table, compare_configs
from ocrloc.evaluation import EvaluationInputError
from ocrloc.utils.io import write_json_atomic, write_text_atomic


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--configs", nargs="+", required=True, help="YAML configs, one row each (the file stem names the row)")
    p.add_argument("--rule", required=True, help="point rule of every row (all10, seed37)")
    p.add_argument("--steps", type=int, required=True, help="training steps of every row (the shared budget)")
    p.add_argument("--test", required=True, help="test split folder written by tools/make_dataset.py")
    p.add_argument("--out", required=True, help="folder of the run folders and the table")
    p.add_argument("--table", default=None, help="also write the markdown table here")
    p.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                   help="override a value in every config (repeatable)")
    p.add_argument("--device", default="auto")
    p.add_argument("--no-progress", action="store_true")
    args = p.parse_args(argv)
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
        print(f"error: {err}", file=sys.stderr)
        return 2
    print(title + "\n\n" + comparison_table(rows))
    return 0


if __name__ == "__main__":
    sys.exit(main())
