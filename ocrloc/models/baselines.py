"""torchvision's detectors on ocrloc's backbone: the baselines of the comparison (README, Results).

``RetinaNet``, ``SSD``, ``FCOS`` and ``KeypointRCNN`` are torchvision's own classes, given the
same trunk (timm backbone + ``FeaturePyramidNetwork``, :class:`~ocrloc.models.trunk.Trunk`) as
:class:`~ocrloc.models.centernet.CenterNetDetector` and set up for these canvases:

* **No resizing.** torchvision's ``GeneralizedRCNNTransform`` rescales every image to
  ``min_size``; :class:`CanvasTransform` keeps the canvas at its own scale (digits are the same
  size in pixels on any canvas, as for ocrloc's detector) and only normalises and pads.
* **One grey channel**, normalised with the canvas statistics ocrloc's detector uses.
* **Anchors for digits** whose ink box is about 10-26 px tall and 2-26 px wide (see
  :data:`DEFAULT_ANCHORS`; ``model.baseline.anchor_sizes`` / ``model.baseline.aspect_ratios`` override them).
* **Labels.** RetinaNet and FCOS score each class with its own sigmoid, so digit ``d`` is label
  ``d``; SSD and R-CNN reserve label 0 for background, so digit ``d`` is label ``d + 1`` inside
  the wrapper and outputs are mapped back.

The box detectors place the class-dependent point from their box (:class:`BoxPointPostprocess`):
the rule (``docs/task.md``, "Rules") applied to box geometry, the strongest thing a box detector
can do without a point head. ``KeypointRCNN`` predicts the point: its keypoint head is class-agnostic, so it
gets one keypoint channel per digit class, trained only at the instance's own class and read at
the predicted class.

The family contract (:mod:`ocrloc.models.family`): torchvision computes a detector's losses
inside its forward, so ``model(images, targets)`` returns torchvision's loss terms, in train
and eval mode alike (in eval mode with batch-norm statistics frozen and the random state
untouched); :class:`DetectorLoss` sums them. :class:`BaselinePredictor` runs the detector in
eval mode and :class:`BoxPointPostprocess` turns its detections into the exported model's dicts
(``docs/task.md``, "The exported model").
"""

# No `from __future__ import annotations`: TorchScript reads these annotations.
from typing import Dict, List, Optional, Sequence, Tuple

import torch
from torch import Tensor, nn
from torchvision.models.detection import FCOS, KeypointRCNN, RetinaNet
from torchvision.models.detection.anchor_utils import AnchorGenerator, DefaultBoxGenerator
from torchvision.models.detection.faster_rcnn import FastRCNNPredictor, TwoMLPHead
from torchvision.models.detection.keypoint_rcnn import KeypointRCNNHeads, KeypointRCNNPredictor
from torchvision.models.detection.ssd import SSD, SSDHead
from torchvision.models.detection.transform import GeneralizedRCNNTransform
from torchvision.ops import MultiScaleRoIAlign
from torchvision.ops import boxes as box_ops

from ocrloc.data.points import parse_stroke_point
from ocrloc.data.rules import RULE_POINT_NAMES, get_rule
from ocrloc.models.constants import PIXEL_MEAN, PIXEL_STD
from ocrloc.models.family import Criterion, Detector, PredictorModule
from ocrloc.models.trunk import Trunk

__all__ = [
    "BASELINE_TYPES",
    "DEFAULT_ANCHORS",
    "LOSS_TERMS",
    "BOX_POINT_COEFFICIENTS",
    "CanvasTransform",
    "TorchvisionDetector",
    "BaselinePredictor",
    "DetectorLoss",
    "BoxPointPostprocess",
    "box_point_names",
    "build_baseline",
]

BASELINE_TYPES = ("retinanet", "ssd", "fcos", "keypointrcnn")

# Anchor sizes (sqrt of area, pixels) per FPN level p3, p4, p5 and aspect ratios h / w.
# Digits are 10-26 px tall and 2-26 px wide (a `1` is a tall thin box): sizes 10-32 px at
# ratios 1, 2 and 4 give every digit an anchor with IoU >= 0.5; p5 covers the largest
# resized digits. FCOS takes one "anchor" per level equal to its stride (its scale ranges).
DEFAULT_ANCHORS: Dict[str, Tuple[List[List[float]], List[float]]] = {
    "retinanet": ([[10.0, 13.0, 16.0], [20.0, 25.0, 32.0], [40.0, 50.0, 64.0]], [1.0, 2.0, 4.0]),
    "keypointrcnn": ([[10.0, 13.0, 16.0], [20.0, 25.0, 32.0], [40.0, 50.0, 64.0]], [1.0, 2.0, 4.0]),
    "fcos": ([[8.0], [16.0], [32.0]], [1.0]),
    # SSD: default box scales are fractions of the canvas side (SSD's own convention), one per
    # level plus one; the aspect ratios add w/h = r and 1/r boxes to the two square ones.
    "ssd": ([[0.08, 0.16, 0.3, 0.5]], [2.0, 3.0]),
}

# The loss terms of each detector's loss dict (``loss_`` prefix dropped), for metrics.csv.
LOSS_TERMS: Dict[str, Tuple[str, ...]] = {
    "retinanet": ("classification", "bbox_regression"),
    "fcos": ("classification", "bbox_regression", "bbox_ctrness"),
    "ssd": ("bbox_regression", "classification"),
    "keypointrcnn": ("classifier", "box_reg", "keypoint", "objectness", "rpn_box_reg"),
}

# The named points (docs/task.md, "Named points") on box geometry: point = (a0 * x1 + a1 * x2, a2 * y1 + a3 * y2).
BOX_POINT_COEFFICIENTS: Dict[str, Tuple[float, float, float, float]] = {
    "topleft": (1.0, 0.0, 1.0, 0.0),
    "center": (0.5, 0.5, 0.5, 0.5),
    "centroid": (0.5, 0.5, 0.5, 0.5),
    "topmost": (0.5, 0.5, 1.0, 0.0),
    "bottommost": (0.5, 0.5, 0.0, 1.0),
    "leftmost": (1.0, 0.0, 0.5, 0.5),
    "rightmost": (0.0, 1.0, 0.5, 0.5),
    # The further box points a rule file may ask for are box geometry already.
    "topright": (0.0, 1.0, 1.0, 0.0),
    "bottomleft": (1.0, 0.0, 0.0, 1.0),
    "bottomright": (0.0, 1.0, 0.0, 1.0),
    "top_middle": (0.5, 0.5, 1.0, 0.0),
    "bottom_middle": (0.5, 0.5, 0.0, 1.0),
    "left_middle": (1.0, 0.0, 0.5, 0.5),
    "right_middle": (0.0, 1.0, 0.5, 0.5),
}
assert set(BOX_POINT_COEFFICIENTS) == set(RULE_POINT_NAMES), "every point a rule may ask for needs a box rule"


def box_point_coefficients(name: str, default: Tuple[float, float, float, float]) -> Tuple[float, float, float, float]:
    """The box rule of a point name (:data:`BOX_POINT_COEFFICIENTS`), of a stroke point (its
    reference point ``(x1 + a w, y1 + b h)``: a box holds no stroke, so that is the nearest a
    box detector gets; :func:`~ocrloc.data.points.stroke_point`), or ``default`` for a name a
    dataset made up."""
    if name in BOX_POINT_COEFFICIENTS:
        return BOX_POINT_COEFFICIENTS[name]
    stroke = parse_stroke_point(name)
    if stroke is not None:
        a, b = stroke[1][:2]
        return (1.0 - a, a, 1.0 - b, b)
    return default


class CanvasTransform(GeneralizedRCNNTransform):
    """``GeneralizedRCNNTransform`` without the resize: normalise, pad to ``size_divisible``, batch.

    torchvision rescales every image so its short side is ``min_size``; a digit detector must
    see digits at their pixel size whatever the canvas size, as ocrloc's own detector does.
    """

    def __init__(self, size_divisible: int = 32) -> None:
        super().__init__(min_size=128, max_size=128, image_mean=[PIXEL_MEAN], image_std=[PIXEL_STD],
                         size_divisible=size_divisible)

    def resize(self, image: Tensor, target: Optional[Dict[str, Tensor]] = None
               ) -> Tuple[Tensor, Optional[Dict[str, Tensor]]]:
        return image, target


def _anchors(kind: str, sizes: Optional[List[List[float]]], ratios: Optional[List[float]], levels: int
             ) -> Tuple[List[List[float]], List[float]]:
    default_sizes, default_ratios = DEFAULT_ANCHORS[kind]
    sizes = default_sizes if sizes is None else sizes
    ratios = default_ratios if ratios is None else ratios
    expected = 1 if kind == "ssd" else levels
    if len(sizes) != expected:
        what = "one list of levels + 1 scales" if kind == "ssd" else f"one list of sizes per FPN level ({levels})"
        raise ValueError(f"model.baseline.anchor_sizes for {kind}: expected {what}, got {sizes!r}")
    if kind == "ssd" and len(sizes[0]) != levels + 1:
        raise ValueError(f"model.baseline.anchor_sizes for ssd: expected {levels + 1} scales (levels + 1), got {sizes[0]!r}")
    if kind == "fcos" and (len(ratios) != 1 or any(len(s) != 1 for s in sizes)):
        raise ValueError(f"model.baseline.anchor_sizes for fcos: one size and one ratio per level, got {sizes!r}, {ratios!r}")
    return sizes, ratios


class TorchvisionDetector(nn.Module):
    """A torchvision detector on the shared :class:`~ocrloc.models.trunk.Trunk`, with ocrloc's ``model(images, targets)`` interface.

    Args:
        kind: one of :data:`BASELINE_TYPES`.
        backbone: timm model name.
        fpn_channels: FPN channels.
        min_stride: the finest FPN level (8: p3-p5).
        canvas_size: ``(H, W)`` of the training canvases (SSD's default boxes are fractions of it).
        anchor_sizes, aspect_ratios: None for :data:`DEFAULT_ANCHORS`.
        score_threshold, max_detections: the detector's own decoding.
        pretrained_path: optional local backbone checkpoint.
        num_classes, num_keypoints: the data's classes and keypoints per class (K).
        shared_keypoints: KeypointRCNN only: K keypoint channels shared by every class instead of
            one set per class.
    """

    def __init__(self, kind: str, backbone: str = "resnet18", fpn_channels: int = 64,
                 min_stride: int = 8, canvas_size: Sequence[int] = (128, 128),
                 anchor_sizes: Optional[List[List[float]]] = None, aspect_ratios: Optional[List[float]] = None,
                 score_threshold: float = 0.05, max_detections: int = 100, pretrained_path: Optional[str] = None,
                 *, num_classes: int, num_keypoints: int, shared_keypoints: bool = False) -> None:
        super().__init__()
        self.shared_keypoints = shared_keypoints
        if kind not in BASELINE_TYPES:
            raise ValueError(f"unknown baseline {kind!r}; known: {', '.join(BASELINE_TYPES)}")
        self.kind = kind
        self.num_classes = num_classes
        self.num_keypoints = num_keypoints
        # SSD and R-CNN keep label 0 for background; RetinaNet and FCOS have no background class.
        self.label_offset = 1 if kind in ("ssd", "keypointrcnn") else 0
        body = Trunk(backbone, fpn_channels, min_stride, pretrained_path)
        levels = len(body.level_names)
        sizes, ratios = _anchors(kind, anchor_sizes, aspect_ratios, levels)
        common = dict(image_mean=[PIXEL_MEAN], image_std=[PIXEL_STD])
        if kind == "retinanet":
            generator = AnchorGenerator(tuple(tuple(s) for s in sizes), (tuple(ratios),) * levels)
            detector: nn.Module = RetinaNet(body, num_classes, anchor_generator=generator, score_thresh=score_threshold,
                                            detections_per_img=max_detections, **common)
        elif kind == "fcos":
            generator = AnchorGenerator(tuple(tuple(s) for s in sizes), (tuple(ratios),) * levels)
            detector = FCOS(body, num_classes, anchor_generator=generator, score_thresh=score_threshold,
                            detections_per_img=max_detections, **common)
        elif kind == "ssd":
            generator = DefaultBoxGenerator([list(ratios)] * levels, scales=list(sizes[0]),
                                            steps=[int(s) for s in body.strides])
            # SSD would probe the backbone with a 3-channel image to read its channels; give the head.
            head = SSDHead([fpn_channels] * levels, generator.num_anchors_per_location(), num_classes + 1)
            detector = SSD(body, generator, (int(canvas_size[0]), int(canvas_size[1])), num_classes + 1, head=head,
                           score_thresh=score_threshold, detections_per_img=max_detections, **common)
        else:
            generator = AnchorGenerator(tuple(tuple(s) for s in sizes), (tuple(ratios),) * levels)
            names = body.level_names
            # Heads slimmed for 10-26 px digits on a CPU: a 256-d box MLP instead of torchvision's
            # 1024-d one, and two 64-channel keypoint convs instead of eight 512-channel ones. The
            # keypoint head runs on every positive sampled RoI (up to a quarter of
            # box_batch_size_per_image per canvas): at 128 RoIs and four convs it cost ~6 s per
            # step of 32 canvases here, 4x any other row; 64 RoIs and two convs keep it near theirs.
            detector = KeypointRCNN(
                body, num_classes=None, num_keypoints=None, rpn_anchor_generator=generator,
                box_roi_pool=MultiScaleRoIAlign(names, 7, 2), keypoint_roi_pool=MultiScaleRoIAlign(names, 14, 2),
                box_head=TwoMLPHead(fpn_channels * 7 * 7, 256), box_predictor=FastRCNNPredictor(256, num_classes + 1),
                keypoint_head=KeypointRCNNHeads(fpn_channels, (64, 64)),
                keypoint_predictor=KeypointRCNNPredictor(64, num_keypoints if shared_keypoints
                                                         else num_classes * num_keypoints),
                rpn_pre_nms_top_n_train=600, rpn_post_nms_top_n_train=300,
                rpn_pre_nms_top_n_test=300, rpn_post_nms_top_n_test=100,
                box_batch_size_per_image=64, box_score_thresh=score_threshold,
                box_detections_per_img=max_detections, **common)
        self.size_divisible = max(body.body.body.feature_info.reduction())
        detector.transform = CanvasTransform(size_divisible=self.size_divisible)
        self.detector = detector
        # The modules whose `training` flag makes torchvision compute losses (not batch norm's).
        self._loss_gates: List[nn.Module] = [detector]
        if kind == "keypointrcnn":
            self._loss_gates += [detector.rpn, detector.roi_heads]

    def _torchvision_target(self, target: Dict[str, Tensor]) -> Dict[str, Tensor]:
        labels = target["labels"]
        device = labels.device
        out = {"boxes": target["boxes"].float(), "labels": labels + self.label_offset}
        if self.kind == "keypointrcnn":
            # One channel per (class, keypoint): the instance's keypoints in its own class's
            # channels, every other channel invisible (visibility 0 carries no loss in
            # keypointrcnn_loss; so does a keypoint the instance leaves unlabelled).
            n, k = labels.shape[0], self.num_keypoints
            given = target["keypoints"].float().view(n, k, 3)
            if self.shared_keypoints:  # every class's keypoints in the same K channels
                out["keypoints"] = torch.cat([given[..., :2], (given[..., 2:] > 0).float()], dim=2)
                return out
            keypoints = torch.zeros(n, self.num_classes * k, 3, device=device)
            slots = labels[:, None] * k + torch.arange(k, device=device)[None, :]
            rows = torch.arange(n, device=device)[:, None].expand(n, k)
            keypoints[rows, slots, :2] = given[..., :2]
            keypoints[rows, slots, 2] = (given[..., 2] > 0).float()
            out["keypoints"] = keypoints
        return out

    def forward(self, images: Tensor, targets: Optional[List[Dict[str, Tensor]]] = None) -> Dict[str, Tensor]:
        """torchvision's loss terms (``loss_classification``, ...), in train and eval mode alike.

        Args:
            images: ``[B, 1, H, W]`` in [0, 1].
            targets: ocrloc targets (``boxes`` xyxy, ``labels`` class indices, ``keypoints`` ``[N, K, 3]``),
                on the images' device. Required: detections come from :class:`BaselinePredictor`.
        """
        if targets is None:
            raise ValueError(f"{self.kind}: torchvision computes a baseline's outputs, its losses, from targets; "
                             "detections come from the predictor")
        image_list = list(images.unbind(0))
        tv_targets = [self._torchvision_target(t) for t in targets]
        if self.training:
            return self.detector(image_list, tv_targets)
        # Eval mode (validation loss): flip only the flags that gate torchvision's loss code, so
        # batch norm keeps its running statistics, and leave the random state as it was (the
        # R-CNN samples proposals at random).
        with torch.random.fork_rng(devices=[images.device] if images.is_cuda else []):
            for module in self._loss_gates:
                module.training = True
            try:
                return self.detector(image_list, tv_targets)
            finally:
                for module in self._loss_gates:
                    module.training = False


class BaselinePredictor(PredictorModule):
    """``[B, 1, H, W]`` -> detections (``docs/task.md``, "The exported model") of a
    :class:`TorchvisionDetector` (scriptable: a scripted torchvision detector returns
    ``(losses, detections)``, an eager one the detections)."""

    def __init__(self, model: TorchvisionDetector, decoder: "BoxPointPostprocess") -> None:
        super().__init__(model.size_divisible, model.size_divisible)
        self.detector = model.detector
        self.decoder = decoder

    def forward(self, images: Tensor) -> List[Dict[str, Tensor]]:
        image_list = list(images.unbind(0))
        if torch.jit.is_scripting():
            detections = self.detector(image_list)[1]
        else:
            detections = self.detector(image_list)
        return self.decoder(detections)


class DetectorLoss(Criterion):
    """Sum of a torchvision detector's loss dict, one weight per term (default 1)."""

    def __init__(self, loss_terms: Sequence[str] = (), weights: Optional[Dict[str, float]] = None) -> None:
        super().__init__()
        self.loss_terms = tuple(loss_terms)
        self.weights = dict(weights or {})

    def forward(self, losses: Dict[str, Tensor], targets: object = None) -> Tuple[Tensor, Dict[str, Tensor]]:
        terms = {name.replace("loss_", "", 1): value for name, value in losses.items()}
        total = sum(self.weights.get(name, 1.0) * value for name, value in terms.items())
        return total, terms


class BoxPointPostprocess(nn.Module):
    """torchvision detections -> the exported model's dicts (``docs/task.md``, "The exported model":
    ``boxes``, ``scores``, ``labels`` (class indices), ``keypoints`` ``[N, K, 3]``).

    Labels are mapped back by ``label_offset``; duplicates of different classes on one character
    are suppressed class-agnostically (as ocrloc's own decoder does: one character has one class).
    Each keypoint is its name's rule on box geometry (:data:`BOX_POINT_COEFFICIENTS`; a name the
    box cannot give, such as a typographic baseline, falls back to the box center) or, with
    ``from_keypoints``, the keypoint channels of the predicted class.

    Args:
        point_names: the keypoint names of each class (K per class; see :func:`box_point_names`).
        label_offset: subtracted from torchvision's labels.
        from_keypoints: read ``keypoints[N, num_classes * K, 3]`` at the label instead of the box rule.
        iou_threshold: class-agnostic suppression threshold.
        max_detections: detections kept per image.
    """

    def __init__(self, point_names: Sequence[Sequence[str]], label_offset: int = 0, from_keypoints: bool = False,
                 iou_threshold: float = 0.6, max_detections: int = 100, shared_keypoints: bool = False) -> None:
        super().__init__()
        self.shared_keypoints = shared_keypoints
        k = max(len(names) for names in point_names)
        center = BOX_POINT_COEFFICIENTS["center"]
        coefficients = torch.tensor([[box_point_coefficients(name, center) for name in names]
                                     + [center] * (k - len(names)) for names in point_names])  # [C, K, 4]
        self.register_buffer("coefficients", coefficients, persistent=False)
        self.label_offset = label_offset
        self.from_keypoints = from_keypoints
        self.iou_threshold = iou_threshold
        self.max_detections = max_detections
        self.num_classes = len(point_names)
        self.num_keypoints = k

    @classmethod
    def from_rule(cls, rule: str, num_classes: int, **kwargs) -> "BoxPointPostprocess":
        """The box rule of a built-in rule (or rule file) over digit classes ``0 .. num_classes - 1``."""
        table = get_rule(rule)
        return cls([[table.get(c, "center")] for c in range(num_classes)], **kwargs)

    def forward(self, detections: List[Dict[str, Tensor]]) -> List[Dict[str, Tensor]]:
        results: List[Dict[str, Tensor]] = []
        k = self.num_keypoints
        for det in detections:
            boxes, scores = det["boxes"], det["scores"]
            labels = det["labels"] - self.label_offset
            valid = (labels >= 0) & (labels < self.num_classes)
            keep = box_ops.nms(boxes[valid], scores[valid], self.iou_threshold)[: self.max_detections]
            index = torch.nonzero(valid).flatten()[keep]
            boxes, scores, labels = boxes[index], scores[index], labels[index]
            n = labels.shape[0]
            if self.from_keypoints:
                slots = torch.arange(k, device=labels.device)[None, :].expand(n, k)
                if not self.shared_keypoints:
                    slots = slots + labels[:, None] * k
                rows = index[:, None].expand(n, k)
                point = det["keypoints"][rows, slots, :2]  # [N, K, 2]
            else:
                a = self.coefficients.to(boxes.dtype)[labels]  # [N, K, 4]
                x = a[..., 0] * boxes[:, None, 0] + a[..., 1] * boxes[:, None, 2]
                y = a[..., 2] * boxes[:, None, 1] + a[..., 3] * boxes[:, None, 3]
                point = torch.stack([x, y], dim=2)
            keypoints = torch.cat([point, scores[:, None, None].expand(n, k, 1)], dim=2)
            results.append({"boxes": boxes, "scores": scores, "labels": labels, "keypoints": keypoints})
        return results


def box_point_names(task, rule: str) -> List[List[str]]:
    """The keypoint names a box baseline places for each class of ``task``: a digits dataset's one
    keypoint (``point``) means the rule's point of that digit (``docs/task.md``, "Rules"); any other
    dataset names its keypoints itself."""
    if all(names == ("point",) for names in task.keypoint_names):
        table = get_rule(rule)
        return [[table.get(cid, "center")] for cid in task.class_ids]
    return [list(names) for names in task.keypoint_names]


def build_baseline(kind: str, model_config, postprocess_config, rule: str, canvas_size: Sequence[int], task) -> Detector:
    """The :class:`~ocrloc.models.family.Detector` of a baseline from ocrloc's config sections and the data's task."""
    model = TorchvisionDetector(
        kind, backbone=model_config.backbone, fpn_channels=model_config.fpn_channels,
        min_stride=model_config.head_stride, canvas_size=canvas_size, anchor_sizes=model_config.baseline.anchor_sizes,
        aspect_ratios=model_config.baseline.aspect_ratios, score_threshold=postprocess_config.score_threshold,
        max_detections=postprocess_config.max_detections, pretrained_path=model_config.pretrained_path,
        num_classes=task.num_classes, num_keypoints=task.num_keypoints,
        shared_keypoints=model_config.baseline.shared_keypoints)
    decoder = BoxPointPostprocess(box_point_names(task, rule), label_offset=model.label_offset,
                                  from_keypoints=kind == "keypointrcnn", iou_threshold=postprocess_config.iou_threshold,
                                  max_detections=postprocess_config.max_detections,
                                  shared_keypoints=model_config.baseline.shared_keypoints)
    return Detector(model, DetectorLoss(LOSS_TERMS[kind]), BaselinePredictor(model, decoder))
