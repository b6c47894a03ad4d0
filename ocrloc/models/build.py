"""``build(config) -> (model, criterion, postprocess)``, DETR-style: three separate modules."""

from __future__ import annotations

import dataclasses
from typing import Tuple

from torch import nn

from ocrloc.config import Config
from ocrloc.data.canvas import get_preset
from ocrloc.data.rules import get_rule
from ocrloc.models.argmax_detector import POINT_FITS, ArgmaxCriterion, ArgmaxDetector, DetectionsPassThrough
from ocrloc.models.baselines import BASELINE_TYPES, build_baseline
from ocrloc.models.centernet import CenterNetDetector
from ocrloc.models.criterion import CenterNetCriterion
from ocrloc.models.oracle import tell_argmax_head, tell_study_net
from ocrloc.models.postprocess import CenterNetPostprocess
from ocrloc.models.study import StudyCriterion, StudyNet, StudyPostprocess

__all__ = ["MODEL_TYPES", "build"]

MODEL_TYPES = ("centernet", "argmax", "study") + BASELINE_TYPES


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
    weights = dataclasses.asdict(config.loss)
    if m.type == "study":
        side = get_preset(config.data.preset).width
        st = m.study
        if st.point_init not in ("default", "rule"):
            raise ValueError(f"unknown model.study.point_init {st.point_init!r}; known: default, rule")
        model = StudyNet(st.head, tuple(st.inputs), st.hidden_layers, st.hidden, st.stem_pool, st.argmax_channels,
                         st.dummy, canvas_size=side, width=st.width, point_fit=st.point_fit,
                         canvas_maps=st.canvas_maps)
        if st.point_init == "rule":  # oracle ablation: the rule told (ocrloc/models/oracle.py)
            tell_study_net(model, get_rule(config.data.rule))
        return model, StudyCriterion(config.loss.point), StudyPostprocess(side)
    if m.type == "argmax":
        if m.point_init not in ("zero", "rule"):
            raise ValueError(f"unknown model.point_init {m.point_init!r}; known: zero, rule")
        if m.point_fit not in POINT_FITS:
            raise ValueError(f"unknown model.point_fit {m.point_fit!r}; known: {', '.join(POINT_FITS)}")
        if m.point_init == "rule" and m.point_fit != "gradient":
            raise ValueError("model.point_init=rule (the rule oracle) needs model.point_fit=gradient")
        decode = _centernet_postprocess(config, point_mode="offset")
        model = ArgmaxDetector(m.backbone, m.fpn_channels, m.head_stride, m.head_channels, m.pretrained_path,
                               crop_size=m.crop_size, box_margin=m.box_margin, soft_channels=m.argmax_channels,
                               postprocess=decode, box_jitter=m.box_jitter, point_fit=m.point_fit,
                               crop_classifier=m.crop_classifier, ink_reach=m.ink_reach)
        if m.point_init == "rule":  # oracle ablation: the rule told (ocrloc/models/oracle.py)
            tell_argmax_head(model.head, get_rule(config.data.rule))
        dense = CenterNetCriterion(m.head_stride, weights, point_mode="offset")
        criterion = ArgmaxCriterion(dense, config.loss.argmax_point, config.loss.crop_class)
        return model, criterion, DetectionsPassThrough()
    model = CenterNetDetector(
        backbone=m.backbone,
        fpn_channels=m.fpn_channels,
        head_stride=m.head_stride,
        head_channels=m.head_channels,
        point_mode=m.point_mode,
        pretrained_path=m.pretrained_path,
    )
    criterion = CenterNetCriterion(m.head_stride, weights, point_mode=m.point_mode)
    return model, criterion, _centernet_postprocess(config, m.point_mode)


def _centernet_postprocess(config: Config, point_mode: str) -> CenterNetPostprocess:
    p = config.postprocess
    return CenterNetPostprocess(config.model.head_stride, max_detections=p.max_detections,
                                score_threshold=p.score_threshold, nms_kernel=p.nms_kernel,
                                iou_threshold=p.iou_threshold, point_mode=point_mode)
