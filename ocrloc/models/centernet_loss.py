"""The CenterNet loss: focal heatmap loss plus L1 / GIoU regression at the object centers.

Targets are built from torchvision-style target dicts (``boxes`` xyxy, ``labels``,
``keypoints [N, K, 3]``) at the heads' stride:

* class heatmap: a Gaussian per digit, peak 1 at the cell holding the box center, radius from
  the box size (CenterNet's ``gaussian_radius`` with min overlap 0.7);
* ``size``: (w, h) / stride; ``offset``: center / stride minus the peak cell's corner;
* ``point``: each class-dependent keypoint / stride minus the same cell's corner, on the
  object's class's channels (one pair per keypoint); or, with ``point_mode="heatmap"``, a
  Gaussian per keypoint at its cell on the channel of (class, keypoint) and the keypoint's
  sub-cell offset. Keypoints with visibility 0 (a class with fewer keypoints than K) carry no loss.

Losses are summed with a weight per term (DETR's ``weight_dict``); each term is returned too.
"""

from __future__ import annotations

from typing import Dict, List, Mapping, Tuple

import torch
import torch.nn.functional as F
from torchvision.ops import generalized_box_iou_loss

from ocrloc.models.family import Criterion

__all__ = ["CenterNetCriterion", "gaussian_radius", "focal_heatmap_loss"]


def gaussian_radius(height: torch.Tensor, width: torch.Tensor, min_overlap: float = 0.7) -> torch.Tensor:
    """CenterNet's radius: the largest corner shift keeping IoU >= ``min_overlap`` (in cells)."""
    a1, b1 = 1.0, height + width
    c1 = width * height * (1 - min_overlap) / (1 + min_overlap)
    r1 = (b1 + torch.sqrt(b1**2 - 4 * a1 * c1)) / 2
    a2, b2 = 4.0, 2 * (height + width)
    c2 = (1 - min_overlap) * width * height
    r2 = (b2 + torch.sqrt(b2**2 - 4 * a2 * c2)) / 2
    a3, b3 = 4 * min_overlap, -2 * min_overlap * (height + width)
    c3 = (min_overlap - 1) * width * height
    r3 = (b3 + torch.sqrt(b3**2 - 4 * a3 * c3)) / 2
    return torch.minimum(torch.minimum(r1, r2), r3).clamp(min=0)


def focal_heatmap_loss(logits: torch.Tensor, target: torch.Tensor, alpha: float = 2.0, beta: float = 4.0) -> torch.Tensor:
    """CenterNet's penalty-reduced pixel-wise focal loss, normalised by the number of peaks.

    Args:
        logits: ``[B, C, h, w]`` heatmap logits.
        target: ``[B, C, h, w]`` Gaussian targets in [0, 1], exactly 1 at object peaks.
    """
    prob = logits.sigmoid()
    pos = target.eq(1).float()
    # log-sigmoid keeps the loss finite where a sigmoid would round to 0 or 1.
    pos_loss = F.logsigmoid(logits) * (1 - prob).pow(alpha) * pos
    neg_loss = F.logsigmoid(-logits) * prob.pow(alpha) * (1 - target).pow(beta) * (1 - pos)
    num_pos = pos.sum().clamp(min=1.0)
    return -(pos_loss.sum() + neg_loss.sum()) / num_pos


class CenterNetCriterion(Criterion):
    """Loss of :class:`~ocrloc.models.centernet.CenterNetDetector` outputs.

    Args:
        stride: stride of the head level.
        weights: weight per term: ``heatmap``, ``size``, ``offset``, ``point`` (offset mode),
            ``point_heatmap`` (heatmap mode, covers its offset too), ``giou``.
        point_mode: ``offset`` or ``heatmap``.
        num_classes: classes.
        num_keypoints: keypoint slots per class (K); an invisible keypoint (v = 0) carries no loss.

    Targets must be on the outputs' device already (the caller moves them once).
    """

    def __init__(self, stride: int, weights: Mapping[str, float], point_mode: str = "offset",
                 *, num_classes: int, num_keypoints: int) -> None:
        super().__init__()
        self.num_keypoints = num_keypoints
        # Every term either mode can give: one metrics.csv layout for every CenterNet run.
        self.loss_terms = ("heatmap", "size", "offset", "point", "point_heatmap", "giou")
        self.stride = stride
        self.weights = dict(weights)
        self.point_mode = point_mode
        self.num_classes = num_classes

    def _gaussians(self, shape: Tuple[int, int, int, int], batch: torch.Tensor, cls: torch.Tensor,
                   cells: torch.Tensor, radius: torch.Tensor) -> torch.Tensor:
        """``[B, C, h, w]`` map with a Gaussian (peak 1) per object at its integer cell."""
        heat = torch.zeros(shape, device=cells.device)
        _, _, h, w = shape
        ys = torch.arange(h, device=cells.device, dtype=torch.float32).view(1, h, 1)
        xs = torch.arange(w, device=cells.device, dtype=torch.float32).view(1, 1, w)
        sigma = ((2 * radius.floor() + 1) / 6).view(-1, 1, 1)
        blobs = torch.exp(-((xs - cells[:, 0].view(-1, 1, 1)) ** 2 + (ys - cells[:, 1].view(-1, 1, 1)) ** 2)
                          / (2 * sigma**2))
        for k in range(blobs.shape[0]):  # at most a few hundred objects per batch
            b, c = int(batch[k]), int(cls[k])
            heat[b, c] = torch.maximum(heat[b, c], blobs[k])
        return heat

    def build_targets(self, targets: List[Dict[str, torch.Tensor]], shape: Tuple[int, int, int, int],
                      device: torch.device) -> Dict[str, torch.Tensor]:
        """Dense and per-object targets for a batch whose heatmap has ``shape`` ``[B, C, h, w]``."""
        _, _, h, w = shape
        s = float(self.stride)
        batch = torch.cat([torch.full((len(t["labels"]),), i, dtype=torch.long, device=device)
                           for i, t in enumerate(targets)])
        boxes = torch.cat([t["boxes"].float() for t in targets]).reshape(-1, 4)
        labels = torch.cat([t["labels"] for t in targets]).long()
        k = self.num_keypoints
        keypoints = torch.cat([t["keypoints"].float() for t in targets]).reshape(-1, k, 3)
        points, visible = keypoints[..., :2], keypoints[..., 2] > 0  # [N, K, 2], [N, K]
        centers = (boxes[:, :2] + boxes[:, 2:]) / 2 / s
        cells = centers.floor().clamp(min=0)
        cells = torch.stack([cells[:, 0].clamp(max=w - 1), cells[:, 1].clamp(max=h - 1)], dim=1)
        sizes = (boxes[:, 2:] - boxes[:, :2]) / s
        radius = gaussian_radius(sizes[:, 1].ceil(), sizes[:, 0].ceil())
        out = {
            "batch": batch,
            "labels": labels,
            "cells": cells.long(),
            "size": sizes,
            "offset": centers - cells,
            "point": points / s - cells[:, None, :],
            "visible": visible,
            "boxes": boxes,
            "heatmap": self._gaussians(shape, batch, labels, cells, radius),
        }
        if self.point_mode == "heatmap":
            # One Gaussian per visible (object, keypoint), on channel class * K + keypoint.
            flat = points[visible] / s
            point_cells = flat.floor()
            point_cells = torch.stack([point_cells[:, 0].clamp(0, w - 1), point_cells[:, 1].clamp(0, h - 1)], dim=1)
            which = torch.arange(k, device=device).expand(len(labels), k)[visible]
            owner = torch.arange(len(labels), device=device)[:, None].expand(len(labels), k)[visible]
            out["point_batch"] = batch[owner]
            out["point_index"] = which
            out["point_cells"] = point_cells.long()
            out["point_offset"] = flat - point_cells
            out["point_heatmap"] = self._gaussians((shape[0], shape[1] * k, h, w), batch[owner],
                                                   labels[owner] * k + which, point_cells, radius[owner])
        return out

    @staticmethod
    def _gather(map_: torch.Tensor, batch: torch.Tensor, cells: torch.Tensor) -> torch.Tensor:
        """``[B, K, h, w]`` at each object's (batch, cell) -> ``[N, K]``."""
        return map_[batch, :, cells[:, 1], cells[:, 0]]

    def forward(self, outputs: Dict[str, torch.Tensor], targets: List[Dict[str, torch.Tensor]]
                ) -> Tuple[torch.Tensor, Dict[str, torch.Tensor]]:
        """Weighted total loss and the unweighted value of each term.

        Args:
            outputs: raw head outputs ``{name: [B, K, h, w]}``.
            targets: one torchvision-style dict per image.
        """
        heat = outputs["heatmap"]
        t = self.build_targets(targets, tuple(heat.shape), heat.device)
        n = max(int(t["labels"].numel()), 1)
        terms: Dict[str, torch.Tensor] = {"heatmap": focal_heatmap_loss(heat.float(), t["heatmap"])}
        size = self._gather(outputs["size"], t["batch"], t["cells"]).float()
        offset = self._gather(outputs["offset"], t["batch"], t["cells"]).float()
        terms["size"] = F.l1_loss(size, t["size"], reduction="sum") / n
        terms["offset"] = F.l1_loss(offset, t["offset"], reduction="sum") / n
        k = self.num_keypoints
        if self.point_mode == "offset":
            point_all = self._gather(outputs["point"], t["batch"], t["cells"]).float().view(-1, self.num_classes, k, 2)
            point = point_all[torch.arange(point_all.shape[0], device=heat.device), t["labels"]]
            error = (point - t["point"]).abs().sum(dim=-1) * t["visible"]  # keypoints a class lacks carry no loss
            terms["point"] = error.sum() / n
        else:
            poff = self._gather(outputs["point_offset"], t["point_batch"], t["point_cells"]).float().view(-1, k, 2)
            poff = poff[torch.arange(poff.shape[0], device=heat.device), t["point_index"]]
            terms["point_heatmap"] = (focal_heatmap_loss(outputs["point_heatmap"].float(), t["point_heatmap"])
                                      + F.l1_loss(poff, t["point_offset"], reduction="sum") / n)
        if self.weights.get("giou", 0.0) > 0 and t["labels"].numel():
            center = (t["cells"].float() + offset) * self.stride
            half = size.clamp(min=0) * self.stride / 2
            pred_boxes = torch.cat([center - half, center + half], dim=1)
            terms["giou"] = generalized_box_iou_loss(pred_boxes, t["boxes"], reduction="mean")
        total = sum(self.weights.get(name, 1.0) * value for name, value in terms.items())
        return total, terms
