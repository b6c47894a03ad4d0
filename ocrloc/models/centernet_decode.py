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


__all__ = ["CenterNetDecoder", "index_grids"]


class CenterNetDecoder(nn.Module):
    """Raw outputs ``{name: [B, K, h, w]}`` -> one dict per image, as torchvision detection models return.

    Each dict holds ``boxes`` ``[N, 4]`` (xyxy, canvas pixels), ``scores`` ``[N]``, ``labels``
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
        heat = outputs["heatmap"].float().sigmoid()
        batch, classes, h, w = heat.shape
        pooled = F.max_pool2d(heat, self.nms_kernel, stride=1, padding=self.nms_kernel // 2)
        peaks = heat * (pooled == heat).to(heat.dtype)
        k = min(self.max_detections, classes * h * w)
        top_scores, top_index = peaks.reshape(batch, -1).topk(k, dim=1)
        stride = float(self.stride)
        results: List[Dict[str, torch.Tensor]] = []
        for b in range(batch):
            keep = top_scores[b] > self.score_threshold
            scores = top_scores[b][keep]
            index = top_index[b][keep]
            labels = torch.div(index, h * w, rounding_mode="floor")
            cell = index % (h * w)
            cy = torch.div(cell, w, rounding_mode="floor")
            cx = cell % w
            cells = torch.stack([cx, cy], dim=1).to(heat.dtype)
            size = outputs["size"][b][:, cy, cx].t().float()
            offset = outputs["offset"][b][:, cy, cx].t().float()
            center = (cells + offset) * stride
            half = size.clamp(min=0) * stride / 2
            boxes = torch.cat([center - half, center + half], dim=1)
            boxes = box_ops.clip_boxes_to_image(boxes, (h * self.stride, w * self.stride))
            k = self.num_keypoints
            if self.point_mode == "offset":
                point_all = outputs["point"][b].float().reshape(self.num_classes, k, 2, h, w)
                points = (cells[:, None, :] + point_all[labels, :, :, cy, cx]) * stride  # [N, K, 2]
            else:
                points = self.points_from_heatmap(outputs, torch.full_like(labels, b), labels, boxes, h, w)
            kept = box_ops.nms(boxes, scores, self.iou_threshold)[: self.max_detections]
            point_scores = scores[kept][:, None, None].expand(kept.shape[0], k, 1)
            keypoints = torch.cat([points[kept], point_scores], dim=2)
            results.append({"boxes": boxes[kept], "scores": scores[kept], "labels": labels[kept].long(),
                            "keypoints": keypoints})
        return results

    def points_from_heatmap(self, outputs: Dict[str, torch.Tensor], batch_index: torch.Tensor, labels: torch.Tensor,
                            boxes: torch.Tensor, h: int, w: int) -> torch.Tensor:
        """Per detection and keypoint ``[N, K, 2]``: the peak of the (class, keypoint) heatmap inside
        the detection's box (one cell of margin) plus the keypoint's sub-cell offset there; detection
        ``i`` is on image ``batch_index[i]`` of the batch (the per-image loop here and the batched
        graph of :mod:`ocrloc.export.flat` share this)."""
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
