"""Models of the head study (``model.type: study``): one digit per canvas, a class and its point.

A small CNN (stem conv, a 2 x 2 stem pool of a chosen kind, two stages: stride 2 and 4) and a
point head of a chosen kind, so rows of the study differ in one thing only:

* ``flatten``: flatten the head's input map, MLP;
* ``pool``: global average + max pooling, MLP;
* ``coordconv``: CoordConv channels, a conv, global average + max pooling, MLP;
* ``soft_argmax``: a 1 x 1 conv to ``argmax_channels`` maps, soft-argmax per map;
* ``hard_argmax``: the same, hard arg-max with the soft-argmax gradient (straight-through);
* ``extremes``: a 1 x 1 conv, soft threshold, the extreme-point features and ink centroid per map.

The coordinate heads feed their coordinates to the output both through the MLP and through a
linear path, as the detector's argmax-feature head does. ``inputs`` picks the maps the point
head reads (``canvas``: the raw image; ``stage1``, ``stage2``: backbone levels; several give
argmax features "at the input and after later layers"); ``dummy`` appends constant or random
inputs of the same count as the head's features. Classification always reads the pooled last
stage through the same small MLP, so the class column compares like with like.

``forward`` returns ``{"logits": [B, 10], "points": [B, 10, 2]}`` (points in canvas pixels,
one per class); :class:`StudyPredictor` reads the point at the predicted class.
"""

# No `from __future__ import annotations`: TorchScript reads these annotations.
import math
from typing import Dict, List, Optional, Tuple

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ocrloc.models.argmax import (EXTREME_FEATURES, AddCoords, ExtremePoints, HardArgmax2d, SoftArgmax2d, SoftThreshold,
                                  spatial_expectation)
from ocrloc.models.constants import PIXEL_MEAN, PIXEL_STD
from ocrloc.models.family import Criterion, Detector, PredictorModule
from ocrloc.models.readout import RidgeReadout

__all__ = ["STUDY_HEADS", "STUDY_INPUTS", "STEM_POOLS", "StudyNet", "StudyCriterion", "StudyPredictor", "build_study"]

STUDY_HEADS = ("flatten", "pool", "coordconv", "soft_argmax", "hard_argmax", "extremes")
STUDY_INPUTS = ("canvas", "stage1", "stage2")
STEM_POOLS = ("avg", "max", "min")
DUMMIES = ("none", "constant", "random")
POINT_FITS = ("gradient", "ridge")
CANVAS_MAPS = ("conv", "identity")
COORDINATE_HEADS = ("soft_argmax", "hard_argmax", "extremes")
# The extremes head's features per map, in order.
EXTREMES_HEAD_FEATURES = EXTREME_FEATURES + ("centroid_x", "centroid_y")


def _conv(cin: int, cout: int, stride: int = 1) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(cin, cout, 3, stride=stride, padding=1, bias=False), nn.BatchNorm2d(cout),
                         nn.ReLU(inplace=True))


def _mlp(cin: int, hidden: int, layers: int, cout: int) -> nn.Sequential:
    modules: List[nn.Module] = []
    for _ in range(layers):
        modules += [nn.Linear(cin, hidden), nn.ReLU(inplace=True)]
        cin = hidden
    modules.append(nn.Linear(cin, cout))
    return nn.Sequential(*modules)


class StemPool(nn.Module):
    """2 x 2 pooling of the stem: ``avg``, ``max`` or ``min`` (``-max(-x)``)."""

    def __init__(self, kind: str) -> None:
        super().__init__()
        if kind not in STEM_POOLS:
            raise ValueError(f"unknown stem pool {kind!r}; expected one of {', '.join(STEM_POOLS)}")
        self.kind = kind

    def forward(self, x: Tensor) -> Tensor:
        if self.kind == "avg":
            return F.avg_pool2d(x, 2)
        if self.kind == "max":
            return F.max_pool2d(x, 2)
        return -F.max_pool2d(-x, 2)


class PointFeatures(nn.Module):
    """One input map ``[B, C, h, w]`` -> the head's feature vector (coordinates in canvas
    pixels / canvas side, so every map's coordinates share one scale)."""

    def __init__(self, source: str, head: str, channels: int, size: int, argmax_channels: int,
                 identity_start: bool = False) -> None:
        super().__init__()
        self.source = source
        self.head = head
        self.size = size
        k = argmax_channels
        self.coords = AddCoords()
        self.conv = nn.Conv2d(channels + 2 if head == "coordconv" else channels, k if head in COORDINATE_HEADS else channels,
                              1 if head in COORDINATE_HEADS else 3, padding=0 if head in COORDINATE_HEADS else 1)
        self.soft = SoftArgmax2d(beta=1.0)
        self.hard = HardArgmax2d(beta=1.0)
        self.threshold = SoftThreshold(k, threshold=0.5, tau=0.1)
        self.extremes = ExtremePoints()
        if identity_start:
            if head not in COORDINATE_HEADS or channels != 1:
                raise ValueError(f"identity-started maps need a coordinate head on a one-channel input, got head "
                                 f"{head!r} on {source!r} ({channels} channels)")
            # Every map starts as the input itself, cut at mid-grey with a near-hard cut-off: the
            # coordinates are then the input's own ink geometry from the first step (all learned on).
            with torch.no_grad():
                self.conv.weight.fill_(1.0)
                self.conv.bias.zero_()
                self.threshold.log_tau.fill_(math.log(0.002))
        if head == "flatten":
            self.dim = channels * size * size
        elif head in ("pool", "coordconv"):
            self.dim = 2 * channels
        elif head == "extremes":
            self.dim = 5 * 2 * k  # per map: four extreme points and the centroid, (x, y) each
        else:
            self.dim = 2 * k

    def forward(self, x: Tensor, canvas_side: float) -> Tensor:
        b = x.shape[0]
        scale = canvas_side / float(x.shape[-1])  # map pixels -> canvas pixels
        if self.head == "flatten":
            return x.flatten(1)
        if self.head == "pool":
            return torch.cat([x.mean(dim=(-2, -1)), x.amax(dim=(-2, -1))], dim=1)
        if self.head == "coordconv":
            y = torch.relu(self.conv(self.coords(x)))
            return torch.cat([y.mean(dim=(-2, -1)), y.amax(dim=(-2, -1))], dim=1)
        maps = self.conv(x)
        if self.head == "soft_argmax":
            coords, _ = self.soft(maps)
            return coords.reshape(b, -1) * scale / canvas_side
        if self.head == "hard_argmax":
            return self.hard(maps).reshape(b, -1) * scale / canvas_side
        mask = self.threshold(maps)
        extremes = self.extremes(mask)
        centroid = spatial_expectation(mask / mask.sum(dim=(-2, -1), keepdim=True).clamp_min(1e-6))
        return torch.cat([extremes, centroid], dim=-1).reshape(b, -1) * scale / canvas_side


class StudyNet(nn.Module):
    """Small CNN + a point head of the study; see the module docstring.

    Args:
        head: one of :data:`STUDY_HEADS`.
        inputs: maps the point head reads (:data:`STUDY_INPUTS`).
        hidden_layers: hidden layers of the point MLP.
        hidden: width of the MLPs.
        stem_pool: ``avg``, ``max`` or ``min``.
        argmax_channels: maps of the coordinate heads (per input).
        dummy: ``none``, ``constant`` (ones) or ``random`` (N(0, 1) each call) extra inputs.
        canvas_size: side of the square canvases.
        width: channels of the first stage (the second has twice as many).
        point_fit: how the coordinate heads' linear path is learned: ``gradient`` (a linear layer
            trained with the rest) or ``ridge`` (each class's map fitted in closed form on the
            training batches' features and points, :class:`~ocrloc.models.readout.RidgeReadout`;
            the MLP's last layer then starts at zero, a correction that starts as none).
        canvas_maps: ``conv`` (the coordinate heads' 1 x 1 conv on the canvas starts at PyTorch's
            random init) or ``identity`` (every map starts as the canvas itself, cut at mid-grey
            with a near-hard cut-off; learned on from there).
    """

    def __init__(self, head: str = "pool", inputs: Tuple[str, ...] = ("stage2",), hidden_layers: int = 1,
                 hidden: int = 256, stem_pool: str = "max", argmax_channels: int = 8, dummy: str = "none",
                 canvas_size: int = 32, width: int = 32, point_fit: str = "gradient",
                 canvas_maps: str = "conv", *, num_classes: int) -> None:
        super().__init__()
        if head not in STUDY_HEADS:
            raise ValueError(f"unknown study head {head!r}; expected one of {', '.join(STUDY_HEADS)}")
        bad = [i for i in inputs if i not in STUDY_INPUTS]
        if bad or not inputs:
            raise ValueError(f"study inputs must be a non-empty subset of {', '.join(STUDY_INPUTS)}, got {list(inputs)}")
        if dummy not in DUMMIES:
            raise ValueError(f"unknown dummy {dummy!r}; expected one of {', '.join(DUMMIES)}")
        if point_fit not in POINT_FITS:
            raise ValueError(f"unknown point_fit {point_fit!r}; expected one of {', '.join(POINT_FITS)}")
        if point_fit == "ridge" and head not in COORDINATE_HEADS:
            raise ValueError(f"point_fit 'ridge' fits the linear path of a coordinate head "
                             f"({', '.join(COORDINATE_HEADS)}), not of {head!r}")
        if canvas_maps not in CANVAS_MAPS:
            raise ValueError(f"unknown canvas_maps {canvas_maps!r}; expected one of {', '.join(CANVAS_MAPS)}")
        self.stem = nn.Sequential(_conv(1, width), StemPool(stem_pool))     # stride 2
        self.stage1 = _conv(width, width)                                    # stride 2
        self.stage2 = _conv(width, 2 * width, stride=2)                      # stride 4
        self.inputs: List[str] = list(inputs)
        channels = {"canvas": 1, "stage1": width, "stage2": 2 * width}
        sizes = {"canvas": canvas_size, "stage1": canvas_size // 2, "stage2": canvas_size // 4}
        self.point_features = nn.ModuleList([
            PointFeatures(i, head, channels[i], sizes[i], argmax_channels,
                          identity_start=canvas_maps == "identity" and i == "canvas") for i in inputs])
        dim = sum(p.dim for p in self.point_features)
        self.dummy = dummy
        self.dummy_dim = dim if dummy != "none" else 0
        class_dim = 4 * width
        self.classifier = _mlp(class_dim, hidden, 1, num_classes)
        self.point_mlp = _mlp(dim + self.dummy_dim + class_dim, hidden, hidden_layers, 2 * num_classes)
        self.linear_path = nn.Linear(dim, 2 * num_classes) if head in COORDINATE_HEADS and point_fit == "gradient" else None
        self.readout = RidgeReadout(dim, 2, num_classes) if point_fit == "ridge" else None
        if self.readout is not None:
            last = self.point_mlp[-1]
            assert isinstance(last, nn.Linear)
            nn.init.zeros_(last.weight)
            nn.init.zeros_(last.bias)
        self.head = head
        self.canvas_size = canvas_size
        self.num_classes = num_classes
        self.register_buffer("pixel_mean", torch.tensor(PIXEL_MEAN), persistent=False)
        self.register_buffer("pixel_std", torch.tensor(PIXEL_STD), persistent=False)

    def point_inputs(self, images: Tensor) -> Tuple[Tensor, Tensor]:
        """The point head's features ``[B, D]`` (for the coordinate heads: coordinates in canvas
        sides; dummies not included) and the pooled last stage ``[B, 4 * width]``."""
        x = (images - self.pixel_mean) / self.pixel_std
        stage1 = self.stage1(self.stem(x))
        stage2 = self.stage2(stage1)
        maps: Dict[str, Tensor] = {"canvas": images, "stage1": stage1, "stage2": stage2}
        side = float(images.shape[-1])
        parts: List[Tensor] = []
        for features in self.point_features:
            parts.append(features(maps[features.source], side))
        pooled = torch.cat([stage2.mean(dim=(-2, -1)), stage2.amax(dim=(-2, -1))], dim=1)
        return torch.cat(parts, dim=1), pooled

    def forward(self, images: Tensor, targets: Optional[List[Dict[str, Tensor]]] = None) -> Dict[str, Tensor]:
        point_in, pooled = self.point_inputs(images)
        side = float(images.shape[-1])
        extra: List[Tensor] = [point_in]
        if self.dummy == "constant":
            extra.append(torch.ones(images.shape[0], self.dummy_dim, device=images.device, dtype=point_in.dtype))
        elif self.dummy == "random":
            extra.append(torch.randn(images.shape[0], self.dummy_dim, device=images.device, dtype=point_in.dtype))
        extra.append(pooled)
        out = self.point_mlp(torch.cat(extra, dim=1)).view(-1, self.num_classes, 2)
        if self.linear_path is not None:
            out = out + self.linear_path(point_in).view(-1, self.num_classes, 2)
        if self.readout is not None:
            if self.training and targets is not None:
                self._fit(point_in, targets, side)
            out = out + self.readout(point_in)
        # Normalised outputs around the canvas center -> canvas pixels.
        points = (out + 0.5) * side
        return {"logits": self.classifier(pooled), "points": points}


    @torch.jit.unused  # training only
    def _fit(self, point_in: Tensor, targets: List[Dict[str, Tensor]], side: float) -> None:
        """Stream the batch's features and true points (normalised as the outputs are) into the readout."""
        assert self.readout is not None
        labels = torch.stack([t["labels"][0] for t in targets]).long()
        truth = torch.stack([t["keypoints"][0, 0, :2] for t in targets]).float()
        self.readout.update(point_in.detach(), labels, truth / side - 0.5)


class StudyCriterion(Criterion):
    """Cross-entropy on the class plus ``point_weight`` x L1 (pixels) of the point at the true class."""

    def __init__(self, point_weight: float = 1.0) -> None:
        super().__init__()
        self.point_weight = point_weight
        self.loss_terms = ("class", "point")

    def forward(self, outputs: Dict[str, Tensor], targets: List[Dict[str, Tensor]]) -> Tuple[Tensor, Dict[str, Tensor]]:
        logits, points = outputs["logits"], outputs["points"]
        labels = torch.stack([t["labels"][0] for t in targets]).long()
        truth = torch.stack([t["keypoints"][0, 0, :2] for t in targets]).float()
        chosen = points[torch.arange(points.shape[0], device=points.device), labels]
        terms = {"class": F.cross_entropy(logits.float(), labels), "point": F.l1_loss(chosen.float(), truth)}
        return terms["class"] + self.point_weight * terms["point"], terms


class StudyPredictor(PredictorModule):
    """One detection per canvas: the arg-max class, its point, and the whole canvas as the box
    (the study models do not predict boxes; box AP is meaningless for them). Each detection
    also carries ``class_points`` ``[1, num_classes, 2]``, the point the model gives for every
    class, so the study can score the point at the *true* class.

    Input rule: canvases of exactly ``model.canvas_size`` (the flattening heads are sized for it).
    """

    def __init__(self, model: StudyNet) -> None:
        super().__init__(4, model.canvas_size, model.canvas_size)  # stem pool and stage2: stride 4
        self.model = model
        self.canvas_size = model.canvas_size

    def forward(self, images: Tensor) -> List[Dict[str, Tensor]]:
        outputs = self.model(images)
        prob = outputs["logits"].float().softmax(dim=1)
        scores, labels = prob.max(dim=1)
        class_points = outputs["points"].float()
        points = class_points[torch.arange(labels.shape[0], device=labels.device), labels]
        side = float(self.canvas_size)
        box = torch.tensor([[0.0, 0.0, side, side]], device=points.device)
        results: List[Dict[str, Tensor]] = []
        for b in range(labels.shape[0]):
            results.append({"boxes": box, "scores": scores[b:b + 1], "labels": labels[b:b + 1],
                            "keypoints": torch.cat([points[b:b + 1], scores[b:b + 1, None]], dim=1)[:, None, :],
                            "class_points": class_points[b:b + 1]})
        return results


def build_study(config, task) -> Detector:
    """``model.type: study`` (its entry in :mod:`ocrloc.families`): :class:`StudyNet` of
    ``config.model.study`` on the preset's square canvas, one point per class; ``point_init: rule``
    writes the rule into it first (the oracle, :mod:`ocrloc.research.oracle`)."""
    from ocrloc.data.catalog import get_preset
    from ocrloc.data.rules import get_rule
    from ocrloc.research.oracle import tell_study_net

    if task.num_keypoints != 1:
        raise ValueError(f"model.type study places one point per class; the data names {task.num_keypoints} keypoints")
    st = config.model.study
    model = StudyNet(st.head, tuple(st.inputs), st.hidden_layers, st.hidden, st.stem_pool, st.argmax_channels,
                     st.dummy, canvas_size=get_preset(config.data.preset).width, width=st.width,
                     point_fit=st.point_fit, canvas_maps=st.canvas_maps, num_classes=task.num_classes)
    if st.point_init == "rule":  # oracle ablation: the rule told
        tell_study_net(model, get_rule(config.data.rule))
    return Detector(model, StudyCriterion(config.loss.point), StudyPredictor(model))
