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

It runs the same model and the same decoding as the eager predictor
(:class:`~ocrloc.models.centernet_decode.CenterNetDecoder`, and for the argmax family
:meth:`~ocrloc.models.argmax_detector.ArgmaxDetector.detect`), with the per-image loops written
as batched gathers and one non-maximum suppression over the batch (boxes of different images
are moved apart so they never overlap: torchvision's ``batched_nms`` coordinate trick). The
parity tests in ``tests/export`` hold the two to the same detections.

Families: ``centernet`` (both point modes) and ``argmax``. torchvision's detectors (the
baselines) run Python loops over images and per-level lists inside their forward, and the head
study's predictor takes 32 x 32 canvases only: those export as TorchScript.
"""

# No `from __future__ import annotations`: kept alike the scriptable model files.
from typing import Dict, List, Tuple

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torchvision.ops import nms
from torchvision.ops import boxes as box_ops

from ocrloc.export.preprocess import CanvasPreprocess
from ocrloc.models.argmax_detector import ArgmaxPredictor
from ocrloc.models.centernet import CenterNetPredictor
from ocrloc.models.centernet_decode import CenterNetDecoder, index_grids
from ocrloc.models.family import PredictorModule

__all__ = ["OUTPUT_NAMES", "FlatDetector", "flat_supported", "split_per_image"]

OUTPUT_NAMES = ("boxes", "scores", "labels", "keypoints", "batch_index")


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
    """Whether ``predictor``'s family exports as a flat graph (``torch.export`` and ONNX)."""
    return isinstance(predictor, (CenterNetPredictor, ArgmaxPredictor))


def split_per_image(outputs: Dict[str, Tensor], batch_size: int) -> List[Dict[str, Tensor]]:
    """Flat outputs -> one dict per image (``boxes``, ``scores``, ``labels``, ``keypoints``), as
    torchvision detection models and the TorchScript file return."""
    index = outputs["batch_index"]
    return [{name: outputs[name][index == i] for name in OUTPUT_NAMES[:4]} for i in range(batch_size)]


class FlatDetector(nn.Module):
    """Images (any ``[B, 1 or 3, H, W]``, uint8 or float; :class:`CanvasPreprocess`) -> flat
    detections (``boxes``, ``scores``, ``labels``, ``keypoints``, ``batch_index``; module docstring).

    Raises:
        ValueError: at construction, for a family that has no flat graph (:func:`flat_supported`).
    """

    def __init__(self, predictor: PredictorModule) -> None:
        super().__init__()
        if not flat_supported(predictor):
            raise ValueError(f"{type(predictor).__name__} has no batched graph for torch.export or ONNX "
                             f"(model.type centernet and argmax have); export it as TorchScript")
        # At least two multiples: a coarsest level of one cell is a special case torch.export would fix.
        self.preprocess = CanvasPreprocess(predictor.size_divisible, predictor.min_size, predictor.max_size,
                                           min_cells=2)
        self.model = predictor.model
        self.decoder: CenterNetDecoder = predictor.decoder
        self.argmax = isinstance(predictor, ArgmaxPredictor)

    def forward(self, images: Tensor) -> Dict[str, Tensor]:
        canvases = self.preprocess(images)
        outputs = self.model(canvases)
        boxes, scores, labels, points, batch_index = self._decode(outputs, canvases.shape[2], canvases.shape[3])
        if self.argmax:
            boxes, scores, labels, points, batch_index = self._argmax_detect(canvases, outputs["features"], boxes,
                                                                             scores, labels, batch_index)
        # Image by image, each image's by score: one sort on 4 * image - score (ONNX has no stable sort to
        # do it in two), in float64, which holds both exactly.
        order = torch.argsort(batch_index.double() * 4.0 - scores.double())
        n, k = order.shape[0], points.shape[1]
        scores = scores[order]
        keypoints = torch.cat([points[order], scores[:, None, None].expand(n, k, 1)], dim=2)
        return {"boxes": boxes[order], "scores": scores, "labels": labels[order], "keypoints": keypoints,
                "batch_index": batch_index[order]}

    def _decode(self, outputs: Dict[str, Tensor], height: int, width: int
                ) -> Tuple[Tensor, Tensor, Tensor, Tensor, Tensor]:
        """:class:`CenterNetDecoder` over the whole batch: boxes ``[N, 4]``, scores, labels, points
        ``[N, K, 2]`` and image index of the detections kept, in no particular order."""
        d = self.decoder
        heat = outputs["heatmap"].float().sigmoid()
        batch, classes, h, w = heat.shape
        pooled = F.max_pool2d(heat, d.nms_kernel, stride=1, padding=d.nms_kernel // 2)
        peaks = heat * (pooled == heat).to(heat.dtype)
        top_scores, top_index = peaks.flatten(1).topk(torch.sym_min(d.max_detections, classes * h * w), dim=1)
        # Class, cell, row and column of each flat index, read from index grids rather than by // and %:
        # the ONNX converter cannot divide by a symbolic size.
        labels_of, cell_of, ys_of, xs_of = index_grids(classes, h, w, heat.device)
        labels, cell = labels_of[top_index], cell_of[top_index]  # [B, k]
        cells = torch.stack([xs_of[top_index], ys_of[top_index]], dim=2).to(heat.dtype)
        stride = float(d.stride)
        size = _at_cells(outputs["size"], cell).float()
        offset = _at_cells(outputs["offset"], cell).float()
        center = (cells + offset) * stride
        half = size.clamp(min=0) * stride / 2
        boxes = box_ops.clip_boxes_to_image(torch.cat([center - half, center + half], dim=2), (height, width))
        k = d.num_keypoints
        if d.point_mode == "offset":
            point_all = _at_cells(outputs["point"], cell).float()  # [B, top, C * K * 2]
            top = cell.shape[1]  # not -1 in the reshapes: an empty batch has no size to infer
            point_all = point_all.reshape(batch, top, d.num_classes, k * 2)
            read = point_all.gather(2, labels[:, :, None, None].expand(-1, -1, 1, k * 2))
            points = (cells[:, :, None, :] + read.reshape(batch, top, k, 2)) * stride  # [B, top, K, 2]
        else:
            points = cells.new_zeros(0)  # placed after suppression, for the detections kept only
        batch_index = torch.arange(batch, device=heat.device)[:, None].expand_as(labels)
        keep = top_scores.flatten() > d.score_threshold
        boxes, scores = boxes.reshape(-1, 4)[keep], top_scores.flatten()[keep]
        labels, batch_index, cell = labels.flatten()[keep], batch_index.flatten()[keep], cell.flatten()[keep]
        # One suppression for the batch: each image's boxes moved past every other image's.
        # (The largest coordinate from the boxes themselves, as torchvision's batched_nms: a tensor, where the
        # canvas size would be a symbol the ONNX converter cannot multiply by; the 0 keeps an empty set valid.)
        farthest = torch.cat([boxes.flatten(), boxes.new_zeros(1)]).max() + 1
        separated = boxes + (batch_index.to(boxes.dtype) * farthest)[:, None]
        kept = nms(separated, scores, d.iou_threshold)
        boxes, scores, labels, batch_index = boxes[kept], scores[kept], labels[kept], batch_index[kept]
        if d.point_mode == "offset":
            points = points.reshape(-1, k, 2)[keep][kept]
        else:
            points = d.points_from_heatmap(outputs, batch_index, labels, boxes, h, w)
        return boxes, scores, labels.long(), points, batch_index

    def _argmax_detect(self, canvases: Tensor, features: Tensor, boxes: Tensor, scores: Tensor, labels: Tensor,
                       batch_index: Tensor) -> Tuple[Tensor, Tensor, Tensor, Tensor, Tensor]:
        """:meth:`ArgmaxDetector.detect_rois` on the batch's rois (image index + box): boxes, scores,
        labels, points ``[N, K, 2]`` and image index of the detections it keeps."""
        rois = torch.cat([batch_index[:, None].to(boxes.dtype), boxes], dim=1)
        # Convolutions over a data-dependent number of crops ask whether there are none, which torch.export
        # cannot answer for every input: one extra crop, of an extra blank image (an empty batch has no
        # image 0), dropped after, makes the count provably positive.
        batch = canvases.shape[0]
        canvases = torch.cat([canvases, canvases.new_zeros((1,) + canvases.shape[1:])])
        features = torch.cat([features, features.new_zeros((1,) + features.shape[1:])])
        blank = torch.cat([torch.full((1, 1), batch, dtype=rois.dtype, device=rois.device),
                           rois.new_tensor([[0.0, 0.0, 1.0, 1.0]])], dim=1)
        rois = torch.cat([rois, blank])
        boxes, scores, labels, points, kept, _ = self.model.detect_rois(canvases, features, rois, scores, labels,
                                                                        self.decoder.iou_threshold, padding=1)
        return boxes, scores, labels, points, batch_index[kept]

def _at_cells(maps: Tensor, cell: Tensor) -> Tensor:
    """``maps [B, C, h, w]`` read at flat cells ``[B, k]`` -> ``[B, k, C]``."""
    flat = maps.flatten(2)
    return flat.gather(2, cell[:, None, :].expand(-1, flat.shape[1], -1)).transpose(1, 2)
