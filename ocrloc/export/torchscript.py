"""One TorchScript file holding the predictor: model, decoding and duplicate suppression.

Loading it needs only torch and torchvision: ``import torchvision`` (which registers the
``torchvision::nms`` operator) then ``torch.jit.load(path)``. No ocrloc, no timm.
"""

# No `from __future__ import annotations` here: TorchScript reads the class attribute annotations.
import os
from typing import Dict, List, Union

import torch
from torch import nn

from ocrloc.models.family import PredictorModule
from ocrloc.utils.io import atomic_path

__all__ = ["ExportedDetector", "export_torchscript"]


class ExportedDetector(nn.Module):
    """``[B, 1, H, W]`` float in [0, 1] -> ``List[Dict[str, Tensor]]`` (``boxes``, ``scores``,
    ``labels``, ``keypoints``), as torchvision detection models return.

    Attributes:
        rule: the point rule the model was trained for.
        train_size: ``[H, W]`` of its training canvases.
        size_divisible, min_size, max_size: the predictor's input rule (``max_size`` 0: none).
    """

    rule: str
    train_size: List[int]
    size_divisible: int
    min_size: int
    max_size: int

    def __init__(self, predictor: PredictorModule, rule: str, train_size: List[int]) -> None:
        super().__init__()
        self.predictor = predictor
        self.rule = rule
        self.train_size = [int(v) for v in train_size]
        self.size_divisible = predictor.size_divisible
        self.min_size = predictor.min_size
        self.max_size = predictor.max_size

    def forward(self, images: torch.Tensor) -> List[Dict[str, torch.Tensor]]:
        if images.dim() != 4 or images.shape[1] != 1:
            raise ValueError("expected a float tensor [B, 1, H, W] with values in [0, 1]")
        h, w = images.shape[2], images.shape[3]
        ok = h % self.size_divisible == 0 and w % self.size_divisible == 0 and h >= self.min_size and w >= self.min_size
        if self.max_size > 0:
            ok = ok and h <= self.max_size and w <= self.max_size
        if not ok:
            raise ValueError(f"H and W must be multiples of {self.size_divisible}, at least {self.min_size}"
                             + (f" and at most {self.max_size}" if self.max_size > 0 else "")
                             + f"; got {h} x {w}")
        return self.predictor(images.float())


def export_torchscript(predictor: PredictorModule, rule: str, train_size: List[int],
                       path: Union[str, os.PathLike]) -> torch.jit.ScriptModule:
    """Script ``predictor`` (with its input check and metadata) into ``path``, written atomically,
    and return the scripted module."""
    wrapper = ExportedDetector(predictor.eval(), rule, train_size).eval()
    scripted = torch.jit.script(wrapper)
    with atomic_path(path, suffix=".pt.tmp") as tmp:
        scripted.save(str(tmp))
    return scripted
