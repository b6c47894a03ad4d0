"""The predictor as one loop-free graph with flat outputs, for ``torch.export`` and ONNX.

A ``List[Dict]`` holds one dict per image, so its length is the batch size: a graph that returns
one cannot take a dynamic batch. :class:`FlatDetector` returns the detections of the whole batch
concatenated instead, image by image, each image's sorted by score, with each detection's image
index:

===============  =====================  ================================================
``boxes``        ``[N, 4]`` float32     xyxy, in the input image's pixels
``scores``       ``[N]`` float32        detection confidence
``labels``       ``[N]`` int64          class index
``keypoints``    ``[N, K, 3]`` float32  (x, y, confidence) of each class keypoint slot
``batch_index``  ``[N]`` int64          which image of the batch the detection is on
===============  =====================  ================================================

(``N`` = all detections of the batch; image ``i``'s are ``batch_index == i``, see
:func:`split_per_image`.)

It is the predictor's own batched forward (:meth:`~ocrloc.models.family.PredictorModule.forward_flat`,
the only decoding a family has: the eager predictor's per-image dicts are a split of it), behind
the input handling of :class:`~ocrloc.preprocess.CanvasPreprocess`; nothing here knows a
family. The parity tests in ``tests/export`` hold the files to the eager detections.

Families: those whose predictor is a :class:`~ocrloc.models.family.FlatPredictor` (``flat_graph``
in :mod:`ocrloc.families`: ``centernet``, both point modes, and ``argmax``). torchvision's detectors (the baselines) run Python loops over
images and per-level lists inside their forward, and the head study's predictor takes 32 x 32
canvases only: those export as TorchScript.
"""

# No `from __future__ import annotations`: kept alike the scriptable model files.
from typing import Dict

import torch
import torchvision  # noqa: F401  (registers the torchvision::nms operator whose shape is declared below)
from torch import Tensor, nn

from ocrloc.preprocess import CanvasPreprocess
from ocrloc.models.family import FLAT_OUTPUT_NAMES, PredictorModule, has_flat_graph, split_per_image
from ocrloc.families import FAMILIES

__all__ = ["OUTPUT_NAMES", "FlatDetector", "flat_supported", "split_per_image"]

OUTPUT_NAMES = FLAT_OUTPUT_NAMES


@torch.library.register_fake("torchvision::nms")
def _nms_shape(boxes: Tensor, scores: Tensor, iou_threshold: float) -> Tensor:
    """The shape of ``torchvision::nms``'s output while torch.export traces (replacing torchvision's).

    torchvision 0.29 declares at least 2 boxes kept (``create_unbacked_symint``'s default ``min=2``, and a
    FutureWarning for the deprecated call): the exported graph would then assert that every batch keeps
    2 detections or more and fail on an image with one digit or none. Any count from 0 is right."""
    torch._check(boxes.dim() == 2 and boxes.size(1) == 4, lambda: "boxes should be [N, 4]")
    torch._check(scores.dim() == 1 and boxes.size(0) == scores.size(0), lambda: "scores should be [N]")
    kept = torch.library.get_ctx().new_dynamic_size(min=0)
    return boxes.new_empty(kept, dtype=torch.long)


def flat_supported(predictor: PredictorModule) -> bool:
    """Whether ``predictor`` exports as a flat graph (``torch.export`` and ONNX)."""
    return has_flat_graph(predictor)


class FlatDetector(nn.Module):
    """Images (any ``[B, 1 or 3, H, W]``, uint8 or float; :class:`CanvasPreprocess`) -> flat
    detections (``boxes``, ``scores``, ``labels``, ``keypoints``, ``batch_index``; module docstring).

    Raises:
        ValueError: at construction, for a family that has no flat graph (:func:`flat_supported`).
    """

    def __init__(self, predictor: PredictorModule) -> None:
        super().__init__()
        if not flat_supported(predictor):
            flat = " and ".join(family.name for family in FAMILIES if family.flat_graph)
            raise ValueError(f"{type(predictor).__name__} has no batched graph for torch.export or ONNX "
                             f"(model.type {flat} have); export it as TorchScript")
        # At least two multiples: a coarsest level of one cell is a special case torch.export would fix.
        self.preprocess = CanvasPreprocess(predictor.size_divisible, predictor.min_size, predictor.max_size,
                                           min_cells=2)
        self.predictor = predictor

    def forward(self, images: Tensor) -> Dict[str, Tensor]:
        outputs = self.predictor.forward_flat(self.preprocess(images))
        return {name: outputs[name] for name in OUTPUT_NAMES}  # a family's own extra outputs stay out
