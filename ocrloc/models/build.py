"""``build(config) -> Detector``: the model, criterion and predictor of any family (:mod:`ocrloc.models.family`)."""

from __future__ import annotations

import dataclasses
from typing import Optional

from ocrloc.config import Config, ConfigError
from ocrloc.data.catalog import get_preset
from ocrloc.data.rules import get_rule
from ocrloc.data.task import Task, digits_task
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


def build(config: Config, task: Optional[Task] = None) -> Detector:
    """The :class:`~ocrloc.models.family.Detector` of ``config`` for ``task`` (model in train mode, on the CPU).

    The data defines the task: how many classes, how many keypoints per class
    (:class:`~ocrloc.data.task.Task`; None: the MNIST digits, ten classes, one point each).
    Choices are checked when the config is loaded (:mod:`ocrloc.config`); what only the model
    can tell is checked here.

    Raises:
        ConfigError: (a ``ValueError``) naming the key, e.g. an unknown timm backbone
            (``model.backbone``), a ``model.head_stride`` the backbone has no level for, anchors
            that do not fit the levels, or the oracle asked of a head that cannot take it.
    """
    task = task if task is not None else digits_task()
    try:
        detector = _build(config, task)
    except ConfigError:
        raise
    except ValueError as err:  # the models' own checks, reported as the config's
        raise ConfigError(str(err)) from None
    detector.task = task
    return detector


def _build(config: Config, task: Task) -> Detector:
    m = config.model
    classes, keypoints = task.num_classes, task.num_keypoints
    if m.type not in MODEL_TYPES:
        raise ValueError(f"unknown model.type {m.type!r}; known types: {', '.join(MODEL_TYPES)}")
    if m.type in BASELINE_TYPES:
        preset = get_preset(config.data.preset)
        return build_baseline(m.type, m, config.postprocess, config.data.rule, (preset.height, preset.width), task)
    weights = dataclasses.asdict(config.loss)
    if m.type == "study":
        if keypoints != 1:
            raise ValueError(f"model.type study places one point per class; the data names {keypoints} keypoints")
        st = m.study
        model = StudyNet(st.head, tuple(st.inputs), st.hidden_layers, st.hidden, st.stem_pool, st.argmax_channels,
                         st.dummy, canvas_size=get_preset(config.data.preset).width, width=st.width,
                         point_fit=st.point_fit, canvas_maps=st.canvas_maps, num_classes=classes)
        if st.point_init == "rule":  # oracle ablation: the rule told (ocrloc/models/oracle.py)
            tell_study_net(model, get_rule(config.data.rule))
        return Detector(model, StudyCriterion(config.loss.point), StudyPredictor(model))
    try:
        if m.type == "argmax":
            a = m.argmax
            if a.point_init == "rule" and task != digits_task():
                raise ValueError("model.argmax.point_init=rule (the rule oracle) writes the built-in digit rules; "
                                 "this dataset is not the MNIST digits")
            if a.point_init == "rule" and a.point_fit != "gradient":
                raise ValueError("model.argmax.point_init=rule (the rule oracle) needs model.argmax.point_fit=gradient")
            model = ArgmaxDetector(m.backbone, m.fpn_channels, m.head_stride, m.head_channels, m.pretrained_path,
                                   crop_size=a.crop_size, box_margin=a.box_margin, soft_channels=a.argmax_channels,
                                   box_jitter=a.box_jitter, point_fit=a.point_fit, crop_classifier=a.crop_classifier,
                                   ink_reach=a.ink_reach, shared_head_stem=m.shared_head_stem,
                                   point_map=a.point_map, map_channels=a.map_channels, map_context=a.map_context,
                                   map_lr_scale=a.map_lr_scale, ink_boxes=a.ink_boxes,
                                   calibrate_score=a.calibrate_score,
                                   num_classes=classes,
                                   num_keypoints=keypoints)
            if a.point_init == "rule":  # oracle ablation: the rule told (ocrloc/models/oracle.py)
                tell_argmax_head(model.head, get_rule(config.data.rule))
            dense = CenterNetCriterion(m.head_stride, weights, point_mode="offset", num_classes=classes,
                                       num_keypoints=keypoints)
            criterion = ArgmaxCriterion(dense, config.loss.argmax_point, config.loss.crop_class, config.loss.point_map,
                                        point_map=a.point_map)
            return Detector(model, criterion, ArgmaxPredictor(model, _decoder(config, "offset", task)))
        point_mode = m.centernet.point_mode
        model = CenterNetDetector(m.backbone, m.fpn_channels, m.head_stride, m.head_channels, point_mode,
                                  m.pretrained_path, m.shared_head_stem, num_classes=classes, num_keypoints=keypoints)
    except ValueError as err:
        message = str(err)
        if message.startswith("head_stride "):  # the model's words, said in the config's
            message = f"model.{message}"
        raise ValueError(message) from None
    criterion = CenterNetCriterion(m.head_stride, weights, point_mode=point_mode, num_classes=classes,
                                   num_keypoints=keypoints)
    return Detector(model, criterion, CenterNetPredictor(model, _decoder(config, point_mode, task)))


def _decoder(config: Config, point_mode: str, task: Task) -> CenterNetDecoder:
    p = config.postprocess
    return CenterNetDecoder(config.model.head_stride, max_detections=p.max_detections,
                            score_threshold=p.score_threshold, nms_kernel=p.nms_kernel,
                            iou_threshold=p.iou_threshold, point_mode=point_mode, num_classes=task.num_classes,
                            num_keypoints=task.num_keypoints)
