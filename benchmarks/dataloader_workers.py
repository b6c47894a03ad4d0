#!/usr/bin/env python
"""Training speed with and without a DataLoader worker process, per config.

    python benchmarks/dataloader_workers.py                      # study row 06 and the quickstart
    python benchmarks/dataloader_workers.py --configs configs/quickstart.yaml --steps 40 --workers 0 1 2

Each (config, workers) trains ``--steps`` steps from scratch in a temporary folder through
:class:`ocrloc.engine.trainer.Trainer` (validation on a handful of canvases, excluded from
the time) and reports the trainer's own training wall time. The first row of each config
(``--workers``' first value, 1 by default: ocrloc's default ``data.num_workers``) is the
baseline of the speed-up column. Same seed, same batches: only the process layout differs.

Why it exists: on a 2-core machine a worker process competes with torch's threads in the
main process. For the head study's tiny steps (~0.07 s) that cost more than the canvas
generation it takes off the main process, so its configs set ``data.num_workers: 0``.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

from ocrloc.config import load_config
from ocrloc.engine.trainer import Trainer

DEFAULT_CONFIGS = ["configs/research/head_study/06_extremes.yaml", "configs/quickstart.yaml"]


def time_training(config_path: str, workers: int, steps: int) -> dict:
    config = load_config(config_path, [f"data.num_workers={workers}", f"train.steps={steps}",
                                       f"train.val_every={steps}", f"train.log_every={steps}", "data.val_count=8",
                                       "optim.warmup_steps=1"])
    with tempfile.TemporaryDirectory() as run_dir:
        trainer = Trainer(config, Path(run_dir) / "run", progress=False)
        trainer.fit()
    return {"train_s": trainer.wall_s, "s_per_step": trainer.wall_s / steps,
            "img_per_s": steps * config.train.batch_size / trainer.wall_s}


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--configs", nargs="+", default=DEFAULT_CONFIGS)
    p.add_argument("--workers", nargs="+", type=int, default=[1, 0], help="first value is the baseline")
    p.add_argument("--steps", type=int, default=60)
    args = p.parse_args(argv)
    print("| config | num_workers | steps | train s | s/step | img/s | speed-up vs first |")
    print("|---|---|---|---|---|---|---|")
    for path in args.configs:
        baseline = None
        for workers in args.workers:
            r = time_training(path, workers, args.steps)
            baseline = baseline or r["s_per_step"]
            print(f"| {Path(path).stem} | {workers} | {args.steps} | {r['train_s']:.1f} | {r['s_per_step']:.3f} | "
                  f"{r['img_per_s']:.1f} | {baseline / r['s_per_step']:.2f}x |", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
