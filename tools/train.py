#!/usr/bin/env python
"""Train a detector from a YAML config.

    python tools/train.py --config configs/quickstart.yaml --out runs/quickstart
    python tools/train.py --config configs/quickstart.yaml --out runs/quickstart --resume
    torchrun --nproc_per_node 2 tools/train.py --config ... --out ...      # DDP (gloo on CPU, nccl on CUDA)
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from ocrloc.config import ConfigError, load_config
from ocrloc.data.mnist import MnistNotFoundError
from ocrloc.data.rules import get_rule
from ocrloc.engine.trainer import Trainer
from ocrloc.evaluation import format_table


def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--config", default=None, help="YAML file of overrides over the defaults in ocrloc/config.py")
    p.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                   help="override one value, e.g. --set train.steps=200 (repeatable)")
    p.add_argument("--out", default=None, help="run folder (default: runs/<config name>)")
    p.add_argument("--resume", action="store_true", help="continue the run in --out from checkpoints/last.pt")
    p.add_argument("--data-root", default=None, help="folder holding MNIST/raw/ (same as --set data.data_root=...)")
    p.add_argument("--no-progress", action="store_true", help="no progress bar (logs still go to metrics.csv)")
    return p.parse_args(argv)


def main(argv=None) -> int:
    args = parse_args(argv)
    overrides = list(args.overrides)
    if args.data_root:
        overrides.append(f"data.data_root={args.data_root}")
    try:
        config = load_config(args.config, overrides)
        get_rule(config.data.rule)  # an unknown rule or a bad rule file fails here, in one line
    except (ConfigError, ValueError, FileNotFoundError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    try:
        out = Path(args.out or Path("runs") / (Path(args.config).stem if args.config else "default"))
        trainer = Trainer(config, out, resume=args.resume, progress=not args.no_progress)
        scores = trainer.fit()
    except (ConfigError, FileNotFoundError, FileExistsError, MnistNotFoundError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    if trainer.ctx.is_main:
        print(f"\nfinal validation scores (step {trainer.step}, {trainer.wall_s / 60:.1f} min of training):")
        print(format_table(scores))
        best = out / "checkpoints" / "best.pt"
        d = config.data
        test = f"data/test_{Path(d.rule).stem}"
        print(f"\nrun folder: {out}\nnext:\n"
              f"  python tools/make_dataset.py --preset {d.preset} --rule {d.rule} --split test --count 1000 --seed 1000 --out {test}\n"
              f"  python tools/predict.py --checkpoint {best} --images {test}/images --out {out}/test_results.json\n"
              f"  python tools/evaluate.py --gt {test}/annotations.json --results {out}/test_results.json\n"
              f"  python tools/export.py --checkpoint {best} --out {out}/model.pt")
    return 0


if __name__ == "__main__":
    sys.exit(main())
