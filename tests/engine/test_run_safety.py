"""One writer per run folder, and the loose ends of crash-resume: the lock, temporaries, the
TensorBoard record, torn rows, best.pt, a NaN loss, a finished run."""

from __future__ import annotations

import csv
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest
import torch

from ocrloc.cli import main
from ocrloc.config import load_config
from ocrloc.engine import trainer as trainer_module
from ocrloc.engine.checkpoint import load_checkpoint
from ocrloc.engine.runlock import LOCK_FILE, RunLock, RunLockedError
from ocrloc.engine.trainer import Trainer, one_line, remove_temporaries
from tests.helpers import TINY_TRAINING as TINY



def rows(run: Path):
    with open(run / "metrics.csv", newline="") as f:
        return [(r["phase"], int(r["step"])) for r in csv.DictReader(f)]


def cli_train(run: Path, *extra: str, resume: bool = False) -> int:
    sets = [a for s in (list(extra) if resume else TINY + list(extra)) for a in ("--set", s)]  # a resume keeps its own
    return main(["train", "--out", str(run), "--no-progress", *sets, *(["--resume"] if resume else [])])


def test_the_lock_names_its_holder_and_is_released(tmp_path):
    with RunLock(tmp_path / "run") as held:
        assert held.path.name == LOCK_FILE and f'"pid": {os.getpid()}' in held.path.read_text()
        with pytest.raises(RunLockedError, match=rf"run is in use by pid {os.getpid()} on \S+ \(since "):
            RunLock(tmp_path / "run").acquire()
    assert not (tmp_path / "run" / LOCK_FILE).exists()
    RunLock(tmp_path / "run").acquire().release()  # free again


def test_a_lock_left_by_a_killed_process_is_taken_over(tmp_path):
    run = tmp_path / "run"
    holder = subprocess.Popen([sys.executable, "-c", textwrap.dedent(f"""
        import sys, time
        from ocrloc.engine.runlock import RunLock
        lock = RunLock({str(run)!r}).acquire()
        print("held", flush=True)
        time.sleep(60)
    """)], stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "held"
        with pytest.raises(RunLockedError, match=f"pid {holder.pid} "):
            RunLock(run).acquire()
    finally:
        holder.send_signal(signal.SIGKILL)
        holder.wait()
    assert (run / LOCK_FILE).exists()  # the dead holder's file stays behind ...
    lock = RunLock(run).acquire()       # ... and is taken over, with our pid in it
    assert f'"pid": {os.getpid()}' in (run / LOCK_FILE).read_text()
    lock.release()


def test_a_second_training_or_resume_of_a_live_run_is_refused(tmp_path, pools, capsys):
    fresh = tmp_path / "fresh"
    with RunLock(fresh):  # a training that has just started
        assert cli_train(fresh, "train.steps=2") == 2
        err = capsys.readouterr().err
        assert err.startswith(f"error: {fresh} is in use by pid {os.getpid()}") and err.count("\n") == 1
        assert sorted(p.name for p in fresh.iterdir()) == [LOCK_FILE]  # nothing written beside the lock
    run = tmp_path / "run"
    assert cli_train(run, "train.steps=2") == 0
    before = (run / "metrics.csv").read_text()
    with RunLock(run):  # the run goes on (say, a second --resume of it)
        assert cli_train(run, "train.steps=4", resume=True) == 2
        assert f"{run} is in use by pid {os.getpid()}" in capsys.readouterr().err
    assert (run / "metrics.csv").read_text() == before  # no rows of a second writer


def test_resume_removes_temporaries_of_killed_writes(tmp_path, pools):
    run = tmp_path / "run"
    Trainer(load_config(None, TINY + ["train.steps=3"]), run, progress=False).fit()
    left = [run / "checkpoints" / ".last.pt.k2j4.pt.tmp", run / ".config.yaml.x9.tmp", run / "tensorboard" / ".last_step.a.tmp"]
    for path in left:
        path.write_bytes(b"half a file")
    keep = run / "checkpoints" / "notes.tmp"  # not a temporary of ours (not hidden): left alone
    keep.write_text("mine")
    Trainer(load_config(None, TINY + ["train.steps=4"]), run, resume=True, progress=False).close()
    assert not any(p.exists() for p in left) and keep.read_text() == "mine"
    assert remove_temporaries(tmp_path / "nowhere") == []


def _tensorboard_steps(run: Path, tag: str):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    events = EventAccumulator(str(run / "tensorboard"))
    events.Reload()
    return [e.step for e in events.Scalars(tag)]


@pytest.mark.parametrize("lost", ["all", "last_commit"])
def test_tensorboard_agrees_with_the_csv_after_a_resume(tmp_path, pools, lost):
    run = tmp_path / "run"
    Trainer(load_config(None, TINY + ["train.steps=3", "train.val_every=2"]), run, progress=False).fit()
    if lost == "all":  # killed before TensorBoard's first write
        for path in (run / "tensorboard").iterdir():
            path.unlink()
    else:  # killed after the events of steps 3 were written but before their step was recorded
        (run / "tensorboard" / "last_step").write_text("2")
    # TensorBoard reads a folder's event files in name order: events.out.tfevents.<seconds>.<host>.<pid>.<n>, n
    # a per-process count of writers. Within one process and one second the count decides, compared as text
    # ("10" < "9"), so the resumed file could be read first. A real resume is a later process; here a new second.
    time.sleep(1.05)
    Trainer(load_config(None, TINY + ["train.steps=5", "train.val_every=2"]), run, resume=True, progress=False).fit()
    assert _tensorboard_steps(run, "train/loss") == [s for p, s in rows(run) if p == "train"] == [1, 2, 3, 4, 5]
    assert _tensorboard_steps(run, "val/kpt_AP") == [2, 3, 4, 5]


def test_a_torn_row_and_a_half_written_commit_are_repaired_on_resume(tmp_path, pools):
    run = tmp_path / "run"
    Trainer(load_config(None, TINY + ["train.steps=3"]), run, progress=False).fit()
    text = (run / "metrics.csv").read_text()
    # Killed inside the last commit: its train row of step 3 is there, its val row torn off mid-line.
    cut = text.rindex("\nval,") + 10
    (run / "metrics.csv").write_text(text[:cut])
    resumed = Trainer(load_config(None, TINY + ["train.steps=4"]), run, resume=True, progress=False)
    resumed.close()
    assert (run / "metrics.csv").read_text() == text  # exactly the rows of the uninterrupted run


def test_best_is_written_before_last(tmp_path, pools, monkeypatch):
    run = tmp_path / "run"
    written = []
    save = trainer_module.save_checkpoint

    def dying_save(state, path):
        if Path(path).name == "last.pt" and state["step"] == 3:
            raise KeyboardInterrupt("killed between best.pt and last.pt")
        written.append(Path(path).name)
        save(state, path)

    monkeypatch.setattr(trainer_module, "save_checkpoint", dying_save)
    with pytest.raises(KeyboardInterrupt):
        Trainer(load_config(None, TINY + ["train.steps=3"]), run, progress=False).fit()
    assert written == ["best.pt"]
    assert load_checkpoint(run / "checkpoints" / "best.pt")["step"] == 3
    assert not (run / LOCK_FILE).exists()  # released however the run ended


def test_a_nan_loss_keeps_the_last_good_weights_and_says_so_in_one_line(tmp_path, pools, monkeypatch, capsys):
    run = tmp_path / "run"
    criterion_call = trainer_module.Trainer.__init__

    def poisoned_init(self, *args, **kwargs):
        criterion_call(self, *args, **kwargs)
        forward, calls = self.criterion.forward, []

        def nan_at_step_3(outputs, targets):
            loss, terms = forward(outputs, targets)
            calls.append(1)
            return (loss * float("nan"), terms) if len(calls) == 3 else (loss, terms)

        self.criterion.forward = nan_at_step_3

    monkeypatch.setattr(trainer_module.Trainer, "__init__", poisoned_init)
    assert cli_train(run, "train.steps=5", "train.val_every=5") == 2
    err = capsys.readouterr().err
    assert err.startswith("error: step 3: loss is nan (") and err.count("\n") == 1
    assert f"the weights of step 2 are in {run / 'checkpoints' / 'last.pt'}" in err
    state = load_checkpoint(run / "checkpoints" / "last.pt")
    assert state["step"] == 2 and all(torch.isfinite(v).all() for v in state["model"].values() if v.is_floating_point())
    assert rows(run) == [("train", 1), ("train", 2)]


def test_resume_of_a_finished_run_is_a_one_line_error(tmp_path, pools, capsys):
    run = tmp_path / "run"
    assert cli_train(run, "train.steps=3") == 0
    capsys.readouterr()
    config_text = (run / "config.yaml").read_text()
    assert cli_train(run, "train.steps=3", resume=True) == 2
    err = capsys.readouterr().err
    assert err == (f"error: --resume: {run} is at step 3 and train.steps is 3: nothing to train; to train on, "
                   f"pass --set train.steps=N with N > 3\n")
    assert (run / "config.yaml").read_text() == config_text


def test_an_out_that_cannot_be_a_folder_is_a_one_line_error(tmp_path, pools, capsys):
    blocker = tmp_path / "file"
    blocker.write_text("a file where the run's parent folder should be")
    assert cli_train(blocker / "run", "train.steps=1") == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and err.count("\n") == 1 and "Not a directory" in err and str(blocker) in err


def test_a_worker_traceback_becomes_its_last_line():
    err = ValueError("Caught ValueError in DataLoader worker process 0.\nOriginal Traceback (most recent call last):\n"
                     '  File "x.py", line 1, in f\nValueError: data/images/3.png: cannot read image (truncated)\n')
    assert one_line(err) == "data/images/3.png: cannot read image (truncated)"
    assert one_line(OSError("[Errno 2] No such file: 'a.png'")) == "[Errno 2] No such file: 'a.png'"
    # A module-qualified type is the worker's prefix too; a message of the main process keeps its own words.
    assert one_line(ValueError("Caught ... worker process 0.\nOriginal Traceback (most recent call last):\n"
                               "pkg.mod.BadImage: a.png: empty file")) == "a.png: empty file"
    assert one_line(ValueError("annotations: 3 entries\nlack a box")) == "annotations: 3 entries lack a box"
