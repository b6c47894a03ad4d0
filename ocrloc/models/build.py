"""``build(config) -> Detector``: the model, criterion and predictor of any family (:mod:`ocrloc.models.family`)."""

from __future__ import annotations

import dataclasses
from typing import Optional

from ocrloc.config import Config, ConfigError
from ocrloc.data.catalog import get_preset
from ocrloc.data.task import Task, digits_task
from ocrloc.families import MODEL_TYPES, get_family
from ocrloc.models.argmax_detector import ArgmaxCriterion, ArgmaxDetector, ArgmaxPredictor
from ocrloc.models.centernet import CenterNetDetector, CenterNetPredictor
from ocrloc.models.centernet_decode import CenterNetDecoder
from ocrloc.models.centernet_loss import CenterNetCriterion
from ocrloc.models.family import Detector

__all__ = ["MODEL_TYPES", "build", "build_argmax", "build_baseline_family", "build_centernet", "centernet_decoder"]


def build(config: Config, task: Optional[Task] = None) -> Detector:
    """The :class:`~ocrloc.models.family.Detector` of ``config`` for ``task`` (model in train mode, on the CPU):
    the builder that ``model.type``'s entry of :mod:`ocrloc.families` names.

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
        detector = get_family(config.model.type).build(config, task)
    except ConfigError:
        raise
    except ValueError as err:  # the models' own checks, reported as the config's
        message = str(err)
        if message.startswith(("head_stride ", "max_stride ")):  # the model's words, said in the config's
            message = f"model.{message}"
        raise ConfigError(message) from None
    detector.task = task
    return detector


def build_centernet(config: Config, task: Task) -> Detector:
    """``model.type: centernet``: ocrloc's dense point detector (:mod:`ocrloc.models.centernet`)."""
    m = config.model
    point_mode = m.centernet.point_mode
    model = CenterNetDetector(m.backbone, m.fpn_channels, m.head_stride, m.head_channels, point_mode,
                              m.pretrained_path, m.shared_head_stem, m.max_stride, num_classes=task.num_classes,
                              num_keypoints=task.num_keypoints)
    criterion = CenterNetCriterion(m.head_stride, dataclasses.asdict(config.loss), point_mode=point_mode,
                                   num_classes=task.num_classes, num_keypoints=task.num_keypoints)
    return Detector(model, criterion, CenterNetPredictor(model, centernet_decoder(config, point_mode, task)))


def build_argmax(config: Config, task: Task) -> Detector:
    """``model.type: argmax``: the dense detector + crop classifier + argmax-feature point head
    (:mod:`ocrloc.models.argmax_detector`)."""
    m, a = config.model, config.model.argmax
    classes, keypoints = task.num_classes, task.num_keypoints
    if a.point_init == "rule" and task != digits_task():
        raise ValueError("model.argmax.point_init=rule (the rule oracle) writes the built-in digit rules; "
                         "this dataset is not the MNIST digits")
    if a.classifier_updates > 1 and not a.crop_classifier:
        raise ValueError("model.argmax.classifier_updates > 1 needs model.argmax.crop_classifier=true")
    if a.point_init == "rule" and a.point_fit != "gradient":
        raise ValueError("model.argmax.point_init=rule (the rule oracle) needs model.argmax.point_fit=gradient")
    model = ArgmaxDetector(m.backbone, m.fpn_channels, m.head_stride, m.head_channels, m.pretrained_path,
                           crop_size=a.crop_size, box_margin=a.box_margin, soft_channels=a.argmax_channels,
                           box_jitter=a.box_jitter, point_fit=a.point_fit, crop_classifier=a.crop_classifier,
                           ink_reach=a.ink_reach, shared_head_stem=m.shared_head_stem,
                           point_map=a.point_map, map_channels=a.map_channels, map_context=a.map_context,
                           map_lr_scale=a.map_lr_scale, map_tolerance=a.map_tolerance,
                           classifier_width=a.classifier_width, ink_boxes=a.ink_boxes,
                           calibrate_score=a.calibrate_score, classify_ink_box=a.classify_ink_box,
                           classifier_updates=a.classifier_updates, max_stride=m.max_stride, num_classes=classes,
                           num_keypoints=keypoints)
    # point_init: rule (the oracle ablation) is written in by build(), from the family's entry in
    # ocrloc/families.py: the product's modules never import ocrloc.research.
    dense = CenterNetCriterion(m.head_stride, dataclasses.asdict(config.loss), point_mode="offset",
                               num_classes=classes, num_keypoints=keypoints)
    criterion = ArgmaxCriterion(dense, config.loss.argmax_point, config.loss.crop_class, config.loss.point_map,
                                point_map=a.point_map)
    return Detector(model, criterion, ArgmaxPredictor(model, centernet_decoder(config, "offset", task)))


def build_baseline_family(config: Config, task: Task) -> Detector:
    """``model.type`` ``retinanet``, ``ssd``, ``fcos`` or ``keypointrcnn``: a torchvision detector on
    the same backbone + FPN (:mod:`ocrloc.models.baselines`)."""
    from ocrloc.models.baselines import build_baseline

    preset = get_preset(config.data.preset)
    return build_baseline(config.model.type, config.model, config.postprocess, config.data.rule,
                          (preset.height, preset.width), task)


def centernet_decoder(config: Config, point_mode: str, task: Task) -> CenterNetDecoder:
    """The dense detector's decoding, set by ``config.postprocess``."""
    p = config.postprocess
    return CenterNetDecoder(config.model.head_stride, max_detections=p.max_detections,
                            score_threshold=p.score_threshold, nms_kernel=p.nms_kernel,
                            iou_threshold=p.iou_threshold, point_mode=point_mode, num_classes=task.num_classes,
                            num_keypoints=task.num_keypoints)
