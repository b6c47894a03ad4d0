#!/usr/bin/env python
"""Training speed against the backbone's own limit, per detector family, dtype, threads and workers.

    python benchmarks/train_step.py            # the full table (~10 min on 2 cores)
    python benchmarks/train_step.py --quick    # a smoke run: one round, one timed step
    # what the point map costs a step: each config with and without it
    python benchmarks/train_step.py --families quickstart quickstart_no_map argmax argmax_no_map --threads 2 --workers 0

In one process, in interleaved rounds (every cell once per round, after a warm-up step; the
median of the rounds is reported, so a noisy minute of a shared machine touches one sample):

* ``bare``: the backbone alone (timm ``features_only``, the levels the trunk takes, built as far
  as the config's ``model.max_stride``: the part the detector runs), forward + backward + AdamW,
  on the same batch: the ceiling of a train step;
* ``step``: one full training step of a family on its config (``configs/compare/*.yaml``
  and the quickstart), the trainer's own ``step_loss`` + ``step_update`` on a fixed batch of
  real canvases; an argmax family first trains on that batch until its characters skip the
  point map (``Family.settle``), as they do after the first steps of a run on a rule whose points
  the closed form places (``quickstart_map_all`` times the step of those first steps);
* ``data``: canvases per second of the training data alone (generation + collation, main process);
* ``loop``: the trainer's real loop (DataLoader + step) for each threads x workers layout.

fp32 and bf16 (autocast) are both measured on the bare backbones; when bf16 is slower there (a
CPU without bf16 instructions), the bf16 train steps are skipped and the table says so.
Last line: one JSON object with ``step_over_bare`` per family, ``centernet_over_retinanet``,
``argmax_over_retinanet`` and the layout that trained fastest.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
from typing import Callable, Dict, List, Tuple

import torch

from ocrloc.config import load_config
from ocrloc.data.build import canvas_generator
from ocrloc.data.datasets import SyntheticCanvasDataset, collate_detection
from ocrloc.engine.distributed import cpu_cores
from ocrloc.engine.sampler import StepSampler
from ocrloc.engine.trainer import step_loss, step_update
from ocrloc.models.backbone import TimmBackbone
from ocrloc.models.build import build

FAMILIES = {"centernet": "compare/centernet", "argmax": "compare/argmax", "retinanet": "compare/retinanet",
            "quickstart": "quickstart", "argmax_no_map": "compare/argmax", "quickstart_no_map": "quickstart",
            "quickstart_map_all": "quickstart", "argmax_stride8": "compare/argmax",
            "argmax_stride8_to16": "compare/argmax", "quickstart_whole": "quickstart", "quickstart_to8": "quickstart"}
# The *_no_map families are their config without the point map: what the map costs a step;
# quickstart_map_all trains the map on every character, as the first steps of a run do (before
# the closed-form read-out is exact and its characters skip the map: model.argmax.map_tolerance).
FAMILY_OVERRIDES = {"argmax_no_map": ["model.argmax.point_map=false"],
                    "quickstart_no_map": ["model.argmax.point_map=false"],
                    "quickstart_map_all": ["model.argmax.map_tolerance=0"],
                    "argmax_stride8": ["model.head_stride=8"],
                    # the backbone built only up to stride 16 (model.max_stride; the quickstart's 16 already)
                    "argmax_stride8_to16": ["model.head_stride=8", "model.max_stride=16"],
                    # quickstart_whole: the whole backbone built; quickstart_to8: up to stride 8
                    "quickstart_whole": ["model.max_stride=null"], "quickstart_to8": ["model.max_stride=8"]}
# Steps at most that settle() trains an argmax family on its batch before the timing.
SETTLE_STEPS = 200
DEFAULT_FAMILIES = ["centernet", "argmax", "retinanet", "quickstart"]


def _timed(fn: Callable[[], None], steps: int, warmup: int) -> float:
    """Seconds per call of ``fn`` over ``steps`` calls after ``warmup`` calls."""
    for _ in range(warmup):
        fn()
    start = time.perf_counter()
    for _ in range(steps):
        fn()
    return (time.perf_counter() - start) / steps


class Family:
    """One config's model, optimizer and fixed batch, and the bare backbone of the same name."""

    def __init__(self, name: str, config_name: str, batch: int, data_root: str | None) -> None:
        overrides = [f"train.batch_size={batch}", *FAMILY_OVERRIDES.get(name, [])]
        overrides += [f"data.data_root={data_root}"] if data_root else []
        self.config = load_config(config_name, overrides)
        self.name = name
        detector = build(self.config)
        self.model, self.criterion = detector.model.train(), detector.criterion
        self.optimizer = torch.optim.AdamW(self.model.parameters(), lr=1e-4)
        generator = canvas_generator(self.config.data, "train", 0, augment=True)
        self.dataset = SyntheticCanvasDataset(generator, 10 ** 6)
        self.images, self.targets = collate_detection([self.dataset[i] for i in range(batch)])
        # The bare backbone: the trunk's own timm body (same levels, the same stages built, one input
        # channel), no FPN, no heads; a backbone built only up to max_stride is its own bare cell.
        max_stride = self.config.model.max_stride
        self.backbone = self.config.model.backbone + (f"[..{max_stride}]" if max_stride else "")
        stride = self.config.model.head_stride if self.config.model.type in ("centernet", "argmax", "study") else 8
        body = TimmBackbone(self.config.model.backbone, in_chans=1, min_stride=stride, max_stride=max_stride)
        self.bare = body.train()
        self.bare_optimizer = torch.optim.AdamW(self.bare.parameters(), lr=1e-4)

    def settle(self) -> int:
        """Train on the fixed batch until the point head's closed-form read-out places every
        character's points within ``map_tolerance`` (its running error), so the characters skip the
        point map as they do after the first steps of a run (at most :data:`SETTLE_STEPS`; no-op for a
        family without a map or with ``map_tolerance = 0``). Returns the steps taken."""
        head = getattr(self.model, "head", None)
        if getattr(head, "point_map", None) is None or head.map_tolerance <= 0:
            return 0
        labels = torch.cat([t["labels"] for t in self.targets]).long()
        visible = torch.cat([t["keypoints"] for t in self.targets])[..., 2] > 0
        for steps in range(SETTLE_STEPS):
            if head.map_rows(labels, visible).numel() == 0:
                return steps
            self.step(False)
        return SETTLE_STEPS

    def step(self, amp: bool) -> None:
        loss, _ = step_loss(self.model, self.criterion, self.images, self.targets, amp)
        step_update(loss, self.model, self.optimizer, self.config.optim.grad_clip)

    def bare_step(self, amp: bool) -> None:
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=amp):
            levels = self.bare(self.images)
        loss = sum(level.float().mean() for level in levels)
        step_update(loss, self.bare, self.bare_optimizer)

    def loop(self, workers: int, steps: int, warmup: int) -> float:
        """Seconds per step of the trainer's loop layout: a DataLoader with ``workers`` over fresh canvases."""
        from torch.utils.data import DataLoader

        batch = self.images.shape[0]
        sampler = StepSampler(None, batch, warmup + steps, 0, 0, 0, 1)
        loader = DataLoader(self.dataset, batch_size=batch, sampler=sampler, num_workers=workers,
                            collate_fn=collate_detection)
        start = None
        for k, (images, targets) in enumerate(loader):
            if k == warmup:
                start = time.perf_counter()
            loss, _ = step_loss(self.model, self.criterion, images, targets, False)
            step_update(loss, self.model, self.optimizer)
        return (time.perf_counter() - start) / steps

    def data(self, count: int) -> float:
        """Seconds per canvas of generation + collation in this process."""
        start = time.perf_counter()
        collate_detection([self.dataset[10 ** 5 + i] for i in range(count)])
        return (time.perf_counter() - start) / count


def main(argv: List[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--families", nargs="+", default=DEFAULT_FAMILIES, choices=list(FAMILIES))
    parser.add_argument("--threads", nargs="+", type=int, default=sorted({1, cpu_cores()}))
    parser.add_argument("--workers", nargs="+", type=int, default=[0, 1])
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--steps", type=int, default=3, help="timed steps per cell and round")
    parser.add_argument("--warmup", type=int, default=1)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--data-root", default=None)
    parser.add_argument("--quick", action="store_true", help="one round, one timed step, quickstart and retinanet")
    args = parser.parse_args(argv)
    if args.quick:
        args.rounds, args.steps = 1, 1
        if args.families == DEFAULT_FAMILIES:
            args.families = ["quickstart", "retinanet"]

    families = {name: Family(name, FAMILIES[name], args.batch, args.data_root) for name in args.families}
    torch.set_num_threads(max(args.threads))
    for fam in families.values():
        settled = fam.settle()
        if settled:
            print(f"{fam.name}: {settled} steps until its characters skip the point map", file=sys.stderr, flush=True)
    backbones = {f.backbone: f for f in families.values()}   # one bare cell per backbone
    loop_family = families.get("quickstart") or next(iter(families.values()))
    max_threads = max(args.threads)

    # bf16 first, once: if autocast is slower than fp32 on the bare backbone, this CPU lacks bf16
    # instructions and the bf16 train steps (minutes each) are skipped.
    torch.set_num_threads(max_threads)
    bf16: Dict[str, float] = {}
    for name, fam in backbones.items():
        fp32_s = _timed(lambda: fam.bare_step(False), 1, 1)
        bf16[name] = _timed(lambda: fam.bare_step(True), 1, 1) / fp32_s
        print(f"bf16 / fp32 time of a bare {name} step: {bf16[name]:.1f}x", file=sys.stderr, flush=True)
    use_bf16 = all(r < 1.0 for r in bf16.values())

    cells: List[Tuple[str, ...]] = []
    for t in args.threads:
        cells += [("bare", b, "fp32", t) for b in backbones]
        cells += [("step", f, "fp32", t) for f in families]
        if use_bf16:
            cells += [("bare", b, "bf16", t) for b in backbones] + [("step", f, "bf16", t) for f in families]
        cells += [("loop", loop_family.name, f"workers{w}", t) for w in args.workers]
    cells.append(("data", loop_family.name, "fp32", 1))

    seconds: Dict[Tuple[str, ...], List[float]] = {c: [] for c in cells}
    total, done, started = len(cells) * args.rounds, 0, time.perf_counter()
    for _ in range(args.rounds):
        for cell in cells:
            kind, name, mode, threads = cell
            torch.set_num_threads(threads)
            amp = mode == "bf16"
            if kind == "bare":
                s = _timed(lambda: backbones[name].bare_step(amp), args.steps, args.warmup)
            elif kind == "step":
                s = _timed(lambda: families[name].step(amp), args.steps, args.warmup)
            elif kind == "loop":
                s = families[name].loop(int(mode[len("workers"):]), args.steps + 1, args.warmup + 1)
            else:
                s = families[name].data(4 * args.batch) * args.batch  # per batch
            seconds[cell].append(s)
            done += 1
            eta = (time.perf_counter() - started) / done * (total - done)
            print(f"[{done}/{total}] {kind} {name} {mode} threads={threads}: {args.batch / s:.1f} img/s "
                  f"(ETA {eta / 60:.1f} min)", file=sys.stderr, flush=True)

    img_s = {c: args.batch / statistics.median(v) for c, v in seconds.items()}
    print(f"\n{args.batch} canvases per step, median of {args.rounds} round(s) of {args.steps} timed step(s); "
          f"{cpu_cores()} core(s), torch {torch.__version__}, CPU capability "
          f"{torch.backends.cpu.get_cpu_capability()}\n")
    print("| measure | model | mode | threads | img/s | vs bare backbone |")
    print("|---|---|---|---|---|---|")
    bare_of = {f.name: f.backbone for f in families.values()}
    for (kind, name, mode, threads), rate in img_s.items():
        base = img_s.get(("bare", bare_of.get(name, name), "fp32" if mode.startswith("workers") else mode, threads))
        ratio = f"{rate / base:.2f}" if base and kind in ("step", "loop") else ""
        label = f"{name} ({bare_of[name]})" if name in bare_of else name
        print(f"| {kind} | {label} | {mode} | {threads} | {rate:.1f} | {ratio} |")
    if not use_bf16:
        print("\nbf16 autocast skipped for the train steps: a bare step took "
              + ", ".join(f"{r:.1f}x as long as fp32 on {b}" for b, r in bf16.items()) + " here.")

    best_threads = max(args.threads, key=lambda t: img_s[("step", loop_family.name, "fp32", t)])
    loops = {(mode, t): rate for (kind, _, mode, t), rate in img_s.items() if kind == "loop"}
    best_loop = max(loops, key=loops.get)
    summary = {
        "step_over_bare": {f: round(img_s[("step", f, "fp32", best_threads)]
                                    / img_s[("bare", bare_of[f], "fp32", best_threads)], 3) for f in families},
        "img_per_s": {f: round(img_s[("step", f, "fp32", best_threads)], 2) for f in families},
        "threads": best_threads,
        "bf16_over_fp32_time": {b: round(r, 2) for b, r in bf16.items()},
        "best_layout": {"threads": best_loop[1], "workers": int(best_loop[0][len("workers"):]),
                        "img_per_s": round(loops[best_loop], 2)},
        "layouts": {f"threads{t}_{m}": round(r, 2) for (m, t), r in loops.items()},
        "cores": cpu_cores(),
    }
    for f in families:
        if f.startswith(("centernet", "argmax")) and "retinanet" in families:
            summary[f"{f}_over_retinanet"] = round(img_s[("step", f, "fp32", best_threads)]
                                                   / img_s[("step", "retinanet", "fp32", best_threads)], 3)
    print("\n" + json.dumps(summary))
    return 0


if __name__ == "__main__":
    os.environ.setdefault("NO_ALBUMENTATIONS_UPDATE", "1")
    sys.exit(main())
