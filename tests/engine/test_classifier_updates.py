"""The crop classifier's extra updates per training step (``model.argmax.classifier_updates``):
they move the classifier and nothing else, keep --resume exact, agree across torchrun ranks, and a
setting that would do nothing is refused."""

from __future__ import annotations

import os
import socket

import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp

from ocrloc.config import ConfigError, load_config
from ocrloc.data.canvas import CanvasGenerator, canvas_target
from ocrloc.engine.trainer import extra_classifier_updates
from ocrloc.models.build import build
from tests.helpers import TINY_ARGMAX, TINY_TRAINING, whole_and_resumed


def tiny_argmax(updates: int):
    return build(load_config(None, [*TINY_ARGMAX, f"model.argmax.classifier_updates={updates}"])).model


def canvas_batch(pools, first: int = 0, count: int = 2):
    generator = CanvasGenerator("canvas128", "all10", "train", 0, pools["train"])
    canvases = [generator.generate(first + i) for i in range(count)]
    images = torch.stack([torch.from_numpy(c.image).float().div(255)[None] for c in canvases])
    return images, [canvas_target(c, "all10", i + 1) for i, c in enumerate(canvases)]


def test_extra_updates_move_the_classifier_alone(pools):
    torch.manual_seed(0)
    model = tiny_argmax(3).train()
    images, targets = canvas_batch(pools)
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-2, weight_decay=1e-2)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    with torch.no_grad():
        loss_before = float(model.classifier_loss(images, targets))

    assert extra_classifier_updates(model, images, targets, optimizer) == 2
    after = model.state_dict()
    changed = {k for k in before if not torch.equal(before[k], after[k])}
    assert changed and all(k.startswith("classifier.") for k in changed)
    # Every classifier weight moved (BatchNorm's running statistics too, two train-mode passes).
    assert {f"classifier.{k}" for k, _ in model.classifier.named_parameters()} <= changed
    # Only the classifier's parameters have optimizer moments, each of two AdamW steps.
    stepped = [p for p in model.parameters() if p in optimizer.state]
    assert {id(p) for p in stepped} == {id(p) for p in model.classifier.parameters()}
    assert all(float(optimizer.state[p]["step"]) == 2 for p in stepped)
    with torch.no_grad():
        assert float(model.classifier_loss(images, targets)) < loss_before


def test_one_update_is_the_steps_own_and_adds_nothing(pools):
    model = tiny_argmax(1).train()
    images, targets = canvas_batch(pools)
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-2)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    assert extra_classifier_updates(model, images, targets, optimizer) == 0
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())
    assert not optimizer.state


def test_a_setting_that_would_do_nothing_is_refused():
    with pytest.raises(ConfigError, match="model.argmax.classifier_updates = 0"):
        load_config(None, [*TINY_ARGMAX, "model.argmax.classifier_updates=0"])
    with pytest.raises(ValueError, match="classifier_updates > 1 needs model.argmax.crop_classifier=true"):
        build(load_config(None, [*TINY_ARGMAX, "model.argmax.crop_classifier=false",
                                 "model.argmax.classifier_updates=2"]))
    # A key of the argmax family only: on another model type a value other than the default is an error.
    with pytest.raises(ConfigError, match="model.argmax.classifier_updates"):
        load_config(None, ["model.type=centernet", "model.argmax.classifier_updates=2"])


def test_resume_is_exact_with_extra_classifier_updates(tmp_path, pools):
    sets = [s for s in TINY_TRAINING if not s.startswith(("data.preset=", "data.rule="))] + [
        "data.preset=canvas128", "data.rule=all10", "train.val_every=2", *TINY_ARGMAX[1:], "model.type=argmax",
        "model.argmax.map_channels=8", "model.argmax.classifier_updates=2", "train.ema_decay=0.9"]
    last, resumed, _ = whole_and_resumed(tmp_path, sets)
    for key in ("model", "train_model"):
        assert all(torch.equal(resumed[key][k], last[key][k]) for k in last[key])  # bit-identical
    # The extra updates ran: the classifier has twice the AdamW steps of the rest.
    steps = sorted({float(s["step"]) for s in last["optimizer"]["state"].values()})
    assert steps == [4.0, 8.0]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _rank_updates(rank: int, port: int, batches, out) -> None:
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    dist.init_process_group("gloo", rank=rank, world_size=2)
    try:
        torch.manual_seed(0)  # the same start on both ranks, as DDP's broadcast gives
        model = tiny_argmax(3).train()
        optimizer = torch.optim.AdamW(model.parameters(), lr=1e-2)
        torch.manual_seed(1 + rank)  # each rank its own jitter, as the trainer's per-rank stream
        images, targets = batches[rank]  # and its own canvases
        extra_classifier_updates(model, images, targets, optimizer, world_size=2)
        out[rank] = torch.cat([p.detach().flatten() for p in model.classifier.parameters()])
    finally:
        dist.destroy_process_group()


@pytest.mark.slow  # two processes
def test_ranks_average_the_extra_updates_and_stay_identical(pools):
    with mp.Manager() as manager:
        out = manager.dict()
        batches = [canvas_batch(pools, first=2 * rank) for rank in range(2)]
        mp.spawn(_rank_updates, args=(_free_port(), batches, out), nprocs=2, join=True)
        first, second = out[0], out[1]
    torch.manual_seed(0)
    start = torch.cat([p.detach().flatten() for p in tiny_argmax(3).classifier.parameters()])
    assert torch.equal(first, second)  # the gradients were all-reduced: one model on every rank
    assert not torch.equal(first, start)
