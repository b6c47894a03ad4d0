#!/usr/bin/env python
"""Run a folder of configs over rules and seeds; write a markdown table of mean ± std.

    python tools/experiment.py --configs configs/experiments/head_study --rules all10 seed37 \\
        --seeds 0 1 2 --out runs/head_study --table docs/head_study_table.md

Runs live in ``OUT/<rule>/<config>/seed<k>``; finished runs are reused and partial ones
resumed, so the study can grow across sessions. Each run is scored on one fixed in-memory
test set per rule (``--test-count`` canvases of MNIST test digits, ``--test-seed``): point
error at the predicted class, PCK at 0.5 and 1 px, class accuracy. The table is written to
``OUT/table.md`` (and ``--table``) after every row; the rows with every seed to ``OUT/rows.json``.

``--fidelity PATH`` then writes a second table (also ``OUT/fidelity.md``): for the rows whose
head reads coordinates, how exactly their learned features give the SPEC's named points, in
pixels (``ocrloc.engine.experiment.fidelity_rows``).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from ocrloc.config import ConfigError
from ocrloc.data.mnist import MnistNotFoundError
from ocrloc.engine.experiment import experiment_table, fidelity_rows, fidelity_table, run_experiments
from ocrloc.utils.io import write_json_atomic, write_text_atomic


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--configs", nargs="+", required=True, help="YAML configs and/or folders of them (one row each)")
    p.add_argument("--rules", nargs="+", default=["all10", "seed37"])
    p.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2])
    p.add_argument("--out", required=True)
    p.add_argument("--table", default=None, help="also write the markdown table here")
    p.add_argument("--fidelity", default=None, metavar="PATH",
                   help="also write the feature-fidelity table of the coordinate heads here")
    p.add_argument("--test-count", type=int, default=2000)
    p.add_argument("--test-seed", type=int, default=1000)
    p.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                   help="override a value in every config (repeatable)")
    p.add_argument("--device", default="auto")
    p.add_argument("--no-progress", action="store_true")
    args = p.parse_args(argv)
    paths = []
    for item in map(Path, args.configs):
        paths += sorted(item.glob("*.yaml")) if item.is_dir() else [item]
    if not paths:
        print(f"error: no YAML configs in {' '.join(args.configs)}", file=sys.stderr)
        return 2
    out = Path(args.out)
    title = (f"Mean ± std over seeds {', '.join(map(str, args.seeds))}; {args.test_count} test canvases "
             f"(MNIST test digits, seed {args.test_seed}) per rule; best.pt of each run, chosen on val.")

    def save(rows):
        write_json_atomic(rows, out / "rows.json")
        for path in [out / "table.md"] + ([Path(args.table)] if args.table else []):
            write_text_atomic(f"{title}\n\n{experiment_table(rows)}", path)

    try:
        rows = run_experiments(paths, args.rules, args.seeds, out, args.test_count, args.test_seed, args.overrides,
                               args.device, progress=not args.no_progress, on_row=save)
    except (ConfigError, FileNotFoundError, FileExistsError, ValueError, MnistNotFoundError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    print(title + "\n\n" + experiment_table(rows))
    if args.fidelity:
        fidelity = fidelity_rows(paths, args.rules, args.seeds, out, args.test_count, args.test_seed, args.overrides,
                                 args.device)
        text = (f"Median absolute error in canvas pixels, mean over seeds, on {args.test_count} test canvases (seed {args.test_seed}) "
                f"per rule: the ink box's edges from the best single feature (affine fit), and each named point "
                f"from all features (linear fit on half the canvases, measured on the other half)."
                f"\n\n{fidelity_table(fidelity)}")
        for path in (out / "fidelity.md", Path(args.fidelity)):
            write_text_atomic(text, path)
        print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
