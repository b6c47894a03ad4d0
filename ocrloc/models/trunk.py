"""The trunk every detector family stands on: a timm backbone + torchvision's ``FeaturePyramidNetwork``.

timm's ``forward_features`` idea, for a pyramid: ``Trunk(images)`` returns the FPN levels as an
ordered dict (``p2``, ``p3``, ... finest first), the form torchvision detectors take from their
``backbone`` (``out_channels`` is set). ocrloc's dense detectors read one level of it; the
torchvision baselines read all of them.
"""

# No `from __future__ import annotations`: TorchScript reads these annotations.
import math
from collections import OrderedDict
from typing import Dict, List, Optional

from torch import Tensor, nn
from torchvision.ops import FeaturePyramidNetwork

from ocrloc.models.backbone import TimmBackbone

__all__ = ["Trunk"]


class Trunk(nn.Module):
    """timm backbone levels with stride >= ``min_stride``, fused by an FPN.

    Args:
        backbone: timm model name (``features_only`` support needed).
        fpn_channels: FPN output channels (``out_channels``).
        min_stride: the finest level kept.
        max_stride: the coarsest level built (None: every level the backbone has); the backbone's
            later stages are not built (:class:`~ocrloc.models.backbone.TimmBackbone`).
        pretrained_path: optional local backbone checkpoint (never downloaded).
        in_chans: input channels (1: grey canvases).

    Attributes:
        level_names: ``p<log2 stride>`` of each level, finest first.
        strides: stride of each level, finest first.
        out_channels: channels of every level.
    """

    def __init__(self, backbone: str = "resnet18", fpn_channels: int = 64, min_stride: int = 4,
                 pretrained_path: Optional[str] = None, in_chans: int = 1, max_stride: Optional[int] = None) -> None:
        super().__init__()
        self.body = TimmBackbone(backbone, in_chans=in_chans, pretrained_path=pretrained_path, min_stride=min_stride,
                                 max_stride=max_stride)
        self.fpn = FeaturePyramidNetwork(self.body.channels, fpn_channels)
        self.level_names: List[str] = [f"p{int(math.log2(s))}" for s in self.body.strides]
        self.strides: List[int] = list(self.body.strides)
        self.out_channels = fpn_channels

    def level(self, stride: int) -> str:
        """The name of the level with ``stride``.

        Raises:
            ValueError: when the backbone has no such level.
        """
        if stride not in self.strides:
            raise ValueError(f"stride {stride} is not a level of {self.body.name} (strides {self.strides})")
        return self.level_names[self.strides.index(stride)]

    def keep_finest_only(self) -> None:
        """Drop the FPN's output convs of every level but the finest, for a model whose heads read
        that level alone: no computation, and no parameters without gradients (DDP then needs no
        ``find_unused_parameters``). The top-down path still runs through every level (the finest
        level is made from them); the coarser levels come out as their top-down sums, unused."""
        for k in range(1, len(self.fpn.layer_blocks)):
            self.fpn.layer_blocks[k] = nn.Identity()
        self._register_load_state_dict_pre_hook(_drop_coarse_output_convs)

    def forward(self, images: Tensor) -> Dict[str, Tensor]:
        levels: Dict[str, Tensor] = OrderedDict()
        for name, feature in zip(self.level_names, self.body(images)):
            levels[name] = feature
        return self.fpn(levels)


def _drop_coarse_output_convs(state_dict, prefix, *args) -> None:
    # Checkpoints of models that kept every level's output conv: those weights are not used here.
    for key in [k for k in state_dict if k.startswith(prefix + "fpn.layer_blocks.") and
                not k.startswith(prefix + "fpn.layer_blocks.0.")]:
        del state_dict[key]
