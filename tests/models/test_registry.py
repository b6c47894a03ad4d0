"""The family table (ocrloc/families.py) is what build, the export and the trainer read."""

from __future__ import annotations

import pytest

from ocrloc.config import ConfigError, load_config
from ocrloc.export import flat_supported
from ocrloc.models.build import build
from ocrloc.models.family import FlatPredictor
from ocrloc.families import FAMILIES, MODEL_TYPES, get_family

# The smallest model of each family (a timm test backbone, narrow heads).
TINY = ["model.backbone=test_resnet", "model.fpn_channels=8", "model.head_channels=8"]
OWN = {"study": ["data.preset=single", "model.study.head=extremes", "model.study.inputs=[canvas]"],
       **{kind: ["model.head_stride=8", "model.fpn_channels=32"] for kind in ("retinanet", "ssd", "fcos",
                                                                            "keypointrcnn")}}


@pytest.mark.parametrize("name", MODEL_TYPES)
def test_each_family_builds_through_its_entry_and_exports_flat_as_the_table_says(name):
    detector = build(load_config(None, [*TINY, f"model.type={name}", *OWN.get(name, [])]))
    family = get_family(name)
    assert flat_supported(detector.predictor) == family.flat_graph
    assert isinstance(detector.predictor, FlatPredictor) == family.flat_graph
    # What the trainer reads: only the dense families promise DDP a gradient for every parameter,
    # only the argmax detector fits its score at validation (and its model says it can).
    assert family.every_parameter_trains == (name in ("centernet", "argmax"))
    assert family.recalibrates_scores == hasattr(detector.model, "calibrate_score")


def test_research_instruments_are_marked_and_live_in_the_research_package():
    research = {family.name: family.builder for family in FAMILIES if family.research}
    assert research == {"study": "ocrloc.research.study:build_study"}


def test_an_unknown_type_names_the_known_ones():
    with pytest.raises(ValueError, match="unknown model.type 'nope'; known types: centernet, argmax, study, retinanet"):
        get_family("nope")
    with pytest.raises(ConfigError, match=r"model.type = 'nope' is not one of centernet, argmax, study"):
        load_config(None, ["model.type=nope"])
