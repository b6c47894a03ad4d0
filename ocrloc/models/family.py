"""One contract for every model family (effdet's bench / detectron2's ``DenseDetector`` idea).

:func:`ocrloc.models.build.build` returns a :class:`Detector` for any ``model.type``:

* ``model(images, targets=None) -> Dict[str, Tensor]``: raw outputs, the same kind of dict in
  train and eval mode (the mode changes only what a mode should: batch-norm statistics, box
  jitter, the streamed closed-form fits). With ``targets`` a model adds what its loss needs at
  the ground truth (the argmax head's points at the true boxes; a torchvision baseline's
  loss terms, which torchvision computes inside its forward).
* ``criterion(outputs, targets) -> (total, terms)``, declaring its ``loss_terms`` (the
  ``metrics.csv`` columns).
* ``predictor(images) -> List[Dict[str, Tensor]]``: scriptable, one dict per image with
  ``boxes`` ``[N, 4]`` (xyxy, pixels), ``scores`` ``[N]``, ``labels`` ``[N]`` (int64) and
  ``keypoints`` ``[N, 1, 3]`` (x, y, score), as torchvision detection models return. It holds
  the model (shared weights) and declares its own input rule: ``size_divisible``,
  ``min_size``, ``max_size`` (0: none).

Training, validation, comparison, the head study, ``ocrloc predict`` and the export call only
these three; targets are moved to the device once, by the caller
(:func:`ocrloc.engine.inference.to_device`).
"""

# No `from __future__ import annotations`: TorchScript reads these annotations.
from dataclasses import dataclass
from typing import Dict, List, Optional, Tuple

import torch
from torch import Tensor, nn

from ocrloc.data.task import Task

__all__ = ["Criterion", "Detector", "PredictorModule"]


class Criterion(nn.Module):
    """``criterion(outputs, targets) -> (total, terms)``; ``loss_terms`` names every term it returns."""

    loss_terms: Tuple[str, ...] = ()

    def forward(self, outputs: Dict[str, Tensor], targets: List[Dict[str, Tensor]]
                ) -> Tuple[Tensor, Dict[str, Tensor]]:
        raise NotImplementedError


class PredictorModule(nn.Module):
    """``[B, 1, H, W]`` float in [0, 1] -> one detections dict per image (scriptable).

    Attributes:
        size_divisible: H and W must be multiples of this (callers pad on the bottom and right).
        min_size: H and W at least this.
        max_size: H and W at most this (0: no limit).
    """

    def __init__(self, size_divisible: int, min_size: int, max_size: int = 0) -> None:
        super().__init__()
        self.size_divisible = int(size_divisible)
        self.min_size = int(min_size)
        self.max_size = int(max_size)

    def input_rule(self) -> str:
        """The rule in words, for error messages."""
        rule = f"H and W multiples of {self.size_divisible}, at least {self.min_size}"
        if self.max_size > 0:
            rule += f", at most {self.max_size}"
        return rule

    def accepts(self, height: int, width: int) -> bool:
        """Whether an ``height`` x ``width`` input follows the rule."""
        ok = height % self.size_divisible == 0 and width % self.size_divisible == 0
        ok = ok and height >= self.min_size and width >= self.min_size
        if self.max_size > 0:
            ok = ok and height <= self.max_size and width <= self.max_size
        return ok


@dataclass
class Detector:
    """What :func:`~ocrloc.models.build.build` returns: model, criterion and predictor of one family,
    and the task (classes, keypoints) they were built for."""

    model: nn.Module
    criterion: Criterion
    predictor: PredictorModule
    task: Optional[Task] = None

    def to(self, device: torch.device) -> "Detector":
        """Move all three (the predictor's own buffers too); returns self."""
        self.model.to(device)
        self.criterion.to(device)
        self.predictor.to(device)
        return self

    def train(self, mode: bool = True) -> "Detector":
        for module in (self.model, self.criterion, self.predictor):
            module.train(mode)
        return self

    def eval(self) -> "Detector":
        return self.train(False)
