"""``build(config) -> Detector``: the model, criterion and predictor of any family (:mod:`ocrloc.models.family`)."""

from __future__ import annotations

import dataclasses

from ocrloc.config import Config, ConfigError
from ocrloc.data.canvas import get_preset
from ocrloc.data.rules import get_rule
from ocrloc.models.argmax_detector import ArgmaxCriterion, ArgmaxDetector, ArgmaxPredictor
from ocrloc.models.baselines import BASELINE_TYPES, build_baseline
from ocrloc.models.centernet import CenterNetDetector, CenterNetPredictor
from ocrloc.models.centernet_decode import CenterNetDecoder
from ocrloc.models.centernet_loss import CenterNetCriterion
from ocrloc.models.family import Detector
from ocrloc.models.oracle import tell_argmax_head, tell_study_net
from ocrloc.models.study import StudyCriterion, StudyNet, StudyPredictor

__all__ = ["MODEL_TYPES", "build"]

MODEL_TYPES = ("centernet", "argmax", "study") + BASELINE_TYPES


def build(config: Config) -> Detector:
    """The :class:`~ocrloc.models.family.Detector` of ``config`` (model in train mode, on the CPU).

    Choices are checked when the config is loaded (:mod:`ocrloc.config`); what only the model
    can tell is checked here.

    Raises:
        ConfigError: (a ``ValueError``) naming the key, e.g. an unknown timm backbone
            (``model.backbone``), a ``model.head_stride`` the backbone has no level for, anchors
            that do not fit the levels, or the oracle asked of a head that cannot take it.
    """
    try:
        return _build(config)
    except ConfigError:
        raise
    except ValueError as err:  # the models' own checks, reported as the config's
        raise ConfigError(str(err)) from None


def _build(config: Config) -> Detector:
    m = config.model
    if m.type not in MODEL_TYPES:
        raise ValueError(f"unknown model.type {m.type!r}; known types: {', '.join(MODEL_TYPES)}")
    if m.type in BASELINE_TYPES:
        preset = get_preset(config.data.preset)
        return build_baseline(m.type, m, config.postprocess, config.data.rule, (preset.height, preset.width))
    weights = dataclasses.asdict(config.loss)
    if m.type == "study":
        st = m.study
        model = StudyNet(st.head, tuple(st.inputs), st.hidden_layers, st.hidden, st.stem_pool, st.argmax_channels,
                         st.dummy, canvas_size=get_preset(config.data.preset).width, width=st.width,
                         point_fit=st.point_fit, canvas_maps=st.canvas_maps)
        if st.point_init == "rule":  # oracle ablation: the rule told (ocrloc/models/oracle.py)
            tell_study_net(model, get_rule(config.data.rule))
        return Detector(model, StudyCriterion(config.loss.point), StudyPredictor(model))
    try:
        if m.type == "argmax":
            a = m.argmax
            if a.point_init == "rule" and a.point_fit != "gradient":
                raise ValueError("model.argmax.point_init=rule (the rule oracle) needs model.argmax.point_fit=gradient")
            model = ArgmaxDetector(m.backbone, m.fpn_channels, m.head_stride, m.head_channels, m.pretrained_path,
                                   crop_size=a.crop_size, box_margin=a.box_margin, soft_channels=a.argmax_channels,
                                   box_jitter=a.box_jitter, point_fit=a.point_fit, crop_classifier=a.crop_classifier,
                                   ink_reach=a.ink_reach)
            if a.point_init == "rule":  # oracle ablation: the rule told (ocrloc/models/oracle.py)
                tell_argmax_head(model.head, get_rule(config.data.rule))
            dense = CenterNetCriterion(m.head_stride, weights, point_mode="offset")
            criterion = ArgmaxCriterion(dense, config.loss.argmax_point, config.loss.crop_class)
            return Detector(model, criterion, ArgmaxPredictor(model, _decoder(config, "offset")))
        point_mode = m.centernet.point_mode
        model = CenterNetDetector(m.backbone, m.fpn_channels, m.head_stride, m.head_channels, point_mode,
                                  m.pretrained_path)
    except ValueError as err:
        message = str(err)
        if message.startswith("head_stride "):  # the model's words, said in the config's
            message = f"model.{message}"
        raise ValueError(message) from None
    criterion = CenterNetCriterion(m.head_stride, weights, point_mode=point_mode)
    return Detector(model, criterion, CenterNetPredictor(model, _decoder(config, point_mode)))


def _decoder(config: Config, point_mode: str) -> CenterNetDecoder:
    p = config.postprocess
    return CenterNetDecoder(config.model.head_stride, max_detections=p.max_detections,
                            score_threshold=p.score_threshold, nms_kernel=p.nms_kernel,
                            iou_threshold=p.iou_threshold, point_mode=point_mode)
