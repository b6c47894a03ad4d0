"""ocrloc's dense point detector: timm backbone -> FPN -> CenterNet-style heads.

"Objects as points": every digit is a peak of its class heatmap at the digit's box center,
read at one fine FPN level (stride 4 or 8). At the peak cell the other heads give the box
size, the center's sub-cell offset and the class-dependent point.

``forward`` returns raw head outputs only, the same in train and eval mode; the loss lives
in :mod:`ocrloc.models.centernet_loss` and the decoding in :mod:`ocrloc.models.centernet_decode`.
"""

# No `from __future__ import annotations`: TorchScript reads these annotations.
import math
from typing import Dict, List, Optional

import torch
from torch import Tensor, nn

from ocrloc.models.centernet_decode import CenterNetDecoder
from ocrloc.models.constants import PIXEL_MEAN, PIXEL_STD
from ocrloc.models.family import FlatPredictor
from ocrloc.models.trunk import Trunk

__all__ = ["CenterNetDetector", "CenterNetPredictor", "head_layout"]


def head_layout(point_mode: str, num_classes: int, num_keypoints: int) -> Dict[str, int]:
    """The named outputs and their channels (CenterNet's plain dict of heads).

    * ``heatmap``: class heatmap logits, one channel per class;
    * ``size``: box width and height, in pixels / stride;
    * ``offset``: box center minus the peak cell's corner, in cells;
    * ``point`` (``point_mode="offset"``): each class-dependent keypoint minus the peak cell's
      corner, in cells, one (x, y) pair per (class, keypoint), channel ``2 * (class * K + k) + axis``
      (read at the predicted class);
    * ``point_heatmap`` + ``point_offset`` (``point_mode="heatmap"``): a heatmap per (class,
      keypoint), channel ``class * K + k``, peaking at the keypoint, and each keypoint's sub-cell
      offset (channels ``2 * k + axis``).

    K = ``num_keypoints``; with K = 1 the channels are exactly those of one point per class.
    """
    layout = {"heatmap": num_classes, "size": 2, "offset": 2}
    if point_mode == "offset":
        layout["point"] = 2 * num_keypoints * num_classes
    elif point_mode == "heatmap":
        layout["point_heatmap"] = num_keypoints * num_classes
        layout["point_offset"] = 2 * num_keypoints
    else:
        raise ValueError(f"unknown point_mode {point_mode!r}; expected 'offset' or 'heatmap'")
    return layout



def _output_conv(in_channels: int, out_channels: int, bias_fill: float = 0.0) -> nn.Conv2d:
    conv = nn.Conv2d(in_channels, out_channels, 1)
    nn.init.constant_(conv.bias, bias_fill)
    return conv


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
        shared_head_stem: one 3 x 3 conv (+ ReLU) that every head's 1 x 1 output conv reads,
            instead of a 3 x 3 conv per head (CenterNet's): the heads' 3 x 3 convs at stride 4
            are the largest cost beyond the backbone, and this computes one instead of four.
        max_stride: the coarsest backbone level built and fed to the FPN (None: every level; at
            least ``head_stride``): the backbone's later stages are not built.
        num_classes: classes.
        num_keypoints: keypoints per class (K).
    """

    def __init__(
        self,
        backbone: str = "resnet18",
        fpn_channels: int = 64,
        head_stride: int = 4,
        head_channels: int = 64,
        point_mode: str = "offset",
        pretrained_path: Optional[str] = None,
        shared_head_stem: bool = False,
        max_stride: Optional[int] = None,
        *,
        num_classes: int,
        num_keypoints: int,
    ) -> None:
        super().__init__()
        if max_stride is not None and max_stride < head_stride:
            raise ValueError(f"max_stride {max_stride} is finer than head_stride {head_stride}: the heads' level "
                             "would not be built")
        self.trunk = Trunk(backbone, fpn_channels, min_stride=head_stride, pretrained_path=pretrained_path,
                           max_stride=max_stride)
        if head_stride not in self.trunk.strides:
            raise ValueError(f"head_stride {head_stride} is not a level of {backbone} (strides {self.trunk.strides})")
        self.head_level = self.trunk.level(head_stride)
        # The heads read the finest level (min_stride = head_stride): no other level's output conv runs.
        self.trunk.keep_finest_only()
        self.layout = head_layout(point_mode, num_classes, num_keypoints)
        prior = -math.log((1 - 0.01) / 0.01)  # heatmap starts at p = 0.01 everywhere (focal-loss prior)
        if shared_head_stem:
            self.head_stem: nn.Module = nn.Sequential(nn.Conv2d(fpn_channels, head_channels, 3, padding=1),
                                                      nn.ReLU(inplace=True))
            self.heads = nn.ModuleDict({name: _output_conv(head_channels, ch, prior if "heatmap" in name else 0.0)
                                        for name, ch in self.layout.items()})
        else:
            self.head_stem = nn.Identity()
            self.heads = nn.ModuleDict(
                {name: _head(fpn_channels, head_channels, ch, prior if "heatmap" in name else 0.0)
                 for name, ch in self.layout.items()}
            )
        self.stride = head_stride
        # Inputs must divide by the coarsest level the backbone computes, kept or not.
        self.size_divisible = max(self.trunk.body.body.feature_info.reduction())
        self.point_mode = point_mode
        self.num_classes = num_classes
        self.num_keypoints = num_keypoints
        self.register_buffer("pixel_mean", torch.tensor(PIXEL_MEAN), persistent=False)
        self.register_buffer("pixel_std", torch.tensor(PIXEL_STD), persistent=False)
        # Checkpoints written before the trunk was shared name its parts `backbone.` and `neck.`.
        self._register_load_state_dict_pre_hook(_rename_old_trunk_keys)

    def forward_features(self, images: Tensor) -> Tensor:
        """The FPN level the heads read, ``[B, fpn_channels, H / stride, W / stride]``."""
        return self.trunk((images - self.pixel_mean) / self.pixel_std)[self.head_level]

    def forward_heads(self, features: Tensor) -> Dict[str, Tensor]:
        hidden = self.head_stem(features)  # the features themselves unless the heads share a stem
        out: Dict[str, Tensor] = {}
        for name, head in self.heads.items():
            out[name] = head(hidden)
        return out

    def forward(self, images: Tensor, targets: Optional[List[Dict[str, Tensor]]] = None) -> Dict[str, Tensor]:
        """Raw head outputs, the same in train and eval mode.

        Args:
            images: ``[B, 1, H, W]`` in [0, 1], H and W multiples of :attr:`size_divisible`.
            targets: unused (the loss lives in the criterion); accepted so every ocrloc model is
                called the same way, ``model(images, targets)``.

        Returns:
            ``{name: [B, channels, H / stride, W / stride]}`` for every head of :attr:`layout`.
        """
        return self.forward_heads(self.forward_features(images))


def _rename_old_trunk_keys(state_dict, prefix, *args) -> None:
    for old, new in (("backbone.", "trunk.body."), ("neck.", "trunk.fpn.")):
        for key in [k for k in state_dict if k.startswith(prefix + old)]:
            state_dict[prefix + new + key[len(prefix + old):]] = state_dict.pop(key)


class CenterNetPredictor(FlatPredictor):
    """:class:`CenterNetDetector` + :class:`~ocrloc.models.centernet_decode.CenterNetDecoder`, decoding
    the whole batch at once (:meth:`forward_flat`; called, a split of it per image)."""

    def __init__(self, model: CenterNetDetector, decoder: CenterNetDecoder) -> None:
        super().__init__(model.size_divisible, model.size_divisible)
        self.model = model
        self.decoder = decoder

    def forward_flat(self, images: Tensor) -> Dict[str, Tensor]:
        return self.decoder.detect(self.model(images), images.shape[2], images.shape[3])
