"""The trainer's hooks: after-validation work (TensorBoard pictures by default) is handed to hooks, which see each
validation once it is committed and leave what is trained unchanged."""

from __future__ import annotations

import torch

from ocrloc.config import load_config
from ocrloc.engine.checkpoint import load_checkpoint
from ocrloc.engine.hooks import TrainerHook
from ocrloc.engine.tensorboard_images import ValidationImages
from ocrloc.engine.trainer import Trainer, default_hooks

TINY = [
    "data.preset=single", "data.rule=seed37", "data.val_count=4", "data.num_workers=0",
    "model.backbone=test_resnet", "model.fpn_channels=8", "model.head_channels=8",
    "train.batch_size=2", "train.log_every=1", "train.val_every=2", "optim.warmup_steps=2", "train.steps=4",
    "postprocess.score_threshold=0.0",  # an untrained model's detections reach the hooks too
]


class Recorder(TrainerHook):
    def __init__(self) -> None:
        self.seen = []

    def after_validation(self, trainer, scores) -> None:
        # Called after the commit: the checkpoint of this step is on disk, its val row in metrics.csv.
        last = load_checkpoint(trainer.ckpt_dir / "last.pt")
        rows = (trainer.run_dir / "metrics.csv").read_text().splitlines()
        self.seen.append((trainer.step, scores["kpt_AP"], last["step"], f"val,{trainer.step}," in "\n".join(rows),
                          len(trainer.val_results) > 0))


def test_the_default_hook_draws_the_validation_pictures():
    assert [type(h) for h in default_hooks()] == [ValidationImages]


def test_hooks_see_each_committed_validation_and_change_nothing_trained(tmp_path, pools):
    recorder = Recorder()
    with_hook = Trainer(load_config(None, TINY), tmp_path / "a", progress=False, hooks=[recorder])
    scores = with_hook.fit()
    assert [(step, ckpt, in_csv, results) for step, _, ckpt, in_csv, results in recorder.seen] == [
        (2, 2, True, True), (4, 4, True, True)]
    assert recorder.seen[-1][1] == scores["kpt_AP"]
    # No hooks at all (not even TensorBoard's pictures): the same weights, bit for bit.
    without = Trainer(load_config(None, TINY), tmp_path / "b", progress=False, hooks=[])
    without.fit()
    a = load_checkpoint(tmp_path / "a" / "checkpoints" / "last.pt")["model"]
    b = load_checkpoint(tmp_path / "b" / "checkpoints" / "last.pt")["model"]
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
