"""One TorchScript file holding preprocessing, model, decoding and duplicate suppression.

Loading it needs only torch and torchvision: ``import torchvision`` (which registers the
``torchvision::nms`` operator) then ``torch.jit.load(path)``. No ocrloc, no timm.
"""

# No `from __future__ import annotations` here: TorchScript reads the class attribute annotations.
import os
from typing import Dict, List, Union

import torch
from torch import nn

from ocrloc.utils.io import atomic_path

__all__ = ["ExportedDetector", "export_torchscript"]


class ExportedDetector(nn.Module):
    """``[B, 1, H, W]`` float in [0, 1] -> ``List[Dict[str, Tensor]]`` (``boxes``, ``scores``,
    ``labels``, ``keypoints``), as torchvision detection models return.

    Attributes:
        rule: the point rule the model was trained for.
        train_size: ``[H, W]`` of its training canvases.
        size_multiple: H and W must be multiples of this.
    """

    rule: str
    train_size: List[int]
    size_multiple: int

    def __init__(self, model: nn.Module, postprocess: nn.Module, rule: str, train_size: List[int],
                 size_multiple: int = 32) -> None:
        super().__init__()
        self.model = model
        self.postprocess = postprocess
        self.rule = rule
        self.train_size = [int(v) for v in train_size]
        self.size_multiple = size_multiple

    def forward(self, images: torch.Tensor) -> List[Dict[str, torch.Tensor]]:
        if images.dim() != 4 or images.shape[1] != 1:
            raise ValueError("expected a float tensor [B, 1, H, W] with values in [0, 1]")
        h, w = images.shape[2], images.shape[3]
        if h % self.size_multiple != 0 or w % self.size_multiple != 0 or h < 64 or w < 64:
            raise ValueError("H and W must be multiples of 32 and at least 64")
        return self.postprocess(self.model(images.float()))


def export_torchscript(model: nn.Module, postprocess: nn.Module, rule: str, train_size: List[int],
                       path: Union[str, os.PathLike]) -> torch.jit.ScriptModule:
    """Script ``model`` + ``postprocess`` into ``path`` (written atomically) and return the scripted module.

    A model with an ``inference_module()`` (the torchvision baselines) contributes that eval-mode
    part; others are scripted whole.
    """
    model = model.eval()
    inference = model.inference_module() if hasattr(model, "inference_module") else model
    wrapper = ExportedDetector(inference, postprocess.eval(), rule, train_size).eval()
    scripted = torch.jit.script(wrapper)
    with atomic_path(path, suffix=".pt.tmp") as tmp:
        scripted.save(str(tmp))
    return scripted
