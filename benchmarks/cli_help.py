#!/usr/bin/env python
"""Wall time of ``ocrloc --help`` and of every ``ocrloc COMMAND --help``, each in a fresh process.

    python benchmarks/cli_help.py                 # 5 runs of each, median, markdown table
    python benchmarks/cli_help.py --runs 9 --tools

Each command runs ``--runs`` times as a subprocess (stdout discarded); the table gives the
median, min and max in milliseconds. ``python -c pass`` is the floor: the interpreter's own
start. The ``ocrloc`` executable is the one installed beside this interpreter (the venv's bin)
or on PATH; without one, ``python -m ocrloc`` is timed instead. ``--tools`` adds
``python tools/<command>.py --help``. Help must stay well under a second: parsing imports no
torch, numpy or albumentations (tests/test_cli.py checks the imports, this script the time).
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import List, Sequence

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from ocrloc.cli import COMMANDS  # noqa: E402  (light: no heavy imports)


def ocrloc_command() -> List[str]:
    """The installed executable, else ``python -m ocrloc``."""
    beside = Path(sys.executable).parent / ("ocrloc.exe" if os.name == "nt" else "ocrloc")
    exe = str(beside) if beside.is_file() else shutil.which("ocrloc")
    return [exe] if exe else [sys.executable, "-m", "ocrloc"]


def time_command(cmd: Sequence[str], runs: int) -> List[float]:
    """Seconds of each of ``runs`` runs of ``cmd``; a non-zero exit stops the benchmark."""
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(p for p in (str(REPO), os.environ.get("PYTHONPATH")) if p)}
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        proc = subprocess.run(list(cmd), cwd=REPO, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        times.append(time.perf_counter() - start)
        if proc.returncode != 0:
            sys.exit(f"{' '.join(cmd)} exited {proc.returncode}: {proc.stderr.decode()[-500:]}")
    return times


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--runs", type=int, default=5, help="runs of each command (default: %(default)s)")
    p.add_argument("--tools", action="store_true", help="also time python tools/<command>.py --help")
    args = p.parse_args(argv)

    base = ocrloc_command()
    shown = "ocrloc" if len(base) == 1 else "python -m ocrloc"
    rows = [("python -c pass", [sys.executable, "-c", "pass"]), (f"{shown} --help", base + ["--help"])]
    rows += [(f"{shown} {name} --help", base + [name, "--help"]) for name in COMMANDS]
    if args.tools:
        rows += [(f"python tools/{module}.py --help", [sys.executable, str(REPO / "tools" / f"{module}.py"), "--help"])
                 for module in COMMANDS.values()]

    print(f"{args.runs} runs each, {os.cpu_count()} CPUs, {' '.join(base)}\n")
    print("| command | median ms | min ms | max ms |")
    print("|---|---:|---:|---:|")
    for label, cmd in rows:
        t = [s * 1000 for s in time_command(cmd, args.runs)]
        print(f"| `{label}` | {statistics.median(t):.0f} | {min(t):.0f} | {max(t):.0f} |", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
