#!/usr/bin/env python
"""Inference latency of the exported files against eager PyTorch, per format, batch size and threads.

    python benchmarks/export_latency.py            # the full table (a few minutes on 2 cores)
    python benchmarks/export_latency.py --quick    # a smoke run: one round, one timed call

The quickstart config's model (``ocrloc/configs/quickstart.yaml``; random weights: latency does not
depend on them, except through the number of detections, which the decoder caps), on random
uint8 grey 128 x 128 canvases, exported to every format in a temporary folder, then in one
process, in interleaved rounds (every cell once per round, after warm-up calls; the median of
the rounds is reported, so a noisy minute of a shared machine touches one sample):

* ``eager``: the ocrloc predictor with the same preprocessing the files hold
  (:class:`~ocrloc.export.preprocess.CanvasPreprocess`, uint8 -> grey float, padded), under
  ``torch.inference_mode``;
* ``torchscript``: ``torch.jit.load`` of the TorchScript file;
* ``export``: ``torch.export.load(...).module()`` of the ``.pt2`` file;
* ``onnxruntime``: an ``onnxruntime.InferenceSession`` of the ``.onnx`` file (``intra_op_num_threads``
  = the threads of the row, one inter-op thread).

Each at batch 1 and 32, with 1 and 2 torch threads (``torch.set_num_threads``). Last line: one JSON
object with ms per canvas of every cell and each format's speed relative to eager.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
import warnings
from pathlib import Path
from typing import Callable, Dict, List, Tuple

import torch

from ocrloc.config import load_config
from ocrloc.export import CanvasPreprocess, export_program, export_torchscript
from ocrloc.models.build import build

FORMATS = ("eager", "torchscript", "export", "onnxruntime")


def _timed(fn: Callable[[], object], calls: int, warmup: int) -> float:
    """Seconds per call of ``fn`` over ``calls`` calls after ``warmup`` calls."""
    for _ in range(warmup):
        fn()
    start = time.perf_counter()
    for _ in range(calls):
        fn()
    return (time.perf_counter() - start) / calls


def _runners(folder: Path, config_name: str) -> Dict[str, Callable[[torch.Tensor, int], object]]:
    """One ``run(images, threads)`` per format, from files exported into ``folder``."""
    import onnxruntime

    from ocrloc.export.onnx import export_onnx

    torch.manual_seed(0)
    detector = build(load_config(config_name, [])).eval()
    predictor = detector.predictor
    print("exporting (TorchScript, torch.export, ONNX) ...", file=sys.stderr, flush=True)
    export_torchscript(predictor, "all10", [128, 128], folder / "model.pt", detector.task)
    program = export_program(predictor, "all10", [128, 128], folder / "model.pt2", detector.task, "uint8")
    export_onnx(predictor, "all10", [128, 128], folder / "model.onnx", detector.task, "uint8", program=program)

    preprocess = CanvasPreprocess(predictor.size_divisible, predictor.min_size, predictor.max_size)
    with warnings.catch_warnings():  # torch >= 2.9 calls torch.jit.load deprecated; it is the format measured
        warnings.simplefilter("ignore", FutureWarning)
        scripted = torch.jit.load(str(folder / "model.pt"))
    exported = torch.export.load(str(folder / "model.pt2")).module()
    sessions: Dict[int, onnxruntime.InferenceSession] = {}

    def session(threads: int) -> onnxruntime.InferenceSession:
        if threads not in sessions:
            options = onnxruntime.SessionOptions()
            options.intra_op_num_threads = threads
            options.inter_op_num_threads = 1
            sessions[threads] = onnxruntime.InferenceSession(str(folder / "model.onnx"), options,
                                                             providers=["CPUExecutionProvider"])
        return sessions[threads]

    return {
        "eager": lambda x, threads: predictor(preprocess(x)),
        "torchscript": lambda x, threads: scripted(x),
        "export": lambda x, threads: exported(x),
        "onnxruntime": lambda x, threads: session(threads).run(None, {"images": x.numpy()}),
    }


def main(argv: List[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--config", default="quickstart")
    parser.add_argument("--formats", nargs="+", default=list(FORMATS), choices=list(FORMATS))
    parser.add_argument("--batches", nargs="+", type=int, default=[1, 32])
    parser.add_argument("--threads", nargs="+", type=int, default=[1, 2])
    parser.add_argument("--size", type=int, default=128, help="canvas side (px)")
    parser.add_argument("--calls", type=int, default=5, help="timed calls per cell and round")
    parser.add_argument("--warmup", type=int, default=3,
                        help="untimed calls first (TorchScript optimises after its first runs)")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--quick", action="store_true", help="one round, one timed call after one warm-up")
    args = parser.parse_args(argv)
    if args.quick:
        args.rounds, args.calls, args.warmup = 1, 1, 1

    generator = torch.Generator().manual_seed(0)
    images = {b: torch.randint(0, 256, (b, 1, args.size, args.size), dtype=torch.uint8, generator=generator)
              for b in args.batches}
    cells = [(fmt, b, t) for fmt in args.formats for b in args.batches for t in args.threads]
    samples: Dict[Tuple[str, int, int], List[float]] = {cell: [] for cell in cells}
    with tempfile.TemporaryDirectory() as folder:
        runners = _runners(Path(folder), args.config)
        with torch.inference_mode():
            for round_index in range(args.rounds):
                for done, (fmt, b, t) in enumerate(cells, 1):
                    torch.set_num_threads(t)
                    seconds = _timed(lambda: runners[fmt](images[b], t), args.calls, args.warmup)
                    samples[fmt, b, t].append(seconds * 1000.0 / b)
                    print(f"[round {round_index + 1}/{args.rounds}, {done}/{len(cells)}] {fmt} batch={b} "
                          f"threads={t}: {samples[fmt, b, t][-1]:.2f} ms/canvas", file=sys.stderr, flush=True)

    ms = {cell: statistics.median(values) for cell, values in samples.items()}
    print(f"\n{args.config} model, uint8 grey {args.size} x {args.size} canvases; ms per canvas, median of "
          f"{args.rounds} round(s) of {args.calls} timed call(s) after {args.warmup} warm-up call(s)\n")
    print("| format | batch | threads | ms / canvas | vs eager |")
    print("|---|---|---|---|---|")
    for fmt, b, t in cells:
        eager = ms.get(("eager", b, t))
        ratio = f"{eager / ms[fmt, b, t]:.2f}x" if eager else "-"
        print(f"| {fmt} | {b} | {t} | {ms[fmt, b, t]:.2f} | {ratio} |")
    summary = {
        "config": args.config, "size": args.size, "rounds": args.rounds, "calls": args.calls,
        "ms_per_canvas": {f"{fmt}/b{b}/t{t}": round(ms[fmt, b, t], 3) for fmt, b, t in cells},
        "speedup_vs_eager": {f"{fmt}/b{b}/t{t}": round(ms["eager", b, t] / ms[fmt, b, t], 3)
                             for fmt, b, t in cells if ("eager", b, t) in ms and fmt != "eager"},
    }
    print("\n" + json.dumps(summary))
    return 0


if __name__ == "__main__":
    sys.exit(main())
