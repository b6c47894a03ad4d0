"""Classify each detected character from its own pixels, at its own scale.

A dense detector names the class at a heatmap peak of a stride-4 map shared by every size of
character; an MNIST classifier sees one centred, size-normalised digit. :class:`CropClassifier`
gives each detection the second view: a square window around the box (``context`` times its
longer side), resampled to ``size`` x ``size`` with ``roi_align`` and masked to the box plus
``box_margin`` pixels so a neighbour's ink stays out, then a small VGG-style CNN (conv-BN-ReLU
pairs, two 2 x 2 max-pools, global average pooling, a linear layer). It is trained with
cross-entropy on the ground-truth boxes (jittered as detected boxes are) and relabels the
detections at inference.
"""

# No `from __future__ import annotations`: TorchScript reads these annotations.
from typing import List

import torch
from torch import Tensor, nn
from torchvision.ops import roi_align

__all__ = ["CropClassifier", "boxes_to_rois"]


def _conv(cin: int, cout: int) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(cin, cout, 3, padding=1, bias=False), nn.BatchNorm2d(cout), nn.ReLU(inplace=True))


class CropClassifier(nn.Module):
    """Per box: a size-normalised, masked canvas crop -> class logits.

    Args:
        num_classes: classes.
        size: side of the resampled crop (pixels); a multiple of 4.
        context: the window's side as a multiple of the box's longer side (MNIST puts a 20 px
            digit in a 28 px image: 1.4).
        box_margin: canvas pixels kept around the box; the rest of the window is zeroed.
        width: channels of the first conv pair (then 2x and 4x).
    """

    def __init__(self, num_classes: int, size: int = 28, context: float = 1.4, box_margin: float = 1.0,
                 width: int = 32) -> None:
        super().__init__()
        if size % 4:
            raise ValueError(f"crop classifier size {size} must be a multiple of 4")
        self.size = size
        self.context = context
        self.box_margin = box_margin
        self.num_classes = num_classes
        self.features = nn.Sequential(
            _conv(1, width), _conv(width, width), nn.MaxPool2d(2),
            _conv(width, 2 * width), _conv(2 * width, 2 * width), nn.MaxPool2d(2),
            _conv(2 * width, 4 * width), nn.AdaptiveAvgPool2d(1), nn.Flatten())
        self.classifier = nn.Linear(4 * width, num_classes)

    def crops(self, images: Tensor, boxes: List[Tensor]) -> Tensor:
        """``[N, 1, size, size]``: each box's window, masked to the box plus the margin."""
        return self.crops_from_rois(images, boxes_to_rois(boxes))

    def crops_from_rois(self, images: Tensor, rois: Tensor) -> Tensor:
        """:meth:`crops` of ``rois [N, 5]`` (image index, xyxy), torchvision's ``roi_align`` layout."""
        box = rois[:, 1:]
        center = (box[:, :2] + box[:, 2:]) / 2
        side = ((box[:, 2:] - box[:, :2]).amax(dim=1, keepdim=True) * self.context).clamp_min(4.0)
        window = torch.cat([rois[:, :1], center - side / 2, center + side / 2], dim=1)
        crop = roi_align(images, window, self.size, spatial_scale=1.0, sampling_ratio=2, aligned=True)
        # Canvas position of each crop pixel's center, then the box mask.
        steps = (torch.arange(self.size, device=images.device, dtype=images.dtype) + 0.5) / self.size
        xs = window[:, 1:2] + steps.view(1, -1) * side  # [N, size]
        ys = window[:, 2:3] + steps.view(1, -1) * side
        m = self.box_margin
        inside_x = (xs > box[:, 0:1] - m) & (xs < box[:, 2:3] + m)
        inside_y = (ys > box[:, 1:2] - m) & (ys < box[:, 3:4] + m)
        mask = (inside_y[:, :, None] & inside_x[:, None, :]).to(crop.dtype)
        return crop * mask[:, None]

    def forward(self, images: Tensor, boxes: List[Tensor]) -> Tensor:
        """``images [B, 1, H, W]`` in [0, 1], per image boxes ``[N_i, 4]`` (xyxy, canvas pixels)
        -> logits ``[sum N_i, num_classes]``."""
        n = 0
        for bx in boxes:
            n += bx.shape[0]
        if n == 0:
            return images.new_zeros(0, self.num_classes)
        return self.logits_from_rois(images, boxes_to_rois(boxes))

    def logits_from_rois(self, images: Tensor, rois: Tensor) -> Tensor:
        """:meth:`forward` of ``rois [N, 5]`` (image index, xyxy; N > 0), ``roi_align``'s layout."""
        return self.classifier(self.features(self.crops_from_rois(images, rois)))


def boxes_to_rois(boxes: List[Tensor]) -> Tensor:
    """Per image boxes ``[N_i, 4]`` -> ``[sum N_i, 5]`` rows (image index, x1, y1, x2, y2), as ``roi_align`` takes."""
    rois_list: List[Tensor] = []
    for b, bx in enumerate(boxes):
        rois_list.append(torch.cat([torch.full_like(bx[:, :1], float(b)), bx], dim=1))
    return torch.cat(rois_list, dim=0)
