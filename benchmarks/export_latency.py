#!/usr/bin/env python
"""Inference latency of the exported files against eager PyTorch, per format, batch size and threads.

    python benchmarks/export_latency.py            # the full table (a few minutes on 2 cores)
    python benchmarks/export_latency.py --quick    # a smoke run: one round, one timed call

A trained checkpoint (``--checkpoint``) on validation canvases of its own config (uint8 grey, from
``--data-root`` / ``OCRLOC_DATA``), or the quickstart config's model with random weights on random
uint8 grey canvases (latency depends on the weights through the number of detections: the argmax
head and crop classifier run once per detection, so a trained model on real canvases is the
figure to quote; the mean detections per canvas are printed), exported to every format in a temporary folder, then in one
process, in interleaved rounds (every cell once per round, after warm-up calls; the median of
the rounds is reported, so a noisy minute of a shared machine touches one sample):

* ``eager``: the ocrloc predictor with the same preprocessing the files hold
  (:class:`~ocrloc.preprocess.CanvasPreprocess`, uint8 -> grey float, padded), under
  ``torch.inference_mode``;
* ``torchscript``: ``torch.jit.load`` of the TorchScript file;
* ``export``: ``torch.export.load(...).module()`` of the ``.pt2`` file;
* ``onnxruntime``: an ``onnxruntime.InferenceSession`` of the ``.onnx`` file (``intra_op_num_threads``
  = the threads of the row, one inter-op thread).

Each at batch 1 and 32, with 1 and 2 torch threads (``torch.set_num_threads``).

Then the **cold start**: each file loaded in a fresh process (torch, torchvision and onnxruntime
only; no ocrloc) and called on ten canvases, batch 1, one thread, ``--cold-rounds`` rounds over;
the first call against the same canvas's warm median (rounds 2 on), the first round's mean
against the warm rounds', the median of ``--cold-repeats`` processes. ``torchscript, optimisation off`` is the same
file called inside ``torch.jit.optimized_execution(False)``, as ``ocrloc.Predictor.from_exported``
and the README's loading snippet call it (TorchScript's graph executor otherwise profiles the first
call and optimises on the second).

Last line: one JSON object with ms per canvas of every cell, each format's speed relative to eager
and the cold-start figures.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
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
COLD_FORMATS = ("torchscript", "torchscript_noopt", "export", "onnxruntime")
COLD_LABELS = {"torchscript": "TorchScript (`.pt`)", "torchscript_noopt": "TorchScript, optimisation off",
               "export": "torch.export (`.pt2`, `.module()`)", "onnxruntime": "onnxruntime (`.onnx`)"}

# Run in a fresh process per measurement: a cold start is a process's first calls.
_COLD_SCRIPT = r"""
import contextlib, json, sys, time, warnings
import torch, torchvision
fmt, folder, inputs, threads, rounds = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4]), int(sys.argv[5])
torch.set_num_threads(threads)
canvases = torch.load(inputs)
start = time.perf_counter()
context = contextlib.nullcontext()
if fmt.startswith("torchscript"):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)
        model = torch.jit.load(folder + "/model.pt")
    if fmt == "torchscript_noopt":
        context = torch.jit.optimized_execution(False)
    run = model
elif fmt == "export":
    model = torch.export.load(folder + "/model.pt2").module()
    run = model
else:
    import onnxruntime
    options = onnxruntime.SessionOptions()
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    session = onnxruntime.InferenceSession(folder + "/model.onnx", options, providers=["CPUExecutionProvider"])
    run = lambda x: session.run(None, {"images": x.numpy()})
load_ms = (time.perf_counter() - start) * 1000.0
calls = []
with context, torch.inference_mode():
    for i in range(rounds * 10):  # ten canvases, round after round: the warm calls see the same ten
        start = time.perf_counter()
        run(canvases[i % 10:i % 10 + 1])
        calls.append((time.perf_counter() - start) * 1000.0)
print(json.dumps({"load_ms": load_ms, "calls_ms": calls}))
"""


def cold_start(folder: Path, canvases: torch.Tensor, formats, repeats: int, rounds: int = 4,
               threads: int = 1) -> Dict[str, Dict]:
    """Per format, in ``repeats`` fresh processes: load time, then ten canvases called ``rounds`` times
    over. ``first`` is the process's first call against the warm median of the same canvas (rounds 2
    on); ``first ten`` the first round's mean against the warm rounds' (each canvas's median). The
    median over the processes of each figure."""
    inputs = folder / "cold_inputs.pt"
    torch.save(canvases[:10].clone(), inputs)
    table: Dict[str, Dict] = {}
    for fmt in formats:
        stats = []
        for repeat in range(repeats):
            print(f"[cold start {fmt}, process {repeat + 1}/{repeats}]", file=sys.stderr, flush=True)
            done = subprocess.run([sys.executable, "-c", _COLD_SCRIPT, fmt, str(folder), str(inputs), str(threads),
                                   str(rounds)], capture_output=True, text=True, check=True)
            sample = json.loads(done.stdout.strip().splitlines()[-1])
            calls = sample["calls_ms"]
            warm = [statistics.median(calls[j + 10::10]) for j in range(10)]  # each canvas, rounds 2 on
            first_ten = statistics.mean(calls[:10])
            stats.append({"load_ms": sample["load_ms"], "first_ms": calls[0], "first_ten_ms": first_ten,
                          "warm_ms": statistics.median(warm), "first_over_warm": calls[0] / warm[0],
                          "first_ten_over_warm": first_ten / statistics.mean(warm)})
        table[fmt] = {key: round(statistics.median(s[key] for s in stats), 3) for key in stats[0]}
    return table


def _timed(fn: Callable[[], object], calls: int, warmup: int) -> float:
    """Seconds per call of ``fn`` over ``calls`` calls after ``warmup`` calls."""
    for _ in range(warmup):
        fn()
    start = time.perf_counter()
    for _ in range(calls):
        fn()
    return (time.perf_counter() - start) / calls


def _detector(config_name: str, checkpoint: str | None):
    """The detector timed and its config: a checkpoint's, or ``config_name``'s with random weights."""
    if checkpoint:
        from ocrloc.engine.checkpoint import detector_from_checkpoint

        detector, config, _ = detector_from_checkpoint(checkpoint)
        return detector.eval(), config
    torch.manual_seed(0)
    config = load_config(config_name, [])
    return build(config).eval(), config


def _canvases(config, count: int, size: int, real: bool, data_root: str | None) -> torch.Tensor:
    """``[count, 1, H, W]`` uint8: validation canvases of ``config`` (``real``), else random pixels."""
    if not real:
        generator = torch.Generator().manual_seed(0)
        return torch.randint(0, 256, (count, 1, size, size), dtype=torch.uint8, generator=generator)
    from dataclasses import replace

    from ocrloc.data.build import canvas_generator
    from ocrloc.data.datasets import SyntheticCanvasDataset

    data = replace(config.data, data_root=data_root) if data_root else config.data
    dataset = SyntheticCanvasDataset(canvas_generator(data, "val", 0), count)
    return torch.stack([(dataset[i][0] * 255).round().to(torch.uint8) for i in range(count)])


def _runners(folder: Path, detector) -> Dict[str, Callable[[torch.Tensor, int], object]]:
    """One ``run(images, threads)`` per format, from files exported into ``folder``."""
    import onnxruntime

    from ocrloc.export.onnx import export_onnx

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
    parser.add_argument("--config", default="quickstart", help="model config with random weights (no --checkpoint)")
    parser.add_argument("--checkpoint", default=None, help="a trained checkpoint, timed on its own val canvases")
    parser.add_argument("--data-root", default=None, help="MNIST data root for --checkpoint (default: OCRLOC_DATA)")
    parser.add_argument("--formats", nargs="+", default=list(FORMATS), choices=list(FORMATS))
    parser.add_argument("--batches", nargs="+", type=int, default=[1, 32])
    parser.add_argument("--threads", nargs="+", type=int, default=[1, 2])
    parser.add_argument("--size", type=int, default=128, help="canvas side (px)")
    parser.add_argument("--calls", type=int, default=5, help="timed calls per cell and round")
    parser.add_argument("--warmup", type=int, default=3,
                        help="untimed calls first (TorchScript optimises after its first runs)")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--cold-rounds", type=int, default=4,
                        help="rounds over the ten canvases of a cold-start process (at least 2: the first is cold)")
    parser.add_argument("--cold-repeats", type=int, default=3, help="fresh processes per format (0: no cold start)")
    parser.add_argument("--quick", action="store_true", help="one round, one timed call after one warm-up")
    args = parser.parse_args(argv)
    if args.quick:
        args.rounds, args.calls, args.warmup = 1, 1, 1
        args.cold_rounds, args.cold_repeats = 2, 1
    if args.cold_repeats and args.cold_rounds < 2:
        parser.error(f"--cold-rounds must be at least 2 (the first round is the cold one), got {args.cold_rounds}")

    detector, config = _detector(args.config, args.checkpoint)
    count = max(max(args.batches), 10)
    canvases = _canvases(config, count, args.size, args.checkpoint is not None, args.data_root)
    images = {b: canvases[:b] for b in args.batches}
    cells = [(fmt, b, t) for fmt in args.formats for b in args.batches for t in args.threads]
    samples: Dict[Tuple[str, int, int], List[float]] = {cell: [] for cell in cells}
    with tempfile.TemporaryDirectory() as folder:
        runners = _runners(Path(folder), detector)
        with torch.inference_mode():
            p = detector.predictor
            preprocess = CanvasPreprocess(p.size_divisible, p.min_size, p.max_size)
            found = detector.predictor(preprocess(canvases[:max(args.batches)]))
            detections = sum(int(d["boxes"].shape[0]) for d in found) / len(found)
            for round_index in range(args.rounds):
                for done, (fmt, b, t) in enumerate(cells, 1):
                    torch.set_num_threads(t)
                    seconds = _timed(lambda: runners[fmt](images[b], t), args.calls, args.warmup)
                    samples[fmt, b, t].append(seconds * 1000.0 / b)
                    print(f"[round {round_index + 1}/{args.rounds}, {done}/{len(cells)}] {fmt} batch={b} "
                          f"threads={t}: {samples[fmt, b, t][-1]:.2f} ms/canvas", file=sys.stderr, flush=True)
        cold_formats = [f for f in COLD_FORMATS if f.split("_")[0] in args.formats]
        cold = (cold_start(Path(folder), canvases, cold_formats, args.cold_repeats, args.cold_rounds)
                if args.cold_repeats else {})

    ms = {cell: statistics.median(values) for cell, values in samples.items()}
    model = args.checkpoint or f"{args.config} model (random weights)"
    pixels = "validation canvases" if args.checkpoint else "random canvases"
    print(f"\n{model}, uint8 grey {tuple(canvases.shape[-2:])} {pixels}, {detections:.1f} detections per canvas; "
          f"ms per canvas, median of {args.rounds} round(s) of {args.calls} timed call(s) after {args.warmup} "
          f"warm-up call(s)\n")
    print("| format | batch | threads | ms / canvas | vs eager |")
    print("|---|---|---|---|---|")
    for fmt, b, t in cells:
        eager = ms.get(("eager", b, t))
        ratio = f"{eager / ms[fmt, b, t]:.2f}x" if eager else "-"
        print(f"| {fmt} | {b} | {t} | {ms[fmt, b, t]:.2f} | {ratio} |")
    if cold:
        print(f"\ncold start: a fresh process per file, batch 1, 1 thread, ten canvases x {args.cold_rounds} rounds; "
              f"ms, median of {args.cold_repeats} process(es); warm: the same canvases in rounds 2 on\n")
        print("| format | load | first call | mean of first 10 | warm median | first / warm | first 10 / warm |")
        print("|---|---:|---:|---:|---:|---:|---:|")
        for fmt, c in cold.items():
            print(f"| {COLD_LABELS[fmt]} | {c['load_ms']:.0f} | {c['first_ms']:.1f} | {c['first_ten_ms']:.1f} | "
                  f"{c['warm_ms']:.1f} | {c['first_over_warm']:.2f}x | {c['first_ten_over_warm']:.2f}x |")
    summary = {
        "model": model, "detections_per_canvas": round(detections, 2), "size": args.size, "rounds": args.rounds, "calls": args.calls,
        "ms_per_canvas": {f"{fmt}/b{b}/t{t}": round(ms[fmt, b, t], 3) for fmt, b, t in cells},
        "speedup_vs_eager": {f"{fmt}/b{b}/t{t}": round(ms["eager", b, t] / ms[fmt, b, t], 3)
                             for fmt, b, t in cells if ("eager", b, t) in ms and fmt != "eager"},
        "cold_start": cold,
    }
    print("\n" + json.dumps(summary))
    return 0


if __name__ == "__main__":
    sys.exit(main())
