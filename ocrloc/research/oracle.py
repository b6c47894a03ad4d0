"""Oracle ablations: a rule table written into a model before training ("oracle: rule told").

A rule (:mod:`ocrloc.data.rules`) is how the data was *made*; a model must learn it from the
annotations. These functions exist only to measure how much being told the answer is worth:
``model.argmax.point_init: rule`` (the argmax-feature detector) and ``model.study.point_init: rule``
(the head study) call them, and every result they produce is labelled "oracle: rule told".
No product module imports this one: the argmax family's entry in :mod:`ocrloc.families` names
:func:`tell_argmax_detector`, applied after the build on request.
"""

from __future__ import annotations

import math
from typing import Dict, List, Mapping, Tuple

import torch
from torch import nn

from ocrloc.data.rules import get_rule

# The label lives with the family table (light; engine/compare.py labels rows without importing research).
from ocrloc.families import ORACLE_LABEL, is_told, labelled

__all__ = ["ORACLE_LABEL", "PRIOR_FEATURES", "is_told", "labelled", "rule_prior_weights", "tell_argmax_detector",
           "tell_argmax_head", "tell_study_net"]


# The named points (docs/task.md, "Named points") written on the coordinate features: (x combination,
# y combination).
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
                       num_classes: int) -> List[Tuple[int, int, float]]:
    """``(output row, feature column, weight)`` of a linear map from ``feature_names`` to one
    (x, y) per class (rows ``2 * class + axis``) that gives each class its named point under
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


@torch.no_grad()
def tell_argmax_head(head: nn.Module, rule: Mapping[int, str]) -> None:
    """Oracle: start an :class:`~ocrloc.models.argmax_detector.ArgmaxPointHead` (``point_fit=gradient``)
    with each class's map set to its named point (``docs/task.md``, "Named points") on the mask features.

    Every prior is a convex combination of coordinates, so with zero bias it maps the
    normalised features (coords / s - 0.5) to point / s - 0.5 exactly.
    """
    from ocrloc.models.argmax_detector import COORDINATE_FEATURES

    if head.readout is not None:
        raise ValueError("the rule oracle writes the gradient-trained map: it needs point_fit 'gradient', "
                         "not 'ridge' (whose closed-form fit would add a second copy of the rule)")
    for row, column, weight in rule_prior_weights(rule, COORDINATE_FEATURES, head.num_classes):
        head.point.weight[row, column] = weight


def tell_argmax_detector(detector, config) -> None:
    """Write the rule of ``config.data.rule`` into an argmax detector's point head (what
    ``model.argmax.point_init: rule`` asks; :mod:`ocrloc.families` applies it after the build)."""
    tell_argmax_head(detector.model.head, get_rule(config.data.rule))


@torch.no_grad()
def tell_study_net(model: nn.Module, rule: Mapping[int, str]) -> None:
    """Oracle: start a :class:`~ocrloc.research.study.StudyNet` (``extremes`` head on the ``canvas``
    alone) as the rule (``docs/task.md``, "Rules") on exact features.

    Its first map becomes the canvas itself, cut between the ink levels 127 and 128 (of
    255) with tau 0.01: pixels 10 levels or more from the cut are ink or not to within 2%, and
    the cut keeps a gradient. The other maps keep their random start (and get no weight). The
    linear path picks each class's point from that map's extremes and the MLP starts at zero,
    so training learns only a correction.
    """
    from ocrloc.research.study import EXTREMES_HEAD_FEATURES

    if model.head != "extremes" or list(model.inputs) != ["canvas"]:
        raise ValueError(f"rule_prior needs the extremes head on the canvas alone, got head {model.head!r} "
                         f"and inputs {list(model.inputs)}")
    if model.linear_path is None:
        raise ValueError("the rule oracle writes the linear path: it needs model.study.point_fit 'gradient'")
    entries = rule_prior_weights(rule, EXTREMES_HEAD_FEATURES, model.num_classes)
    features = model.point_features[0]
    features.conv.weight[0].zero_()
    features.conv.weight[0, 0] = 1.0
    features.conv.bias[0] = 0.0
    features.threshold.threshold[0] = 127.5 / 255
    features.threshold.log_tau[0] = math.log(0.01)
    path = model.linear_path
    path.weight.zero_()
    path.bias.fill_(-0.5)  # features are coordinates / side; outputs are point / side - 0.5
    for row, column, weight in entries:
        path.weight[row, column] = weight
    last = model.point_mlp[-1]
    last.weight.zero_()
    last.bias.zero_()
