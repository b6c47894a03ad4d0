"""One TorchScript file holding the predictor: model, decoding and duplicate suppression.

Loading it needs only torch and torchvision: ``import torchvision`` (which registers the
``torchvision::nms`` operator) then ``torch.jit.load(path)``. No ocrloc, no timm.
"""

# No `from __future__ import annotations` here: TorchScript reads the class attribute annotations.
import os
from typing import Dict, List, Optional, Union

import torch
from torch import nn

from ocrloc.data.task import Task, digits_task
from ocrloc.models.family import PredictorModule
from ocrloc.utils.io import atomic_path

__all__ = ["ExportedDetector", "export_torchscript"]


class ExportedDetector(nn.Module):
    """``[B, 1, H, W]`` float in [0, 1] -> ``List[Dict[str, Tensor]]`` (``boxes``, ``scores``,
    ``labels``, ``keypoints``), as torchvision detection models return; ``B`` may be 0 (an empty list).

    Attributes:
        rule: the point rule the model was trained for ("" when a COCO folder's annotations defined
            the points).
        train_size: ``[H, W]`` of its training images.
        class_ids: the dataset's category id of each class index (what ``labels`` index).
        class_names: the name of each class.
        keypoint_names: the keypoint names of each class (``keypoints`` rows ``0 .. K_c - 1``).
        size_divisible, min_size, max_size: the predictor's input rule (``max_size`` 0: none).
    """

    rule: str
    train_size: List[int]
    class_ids: List[int]
    class_names: List[str]
    keypoint_names: List[List[str]]
    size_divisible: int
    min_size: int
    max_size: int

    def __init__(self, predictor: PredictorModule, rule: Optional[str], train_size: List[int],
                 task: Optional[Task] = None) -> None:
        super().__init__()
        task = task if task is not None else digits_task()
        self.predictor = predictor
        self.rule = rule or ""
        self.train_size = [int(v) for v in train_size]
        self.class_ids = list(task.class_ids)
        self.class_names = list(task.class_names)
        self.keypoint_names = [list(names) for names in task.keypoint_names]
        self.size_divisible = predictor.size_divisible
        self.min_size = predictor.min_size
        self.max_size = predictor.max_size

    def forward(self, images: torch.Tensor) -> List[Dict[str, torch.Tensor]]:
        if images.dim() != 4 or images.shape[1] != 1:
            raise ValueError("expected a float tensor [B, 1, H, W] with values in [0, 1]")
        h, w = images.shape[2], images.shape[3]
        if not self.predictor.accepts(h, w):
            raise ValueError(f"H and W must be multiples of {self.size_divisible}, at least {self.min_size}"
                             + (f" and at most {self.max_size}" if self.max_size > 0 else "")
                             + f"; got {h} x {w}")
        if images.shape[0] == 0:
            # The models' decoders reshape by the batch size, which is ambiguous at 0: an empty
            # batch has an empty answer, one detections dict per image.
            none: List[Dict[str, torch.Tensor]] = []
            return none
        return self.predictor(images.float())


def export_torchscript(predictor: PredictorModule, rule: Optional[str], train_size: List[int],
                       path: Union[str, os.PathLike], task: Optional[Task] = None) -> torch.jit.ScriptModule:
    """Script ``predictor`` (with its input check and metadata: ``task``'s classes and keypoint
    names, the MNIST digits when None) into ``path``, written atomically, and return the scripted module."""
    wrapper = ExportedDetector(predictor.eval(), rule, train_size, task).eval()
    scripted = torch.jit.script(wrapper)
    with atomic_path(path, suffix=".pt.tmp") as tmp:
        scripted.save(str(tmp))
    return scripted
