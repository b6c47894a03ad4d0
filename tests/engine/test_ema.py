"""train.ema_decay: the moving average of the weights, its checkpoints and its resume."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from ocrloc.config import ConfigError, load_config
from ocrloc.engine.checkpoint import load_checkpoint
from ocrloc.engine.ema import WeightAverage, make_weight_average
from ocrloc.models.build import build
from tests.helpers import TINY_TRAINING, whole_and_resumed


def small_model() -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(nn.Linear(3, 4), nn.BatchNorm1d(4))


def perturb(model: nn.Module, seed: int) -> None:
    """What an optimiser step and a forward pass do: new parameters, new running statistics."""
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for param in model.parameters():
            param.add_(torch.randn(param.shape, generator=generator))
        model[1].running_mean.add_(torch.randn(4, generator=generator))


def test_parameters_are_averaged_with_the_ramped_decay_and_buffers_copied():
    model = small_model()
    average = WeightAverage(model, decay=0.9)
    perturb(model, 1)
    average.update(step=1)  # the first update starts the average at the weights
    first = {k: v.clone() for k, v in model.state_dict().items()}
    assert all(torch.equal(average.averaged_state()[k], first[k]) for k in first)

    perturb(model, 2)
    average.update(step=3)
    decay = 1 - (1 + 2) ** -0.75  # timm counts from the step after the first: 0.648, under the cap 0.9
    state = average.averaged_state()
    for name, param in model.named_parameters():
        assert torch.allclose(state[name], decay * first[name] + (1 - decay) * param.detach(), atol=1e-6)
    # The running statistics are the trained model's own, not an average of them.
    assert torch.equal(state["1.running_mean"], model[1].running_mean)

    average.update(step=1000)  # the ramp would give 0.994 here
    settled = average.averaged_state()
    perturb(model, 3)
    average.update(step=1001)
    assert torch.allclose(average.averaged_state()["0.weight"], 0.9 * settled["0.weight"] + 0.1 * model[0].weight.detach(),
                          atol=1e-6)  # the cap, 0.9, holds


def test_swapped_in_holds_the_average_and_restores_the_trained_weights():
    model = small_model()
    average = WeightAverage(model, decay=0.5)
    average.update(step=1)
    perturb(model, 1)
    trained = {k: v.clone() for k, v in model.state_dict().items()}
    average.update(step=2)  # decay 1 - 2 ** -0.75 = 0.405
    expected = average.averaged_state()
    with average.swapped_in():
        assert all(torch.equal(model.state_dict()[k], expected[k]) for k in expected)
        assert not torch.equal(model[0].weight, trained["0.weight"])
    assert all(torch.equal(model.state_dict()[k], trained[k]) for k in trained)


def test_no_average_at_decay_zero_and_a_decay_of_one_is_refused():
    assert make_weight_average(small_model(), 0.0) is None
    with pytest.raises(ConfigError, match=r"train.ema_decay = 1.0 must be in \[0, 1\)"):
        load_config(None, ["train.ema_decay=1.0"])


def test_checkpoints_hold_the_average_and_resume_is_exact(tmp_path, pools):
    sets = TINY_TRAINING + ["train.ema_decay=0.9", "train.val_every=2"]
    last, resumed, whole = whole_and_resumed(tmp_path, sets)
    for key in ("model", "train_model"):
        assert all(torch.equal(resumed[key][k], last[key][k]) for k in last[key])  # bit-identical
    # "model" (what predict and export read) is the average, "train_model" the weights trained on.
    differ = {k for k in last["model"] if not torch.equal(last["model"][k], last["train_model"][k])}
    parameters = {name for name, _ in build(load_config(None, sets)).model.named_parameters()}
    assert differ and differ <= parameters  # the buffers (BatchNorm's, the point fit) are the trained model's
    best = load_checkpoint(whole / "checkpoints" / "best.pt")
    assert "train_model" not in best
    if best["step"] == 4:
        assert all(torch.equal(best["model"][k], last["model"][k]) for k in last["model"])
