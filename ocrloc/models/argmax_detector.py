"""The argmax-feature detector: ocrloc's dense detector finds and classifies digits, and an
argmax-feature head places each digit's class-dependent point.

For each detection (ground-truth boxes while training, decoded boxes at inference) the head
takes a ``crop_size`` window of the canvas around the box, read pixel for pixel with
``roi_align`` (integer-aligned, one sample per pixel: no interpolation), and the same window of
the finest FPN level. From the canvas crop, masked to the box plus ``box_margin`` pixels so a
neighbour's ink stays out, it computes *where* features (:mod:`ocrloc.models.argmax`): the
soft-thresholded ink's extremes (box edges and the topmost / bottommost / leftmost / rightmost
coordinates), the ink centroid, and the detected box. From the feature crop it computes a
soft-argmax per channel of a small conv. A linear map per class turns these coordinates into
the point, read at the detection's class: picking and mixing coordinates is all a head needs
to do once it is given them.

``model(images, targets)`` in train mode returns the dense detector's raw outputs plus
``argmax_points`` (the head's point for every ground-truth digit, in target order); in eval
mode it returns final detections (decoding needs the head), as torchvision detectors do.
"""

# No `from __future__ import annotations`: TorchScript reads these annotations.
from collections import OrderedDict
from typing import Dict, List, Mapping, Optional, Tuple

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torchvision.ops import roi_align

from ocrloc.models.argmax import EXTREME_FEATURES, ExtremePoints, SoftArgmax2d, SoftThreshold, spatial_expectation
from ocrloc.models.centernet import NUM_CLASSES, CenterNetDetector
from ocrloc.models.criterion import CenterNetCriterion
from ocrloc.models.postprocess import CenterNetPostprocess

__all__ = ["COORDINATE_FEATURES", "PRIOR_FEATURES", "rule_prior_weights", "ArgmaxPointHead", "ArgmaxDetector", "ArgmaxInference", "ArgmaxCriterion", "DetectionsPassThrough"]


# The head's coordinate features, in order (then two soft-argmax coordinates per learned map):
# the mask's extremes (ExtremePoints), the ink centroid, the box in crop pixels.
COORDINATE_FEATURES = EXTREME_FEATURES + ("centroid_x", "centroid_y", "box_x1", "box_y1", "box_x2", "box_y2")

# SPEC section 3's points written on those features: (x combination, y combination).
PRIOR_FEATURES: Dict[str, Tuple[Dict[str, float], Dict[str, float]]] = {
    "topleft": ({"left": 1.0}, {"top": 1.0}),
    "center": ({"left": 0.5, "right": 0.5}, {"top": 0.5, "bottom": 0.5}),
    "centroid": ({"centroid_x": 1.0}, {"centroid_y": 1.0}),
    "topmost": ({"topmost_x": 1.0}, {"top": 1.0}),
    "bottommost": ({"bottommost_x": 1.0}, {"bottom": 1.0}),
    "leftmost": ({"left": 1.0}, {"leftmost_y": 1.0}),
    "rightmost": ({"right": 1.0}, {"rightmost_y": 1.0}),
}


def rule_prior_weights(rule: Mapping[int, str], feature_names: Tuple[str, ...],
                       num_classes: int = NUM_CLASSES) -> List[Tuple[int, int, float]]:
    """``(output row, feature column, weight)`` of a linear map from ``feature_names`` to one
    (x, y) per class (rows ``2 * class + axis``) that gives each class its SPEC point under
    ``rule`` (:data:`PRIOR_FEATURES`).

    Raises:
        ValueError: naming the class, when it is out of range or wants an unknown point.
    """
    entries: List[Tuple[int, int, float]] = []
    for cls, name in rule.items():
        if not 0 <= cls < num_classes:
            raise ValueError(f"rule_prior: class {cls} outside 0..{num_classes - 1}")
        if name not in PRIOR_FEATURES:
            raise ValueError(f"rule_prior: class {cls} wants unknown point {name!r}")
        for axis, combination in enumerate(PRIOR_FEATURES[name]):
            for feature, weight in combination.items():
                entries.append((2 * cls + axis, feature_names.index(feature), weight))
    return entries


class ArgmaxPointHead(nn.Module):
    """Per box: canvas crop + feature crop -> argmax features -> one (x, y) per class, in canvas pixels.

    Args:
        feature_channels: channels of the feature level it reads.
        feature_stride: stride of that level.
        crop_size: side of the canvas window (pixels); must hold the largest digit.
        box_margin: pixels kept around the box in the canvas crop's mask.
        soft_channels: channels of the conv whose soft-argmax gives learned coordinates.
        num_classes: digit classes (one linear map each).
        rule_prior: a ``class -> point name`` table (:mod:`ocrloc.data.rules`) or None. With a
            table, each class's map starts as the SPEC definition of its point on the mask's
            features (:data:`PRIOR_FEATURES`), so training learns only a correction; without
            one, every map starts at zero and must learn which coordinates to pick.
    """

    def __init__(self, feature_channels: int, feature_stride: int = 4, crop_size: int = 48, box_margin: float = 1.0,
                 soft_channels: int = 8, num_classes: int = NUM_CLASSES,
                 rule_prior: Optional[Mapping[int, str]] = None) -> None:
        super().__init__()
        if crop_size % feature_stride:
            raise ValueError(f"crop_size {crop_size} must be a multiple of the feature stride {feature_stride}")
        self.crop_size = crop_size
        self.feature_stride = feature_stride
        self.box_margin = box_margin
        self.num_classes = num_classes
        self.threshold = SoftThreshold(1, threshold=0.5, tau=0.05)
        self.extremes = ExtremePoints()
        self.feature_conv = nn.Sequential(
            nn.Conv2d(feature_channels, feature_channels, 3, padding=1), nn.ReLU(inplace=True),
            nn.Conv2d(feature_channels, soft_channels, 1))
        self.soft_argmax = SoftArgmax2d(beta=1.0)
        # 8 extremes + centroid (2) + box (4) + soft-argmax (2 per channel), all coordinates.
        self.num_features = len(COORDINATE_FEATURES) + 2 * soft_channels
        self.point = nn.Linear(self.num_features, 2 * num_classes)
        nn.init.zeros_(self.point.weight)
        nn.init.zeros_(self.point.bias)
        if rule_prior is not None:
            self._init_from_rule(rule_prior)

    @torch.no_grad()
    def _init_from_rule(self, rule: Mapping[int, str]) -> None:
        # Every prior is a convex combination of coordinates, so with zero bias it maps the
        # normalised features (coords / s - 0.5) to point / s - 0.5 exactly.
        for row, column, weight in rule_prior_weights(rule, COORDINATE_FEATURES, self.num_classes):
            self.point.weight[row, column] = weight

    def forward(self, images: Tensor, features: Tensor, boxes: List[Tensor], labels: Tensor) -> Tensor:
        """``images [B, 1, H, W]`` in [0, 1], ``features [B, C, H / s, W / s]``, per image boxes
        ``[N_i, 4]`` (xyxy, canvas pixels), ``labels [sum N_i]`` -> points ``[sum N_i, 2]``."""
        rois_list: List[Tensor] = []
        for b, bx in enumerate(boxes):
            rois_list.append(torch.cat([torch.full_like(bx[:, :1], float(b)), bx], dim=1))
        rois = torch.cat(rois_list, dim=0) if len(rois_list) > 0 else images.new_zeros(0, 5)
        n = rois.shape[0]
        s = float(self.crop_size)
        if n == 0:
            return images.new_zeros(0, 2)
        box = rois[:, 1:]
        center = (box[:, :2] + box[:, 2:]) / 2
        origin = torch.round(center - s / 2)  # integer window corner: crop pixel i is canvas pixel origin + i
        window = torch.cat([rois[:, :1], origin, origin + s], dim=1)
        crop = roi_align(images, window, self.crop_size, spatial_scale=1.0, sampling_ratio=1, aligned=True)
        # Keep only the box (plus a margin): ink of a neighbouring digit must not move the extremes.
        local = box - origin.repeat(1, 2)
        xs = torch.arange(self.crop_size, device=images.device, dtype=images.dtype).view(1, 1, 1, -1) + 0.5
        ys = xs.view(1, 1, -1, 1)
        m = self.box_margin
        inside = ((xs > local[:, 0].view(-1, 1, 1, 1) - m) & (xs < local[:, 2].view(-1, 1, 1, 1) + m)
                  & (ys > local[:, 1].view(-1, 1, 1, 1) - m) & (ys < local[:, 3].view(-1, 1, 1, 1) + m))
        # roi_align repeats the edge pixel one pixel beyond the canvas: keep the canvas only.
        canvas_x = xs + origin[:, 0].view(-1, 1, 1, 1)
        canvas_y = ys + origin[:, 1].view(-1, 1, 1, 1)
        inside &= (canvas_x > 0) & (canvas_x < images.shape[-1]) & (canvas_y > 0) & (canvas_y < images.shape[-2])
        mask = self.threshold(crop) * inside.to(crop.dtype)
        extremes = self.extremes(mask).view(n, 8)
        weight = mask * crop
        centroid = spatial_expectation(weight / weight.sum(dim=(-2, -1), keepdim=True).clamp_min(1e-6)).view(n, 2)
        fs = self.crop_size // self.feature_stride
        feature_crop = roi_align(features, window, fs, spatial_scale=1.0 / self.feature_stride, sampling_ratio=2,
                                 aligned=True)
        soft, _ = self.soft_argmax(self.feature_conv(feature_crop))
        soft = soft.reshape(n, -1) * float(self.feature_stride)
        coords = torch.cat([extremes, centroid, local, soft], dim=1)
        normalised = coords / s - 0.5  # crop coordinates -> [-0.5, 0.5]
        per_class = self.point(normalised).view(n, self.num_classes, 2)
        chosen = per_class[torch.arange(n, device=images.device), labels]
        return (chosen + 0.5) * s + origin


class ArgmaxDetector(nn.Module):
    """:class:`~ocrloc.models.centernet.CenterNetDetector` (offset point head kept as the dense
    baseline inside the same model) + :class:`ArgmaxPointHead` on its finest FPN level.

    Args:
        backbone, fpn_channels, head_stride, head_channels, pretrained_path: the dense detector.
        crop_size, box_margin, soft_channels, rule_prior: the argmax head (:class:`ArgmaxPointHead`).
        postprocess: decodes the dense outputs into boxes and labels at inference.
        box_jitter: training only: ground-truth boxes are shifted by up to this many pixels per
            edge, so the head learns to work from imperfect detected boxes.
    """

    def __init__(self, backbone: str = "resnet18", fpn_channels: int = 64, head_stride: int = 4,
                 head_channels: int = 64, pretrained_path: Optional[str] = None, crop_size: int = 48,
                 box_margin: float = 1.0, soft_channels: int = 8, postprocess: Optional[CenterNetPostprocess] = None,
                 box_jitter: float = 1.0, rule_prior: Optional[Mapping[int, str]] = None) -> None:
        super().__init__()
        self.dense = CenterNetDetector(backbone, fpn_channels, head_stride, head_channels, point_mode="offset",
                                       pretrained_path=pretrained_path)
        self.head = ArgmaxPointHead(fpn_channels, head_stride, crop_size, box_margin, soft_channels,
                                    rule_prior=rule_prior)
        self.decode = postprocess if postprocess is not None else CenterNetPostprocess(head_stride, point_mode="offset")
        self.box_jitter = box_jitter

    def features(self, images: Tensor) -> Tuple[Dict[str, Tensor], Tensor]:
        """Dense head outputs and the finest FPN level they were read from."""
        dense = self.dense
        x = (images - dense.pixel_mean) / dense.pixel_std
        levels = OrderedDict([(name, f) for name, f in zip(dense.level_names, dense.backbone(x))])
        fine = dense.neck(levels)[dense.head_level]
        out: Dict[str, Tensor] = {}
        for name, head in dense.heads.items():
            out[name] = head(fine)
        return out, fine

    @torch.jit.unused  # train and eval return different types; ArgmaxInference is the scripted entry
    def forward(self, images: Tensor, targets: Optional[List[Dict[str, Tensor]]] = None):
        """Train mode: dense outputs + ``argmax_points`` at the (jittered) ground-truth boxes.
        Eval mode: detections (``boxes``, ``scores``, ``labels``, ``keypoints`` from the head)."""
        outputs, fine = self.features(images)
        if not self.training:
            return self.detect(images, outputs, fine)
        if targets is None:
            raise ValueError("argmax: training needs targets")
        boxes = [t["boxes"].to(images.device).float() for t in targets]
        if self.box_jitter > 0:
            boxes = [b + (torch.rand_like(b) * 2 - 1) * self.box_jitter for b in boxes]
        labels = torch.cat([t["labels"] for t in targets]).to(images.device).long()
        outputs["argmax_points"] = self.head(images, fine, boxes, labels)
        return outputs

    def detect(self, images: Tensor, outputs: Dict[str, Tensor], fine: Tensor) -> List[Dict[str, Tensor]]:
        detections = self.decode(outputs)
        points = self.head(images, fine, [d["boxes"] for d in detections], torch.cat([d["labels"] for d in detections]))
        results: List[Dict[str, Tensor]] = []
        start = 0
        for d in detections:
            n = d["boxes"].shape[0]
            keypoints = torch.cat([points[start:start + n], d["scores"][:, None]], dim=1)[:, None, :]
            results.append({"boxes": d["boxes"], "scores": d["scores"], "labels": d["labels"], "keypoints": keypoints})
            start += n
        return results

    def inference_module(self) -> nn.Module:
        """The scriptable eval-mode part."""
        return ArgmaxInference(self)


class ArgmaxInference(nn.Module):
    """``[B, 1, H, W]`` -> detections of an :class:`ArgmaxDetector` (scriptable)."""

    def __init__(self, model: ArgmaxDetector) -> None:
        super().__init__()
        self.model = model

    def forward(self, images: Tensor) -> List[Dict[str, Tensor]]:
        outputs, fine = self.model.features(images)
        return self.model.detect(images, outputs, fine)


class ArgmaxCriterion(nn.Module):
    """The dense detector's loss plus ``argmax_point``: L1 (pixels) between the head's points at
    the ground-truth boxes and the ground-truth points.

    ``has_eval_loss`` is False: in eval mode the model returns detections, not raw outputs.
    """

    has_eval_loss = False
    loss_terms = ("heatmap", "size", "offset", "point", "argmax_point")

    def __init__(self, dense: CenterNetCriterion, weight: float = 1.0) -> None:
        super().__init__()
        self.dense = dense
        self.weight = weight

    def forward(self, outputs: Dict[str, Tensor], targets: List[Dict[str, Tensor]]) -> Tuple[Tensor, Dict[str, Tensor]]:
        loss, terms = self.dense(outputs, targets)
        pred = outputs["argmax_points"]
        truth = torch.cat([t["keypoints"][:, 0, :2].float() for t in targets]).to(pred.device)
        argmax_point = F.l1_loss(pred, truth, reduction="sum") / max(int(truth.shape[0]), 1)
        terms["argmax_point"] = argmax_point
        return loss + self.weight * argmax_point, terms


class DetectionsPassThrough(nn.Module):
    """The postprocess of a model whose eval-mode output already is final detections."""

    def forward(self, detections: List[Dict[str, Tensor]]) -> List[Dict[str, Tensor]]:
        return detections
