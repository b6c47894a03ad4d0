"""``build(config) -> (model, criterion, postprocess)``, DETR-style: three separate modules."""

from __future__ import annotations

import dataclasses
from typing import Tuple

from torch import nn

from ocrloc.config import Config
from ocrloc.data.canvas import get_preset
from ocrloc.models.baselines import BASELINE_TYPES, build_baseline
from ocrloc.models.centernet import CenterNetDetector
from ocrloc.models.criterion import CenterNetCriterion
from ocrloc.models.postprocess import CenterNetPostprocess

__all__ = ["MODEL_TYPES", "build"]

MODEL_TYPES = ("centernet",) + BASELINE_TYPES


def build(config: Config) -> Tuple[nn.Module, nn.Module, nn.Module]:
    """The model, its criterion and its postprocess for ``config``.

    Raises:
        ValueError: for an unknown ``model.type``, naming the known ones.
    """
    m = config.model
    if m.type not in MODEL_TYPES:
        raise ValueError(f"unknown model.type {m.type!r}; known types: {', '.join(MODEL_TYPES)}")
    if m.type in BASELINE_TYPES:
        preset = get_preset(config.data.preset)
        return build_baseline(m.type, m, config.postprocess, config.data.rule, (preset.height, preset.width))
    model = CenterNetDetector(
        backbone=m.backbone,
        fpn_channels=m.fpn_channels,
        head_stride=m.head_stride,
        head_channels=m.head_channels,
        point_mode=m.point_mode,
        pretrained_path=m.pretrained_path,
    )
    criterion = CenterNetCriterion(m.head_stride, dataclasses.asdict(config.loss), point_mode=m.point_mode)
    p = config.postprocess
    postprocess = CenterNetPostprocess(
        m.head_stride,
        max_detections=p.max_detections,
        score_threshold=p.score_threshold,
        nms_kernel=p.nms_kernel,
        iou_threshold=p.iou_threshold,
        point_mode=m.point_mode,
    )
    return model, criterion, postprocess
