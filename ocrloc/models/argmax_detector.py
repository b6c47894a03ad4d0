"""The argmax-feature detector: ocrloc's dense detector finds digits, a crop classifier names
them, and an argmax-feature head places each digit's class-dependent point.

For each detection (ground-truth boxes while training, decoded boxes at inference) the point
head takes a ``crop_size`` window of the canvas around the box, read pixel for pixel with
``roi_align`` (integer-aligned, one sample per pixel: no interpolation), and the same window of
the finest FPN level. From the canvas crop, masked to the box plus ``box_margin`` pixels so a
neighbour's ink stays out, it computes *where* features (:mod:`ocrloc.models.argmax`): the
soft-thresholded ink's extremes (box edges and the topmost / bottommost / leftmost /
rightmost coordinates), the ink centroid, and the detected box. From the feature crop it
computes a soft-argmax per channel of a small conv. A linear map per class turns these
coordinates into the point, read at the detection's class: picking and mixing coordinates is
all a head needs to do once it is given them.

How the per-class map is learned (``point_fit``):

* ``ridge`` (the default): :class:`~ocrloc.models.readout.RidgeReadout` fits it in closed form,
  by ridge least squares on the coordinates and annotated points of the training batches
  (streamed, decayed, re-solved every step), plus a zero-started linear correction trained by
  gradient with the rest of the model. Which coordinate each class wants is read off the
  annotations within a few dozen steps, for any rule.
* ``gradient``: a linear map started at zero and trained by gradient alone (slow to find the
  coordinates: test keypoint AP 0.654 on all10 at the comparison budget).

Nothing here knows a rule. (The oracle ablation that writes a rule into the map before
training lives in :mod:`ocrloc.research.oracle`.)

``model(images)`` returns the dense detector's raw outputs plus ``features`` (the FPN level
they were read from), in train and eval mode alike; ``model(images, targets)`` adds
``argmax_points`` (the head's point for every ground-truth digit, in target order) and
``crop_logits`` (the crop classifier's), which the criterion reads. Training mode adds only
what training needs: jittered boxes and the streamed closed-form fit.
:class:`ArgmaxPredictor` decodes boxes from the dense outputs, names them and places their
points, for the whole batch at once (its flat forward, which every export format runs too).
"""

# No `from __future__ import annotations`: TorchScript reads these annotations.
import math
from typing import Dict, List, Optional, Tuple

import torch
import torch.distributed as dist
import torch.nn.functional as F
from torch import Tensor, nn
from torchvision.ops import roi_align

from ocrloc.models.argmax import EXTREME_FEATURES, ExtremePoints, SoftArgmax2d, SoftThreshold, spatial_expectation
from ocrloc.models.centernet import CenterNetDetector
from ocrloc.models.centernet_decode import CenterNetDecoder
from ocrloc.models.centernet_loss import CenterNetCriterion
from ocrloc.models.crop_classifier import CropClassifier, boxes_to_rois
from ocrloc.models.family import Criterion, FlatPredictor, flat_detections, split_per_image
from ocrloc.models.point_map import PointMapHead, map_loss
from ocrloc.models.readout import RidgeReadout

__all__ = ["COORDINATE_FEATURES", "POINT_FITS", "ArgmaxPointHead", "ArgmaxDetector", "ArgmaxPredictor",
           "ArgmaxCriterion"]


# The head's coordinate features, in order (then two soft-argmax coordinates per learned map):
# the mask's extremes (ExtremePoints), the ink centroid, the box in crop pixels. Generic
# geometry of the ink and the box: which of them a class's point is, is learned.
COORDINATE_FEATURES = EXTREME_FEATURES + ("centroid_x", "centroid_y", "box_x1", "box_y1", "box_x2", "box_y2")
POINT_FITS = ("ridge", "gradient")


class ArgmaxPointHead(nn.Module):
    """Per box: canvas crop + feature crop -> argmax features -> one (x, y) per class, in canvas pixels.

    Args:
        feature_channels: channels of the feature level it reads.
        feature_stride: stride of that level.
        crop_size: side of the canvas window (pixels); must hold the largest digit.
        box_margin: pixels kept around the box in the canvas crop's mask.
        soft_channels: channels of the conv whose soft-argmax gives learned coordinates.
        num_classes: classes (one linear map each).
        point_fit: ``ridge`` (closed-form fit + a gradient-trained correction) or ``gradient``
            (a gradient-trained map alone); see the module docstring.
        ridge_decay, ridge: the closed-form fit's memory and penalty (:class:`RidgeReadout`).
        threshold_tau: initial temperature of the ink cut-off (learned). 0.002 makes the cut
            near-hard, so the extremes are the ink's own (0.05 left them a few tenths of a pixel soft).
        reach: pixels beyond the box to which the mask follows the ink connected to the box's own
            (:meth:`_connected_ink`); 0 keeps the box plus ``box_margin`` only.
        point_map: add a :class:`~ocrloc.models.point_map.PointMapHead` (a score map per slot over
            the window, arg-max plus offset) as a second candidate for every (class, keypoint)
            slot; each slot takes the candidate that placed the training points better
            (:meth:`candidate_errors`).
        map_channels: width of the point map's trunk and of its per-slot layers.
        map_context: channels of the FPN level the point map reads (a 1 x 1 conv of the level;
            0 reads none).
        choice_decay: memory of the running errors that choose each slot's candidate (0.95:
            about the last 20 training batches that measured the candidate count; 0.98 left the first
            steps' errors, before the closed-form fit had settled, in the map's way until step ~240
            of the quickstart's 400).
        map_tolerance: training only: a character whose slots' closed-form read-out places the
            training points within this many pixels (its running error) skips the point map
            (:meth:`map_rows`): where the closed form is exact the map has nothing to win, and its
            full-resolution window is the head's largest cost. 0 trains the map on every character.
    """

    def __init__(self, feature_channels: int, feature_stride: int = 4, crop_size: int = 48, box_margin: float = 1.0,
                 soft_channels: int = 8, point_fit: str = "ridge",
                 ridge_decay: float = 0.99, ridge: float = 1e-3, threshold_tau: float = 0.002, reach: float = 0.0,
                 point_map: bool = False, map_channels: int = 32, map_context: int = 8, choice_decay: float = 0.95,
                 map_tolerance: float = 0.0, *, num_classes: int, num_keypoints: int) -> None:
        super().__init__()
        if crop_size % feature_stride:
            raise ValueError(f"crop_size {crop_size} must be a multiple of the feature stride {feature_stride}")
        if point_fit not in POINT_FITS:
            raise ValueError(f"unknown point_fit {point_fit!r}; known: {', '.join(POINT_FITS)}")
        self.crop_size = crop_size
        self.feature_stride = feature_stride
        self.box_margin = box_margin
        self.reach = float(reach)
        self.grow_steps = 2 * int(math.ceil(reach)) + 2  # enough to follow a stroke around a bend
        self.num_classes = num_classes
        self.num_keypoints = num_keypoints
        self.point_fit = point_fit
        # A cut-off at mid-grey, then learned: the middle of the [0, 1] range, not a rule.
        self.threshold = SoftThreshold(1, threshold=0.5, tau=threshold_tau)
        self.extremes = ExtremePoints()
        self.feature_conv = nn.Sequential(
            nn.Conv2d(feature_channels, feature_channels, 3, padding=1), nn.ReLU(inplace=True),
            nn.Conv2d(feature_channels, soft_channels, 1))
        self.soft_argmax = SoftArgmax2d(beta=1.0)
        # 8 extremes + centroid (2) + box (4) + soft-argmax (2 per channel), all coordinates.
        self.num_features = len(COORDINATE_FEATURES) + 2 * soft_channels
        # The gradient-trained map: the whole map for point_fit=gradient, the correction to the
        # closed-form fit for point_fit=ridge. Zero start: a correction starts as none.
        self.point = nn.Linear(self.num_features, 2 * num_keypoints * num_classes)
        nn.init.zeros_(self.point.weight)
        nn.init.zeros_(self.point.bias)
        # One closed-form map per (class, keypoint): a keypoint unlabelled on an instance (v = 0)
        # then simply leaves that map's statistics alone.
        self.readout = (RidgeReadout(self.num_features, 2, num_classes * num_keypoints, ridge_decay, ridge)
                        if point_fit == "ridge" else None)
        slots = num_classes * num_keypoints
        self.choice_decay = choice_decay
        self.map_tolerance = float(map_tolerance)
        if point_map:
            self.map_context = nn.Conv2d(feature_channels, map_context, 1) if map_context > 0 else None
            # Window inputs: canvas, ink mask, region mask, then the context channels (if any).
            self.point_map = PointMapHead(3 + map_context, slots, crop_size, map_channels, map_channels)
            self.window_channels = 3 + map_context
        else:
            self.window_channels = 0
            self.map_context = None
            self.point_map = None
        # Per slot and candidate (0 closed-form read-out, 1 point map), the decayed sum of the
        # training errors (px) and the decayed count of points summed: the choice is data. Counted
        # apart, because the characters that skip the map (map_tolerance) measure the closed form only.
        self.register_buffer("choice_error", torch.zeros(slots, 2))
        self.register_buffer("choice_count", torch.zeros(slots, 2))
        self._register_load_state_dict_pre_hook(_count_per_candidate)

    def measure(self, images: Tensor, features: Tensor, boxes: List[Tensor]) -> Tuple[Tensor, Tensor, Tensor, Tensor]:
        """What the head reads around every box (:meth:`measure_rois`), for per-image box lists."""
        rois = boxes_to_rois(boxes) if len(boxes) > 0 else images.new_zeros(0, 5)
        if rois.shape[0] == 0:
            s = self.crop_size
            return (images.new_zeros(0, self.num_features), images.new_zeros(0, 2),
                    images.new_zeros(0, self.window_channels, s, s), images.new_zeros(0, 4))
        return self.measure_rois(images, features, rois)

    def measure_rois(self, images: Tensor, features: Tensor, rois: Tensor) -> Tuple[Tensor, Tensor, Tensor, Tensor]:
        """Around every box of ``rois [N, 5]`` (image index, xyxy; N > 0, ``roi_align``'s layout):

        * the coordinate features, normalised to the window (``coords / crop_size - 0.5``, ``[N, num_features]``);
        * each window's integer origin in canvas pixels ``[N, 2]``;
        * the point map's window inputs ``[N, C, S, S]`` (canvas, ink mask, region mask, FPN context;
          ``C = 0`` without a point map);
        * the ink box measured in the window (left, top, right, bottom; window pixels) ``[N, 4]``.
        """
        n = rois.shape[0]
        s = float(self.crop_size)
        box = rois[:, 1:]
        center = (box[:, :2] + box[:, 2:]) / 2
        origin = torch.round(center - s / 2)  # integer window corner: crop pixel i is canvas pixel origin + i
        window = torch.cat([rois[:, :1], origin, origin + s], dim=1)
        crop = roi_align(images, window, self.crop_size, spatial_scale=1.0, sampling_ratio=1, aligned=True)
        # Keep only the box (plus a margin): ink of a neighbouring digit must not move the extremes.
        local = box - origin.repeat(1, 2)
        xs = torch.arange(self.crop_size, device=images.device, dtype=images.dtype).view(1, 1, 1, -1) + 0.5
        ys = xs.view(1, 1, -1, 1)
        inside = self._within(local, xs, ys, self.box_margin)
        if self.reach > 0:  # a box that is too small gets back the ink of its digit beyond it
            inside = inside | self._connected_ink(crop, local, xs, ys)
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
        soft = soft.flatten(1) * float(self.feature_stride)  # flatten, not reshape(n, -1): n may be 0
        coords = torch.cat([extremes, centroid, local, soft], dim=1)
        # A window with no ink at all has no ink box (its extremes would read 0 and 1): the box stands in.
        has_ink = mask.flatten(1).amax(dim=1) > 0.5
        ink_box = torch.where(has_ink[:, None], extremes[:, :4], local).detach()
        if self.point_map is None:
            window = crop.new_zeros(n, 0, self.crop_size, self.crop_size)
        elif self.map_context is not None:
            context = F.interpolate(self.map_context(feature_crop), scale_factor=float(self.feature_stride),
                                    mode="bilinear", align_corners=False)
            window = torch.cat([crop, mask, inside.to(crop.dtype), context.to(crop.dtype)], dim=1)
        else:
            window = torch.cat([crop, mask, inside.to(crop.dtype)], dim=1)
        return coords / s - 0.5, origin, window, ink_box  # crop coordinates -> [-0.5, 0.5]

    def _connected_ink(self, crop: Tensor, local: Tensor, xs: Tensor, ys: Tensor) -> Tensor:
        """``[N, 1, S, S]``: the ink connected (8-neighbours) to the ink well inside the box (1 px
        in from its edges), followed up to ``reach`` pixels beyond the box: the parts of a digit
        that a detected box cut off. Digits are at least 2 px apart, so a neighbour's ink is
        never connected to it."""
        ink = (crop > self.threshold.threshold.detach().view(1, -1, 1, 1)).to(crop.dtype)
        allowed = ink * self._within(local, xs, ys, self.reach).to(crop.dtype)
        grown = allowed * self._within(local, xs, ys, -1.0).to(crop.dtype)
        for _ in range(self.grow_steps):
            grown = F.max_pool2d(grown, 3, stride=1, padding=1) * allowed
        return grown > 0

    def _within(self, local: Tensor, xs: Tensor, ys: Tensor, margin: float) -> Tensor:
        """``[N, 1, S, S]``: crop pixel centers inside each box (crop coordinates) grown by ``margin``."""
        return ((xs > local[:, 0].view(-1, 1, 1, 1) - margin) & (xs < local[:, 2].view(-1, 1, 1, 1) + margin)
                & (ys > local[:, 1].view(-1, 1, 1, 1) - margin) & (ys < local[:, 3].view(-1, 1, 1, 1) + margin))

    def _slots(self, labels: Tensor) -> Tensor:
        """``[N, K]``: the readout's map index ``class * K + keypoint`` of each box's keypoints."""
        k = self.num_keypoints
        return labels[:, None] * k + torch.arange(k, device=labels.device)[None, :]

    def read(self, coords: Tensor, labels: Tensor, origin: Tensor) -> Tensor:
        """The closed-form candidate: normalised coordinates ``[N, D]`` of boxes of classes
        ``labels [N]`` -> keypoints ``[N, K, 2]`` in canvas pixels."""
        n, k = coords.shape[0], self.num_keypoints
        per_class = self.point(coords).view(n, self.num_classes, k, 2)
        normalised = per_class[torch.arange(n, device=coords.device), labels]
        if self.readout is not None:
            fitted = self.readout(coords.repeat_interleave(k, dim=0), self._slots(labels).reshape(-1))
            normalised = normalised + fitted.view(n, k, 2)
        return (normalised + 0.5) * float(self.crop_size) + origin[:, None, :]

    def map_points(self, maps: Tensor, origin: Tensor) -> Tensor:
        """The point map's candidate: maps ``[N, K, 3, S * S]`` -> keypoints ``[N, K, 2]`` in canvas pixels."""
        assert self.point_map is not None
        return self.point_map.decode(maps) + origin[:, None, :]

    def maps(self, window: Tensor, ink_box: Tensor, labels: Tensor) -> Tensor:
        """The point map's score and offset maps ``[N, K, 3, S * S]`` of boxes of classes ``labels``."""
        assert self.point_map is not None
        if torch.jit.is_scripting():
            return self.point_map(window.float(), ink_box.float(), self._slots(labels))
        return self._maps_in_fp32(window, ink_box, labels)

    @torch.jit.unused  # eager only: an exported file runs in fp32 anyway
    def _maps_in_fp32(self, window: Tensor, ink_box: Tensor, labels: Tensor) -> Tensor:
        """:meth:`maps` in fp32 even under autocast: the arg-max compares scores a few hundredths apart."""
        assert self.point_map is not None
        with torch.autocast(device_type=window.device.type, enabled=False):
            return self.point_map(window.float(), ink_box.float(), self._slots(labels))

    def uses_map(self) -> Tensor:
        """``[slots]`` bool: which slots take the point map's candidate (the one with the lower
        running training error; a slot never trained keeps the closed-form one)."""
        count = self.choice_count
        measured = count > 0
        error = torch.where(measured, self.choice_error / torch.where(measured, count, torch.ones_like(count)),
                            torch.full_like(count, float("inf")))
        return (count[:, 1] > 0) & (error[:, 1] < error[:, 0])

    def place(self, coords: Tensor, origin: Tensor, window: Tensor, ink_box: Tensor, labels: Tensor) -> Tensor:
        """Keypoints ``[N, K, 2]`` (canvas pixels) of boxes of classes ``labels [N]`` from what
        :meth:`measure_rois` measured: each slot's chosen candidate."""
        closed_form = self.read(coords, labels, origin)
        if self.point_map is None:
            return closed_form
        mapped = self.map_points(self.maps(window, ink_box, labels), origin).to(closed_form.dtype)
        use = self.uses_map()[self._slots(labels)]
        return torch.where(use[:, :, None], mapped, closed_form)

    @torch.jit.unused  # training only
    @torch.no_grad()
    def map_rows(self, labels: Tensor, visible: Tensor) -> Tensor:
        """The rows (characters of classes ``labels [N]``, annotated keypoints ``visible [N, K]``) of a
        training batch that the point map trains on: every row with ``map_tolerance = 0``, else the
        rows with an annotated keypoint whose slot still needs the map, i.e. whose closed-form
        candidate's running training error (:meth:`update_choice`) is unmeasured or above
        ``map_tolerance``. Read off the annotations, as the choice between the candidates is; the
        running error, not one batch's, decides, so a slot stops training the map once and for all
        rather than on a batch here and there (a map trained on a few rows now and then met the
        optimiser's stale moments with gradients of a few noisy points, and its loss spiked)."""
        n = labels.shape[0]
        if self.map_tolerance <= 0 or n == 0:
            return torch.arange(n, device=labels.device)
        count = self.choice_count[:, 0]
        exact = (count > 0) & (self.choice_error[:, 0] <= self.map_tolerance * count)
        needs_map = (~exact[self._slots(labels)] & visible).any(dim=1)
        return torch.nonzero(needs_map).flatten()

    @torch.jit.unused  # training only
    @torch.no_grad()
    def candidate_errors(self, closed_form: Tensor, maps: Tensor, rows: Tensor, origin: Tensor, points: Tensor,
                         visible: Tensor) -> Tuple[Tensor, Tensor]:
        """Each candidate's distance (px) to the annotated ``points [N, K, 2]`` and where it was
        measured, both ``[N, K, 2]`` (the closed-form read-out's, then the point map's: what
        :meth:`update_choice` takes). The closed form (``closed_form [N, K, 2]``, :meth:`read`) is
        measured at every annotated point (``visible [N, K]``), the point map (``maps``, of the
        ``rows`` it ran on: :meth:`map_rows`) at those of its rows."""
        errors = torch.zeros(points.shape[:2] + (2,), device=points.device, dtype=closed_form.dtype)
        errors[..., 0] = torch.linalg.vector_norm(closed_form - points, dim=-1)
        measured = visible[:, :, None].repeat(1, 1, 2)
        measured[..., 1] = False
        if rows.numel() > 0:
            mapped = self.map_points(maps, origin[rows]).to(errors.dtype)
            errors[rows, :, 1] = torch.linalg.vector_norm(mapped - points[rows], dim=-1)
            measured[rows, :, 1] = visible[rows]
        return errors, measured

    @torch.jit.unused  # training only
    @torch.no_grad()
    def update_choice(self, labels: Tensor, errors: Tensor, visible: Tensor) -> None:
        """Stream each candidate's errors ``[N, K, 2]`` (px) at the annotated points into the
        per-slot running errors that :meth:`uses_map` compares. ``visible`` is ``[N, K]`` (both
        candidates measured where a point is annotated) or ``[N, K, 2]`` (per candidate: a row that
        skipped the map has no map error). Each error counts at most 3 px (about where OKS calls a
        point missed), so a few far misses do not outweigh many exact points. Only a candidate
        measured in this batch decays: a map no longer trained (:meth:`map_rows`) keeps the error it
        had when it stopped. (Decaying it anyway drove its count towards 0 at the same rate as its
        error; ~270 steps after it stopped the count fell below the division's floor, the map's
        mean error read as ~0, and the untrained map took over: quickstart val keypoint AP fell from
        0.981 to 0.43 at step 500 of a 600-step run.)"""
        if visible.dim() == 2:
            visible = visible[:, :, None].expand(-1, -1, 2)
        weight = visible.reshape(-1, 2).to(errors.dtype)
        slots = self._slots(labels).reshape(-1)
        total = torch.zeros_like(self.choice_error).index_add_(0, slots, errors.reshape(-1, 2).clamp_max(3.0)
                                                              * weight)
        count = torch.zeros_like(self.choice_count).index_add_(0, slots, weight)
        if dist.is_available() and dist.is_initialized():
            dist.all_reduce(total)
            dist.all_reduce(count)
        decay = torch.where(count > 0, self.choice_decay, 1.0).to(count.dtype)
        self.choice_error.mul_(decay).add_(total)
        self.choice_count.mul_(decay).add_(count)

    @torch.jit.unused  # training only
    def fit(self, coords: Tensor, labels: Tensor, origin: Tensor, points: Tensor, visible: Tensor) -> None:
        """Stream annotated keypoints ``points [N, K, 2]`` (canvas pixels; ``visible [N, K]`` False
        leaves one out) into the closed-form fit and re-solve it (``point_fit=ridge``; nothing otherwise)."""
        if self.readout is not None:
            k = self.num_keypoints
            target = (points - origin[:, None, :]) / float(self.crop_size) - 0.5
            self.readout.update(coords.detach().repeat_interleave(k, dim=0), self._slots(labels).reshape(-1),
                                target.reshape(-1, 2), visible.reshape(-1).to(coords.dtype))

    def forward(self, images: Tensor, features: Tensor, boxes: List[Tensor], labels: Tensor) -> Tensor:
        """``images [B, 1, H, W]`` in [0, 1], ``features [B, C, H / s, W / s]``, per image boxes
        ``[N_i, 4]`` (xyxy, canvas pixels), ``labels [sum N_i]`` -> keypoints ``[sum N_i, K, 2]``."""
        coords, origin, window, ink_box = self.measure(images, features, boxes)
        return self.place(coords, origin, window, ink_box, labels)


class ArgmaxDetector(nn.Module):
    """:class:`~ocrloc.models.centernet.CenterNetDetector` (offset point head kept as the dense
    baseline inside the same model) + :class:`ArgmaxPointHead` on its finest FPN level +
    (optionally) a :class:`~ocrloc.models.crop_classifier.CropClassifier` that names each detection.

    Args:
        backbone, fpn_channels, head_stride, head_channels, pretrained_path, max_stride: the dense
            detector (:class:`~ocrloc.models.centernet.CenterNetDetector`).
        crop_size, box_margin, soft_channels, point_fit: the argmax head (:class:`ArgmaxPointHead`);
            ``ink_reach`` is its ``reach``.
        box_jitter: training only: ground-truth boxes are shifted by up to this many pixels per
            edge, so the heads learn to work from imperfect detected boxes.
        crop_classifier: relabel each detection with a classifier of its size-normalised crop;
            the detection's score combines the dense score and the crop class's probability.
        point_map, map_channels: the head's second candidate, a learned score map per slot
            (:class:`~ocrloc.models.point_map.PointMapHead`), and its width.
        map_context: channels of the FPN level the point map reads (0: none).
        map_lr_scale: the point map's learning rate as a multiple of the base rate.
        map_tolerance: training only: characters whose closed-form points are already within this
            many pixels skip the point map (:meth:`ArgmaxPointHead.map_rows`); 0 maps every one.
        classifier_width: the crop classifier's ``width``.
        ink_boxes: give out the ink box the head measured as each detection's box, and suppress
            the duplicates whose ink boxes coincide (:meth:`detect_rois`); else the dense box.
        calibrate_score: the score is :meth:`calibrated_score`, fitted on val by the trainer
            (:mod:`ocrloc.engine.calibration`); else the dense score times the class probability.
        classify_ink_box: the crop classifier reads the ink box's crop beside the dense box's and
            adds the two log-probabilities (:meth:`detect_rois`); else the dense box's alone.
        classifier_updates: training only: optimiser updates the crop classifier gets per training
            step, the first with the rest of the model, the others on its own
            (:meth:`classifier_loss`, run by :func:`ocrloc.engine.trainer.extra_classifier_updates`).
        num_classes: classes.
    """

    def __init__(self, backbone: str = "resnet18", fpn_channels: int = 64, head_stride: int = 4,
                 head_channels: int = 64, pretrained_path: Optional[str] = None, crop_size: int = 48,
                 box_margin: float = 1.0, soft_channels: int = 8, box_jitter: float = 1.0, point_fit: str = "ridge",
                 crop_classifier: bool = True, ink_reach: float = 6.0, shared_head_stem: bool = False,
                 point_map: bool = False, map_channels: int = 32, map_context: int = 8, map_lr_scale: float = 1.0,
                 ink_boxes: bool = False, calibrate_score: bool = False, map_tolerance: float = 0.0,
                 classifier_width: int = 32, classify_ink_box: bool = False, classifier_updates: int = 1,
                 max_stride: Optional[int] = None, *, num_classes: int, num_keypoints: int) -> None:
        super().__init__()
        if classifier_updates < 1 or (classifier_updates > 1 and not crop_classifier):
            raise ValueError(f"classifier_updates {classifier_updates}: must be >= 1, and 1 without a crop classifier")
        self.classifier_updates = classifier_updates
        self.ink_boxes = ink_boxes
        self.classify_ink_box = classify_ink_box
        self.dense = CenterNetDetector(backbone, fpn_channels, head_stride, head_channels, point_mode="offset",
                                       pretrained_path=pretrained_path, shared_head_stem=shared_head_stem,
                                       max_stride=max_stride, num_classes=num_classes, num_keypoints=num_keypoints)
        self.head = ArgmaxPointHead(fpn_channels, head_stride, crop_size, box_margin, soft_channels,
                                    num_classes=num_classes, point_fit=point_fit, reach=ink_reach,
                                    point_map=point_map, map_channels=map_channels, map_context=map_context,
                                    map_tolerance=map_tolerance, num_keypoints=num_keypoints)
        self.classifier = CropClassifier(num_classes, width=classifier_width) if crop_classifier else None
        self.box_jitter = box_jitter
        # Platt scaling of the score (fit_score_calibration): (bias, weight of the dense score's
        # logit, weight of the class probability's logit), and whether it was fitted (else the
        # score is the product of the two). Fitted on val by the trainer at every validation.
        # Without calibrate_score (saved configs from before it) they stay out of the checkpoints.
        self.calibrate_score = calibrate_score
        self.register_buffer("score_calibration", torch.tensor([0.0, 1.0, 1.0]), persistent=calibrate_score)
        self.register_buffer("score_calibrated", torch.zeros(()), persistent=calibrate_score)
        # The trainer's optimizer reads this (ocrloc.engine.trainer.parameter_groups): the point map
        # learns at map_lr_scale times the base rate.
        self.lr_scales: Dict[str, float] = {"head.point_map.": map_lr_scale, "head.map_context.": map_lr_scale}
        self.size_divisible = self.dense.size_divisible

    def forward(self, images: Tensor, targets: Optional[List[Dict[str, Tensor]]] = None) -> Dict[str, Tensor]:
        """Dense outputs + ``features``; with ``targets`` also, at the ground-truth boxes,
        ``argmax_points`` (the closed-form candidate's points), ``crop_logits`` (with a crop
        classifier) and, with a point map, ``point_maps`` (``[N, K, 3, S * S]``) and ``map_points``
        (the annotated points in window pixels, ``[N, K, 2]``). In training mode the boxes are
        jittered, the annotated points streamed into the head's closed-form fit, and both
        candidates' errors into the choice between them (measured before the fit sees the batch)."""
        features = self.dense.forward_features(images)
        outputs = self.dense.forward_heads(features)
        outputs["features"] = features
        if targets is not None:
            boxes = self._training_boxes(targets)
            labels = torch.cat([t["labels"] for t in targets]).long()
            coords, origin, window, ink_box = self.head.measure(images, features, boxes)
            keypoints = torch.cat([t["keypoints"] for t in targets]).float()
            points, visible = keypoints[..., :2], keypoints[..., 2] > 0
            closed_form = self.head.read(coords, labels, origin)
            if self.head.point_map is not None:
                rows = (self.head.map_rows(labels, visible) if self.training
                        else torch.arange(labels.shape[0], device=labels.device))
                maps = self.head.maps(window[rows], ink_box[rows], labels[rows])
                outputs["point_maps"] = maps
                outputs["map_points"] = (points - origin[:, None, :])[rows]
                outputs["map_visible"] = visible[rows]
                if self.training and labels.numel() > 0:
                    self.head.update_choice(labels, *self.head.candidate_errors(closed_form, maps, rows, origin,
                                                                                points, visible))
            if self.training and labels.numel() > 0:
                self.head.fit(coords, labels, origin, points, visible)
            outputs["argmax_points"] = closed_form
            if self.classifier is not None:
                outputs["crop_logits"] = self.classifier(images, boxes)
        return outputs

    def _training_boxes(self, targets: List[Dict[str, Tensor]]) -> List[Tensor]:
        """The targets' ground-truth boxes, in training mode each edge shifted by up to ``box_jitter`` px."""
        boxes = [t["boxes"].float() for t in targets]
        if self.training and self.box_jitter > 0:
            boxes = [b + (torch.rand_like(b) * 2 - 1) * self.box_jitter for b in boxes]
        return boxes

    @torch.jit.unused
    def classifier_loss(self, images: Tensor, targets: List[Dict[str, Tensor]]) -> Tensor:
        """The crop classifier's cross-entropy at the ground-truth boxes, jittered afresh as
        :meth:`forward` jitters them (in training mode): the loss of its extra updates. It reads
        the canvas alone, so it runs without the backbone."""
        if self.classifier is None:
            raise RuntimeError("classifier_loss: this detector has no crop classifier")
        labels = torch.cat([t["labels"] for t in targets]).long()
        logits = self.classifier(images, self._training_boxes(targets))
        return crop_class_loss(logits, labels)

    def calibrated_score(self, dense: Tensor, probability: Tensor) -> Tensor:
        """A detection's score from its dense score and its class probability: their product until
        :meth:`fit_score_calibration` has run, then ``sigmoid(b + w_d logit(dense) + w_c logit(probability))``."""
        w = self.score_calibration.float()
        fitted = torch.sigmoid(w[0] + _score_logits(dense.float(), probability.float()) @ w[1:])
        return torch.where(self.score_calibrated > 0, fitted, dense.float() * probability.float()).to(dense.dtype)

    @torch.jit.unused
    @torch.no_grad()
    def fit_score_calibration(self, dense: Tensor, probability: Tensor, correct: Tensor) -> None:
        """Platt scaling on held-out detections: fit the score's three weights by logistic
        regression of ``correct`` (the detection found a character: its class, its points within
        3 px) on the logits of its dense score and class probability, so that a true character
        scores near 1 and a false one near 0 and a threshold means a fraction correct. Left as it
        is when the detections are all right or all wrong (nothing to separate)."""
        if correct.numel() == 0 or bool(correct.all()) or not bool(correct.any()):
            return
        x = _score_logits(dense.double(), probability.double())
        y = correct.double()
        with torch.enable_grad():
            w = torch.tensor([0.0, 1.0, 1.0], dtype=torch.float64, requires_grad=True)
            optimizer = torch.optim.LBFGS([w], max_iter=200, line_search_fn="strong_wolfe")

            def closure() -> Tensor:
                optimizer.zero_grad()
                # A small ridge keeps the weights finite when val separates the two perfectly.
                loss = F.binary_cross_entropy_with_logits(w[0] + x @ w[1:], y) + 1e-3 * (w[1:] ** 2).sum()
                loss.backward()
                return loss

            optimizer.step(closure)
        self.score_calibration.copy_(w.detach().to(self.score_calibration.dtype))
        self.score_calibrated.fill_(1.0)

    def detect(self, images: Tensor, features: Tensor, detections: List[Dict[str, Tensor]],
               iou_threshold: float = 0.6) -> List[Dict[str, Tensor]]:
        """Decoded dense ``detections`` (per image) -> :meth:`detect_batch`'s detections, per image
        (:func:`~ocrloc.models.family.split_per_image`), sorted by score."""
        boxes = torch.cat([d["boxes"] for d in detections]) if len(detections) > 0 else images.new_zeros(0, 4)
        batch_index = torch.cat([torch.full_like(d["labels"], i) for i, d in enumerate(detections)]
                                ) if len(detections) > 0 else torch.zeros(0, dtype=torch.long, device=images.device)
        scores = torch.cat([d["scores"] for d in detections]) if len(detections) > 0 else images.new_zeros(0)
        labels = torch.cat([d["labels"] for d in detections]) if len(detections) > 0 else batch_index
        flat = self.detect_batch(images, features, boxes, scores, labels, batch_index, iou_threshold)
        return split_per_image(flat, len(detections))

    def detect_batch(self, images: Tensor, features: Tensor, boxes: Tensor, scores: Tensor, labels: Tensor,
                     batch_index: Tensor, iou_threshold: float) -> Dict[str, Tensor]:
        """The batch's dense detections (``boxes [N, 4]``, ``scores``, ``labels``, the image of each
        ``batch_index``; any order) -> its detections, flat
        (:data:`~ocrloc.models.family.FLAT_OUTPUT_NAMES`, then ``dense_scores`` and ``class_scores``,
        the two inputs of the score: :mod:`ocrloc.engine.calibration` fits on them) by :meth:`detect_rois`."""
        rois = torch.cat([batch_index[:, None].to(boxes.dtype), boxes], dim=1)
        padding = 0
        if not torch.jit.is_scripting():  # (TorchScript compiles none of this branch)
            if torch.compiler.is_exporting():  # the .pt2 and ONNX files
                images, features, rois = _with_blank_crop(images, features, rois)
                padding = 1
        boxes, scores_kept, labels, points, kept, probability = self.detect_rois(
            images, features, rois, scores, labels, iou_threshold, padding=padding)
        return flat_detections(boxes, scores_kept, labels, points, batch_index[kept],
                               {"dense_scores": scores[kept], "class_scores": probability})

    def detect_rois(self, images: Tensor, features: Tensor, rois: Tensor, scores: Tensor, labels: Tensor,
                    iou_threshold: float, padding: int = 0) -> Tuple[Tensor, Tensor, Tensor, Tensor, Tensor, Tensor]:
        """The detections of dense boxes ``rois [N + padding, 5]`` (image index, xyxy) with dense
        ``scores`` and ``labels`` ``[N]``, batched: the one place the argmax detector decodes
        (:meth:`detect_batch`, the predictor's and every export's path, calls it).

        * **Box**: with ``ink_boxes``, the ink box the head measured around the dense box (the ink
          inside it and the ink connected to it, :meth:`ArgmaxPointHead.measure_rois`), which is
          the annotated box wherever the box is the ink's; the dense box where the window holds no ink.
        * **Duplicates**: two dense peaks on one character measure the same ink, so their boxes
          coincide; a suppression at ``iou_threshold`` among the boxes the crop classifier gave one
          class (:func:`_duplicates`; per image, in dense-score order: the dense heatmap, which sees
          the whole character, ranks its own peaks) keeps one of each. On 300 val canvases of all10
          (the comparison's argmax checkpoint): box AP 0.723 with the dense boxes, 0.973 with these;
          1,171 detections before, 1,079 after, the same 1.3% of digits missed. Suppressing across
          classes kept 1,016 but missed 1.4%: a misnamed peak then hid a rightly named one (and a
          vote of the duplicates' class probabilities did worse, 1.5%).
        * **Class and score**: the crop classifier names each dense box (before the suppression,
          which needs the classes), with ``classify_ink_box`` from two crops of it, the dense
          box's and the ink box's, whose log-probabilities it adds (``docs/model.md``, "Training
          and inference": more digits named right than either crop alone); the score is
          :meth:`calibrated_score` of the dense score and the class's probability (their product
          until the trainer has fitted it on val).
        * **Points**: the argmax head's, for that class.

        ``padding`` trailing rows (the blank crop :meth:`detect_batch` adds while ``torch.export``
        traces, which keeps a convolution's batch provably non-empty) are measured and dropped. Returns the kept detections' boxes ``[M, 4]``,
        scores, labels, points ``[M, K, 2]``, their row indices into ``rois`` ``[M]`` and their class
        probabilities ``[M]`` (ones without a crop classifier).
        """
        n = rois.shape[0] - padding
        coords, origin, window, ink_box = self.head.measure_rois(images, features, rois)
        ink_on_canvas = ink_box + origin.repeat(1, 2)
        boxes = (ink_on_canvas if self.ink_boxes else rois[:, 1:])[:n]
        labels = torch.cat([labels, labels.new_zeros(padding)])
        if self.classifier is not None:
            if self.classify_ink_box:  # the second view, in the same batch
                views = rois.shape[0]
                ink_rois = torch.cat([rois[:, :1], ink_on_canvas], dim=1)
                both = self.classifier.logits_from_rois(images, torch.cat([rois, ink_rois])).float().log_softmax(dim=1)
                log_probability = (both[:views] + both[views:]).log_softmax(dim=1)
            else:
                log_probability = self.classifier.logits_from_rois(images, rois).float().log_softmax(dim=1)
            probability, labels = log_probability.exp().max(dim=1)
            probability = probability[:n].to(scores.dtype)
        else:
            probability = torch.ones_like(scores)
        if self.ink_boxes:
            duplicate = _duplicates(boxes.float(), scores.float(), rois[:n, 0], labels[:n], iou_threshold)
            kept = torch.nonzero(~duplicate).flatten()
        else:
            kept = torch.arange(n, device=rois.device)
        probability = probability[kept]
        scores = scores[kept]
        if self.classifier is not None:
            scores = self.calibrated_score(scores, probability)
        # The kept rows and the padding rows, which go along through the convolutions and are dropped.
        rows = torch.cat([kept, torch.arange(n, n + padding, device=rois.device)])
        points = self.head.place(coords[rows], origin[rows], window[rows], ink_box[rows], labels[rows])
        m = kept.shape[0]
        labels = labels[rows]
        return boxes[kept], scores, labels[:m], points[:m], kept, probability


def _count_per_candidate(state_dict, prefix, *args) -> None:
    # Checkpoints from before the candidates were counted apart hold one count per slot [slots].
    key = prefix + "choice_count"
    if key in state_dict and state_dict[key].dim() == 1:
        state_dict[key] = state_dict[key][:, None].repeat(1, 2)


def crop_class_loss(logits: Tensor, labels: Tensor) -> Tensor:
    """The crop classifier's loss, in the step and in its extra updates: cross-entropy in fp32
    (0, still in the graph, for a batch without characters)."""
    return F.cross_entropy(logits.float(), labels) if labels.numel() else logits.sum() * 0.0


def _score_logits(dense: Tensor, probability: Tensor) -> Tensor:
    """``[N, 2]``: the logits of the dense scores and class probabilities ``[N]`` (clipped to
    ``[1e-6, 1 - 1e-6]``), what the score calibration weighs (:meth:`ArgmaxDetector.calibrated_score`)."""
    eps = 1e-6
    d, p = dense.clamp(eps, 1 - eps), probability.clamp(eps, 1 - eps)
    return torch.stack([torch.log(d / (1 - d)), torch.log(p / (1 - p))], dim=1)


def _duplicates(boxes: Tensor, scores: Tensor, image: Tensor, labels: Tensor, iou_threshold: float) -> Tensor:
    """``[N]``: whether each box overlaps (IoU > ``iou_threshold``) a box of its image and class that
    comes before it (a higher score; on a tie, a lower index).

    Suppression in one step (YOLACT's "fast NMS": a box that a suppressed box overlaps is dropped
    too), written out rather than torchvision's ``nms``: ink boxes are whole pixels, so an IoU that
    is exactly the threshold is common, and ONNX's own NonMaxSuppression rounds it the other way
    now and then; these elementwise operations give every format the same answer."""
    index = torch.arange(boxes.shape[0], device=boxes.device)
    before = (scores[None, :] > scores[:, None]) | ((scores[None, :] == scores[:, None]) & (index[None, :] < index[:, None]))
    lt = torch.maximum(boxes[:, None, :2], boxes[None, :, :2])
    rb = torch.minimum(boxes[:, None, 2:], boxes[None, :, 2:])
    inter = (rb - lt).clamp(min=0).prod(dim=2)  # [N, N]
    area = (boxes[:, 2:] - boxes[:, :2]).clamp(min=0).prod(dim=1)
    union = area[:, None] + area[None, :] - inter
    overlap = inter > iou_threshold * union
    same = (image[None, :] == image[:, None]) & (labels[None, :] == labels[:, None])
    return (overlap & before & same).any(dim=1)


def _with_blank_crop(images: Tensor, features: Tensor, rois: Tensor) -> Tuple[Tensor, Tensor, Tensor]:
    """One more image, blank, and one roi on it, for ``torch.export``: convolutions over a
    data-dependent number of crops ask whether there are none, which torch.export cannot answer for
    every input; the extra crop (of an extra image: an empty batch has no image 0), dropped after,
    makes the count provably positive."""
    batch = images.shape[0]
    images = torch.cat([images, images.new_zeros((1,) + images.shape[1:])])
    features = torch.cat([features, features.new_zeros((1,) + features.shape[1:])])
    blank = torch.cat([torch.full((1, 1), batch, dtype=rois.dtype, device=rois.device),
                       rois.new_tensor([[0.0, 0.0, 1.0, 1.0]])], dim=1)
    return images, features, torch.cat([rois, blank])


class ArgmaxPredictor(FlatPredictor):
    """``[B, 1, H, W]`` -> detections of an :class:`ArgmaxDetector` (scriptable): the dense
    detector's decoding (:meth:`CenterNetDecoder.candidates`), then :meth:`ArgmaxDetector.detect_batch`."""

    def __init__(self, model: ArgmaxDetector, decoder: CenterNetDecoder) -> None:
        super().__init__(model.size_divisible, model.size_divisible)
        self.model = model
        self.decoder = decoder

    def forward_flat(self, images: Tensor) -> Dict[str, Tensor]:
        outputs = self.model(images)
        boxes, scores, labels, _, batch_index = self.decoder.candidates(outputs, images.shape[2], images.shape[3])
        return self.model.detect_batch(images, outputs["features"], boxes, scores, labels, batch_index,
                                       self.decoder.iou_threshold)


class ArgmaxCriterion(Criterion):
    """The dense detector's loss, ``argmax_point``: L1 (pixels) between the closed-form
    candidate's points at the ground-truth boxes and the annotated points (those with visibility
    > 0), ``crop_class``: the crop classifier's cross-entropy (0 without one), and with a point
    map (``point_map=True``) ``map_cell`` (cross-entropy of each score map with the cell holding
    the annotated point) and ``map_offset`` (L1, pixels, of the offset at that cell), both
    weighted by ``map_weight``."""

    def __init__(self, dense: CenterNetCriterion, weight: float = 1.0, class_weight: float = 1.0,
                 map_weight: float = 1.0, point_map: bool = False) -> None:
        super().__init__()
        self.dense = dense
        self.weight = weight
        self.class_weight = class_weight
        self.map_weight = map_weight
        self.loss_terms = ("heatmap", "size", "offset", "point", "argmax_point", "crop_class")
        if point_map:
            self.loss_terms = self.loss_terms + ("map_cell", "map_offset")

    def forward(self, outputs: Dict[str, Tensor], targets: List[Dict[str, Tensor]]) -> Tuple[Tensor, Dict[str, Tensor]]:
        loss, terms = self.dense(outputs, targets)
        pred = outputs["argmax_points"]
        keypoints = torch.cat([t["keypoints"] for t in targets]).float().view(pred.shape[0], pred.shape[1], 3)
        visible = (keypoints[..., 2] > 0).to(pred.dtype)
        error = (pred - keypoints[..., :2]).abs().sum(dim=-1) * visible
        argmax_point = error.sum() / visible.sum().clamp_min(1.0)
        terms["argmax_point"] = argmax_point
        loss = loss + self.weight * argmax_point
        if "crop_logits" in outputs:
            logits = outputs["crop_logits"]
            labels = torch.cat([t["labels"] for t in targets]).long()
            crop_class = crop_class_loss(logits, labels)
        else:
            crop_class = loss.new_zeros(())
        terms["crop_class"] = crop_class
        loss = loss + self.class_weight * crop_class
        if "point_maps" in outputs:
            cell, offset = map_loss(outputs["point_maps"], outputs["map_points"], outputs["map_visible"])
            terms["map_cell"], terms["map_offset"] = cell, offset
            loss = loss + self.map_weight * (cell + offset)
        return loss, terms
