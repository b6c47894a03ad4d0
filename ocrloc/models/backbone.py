"""timm backbones with ``features_only=True``: timm *is* the backbone registry.

A config names any timm model; channels and strides are read from ``feature_info`` so the
neck sizes itself. Weights are never downloaded: ``pretrained_path`` loads a local file
through timm's own loader (which also adapts the stem to one input channel).
"""

from __future__ import annotations

import difflib
from typing import List, Optional, Tuple

import timm
import torch
from torch import nn

__all__ = ["TimmBackbone"]


class TimmBackbone(nn.Module):
    """The feature levels of a timm model with stride >= ``min_stride`` (and <= ``max_stride``).

    Args:
        name: timm model name.
        in_chans: input channels (1: grey canvases).
        pretrained_path: optional local checkpoint of the full timm model (e.g. ImageNet
            weights saved with ``torch.save(model.state_dict())``).
        min_stride: the finest level kept.
        max_stride: the coarsest level built (None: every level). The stages after it are not
            built at all (timm's ``out_indices``, as detectron2 builds a ResNet only up to its last
            ``out_features``): a detector whose heads read stride 8 may not need stride 32's context.

    Attributes:
        channels: channels of each kept level, finest first.
        strides: stride (reduction) of each kept level, finest first.
    """

    def __init__(self, name: str, in_chans: int = 1, pretrained_path: Optional[str] = None, min_stride: int = 4,
                 max_stride: Optional[int] = None) -> None:
        super().__init__()
        # One build with every level (or up to max_stride: a probe on the meta device, without
        # weights, reads the levels' strides first). Levels finer than min_stride are dropped in forward.
        if not timm.is_model(name):
            close = difflib.get_close_matches(name, timm.list_models(), n=4)
            raise ValueError(f"model.backbone: unknown timm model {name!r}"
                             + (f" (similar: {', '.join(close)})" if close else " (see timm.list_models())"))
        kwargs = dict(features_only=True, in_chans=in_chans)
        if max_stride is not None:
            kwargs["out_indices"] = _indices_up_to(name, in_chans, max_stride)
        try:
            if pretrained_path is not None:
                self.body = timm.create_model(name, pretrained=True, pretrained_cfg_overlay=dict(file=str(pretrained_path)),
                                              **kwargs)
            else:
                self.body = timm.create_model(name, pretrained=False, **kwargs)
        except RuntimeError as err:  # timm's way of saying a model has no feature pyramid
            raise ValueError(f"model.backbone: timm model {name!r} cannot give feature levels ({err})") from None
        reductions = list(self.body.feature_info.reduction())
        self.keep: List[int] = [i for i, r in enumerate(reductions) if r >= min_stride]
        if not self.keep:
            raise ValueError(f"backbone {name!r} has no feature level with stride >= {min_stride} (strides {reductions})")
        self.name = name
        channels = self.body.feature_info.channels()
        self.channels: List[int] = [channels[i] for i in self.keep]
        self.strides: List[int] = [reductions[i] for i in self.keep]

    def forward(self, x: torch.Tensor) -> List[torch.Tensor]:
        """``[B, C, H, W]`` -> one ``[B, channels[i], H / strides[i], W / strides[i]]`` per level."""
        features = self.body(x)
        kept: List[torch.Tensor] = []
        for i in self.keep:
            kept.append(features[i])
        return kept


def _indices_up_to(name: str, in_chans: int, max_stride: int) -> Tuple[int, ...]:
    """timm's ``out_indices`` of ``name``'s levels with stride <= ``max_stride``, read from a model
    built on the meta device (no memory, no initialisation: ~30 ms for a resnet18)."""
    with torch.device("meta"):
        probe = timm.create_model(name, pretrained=False, features_only=True, in_chans=in_chans)
    reductions = list(probe.feature_info.reduction())
    if max_stride not in reductions:
        raise ValueError(f"max_stride {max_stride} is not a level of {name} (strides {reductions})")
    return tuple(i for i, r in zip(probe.feature_info.out_indices, reductions) if r <= max_stride)
