"""Run a folder of configs over rules and seeds; write a markdown table of mean ± std.

examples:
  ocrloc experiment --configs research/head_study --rules all10 seed37 \\
      --seeds 0 1 2 --out runs/head_study --table docs/head_study_table.md

A --configs item is a YAML file, a folder of them, or the name of a config or folder shipped in
configs/ (research/head_study: every YAML file in it, in name order).

Runs live in OUT/<rule>/<config>/seed<k>; finished runs are reused and partial ones
resumed, so the study can grow across sessions. Each run is scored on one fixed in-memory
test set per rule (--test-count canvases of MNIST test digits, --test-seed): point
error at the predicted class, PCK at 0.5 and 1 px, class accuracy. The table is written to
OUT/table.md (and --table) after every row; the rows with every seed to OUT/rows.json.

--fidelity PATH then writes a second table (also OUT/fidelity.md): for the rows whose
head reads coordinates, how exactly their learned features give the named points (docs/task.md), in
pixels (ocrloc.research.head_study.fidelity_rows).
`python tools/experiment.py` takes the same arguments.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import List, Optional, Sequence

import ocrloc

from ocrloc.cli._common import fail, standalone_main


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The options of ``ocrloc experiment``."""
    parser.add_argument("--configs", nargs="+", required=True,
                        help="YAML configs, folders of them, or names of shipped ones (one row each)")
    parser.add_argument("--rules", nargs="+", default=["all10", "seed37"],
                        help="point rules, each its own table section (default: all10 seed37)")
    parser.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2],
                        help="training seeds of every config and rule (default: 0 1 2)")
    parser.add_argument("--out", required=True, help="folder of the run folders and the tables")
    parser.add_argument("--table", default=None, help="also write the markdown table here")
    parser.add_argument("--fidelity", default=None, metavar="PATH",
                        help="also write the feature-fidelity table of the coordinate heads here")
    parser.add_argument("--test-count", type=int, default=2000,
                        help="test canvases per rule (default: %(default)s)")
    parser.add_argument("--test-seed", type=int, default=1000, help="seed of the test canvases (default: %(default)s)")
    parser.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                        help="override a value in every config (repeatable)")
    parser.add_argument("--device", default="auto",
                        help="auto (CUDA if available, else CPU), cpu, cuda, cuda:N (default: %(default)s)")
    parser.add_argument("--no-progress", action="store_true", help="no progress bars")


# The configs shipped with the package (config names are paths below it).
PACKAGED_CONFIGS = Path(ocrloc.__file__).resolve().parent / "configs"


def expand_configs(items: Sequence[str], packaged: Path = PACKAGED_CONFIGS) -> List[Path]:
    """The config files of ``--configs``: a folder gives its ``*.yaml`` files in name order; a name
    that is no file or folder here but a folder of ``packaged`` gives that folder's files; anything
    else is passed on as it is (a file, or a config name that ``load_config`` resolves)."""
    paths: List[Path] = []
    from ocrloc.config import MOVED_CONFIGS

    for item in map(Path, items):
        for old, new in MOVED_CONFIGS.items():  # a folder's old name (experiments/head_study) still works
            if not item.exists() and (item.as_posix() + "/").startswith(old):
                item = Path(new + (item.as_posix() + "/")[len(old):])
        if not item.exists() and (packaged / item).is_dir():
            item = packaged / item
        paths += sorted(item.glob("*.yaml")) if item.is_dir() else [item]
    return paths


def run(args: argparse.Namespace) -> int:
    """Run the study; return 0, or 2 for no configs, a bad config or rule, or missing MNIST."""
    paths = expand_configs(args.configs)
    if not paths:
        return fail(f"no YAML configs in {' '.join(args.configs)}")

    from ocrloc.config import ConfigError
    from ocrloc.data.mnist import MnistNotFoundError
    from ocrloc.research.head_study import experiment_table, fidelity_rows, fidelity_table, run_experiments
    from ocrloc.utils.io import write_json_atomic, write_text_atomic

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
        return fail(err)
    print(title + "\n\n" + experiment_table(rows))
    if args.fidelity:
        fidelity = fidelity_rows(paths, args.rules, args.seeds, out, args.test_count, args.test_seed, args.overrides,
                                 args.device)
        text = (f"Median absolute error in canvas pixels, mean over seeds, on {args.test_count} test canvases "
                f"(seed {args.test_seed}) per rule: the ink box's edges from the best single feature (affine fit), "
                f"and each named point from all features (linear fit on half the canvases, measured on the other half)."
                f"\n\n{fidelity_table(fidelity)}")
        for path in (out / "fidelity.md", Path(args.fidelity)):
            write_text_atomic(text, path)
        print(text)
    return 0


def main(argv: Optional[Sequence[str]] = None) -> int:
    """``python tools/experiment.py``: parse ``argv`` (``None``: ``sys.argv[1:]``) and run the study."""
    return standalone_main(__doc__, add_arguments, run, argv)


if __name__ == "__main__":
    sys.exit(main())
