"""One TorchScript file holding the predictor: preprocessing, model, decoding and duplicate suppression.

Loading it needs only torch and torchvision: ``import torchvision`` (which registers the
``torchvision::nms`` operator) then ``torch.jit.load(path)``. No ocrloc, no timm. (torch >= 2.9
calls TorchScript deprecated; it stays the default format (``docs/task.md``, "The exported model"), and
:mod:`ocrloc.export.program` / :mod:`ocrloc.export.onnx` write the formats that replace it.)
"""

# No `from __future__ import annotations` here: TorchScript reads the class attribute annotations.
import io
import os
import warnings
from typing import Dict, List, Optional, Union

import torch
from torch import nn

from ocrloc.data.task import Task, digits_task
from ocrloc.preprocess import CanvasPreprocess
from ocrloc.models.family import PredictorModule
from ocrloc.utils.io import write_bytes_atomic

__all__ = ["ExportedDetector", "METADATA_ATTRIBUTES", "export_torchscript"]

#: The attributes an exported file keeps readable after freezing (what ``ocrloc.Predictor`` and users read).
METADATA_ATTRIBUTES = ("rule", "train_size", "class_ids", "class_names", "keypoint_names", "size_divisible",
                       "min_size", "max_size")


class ExportedDetector(nn.Module):
    """Images -> ``List[Dict[str, Tensor]]`` (``boxes``, ``scores``, ``labels``, ``keypoints``), as
    torchvision detection models return; ``B`` may be 0 (an empty list).

    Images are ``[B, C, H, W]``: ``C`` = 1 (grey) or 3 (RGB, converted to grey with the ITU-R 601
    luma weights), ``uint8`` (scaled by 1/255) or float in [0, 1], any ``H`` x ``W`` (padded with
    zeros on the bottom and right to the input rule, so detections are in the input's pixels;
    boxes and points may reach into the padding). A float ``[B, 1, H, W]`` with
    ``H``, ``W`` multiples of 32 is passed to the predictor unchanged (``docs/task.md``, "The exported model").
    Float values outside [0, 1] (0..255 floats, negatives) or not finite raise a ValueError naming them
    (:meth:`~ocrloc.preprocess.CanvasPreprocess._check_range`).

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
        self.preprocess = CanvasPreprocess(predictor.size_divisible, predictor.min_size, predictor.max_size)

    def forward(self, images: torch.Tensor) -> List[Dict[str, torch.Tensor]]:
        canvases = self.preprocess(images)  # checks shape, dtype and max_size first, even for an empty batch
        if canvases.shape[0] == 0:
            # The models' decoders reshape by the batch size, which is ambiguous at 0: an empty
            # batch has an empty answer, one detections dict per image.
            none: List[Dict[str, torch.Tensor]] = []
            return none
        return self.predictor(canvases)


def export_torchscript(predictor: PredictorModule, rule: Optional[str], train_size: List[int],
                       path: Union[str, os.PathLike], task: Optional[Task] = None) -> torch.jit.ScriptModule:
    """Script ``predictor`` (with its preprocessing and metadata: ``task``'s classes and keypoint
    names, the MNIST digits when None) into ``path``, written atomically, and return the scripted module.

    Raises:
        OutputError: (an ``OSError``) one line naming ``path`` and the cause when it cannot be written
            (a full disk, a read-only folder); no temporary is left.
    """
    wrapper = ExportedDetector(predictor.eval(), rule, train_size, task).eval()
    buffer = io.BytesIO()
    with warnings.catch_warnings():  # torch >= 2.9 calls TorchScript deprecated; it stays the default (docs/task.md)
        warnings.filterwarnings("ignore", message=r".*torch\.jit\.(script|save|freeze).* is deprecated")
        # Frozen: weights and attributes become constants and the submodules are inlined, so the
        # graph executor has a small graph to profile and optimise on the first two calls (measured
        # in benchmarks/export_latency.py: the first call ~3x warm instead of ~8x, warm calls
        # faster too). The metadata attributes stay readable.
        # optimize_numerics=False: no conv + batch-norm folding, so the file computes what the model does, to
        # the float (the export parity tests hold it to eager at 1e-4 on far-off untrained points).
        scripted = torch.jit.freeze(torch.jit.script(wrapper), preserved_attrs=list(METADATA_ATTRIBUTES),
                                    optimize_numerics=False)
        # Through memory: saved to a path, torch's C++ writer aborts the process (C++ terminate) when
        # the disk fills, leaving its temporary; Python's write raises ENOSPC, and the temporary goes.
        torch.jit.save(scripted, buffer)
    write_bytes_atomic(buffer.getbuffer(), path, suffix=".pt.tmp")
    return scripted
