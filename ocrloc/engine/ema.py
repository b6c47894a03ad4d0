"""A moving average of the weights (``train.ema_decay``), on timm's :class:`~timm.utils.ModelEmaV3`.

Averaging the last few hundred steps' weights smooths what a single step's noise does to a
validation (ultralytics trains with one by default, timm's ``train.py`` with ``--model-ema``). ocrloc averages the parameters
only and copies the buffers from the trained model at every update (``exclude_buffers``): the
buffers are running statistics (BatchNorm's) and closed-form fits (the argmax head's ridge
readout and its per-class choice), which are already averages of the data, and a second average
would only make them lag.

The trainer validates and saves the averaged weights with :meth:`WeightAverage.swapped_in`: the
model itself holds them while it is evaluated (the predictor and the score calibration act on
the model, and calibration writes buffers, which therefore stay in the trained model).
"""

from __future__ import annotations

import contextlib
from typing import Dict, Iterator, Optional

import torch
from timm.utils import ModelEmaV3
from torch import nn

__all__ = ["WeightAverage", "make_weight_average"]

# 1 - (1 + step) ** -0.75: 0.97 after 100 steps, 0.99 after ~460, capped at train.ema_decay; the
# exponent timm's docstring suggests for runs shorter than ~10k steps.
WARMUP_POWER = 0.75


class WeightAverage:
    """The averaged parameters of ``model`` (the module it was made from, not a DDP wrapper)."""

    def __init__(self, model: nn.Module, decay: float) -> None:
        self.model = model
        self.ema = ModelEmaV3(model, decay=decay, use_warmup=True, warmup_power=WARMUP_POWER, exclude_buffers=True)

    def update(self, step: int) -> None:
        """Fold in the model's weights after optimiser step ``step`` (1 for the first: a copy)."""
        self.ema.update(self.model, step=step)

    def _pairs(self) -> Iterator[tuple]:
        trained = self.model.named_parameters(remove_duplicate=False)
        averaged = self.ema.module.named_parameters(remove_duplicate=False)
        for (name, param), (_, average) in zip(trained, averaged):
            yield name, param, average

    def averaged_state(self) -> Dict[str, torch.Tensor]:
        """The model's ``state_dict`` with the averaged parameters in place of the trained ones."""
        state = self.model.state_dict()
        for name, _, average in self._pairs():
            state[name] = average.detach().clone()
        return state

    def load_averaged(self, state: Dict[str, torch.Tensor]) -> None:
        """Set the average from a state dict that :meth:`averaged_state` wrote."""
        with torch.no_grad():
            for name, _, average in self._pairs():
                average.copy_(state[name])

    def reset(self) -> None:
        """Start the average at the model's weights (a resumed run whose checkpoint has none)."""
        self.ema.set(self.model)

    @contextlib.contextmanager
    def swapped_in(self) -> Iterator[None]:
        """The model holds the averaged parameters inside the block, its own ones again after."""
        trained = []
        with torch.no_grad():
            for _, param, average in self._pairs():
                trained.append(param.detach().clone())
                param.copy_(average)
        try:
            yield
        finally:
            with torch.no_grad():
                for (_, param, _), saved in zip(self._pairs(), trained):
                    param.copy_(saved)


def make_weight_average(model: nn.Module, decay: float) -> Optional[WeightAverage]:
    """A :class:`WeightAverage` of ``model``, or None when ``decay`` is 0 (``train.ema_decay``)."""
    return WeightAverage(model, decay) if decay > 0 else None
