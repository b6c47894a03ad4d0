"""Train a detector from a config (a name or a YAML file).

examples:
  ocrloc train --config quickstart --out runs/quickstart
  ocrloc train --config quickstart --out runs/quickstart --resume
  ocrloc train --config canvas128_all10 --set train.steps=500 --set model.backbone=resnet10t
  torchrun --nproc_per_node 2 tools/train.py --config ... --out ...    # DDP (gloo on CPU, nccl on CUDA)

`python tools/train.py` takes the same arguments.
"""

from __future__ import annotations

import argparse
import shlex
import sys
from pathlib import Path
from typing import Optional, Sequence

from ocrloc.cli._common import fail, standalone_main


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The options of ``ocrloc train``."""
    parser.add_argument("--config", default=None, metavar="NAME_OR_FILE",
                        help="config name (e.g. quickstart) or YAML file of overrides over the defaults in "
                             "ocrloc/config.py (default: the defaults alone)")
    parser.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                        help="override one value, e.g. --set train.steps=200 (repeatable)")
    parser.add_argument("--out", default=None, help="run folder (default: runs/<config name>)")
    parser.add_argument("--resume", action="store_true",
                        help="continue the run in --out from checkpoints/last.pt, with the run's own config.yaml "
                             "(--config is not needed; --set may change only train.steps, val_every, log_every, "
                             "checkpoint_every, device, threads, data.num_workers, data.data_root)")
    parser.add_argument("--data-root", default=None,
                        help="folder holding MNIST/raw/ (same as --set data.data_root=...)")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar (logs still go to metrics.csv)")


def next_steps(preset: Optional[str], rule: Optional[str], out: Path) -> str:
    """The commands that score and export a finished run: its own preset and rule (a run on a COCO
    folder has neither: its own test folder takes their place), its best checkpoint."""
    best = out / "checkpoints" / "best.pt"
    q = lambda value: shlex.quote(str(value))  # noqa: E731
    if preset is None:
        test = Path("YOUR_TEST_FOLDER")
        make = "  # a test folder like the training folder (images/ + annotations.json)\n"
    else:
        test = Path("data") / f"test_{Path(rule).stem if rule else preset}"
        make = (f"  ocrloc make-dataset --preset {q(preset)}" + (f" --rule {q(rule)}" if rule else "")
                + f" --split test --count 1000 --seed 1000 --out {q(test)}\n")
    return ("next:\n" + make +
            f"  ocrloc predict --checkpoint {q(best)} --images {q(test / 'images')} "
            f"--out {q(out / 'test_results.json')} --threshold 0\n"
            f"  ocrloc evaluate --gt {q(test / 'annotations.json')} --results {q(out / 'test_results.json')}\n"
            f"  ocrloc report --gt {q(test / 'annotations.json')} --results {q(out / 'test_results.json')} "
            f"--run {q(out)} --out {q(out / 'report')}\n"
            f"  ocrloc export --checkpoint {q(best)} --out {q(out / 'model.pt')}")


def run(args: argparse.Namespace) -> int:
    """Train; return 0, or 2 (one ``error:`` line) for a bad config, rule, data, checkpoint or run
    folder, missing MNIST, a run folder in use, or a loss that stopped being finite."""
    from ocrloc.config import ConfigError, load_config
    from ocrloc.data.mnist import MnistNotFoundError
    from ocrloc.data.rules import get_rule
    from ocrloc.engine.runlock import RunLockedError
    from ocrloc.engine.runs import resume_config
    from ocrloc.engine.trainer import Trainer
    from ocrloc.evaluation import format_table

    overrides = list(args.overrides)
    if args.data_root:
        overrides.append(f"data.data_root={args.data_root}")
    out = Path(args.out or Path("runs") / (Path(args.config).stem if args.config else "default"))
    try:
        if args.resume:  # the run remembers how it was made: its config.yaml, not today's --config
            config = resume_config(out, overrides)
            if args.config:
                print(f"note: --resume continues {out} with its own config.yaml; --config {args.config} is not read",
                      file=sys.stderr)
        else:
            config = load_config(args.config, overrides)
        get_rule(config.data.rule)  # an unknown rule or a bad rule file fails here, in one line
    except (ConfigError, ValueError, FileNotFoundError) as err:
        return fail(err)
    try:
        trainer = Trainer(config, out, resume=args.resume, progress=not args.no_progress)
        scores = trainer.fit()
    except (ValueError, OSError, MnistNotFoundError, RunLockedError, FloatingPointError) as err:
        # ValueError: config, data (DataError) and checkpoint errors; OSError: an --out that cannot
        # be written; each says what and where in one line.
        return fail(err)
    if trainer.ctx.is_main:
        print(f"\nfinal validation scores (step {trainer.step}, {trainer.wall_s / 60:.1f} min of training):")
        print(format_table(scores))
        print(f"\nrun folder: {out}\n{next_steps(trainer.meta['preset'], trainer.meta['rule'], out)}")
    return 0


def main(argv: Optional[Sequence[str]] = None) -> int:
    """``python tools/train.py``: parse ``argv`` (``None``: ``sys.argv[1:]``) and train."""
    return standalone_main(__doc__, add_arguments, run, argv)


if __name__ == "__main__":
    sys.exit(main())
