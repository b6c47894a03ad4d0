"""torchrun with two CPU processes (gloo): one set of logs and checkpoints, samples sharded."""

from __future__ import annotations

import csv
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from ocrloc.engine.checkpoint import load_checkpoint
from tests.helpers import TINY_MODEL

pytestmark = pytest.mark.slow  # torchrun: two processes per test, each importing torch

REPO = Path(__file__).resolve().parents[2]


# The tiny model both tests train: one digit per 32 x 32 canvas, a test backbone, 2 steps of 2.
TINY = ["data.preset=single", "data.val_count=4", "data.num_workers=0", *TINY_MODEL, "train.batch_size=2",
        "train.steps=2", "train.val_every=2", "train.log_every=1"]


def torchrun_train(out: Path, port: int, overrides) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(REPO), "OMP_NUM_THREADS": "1"}
    sets = [arg for key in TINY + list(overrides) for arg in ("--set", key)]
    return subprocess.run(
        [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2", "--master_port", str(port),
         str(REPO / "tools" / "train.py"), "--out", str(out), "--no-progress", *sets],
        cwd=REPO, env=env, capture_output=True, text=True, timeout=240,
    )


def test_torchrun_two_processes_train_with_rank0_logging(tmp_path, pools):
    out = tmp_path / "ddp"
    run = torchrun_train(out, 29517, ["data.rule=seed37"])
    assert run.returncode == 0, run.stderr[-3000:]
    with open(out / "metrics.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    assert [(r["phase"], r["step"]) for r in rows] == [("train", "1"), ("train", "2"), ("val", "2")]
    assert rows[1]["images"] == str(2 * 2 * 2)  # 2 steps x batch 2 x 2 ranks
    assert (out / "checkpoints" / "last.pt").is_file()
    assert run.stdout.count("final validation scores") == 1  # rank 0 alone reports


def test_torchrun_ranks_share_one_closed_form_fit(tmp_path, pools):
    """The argmax head's ridge statistics are summed over the ranks: the fit saw every digit."""
    out = tmp_path / "ddp_argmax"
    # With the quickstart's moving average of the weights: each rank averages its own (identical) copy;
    # and an extra update of the crop classifier per step, outside DDP's forward (its own all-reduce).
    run = torchrun_train(out, 29518, ["model.type=argmax", "model.argmax.argmax_channels=2", "train.ema_decay=0.9",
                                      "model.argmax.classifier_updates=2"])
    assert run.returncode == 0, run.stderr[-3000:]
    last = load_checkpoint(out / "checkpoints" / "last.pt")
    gram = last["model"]["head.readout.gram"]
    assert torch.equal(gram, last["train_model"]["head.readout.gram"])  # a buffer: copied, not averaged
    # One digit per canvas, 2 canvases per rank and step, 2 ranks, 2 steps, decay 0.99 per step.
    assert float(gram[:, -1, -1].sum()) == pytest.approx(0.99 * 4 + 4)
    # The crop classifier had two AdamW updates per step, everything else one.
    assert sorted({float(s["step"]) for s in last["optimizer"]["state"].values()}) == [2.0, 4.0]
