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
  ``keypoints`` ``[N, K, 3]`` (x, y, score), as torchvision detection models return. It holds
  the model (shared weights) and declares its own input rule: ``size_divisible``,
  ``min_size``, ``max_size`` (0: none).
* A family whose decoding is one loop-free batched graph (a :class:`FlatPredictor`) also gives
  ``predictor.forward_flat(images) -> Dict[str, Tensor]``: the detections of the whole batch
  concatenated (:data:`FLAT_OUTPUT_NAMES`, each row's image in ``batch_index``). That is its only
  decoding: ``predictor(images)`` is :func:`split_per_image` of it, and the ``torch.export`` and
  ONNX files are it (:mod:`ocrloc.export.flat`, which knows no family).

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

__all__ = ["Criterion", "Detector", "FLAT_OUTPUT_NAMES", "FlatPredictor", "PredictorModule", "flat_detections",
           "has_flat_graph", "split_per_image"]

# The flat outputs every FlatPredictor gives (a family may add its own after them, e.g. the argmax
# detector's ``dense_scores`` and ``class_scores``): boxes [N, 4] xyxy, scores [N], labels [N] int64,
# keypoints [N, K, 3] (x, y, score), batch_index [N] int64 (the image of the batch each row is on).
FLAT_OUTPUT_NAMES = ("boxes", "scores", "labels", "keypoints", "batch_index")


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

    def forward_flat(self, images: Tensor) -> Dict[str, Tensor]:
        """The batch's detections concatenated (:data:`FLAT_OUTPUT_NAMES`); only a
        :class:`FlatPredictor` has them (:func:`has_flat_graph`)."""
        raise NotImplementedError(f"{type(self).__name__} has no batched graph")


class FlatPredictor(PredictorModule):
    """A predictor whose decoding is one batched graph, :meth:`forward_flat`; the per-image dicts of
    :meth:`forward` are a split of it (:func:`split_per_image`), so the two cannot disagree."""

    def forward(self, images: Tensor) -> List[Dict[str, Tensor]]:
        return split_per_image(self.forward_flat(images), images.shape[0])


def has_flat_graph(predictor: nn.Module) -> bool:
    """Whether ``predictor`` decodes as one batched graph (:meth:`PredictorModule.forward_flat`),
    which ``torch.export`` and ONNX need."""
    return isinstance(predictor, FlatPredictor)


def flat_detections(boxes: Tensor, scores: Tensor, labels: Tensor, points: Tensor, batch_index: Tensor,
                    extra: Dict[str, Tensor]) -> Dict[str, Tensor]:
    """Decoded detections in any order (``points [N, K, 2]``; ``extra``: more ``[N, ...]`` outputs of
    the family) -> the flat outputs, image by image and each image's by score, every keypoint carrying
    its detection's score.

    One sort on ``4 * image - score`` (scores lie in [0, 1]; ONNX has no stable sort to do it in two),
    in float64, which holds both exactly."""
    order = torch.argsort(batch_index.double() * 4.0 - scores.double())
    n, k = order.shape[0], points.shape[1]
    scores = scores[order]
    keypoints = torch.cat([points[order], scores[:, None, None].expand(n, k, 1)], dim=2)
    outputs = {"boxes": boxes[order], "scores": scores, "labels": labels[order], "keypoints": keypoints,
               "batch_index": batch_index[order]}
    for name, value in extra.items():
        outputs[name] = value[order]
    return outputs


def split_per_image(outputs: Dict[str, Tensor], batch_size: int) -> List[Dict[str, Tensor]]:
    """Flat outputs -> one dict per image (every output but ``batch_index``), as torchvision
    detection models and the TorchScript file return."""
    index = outputs["batch_index"]
    results: List[Dict[str, Tensor]] = []
    for i in range(batch_size):
        mine = index == i
        image: Dict[str, Tensor] = {}
        for name, value in outputs.items():  # (no comprehension with an if: TorchScript has none)
            if name != "batch_index":
                image[name] = value[mine]
        results.append(image)
    return results


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
