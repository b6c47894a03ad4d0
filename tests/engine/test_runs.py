"""Runs that remember: --resume rebuilds the run's own config; threads follow OMP_NUM_THREADS;
bad choices are one-line errors with exit code 2."""

from __future__ import annotations

import pytest
import torch

from ocrloc.cli import main
from ocrloc.config import ConfigError, load_config, save_config
from ocrloc.engine.checkpoint import load_checkpoint
from ocrloc.engine.distributed import cpu_threads, resolve_device
from ocrloc.engine.runs import SAFE_ON_RESUME, resume_config
from tests.helpers import TINY_TRAINING

TINY = [*TINY_TRAINING, "optim.warmup_steps=1"]


def sets(items):
    return [arg for item in items for arg in ("--set", item)]


def test_resume_rebuilds_the_runs_own_config_and_takes_only_safe_changes(tmp_path, pools, capsys):
    run = tmp_path / "run"
    # The run is made with fpn_channels 8, a --set the resume below forgets.
    assert main(["train", "--out", str(run), "--no-progress", *sets(TINY + ["model.fpn_channels=8", "train.steps=2",
                                                                          "train.val_every=2"])]) == 0
    assert main(["train", "--out", str(run), "--resume", "--no-progress", "--config", "quickstart",
                 *sets(["train.steps=3"])]) == 0
    assert "--config quickstart is not read" in capsys.readouterr().err
    state = load_checkpoint(run / "checkpoints" / "last.pt")
    assert state["step"] == 3 and state["config"]["model"]["fpn_channels"] == 8
    assert resume_config(run).train.steps == 3  # config.yaml describes the run as it continues

    assert main(["train", "--out", str(run), "--resume", *sets(["model.fpn_channels=16"])]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: --set model.fpn_channels=16: model.fpn_channels cannot change when a run resumes")
    assert "\n" not in err and "train.steps" in err
    assert load_checkpoint(run / "checkpoints" / "last.pt")["step"] == 3  # nothing touched


def test_resume_takes_the_runs_own_value_of_any_key_and_refuses_only_a_change(tmp_path):
    """A script that always passes --set train.batch_size=2 can resume its own run: values are compared
    (as the config reads them: 1e-3 is 0.001), not the presence of the key."""
    run = tmp_path / "run"
    run.mkdir()
    save_config(load_config(None, TINY + ["optim.lr=0.001"]), run / "config.yaml")
    config = resume_config(run, ["train.batch_size=2", "optim.lr=1e-3", "model.backbone=test_resnet",
                                 "train.steps=9"])
    assert config.train.batch_size == 2 and config.optim.lr == 0.001 and config.train.steps == 9
    with pytest.raises(ConfigError) as err:
        resume_config(run, ["train.batch_size=2", "train.batch_size=4"])
    assert str(err.value).startswith("--set train.batch_size=4: train.batch_size cannot change when a run resumes "
                                     "(its weights were made with config.yaml's value, 2); safe to change: ")


def test_resume_without_a_run_is_a_one_line_error(tmp_path, capsys):
    assert main(["train", "--out", str(tmp_path / "nothing"), "--resume"]) == 2
    assert capsys.readouterr().err.strip() == f"error: --resume: no run to resume in {tmp_path / 'nothing'} (no config.yaml)"
    assert "train.steps" in SAFE_ON_RESUME and "model.backbone" not in SAFE_ON_RESUME


@pytest.mark.parametrize("override, message", [
    ("model.type=centernt", "model.type = 'centernt' is not one of centernet, argmax, study"),
    ("model.backbone=resnt18", "model.backbone: unknown timm model 'resnt18' (similar: resnet18"),
    ("data.rule=all11", "all11"),
    ("data.preset=canvas129", "data.preset = 'canvas129' is not one of"),
    ("train.device=gpu", "unknown device 'gpu'"),
])
def test_every_bad_choice_is_one_line_and_exit_code_2(tmp_path, capsys, override, message):
    assert main(["train", "--out", str(tmp_path / "run"), "--no-progress", *sets([override])]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and err.count("\n") == 1 and message in err, err
    assert not (tmp_path / "run" / "checkpoints").exists()


def test_threads_follow_omp_num_threads(monkeypatch):
    before = torch.get_num_threads()
    try:
        monkeypatch.setenv("OMP_NUM_THREADS", "1")
        assert cpu_threads() == 1 and cpu_threads(3) == 3  # an explicit train.threads wins
        resolve_device("cpu")
        assert torch.get_num_threads() == 1
        monkeypatch.delenv("OMP_NUM_THREADS")
        monkeypatch.setenv("LOCAL_WORLD_SIZE", "1")
        import os
        assert cpu_threads() == max(1, len(os.sched_getaffinity(0)))
    finally:
        torch.set_num_threads(before)


def test_auto_workers_leave_no_core_oversubscribed(monkeypatch):
    import torch

    from ocrloc.engine.distributed import data_workers

    monkeypatch.setattr("os.sched_getaffinity", lambda pid: {0, 1})
    monkeypatch.delenv("LOCAL_WORLD_SIZE", raising=False)
    monkeypatch.delenv("WORLD_SIZE", raising=False)
    threads = torch.get_num_threads()
    try:
        torch.set_num_threads(2)
        assert data_workers(-1, torch.device("cpu")) == 0  # both cores compute
        torch.set_num_threads(1)
        assert data_workers(-1, torch.device("cpu")) == 1  # the other core makes canvases
        assert data_workers(3, torch.device("cpu")) == 3   # asked for: as asked
        assert data_workers(-1, torch.device("cuda")) == 2
    finally:
        torch.set_num_threads(threads)
