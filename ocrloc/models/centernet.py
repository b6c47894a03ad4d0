"""ocrloc's dense point detector: timm backbone -> FPN -> CenterNet-style heads.

"Objects as points": every digit is a peak of its class heatmap at the digit's box center,
read at one fine FPN level (stride 4 or 8). At the peak cell the other heads give the box
size, the center's sub-cell offset and the class-dependent point.

``forward`` returns raw head outputs only, the same in train and eval mode; the loss lives
in :mod:`ocrloc.models.criterion` and the decoding in :mod:`ocrloc.models.postprocess`.
"""

from __future__ import annotations

import math
from collections import OrderedDict
from typing import Dict, List, Optional

import torch
from torch import nn
from torchvision.ops import FeaturePyramidNetwork

from ocrloc.models.backbone import TimmBackbone

__all__ = ["HEAD_CHANNELS", "CenterNetDetector", "head_layout"]

NUM_CLASSES = 10
# Grey MNIST canvases are mostly background: normalise with the statistics of canvas128 pixels
# so the network sees zero-mean input while the exported model still takes [0, 1] images.
PIXEL_MEAN = 0.018
PIXEL_STD = 0.117


def head_layout(point_mode: str, num_classes: int = NUM_CLASSES) -> Dict[str, int]:
    """The named outputs and their channels (CenterNet's plain dict of heads).

    * ``heatmap``: class heatmap logits, one channel per class;
    * ``size``: box width and height, in pixels / stride;
    * ``offset``: box center minus the peak cell's corner, in cells;
    * ``point`` (``point_mode="offset"``): the class-dependent point minus the peak cell's
      corner, in cells, one (x, y) pair per class (read at the predicted class);
    * ``point_heatmap`` + ``point_offset`` (``point_mode="heatmap"``): a heatmap per class
      peaking at the point, and its sub-cell offset.
    """
    layout = {"heatmap": num_classes, "size": 2, "offset": 2}
    if point_mode == "offset":
        layout["point"] = 2 * num_classes
    elif point_mode == "heatmap":
        layout["point_heatmap"] = num_classes
        layout["point_offset"] = 2
    else:
        raise ValueError(f"unknown point_mode {point_mode!r}; expected 'offset' or 'heatmap'")
    return layout


HEAD_CHANNELS = head_layout("offset")


def _head(in_channels: int, hidden: int, out_channels: int, bias_fill: float = 0.0) -> nn.Sequential:
    head = nn.Sequential(
        nn.Conv2d(in_channels, hidden, 3, padding=1),
        nn.ReLU(inplace=True),
        nn.Conv2d(hidden, out_channels, 1),
    )
    nn.init.constant_(head[-1].bias, bias_fill)
    return head


class CenterNetDetector(nn.Module):
    """Dense anchor-free detector with a class-dependent point head.

    Args:
        backbone: timm model name.
        fpn_channels: FPN output channels.
        head_stride: stride of the FPN level the heads read (must be one of the backbone's).
        head_channels: hidden channels of each head.
        point_mode: ``offset`` or ``heatmap`` (see :func:`head_layout`).
        pretrained_path: optional local backbone checkpoint.
        num_classes: digit classes.
    """

    def __init__(
        self,
        backbone: str = "resnet18",
        fpn_channels: int = 64,
        head_stride: int = 4,
        head_channels: int = 64,
        point_mode: str = "offset",
        pretrained_path: Optional[str] = None,
        num_classes: int = NUM_CLASSES,
    ) -> None:
        super().__init__()
        self.backbone = TimmBackbone(backbone, in_chans=1, pretrained_path=pretrained_path, min_stride=head_stride)
        if head_stride not in self.backbone.strides:
            raise ValueError(f"head_stride {head_stride} is not a level of {backbone} (strides {self.backbone.strides})")
        self.level_names = [f"p{int(math.log2(s))}" for s in self.backbone.strides]
        self.head_level = self.level_names[self.backbone.strides.index(head_stride)]
        self.neck = FeaturePyramidNetwork(self.backbone.channels, fpn_channels)
        self.layout = head_layout(point_mode, num_classes)
        prior = -math.log((1 - 0.01) / 0.01)  # heatmap starts at p = 0.01 everywhere (focal-loss prior)
        self.heads = nn.ModuleDict(
            {name: _head(fpn_channels, head_channels, ch, prior if "heatmap" in name else 0.0)
             for name, ch in self.layout.items()}
        )
        self.stride = head_stride
        self.point_mode = point_mode
        self.num_classes = num_classes
        self.register_buffer("pixel_mean", torch.tensor(PIXEL_MEAN), persistent=False)
        self.register_buffer("pixel_std", torch.tensor(PIXEL_STD), persistent=False)

    def forward(self, images: torch.Tensor, targets: Optional[List[Dict[str, torch.Tensor]]] = None
                ) -> Dict[str, torch.Tensor]:
        """Raw head outputs.

        Args:
            images: ``[B, 1, H, W]`` in [0, 1], H and W multiples of the backbone's largest stride.
            targets: unused (the loss lives in the criterion); accepted so every ocrloc model is
                called the same way, ``model(images, targets)``, as torchvision detectors are.

        Returns:
            ``{name: [B, channels, H / stride, W / stride]}`` for every head of :attr:`layout`.
        """
        x = (images - self.pixel_mean) / self.pixel_std
        features: List[torch.Tensor] = self.backbone(x)
        levels = OrderedDict([(name, f) for name, f in zip(self.level_names, features)])
        fine = self.neck(levels)[self.head_level]
        out: Dict[str, torch.Tensor] = {}
        for name, head in self.heads.items():
            out[name] = head(fine)
        return out
