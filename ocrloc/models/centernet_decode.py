"""Decoding CenterNet head outputs into detections (TorchScript-able).

Peaks of the class heatmap (a ``max_pool2d`` peak finder, CenterNet's "NMS"), top-k over
classes and cells, decoding to canvas pixels, then class-agnostic duplicate suppression:
one digit has one class, so two peaks of different classes on one digit are duplicates
(``batched_nms`` per class would keep both).
"""

# No `from __future__ import annotations`: TorchScript reads these annotations.

from typing import Dict, List, Tuple

import torch
import torch.nn.functional as F
from torch import nn
from torchvision.ops import boxes as box_ops

from ocrloc.models.family import flat_detections, split_per_image


__all__ = ["CenterNetDecoder", "index_grids"]


def _at_most(limit: int, size: int) -> int:
    """``min(limit, size)``, kept symbolic while ``torch.export`` traces (a plain ``min`` would fix
    the size of the traced example)."""
    if torch.jit.is_scripting():
        return min(limit, size)
    return torch.sym_min(limit, size)


class CenterNetDecoder(nn.Module):
    """Raw outputs ``{name: [B, K, h, w]}`` -> detections: :meth:`detect` for the whole batch, flat;
    called, one dict per image (a split of it), as torchvision detection models return.

    Each image's detections are ``boxes`` ``[N, 4]`` (xyxy, canvas pixels), ``scores`` ``[N]``, ``labels``
    ``[N]`` (int64) and ``keypoints`` ``[N, K, 3]`` (x, y, score; the detection's score for every
    keypoint), sorted by score, N <= ``max_detections``.

    Args:
        stride: stride of the head level.
        max_detections: detections kept per image.
        score_threshold: minimum score.
        nms_kernel: peak-finder window (odd).
        iou_threshold: class-agnostic suppression threshold on the decoded boxes.
        point_mode: ``offset`` or ``heatmap`` (see :func:`~ocrloc.models.centernet.head_layout`).
        num_classes: classes.
        num_keypoints: keypoints per class (K).
    """

    def __init__(self, stride: int, max_detections: int = 100, score_threshold: float = 0.05, nms_kernel: int = 3,
                 iou_threshold: float = 0.6, point_mode: str = "offset", *, num_classes: int,
                 num_keypoints: int) -> None:
        super().__init__()
        if nms_kernel % 2 != 1:
            raise ValueError(f"nms_kernel must be odd, got {nms_kernel}")
        self.stride = stride
        self.max_detections = max_detections
        self.score_threshold = score_threshold
        self.nms_kernel = nms_kernel
        self.iou_threshold = iou_threshold
        self.point_mode = point_mode
        self.num_classes = num_classes
        self.num_keypoints = num_keypoints

    def forward(self, outputs: Dict[str, torch.Tensor]) -> List[Dict[str, torch.Tensor]]:
        """One dict per image: :func:`~ocrloc.models.family.split_per_image` of :meth:`detect` on
        the canvas the outputs cover."""
        batch, _, h, w = outputs["heatmap"].shape
        return split_per_image(self.detect(outputs, h * self.stride, w * self.stride), batch)

    def detect(self, outputs: Dict[str, torch.Tensor], height: int, width: int) -> Dict[str, torch.Tensor]:
        """The batch's detections, flat (:data:`~ocrloc.models.family.FLAT_OUTPUT_NAMES`), on a
        ``height`` x ``width`` canvas."""
        boxes, scores, labels, points, batch_index = self.candidates(outputs, height, width)
        return flat_detections(boxes, scores, labels, points, batch_index, {})

    def candidates(self, outputs: Dict[str, torch.Tensor], height: int, width: int
                   ) -> Tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
        """The decoding, batched and loop-free (it is also the exported graph's): boxes ``[N, 4]``
        (clipped to the ``height`` x ``width`` canvas), scores, labels, points ``[N, K, 2]`` and image
        index of the detections kept, in no particular order."""
        heat = outputs["heatmap"].float().sigmoid()
        batch, classes, h, w = heat.shape
        pooled = F.max_pool2d(heat, self.nms_kernel, stride=1, padding=self.nms_kernel // 2)
        peaks = heat * (pooled == heat).to(heat.dtype)
        top_scores, top_index = peaks.flatten(1).topk(_at_most(self.max_detections, classes * h * w), dim=1)
        # Class, cell, row and column of each flat index, read from index grids rather than by // and %:
        # the ONNX converter cannot divide by a symbolic size.
        labels_of, cell_of, ys_of, xs_of = index_grids(classes, h, w, heat.device)
        labels, cell = labels_of[top_index], cell_of[top_index]  # [B, top]
        cells = torch.stack([xs_of[top_index], ys_of[top_index]], dim=2).to(heat.dtype)
        stride = float(self.stride)
        size = _at_cells(outputs["size"], cell).float()
        offset = _at_cells(outputs["offset"], cell).float()
        center = (cells + offset) * stride
        half = size.clamp(min=0) * stride / 2
        boxes = box_ops.clip_boxes_to_image(torch.cat([center - half, center + half], dim=2), (height, width))
        k = self.num_keypoints
        if self.point_mode == "offset":
            point_all = _at_cells(outputs["point"], cell).float()  # [B, top, C * K * 2]
            top = cell.shape[1]  # not -1 in the reshapes: an empty batch has no size to infer
            point_all = point_all.reshape(batch, top, self.num_classes, k * 2)
            read = point_all.gather(2, labels[:, :, None, None].expand(-1, -1, 1, k * 2))
            points = (cells[:, :, None, :] + read.reshape(batch, top, k, 2)) * stride  # [B, top, K, 2]
        else:
            points = cells.new_zeros(0)  # placed after suppression, for the detections kept only
        batch_index = torch.arange(batch, device=heat.device)[:, None].expand_as(labels)
        keep = top_scores.flatten() > self.score_threshold
        boxes, scores = boxes.reshape(-1, 4)[keep], top_scores.flatten()[keep]
        labels, batch_index = labels.flatten()[keep], batch_index.flatten()[keep]
        # One suppression for the batch: each image's boxes moved past every other image's.
        # (The largest coordinate from the boxes themselves, as torchvision's batched_nms: a tensor, where the
        # canvas size would be a symbol the ONNX converter cannot multiply by; the 0 keeps an empty set valid.)
        farthest = torch.cat([boxes.flatten(), boxes.new_zeros(1)]).max() + 1
        separated = boxes + (batch_index.to(boxes.dtype) * farthest)[:, None]
        kept = box_ops.nms(separated, scores, self.iou_threshold)
        boxes, scores, labels, batch_index = boxes[kept], scores[kept], labels[kept], batch_index[kept]
        if self.point_mode == "offset":
            points = points.reshape(-1, k, 2)[keep][kept]
        else:
            points = self.points_from_heatmap(outputs, batch_index, labels, boxes, h, w)
        return boxes, scores, labels.long(), points, batch_index

    def points_from_heatmap(self, outputs: Dict[str, torch.Tensor], batch_index: torch.Tensor, labels: torch.Tensor,
                            boxes: torch.Tensor, h: int, w: int) -> torch.Tensor:
        """Per detection and keypoint ``[N, K, 2]``: the peak of the (class, keypoint) heatmap inside
        the detection's box (one cell of margin) plus the keypoint's sub-cell offset there; detection
        ``i`` is on image ``batch_index[i]`` of the batch."""
        stride = float(self.stride)
        k = self.num_keypoints
        n = labels.shape[0]
        channels = (labels[:, None] * k + torch.arange(k, device=labels.device)[None, :]).reshape(-1)
        images = batch_index.repeat_interleave(k)
        maps = outputs["point_heatmap"].float()[images, channels]  # [N * K, h, w]
        xs = torch.arange(w, device=maps.device, dtype=maps.dtype).view(1, 1, w)
        ys = torch.arange(h, device=maps.device, dtype=maps.dtype).view(1, h, 1)
        lo = (boxes[:, :2] / stride).floor().repeat_interleave(k, dim=0) - 1
        hi = (boxes[:, 2:] / stride).floor().repeat_interleave(k, dim=0) + 1
        inside = ((xs >= lo[:, 0].view(-1, 1, 1)) & (xs <= hi[:, 0].view(-1, 1, 1))
                  & (ys >= lo[:, 1].view(-1, 1, 1)) & (ys <= hi[:, 1].view(-1, 1, 1)))
        best = maps.masked_fill(~inside, float("-inf")).reshape(-1, h * w).argmax(dim=1)
        # Row and column read from index grids, not by // and %: the ONNX converter cannot divide by a symbolic size.
        _, _, ys_of, xs_of = index_grids(1, h, w, maps.device)
        py, px = ys_of[best], xs_of[best]
        which = torch.arange(k, device=labels.device).repeat(n)
        offset = outputs["point_offset"].float().view(-1, k, 2, h, w)[images, which, :, py, px]  # [N * K, 2]
        return ((torch.stack([px, py], dim=1).to(maps.dtype) + offset) * stride).view(n, k, 2)


def index_grids(classes: int, h: int, w: int, device: torch.device
                ) -> Tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """For every flat index of a ``[classes, h, w]`` map: its class, its cell (``y * w + x``), its row and column."""
    shape = [classes, h, w]
    labels = torch.arange(classes, device=device).view(classes, 1, 1).expand(shape).flatten()
    cells = torch.arange(h * w, device=device).view(1, h, w).expand(shape).flatten()
    ys = torch.arange(h, device=device).view(1, h, 1).expand(shape).flatten()
    xs = torch.arange(w, device=device).view(1, 1, w).expand(shape).flatten()
    return labels, cells, ys, xs


def _at_cells(maps: torch.Tensor, cell: torch.Tensor) -> torch.Tensor:
    """``maps [B, C, h, w]`` read at flat cells ``[B, k]`` -> ``[B, k, C]``."""
    flat = maps.flatten(2)
    return flat.gather(2, cell[:, None, :].expand(-1, flat.shape[1], -1)).transpose(1, 2)
