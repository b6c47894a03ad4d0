"""The training loop on a tiny model: logs, checkpoints, resume, sampler."""

from __future__ import annotations

import csv
from pathlib import Path

import pytest
import torch

from ocrloc.config import ConfigError, load_config
from ocrloc.engine.checkpoint import detector_from_checkpoint, load_checkpoint
from ocrloc.engine.sampler import StepSampler
from ocrloc.engine.trainer import ThroughputMeter, Trainer, lr_factor
from tests.helpers import TINY_TRAINING

TINY = TINY_TRAINING


def rows(run: Path):
    with open(run / "metrics.csv", newline="") as f:
        return list(csv.DictReader(f))


def test_training_writes_logs_and_checkpoints_and_resume_continues(tmp_path, pools):
    run = tmp_path / "run"
    trainer = Trainer(load_config(None, TINY + ["train.steps=3"]), run, progress=False)
    scores = trainer.fit()
    assert trainer.step == 3 and "kpt_AP" in scores
    assert (run / "config.yaml").is_file() and list((run / "tensorboard").iterdir())
    assert (run / "checkpoints" / "last.pt").is_file() and (run / "checkpoints" / "best.pt").is_file()
    best = load_checkpoint(run / "checkpoints" / "best.pt")  # the weights alone: resuming reads last.pt
    assert "optimizer" not in best and best["step"] == 3 and set(best["meta"]["layout"]) == {
        "device", "threads", "workers", "cores"}
    assert (run / "checkpoints" / "best.pt").stat().st_size < (run / "checkpoints" / "last.pt").stat().st_size
    detector_from_checkpoint(run / "checkpoints" / "best.pt")
    first = rows(run)
    assert [(r["phase"], r["step"]) for r in first] == [("train", "1"), ("train", "2"), ("train", "3"), ("val", "3")]

    with pytest.raises(FileExistsError, match="--resume"):
        Trainer(load_config(None, TINY + ["train.steps=3"]), run, progress=False)

    resumed = Trainer(load_config(None, TINY + ["train.steps=6"]), run, resume=True, progress=False)
    assert resumed.step == 3
    resumed.fit()
    steps = [(r["phase"], int(r["step"])) for r in rows(run)]
    assert steps[:4] == [(p, int(s)) for p, s in [(r["phase"], r["step"]) for r in first]]  # appended, not rewritten
    train_steps = [s for p, s in steps if p == "train"]
    assert train_steps == [1, 2, 3, 4, 5, 6]  # nothing lost, nothing repeated
    assert [s for p, s in steps if p == "val"] == [3, 6]
    assert load_checkpoint(run / "checkpoints" / "last.pt")["step"] == 6


def test_resume_restores_rows_lost_in_a_crash_between_checkpoint_and_log(tmp_path, pools):
    run = tmp_path / "run"
    Trainer(load_config(None, TINY + ["train.steps=3"]), run, progress=False).fit()
    # Simulate a crash after last.pt was written but before its rows reached metrics.csv.
    lines = (run / "metrics.csv").read_text().splitlines(keepends=True)
    (run / "metrics.csv").write_text("".join(lines[:2]))  # header + step 1
    config_text = (run / "config.yaml").read_text()
    with pytest.raises(ConfigError, match=r"is at step 3 and train.steps is 3: nothing to train; .* N > 3"):
        Trainer(load_config(None, TINY + ["train.steps=3"]), run, resume=True, progress=False)
    assert [(r["phase"], r["step"]) for r in rows(run)] == [("train", "1"), ("train", "2"), ("train", "3"), ("val", "3")]
    # A resume with fewer steps than done is refused the same way, and config.yaml keeps the run's steps.
    with pytest.raises(ConfigError, match="is at step 3 and train.steps is 2"):
        Trainer(load_config(None, TINY + ["train.steps=2"]), run, resume=True, progress=False)
    assert (run / "config.yaml").read_text() == config_text
    assert not (run / ".lock").exists()  # released on the way out


def test_checkpoint_every_makes_a_rarely_validated_run_resumable(tmp_path, pools, monkeypatch):
    run = tmp_path / "run"

    def crash(self, loader, gt):
        raise RuntimeError("killed")

    monkeypatch.setattr(Trainer, "_validate_and_checkpoint", crash)  # dies at its only validation, step 3
    with pytest.raises(RuntimeError, match="killed"):
        Trainer(load_config(None, TINY + ["train.steps=3", "train.checkpoint_every=2"]), run, progress=False).fit()
    assert load_checkpoint(run / "checkpoints" / "last.pt")["step"] == 2
    assert [(r["phase"], r["step"]) for r in rows(run)] == [("train", "1"), ("train", "2")]
    monkeypatch.undo()
    resumed = Trainer(load_config(None, TINY + ["train.steps=3", "train.checkpoint_every=2"]), run, resume=True,
                      progress=False)
    assert resumed.step == 2
    resumed.fit()
    assert [(r["phase"], r["step"]) for r in rows(run)] == [("train", "1"), ("train", "2"), ("train", "3"), ("val", "3")]


def test_resume_without_a_checkpoint_is_an_error(tmp_path):
    with pytest.raises(FileNotFoundError, match="no checkpoint to resume"):
        Trainer(load_config(None, TINY), tmp_path / "empty", resume=True, progress=False)


def test_checkpoint_round_trip_gives_the_same_outputs(tmp_path, pools):
    run = tmp_path / "run"
    trainer = Trainer(load_config(None, TINY + ["train.steps=2", "train.val_every=2"]), run, progress=False)
    trainer.fit()
    detector, config, state = detector_from_checkpoint(run / "checkpoints" / "last.pt")
    model = detector.model
    assert config.model.backbone == "test_resnet" and state["meta"]["rule"] == "seed37"
    x = torch.rand(2, 1, 64, 64)
    trainer.model.eval()
    with torch.no_grad():
        for key, value in trainer.model(x).items():
            torch.testing.assert_close(model(x)[key], value)


def test_step_sampler_shards_and_resumes_exactly():
    full = list(StepSampler(None, batch_size=3, steps=4))
    assert full == list(range(12))
    assert list(StepSampler(None, 3, 4, start_step=2)) == full[6:]
    rank0 = list(StepSampler(None, 2, 3, rank=0, world_size=2))
    rank1 = list(StepSampler(None, 2, 3, rank=1, world_size=2))
    assert not set(rank0) & set(rank1) and sorted(rank0 + rank1) == list(range(12))
    finite = list(StepSampler(5, 2, 5, seed=1))  # 10 samples over a 5-item dataset: two shuffled passes
    assert sorted(finite[:5]) == sorted(finite[5:]) == list(range(5))
    assert list(StepSampler(5, 2, 5, start_step=3, seed=1)) == finite[6:]


def test_learning_rate_warms_up_then_decays():
    assert lr_factor(0, 10, 100, 0.1) == pytest.approx(0.1)
    assert lr_factor(9, 10, 100, 0.1) == pytest.approx(1.0)
    assert lr_factor(100, 10, 100, 0.1) == pytest.approx(0.1)
    assert lr_factor(55, 10, 100, 0.1) == pytest.approx(0.55)


def test_throughput_counts_only_images_since_the_last_restart():
    meter = ThroughputMeter(now=100.0)
    meter.add(32)
    meter.add(32)
    assert meter.rate(now=102.0) == 32.0
    # After a validation at t = 110 the rate is over the images trained since then only
    # (the bug this guards against: 4x the true rate when val_every is not a multiple of log_every).
    meter.restart(now=110.0)
    meter.add(32)
    assert meter.rate(now=111.0) == 32.0


def test_amp_run_validates_and_predicts_in_the_training_dtype(tmp_path, pools, monkeypatch):
    import ocrloc.engine.trainer as trainer_module
    from ocrloc.api import Predictor

    seen = []
    real = trainer_module.iterate_predictions

    def spy(predictor, batches, device, amp=False):
        seen.append(amp)
        return real(predictor, batches, device, amp)

    monkeypatch.setattr(trainer_module, "iterate_predictions", spy)
    run = tmp_path / "run"
    scores = Trainer(load_config(None, TINY + ["train.steps=2", "train.val_every=2", "train.amp=true"]), run,
                     progress=False).fit()
    assert seen == [True] and all(torch.isfinite(torch.tensor(float(scores[k]))) for k in ("loss", "kpt_AP"))
    assert Predictor(run / "checkpoints" / "best.pt").amp is True
