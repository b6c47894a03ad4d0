"""The model families: one table that the config check, :func:`~ocrloc.models.build.build`, the
trainer and the export read (detectron2's ``META_ARCH_REGISTRY``, written as a table).

Each :class:`Family` says, for one ``model.type``:

* ``section``: its own config section, ``model.<section>`` (a dataclass field of
  :class:`~ocrloc.config.ModelConfig`); a section no other family reads must keep its defaults
  under another type (:func:`ocrloc.config.check_config`);
* ``reads``: the other keys that only some families read (loss weights, a postprocess setting,
  shared model fields): which ``model.type`` reads which key is derived from here
  (:data:`ocrloc.config.APPLIES_TO`), so a key set for a family that ignores it is refused;
* ``builder``: ``"module:function"``, ``function(config, task) -> Detector``, imported only when
  a model is built (the table itself imports nothing: reading a config stays light);
* what it needs of the trainer (``recalibrates_scores``, ``every_parameter_trains``) and of the
  export (``flat_graph``: its predictor has the batched graph ``torch.export`` and ONNX take);
* ``research``: a research instrument (:mod:`ocrloc.research`), not a detector of the product;
* ``oracle``: ``"module:function"``, ``function(detector, config)``, the rule oracle ablation
  (:mod:`ocrloc.research.oracle`) applied to a built detector whose config asks for it.

Adding a family is one entry here, its section dataclass in :mod:`ocrloc.config` (when it has
settings of its own) and its builder; ``tests/test_config.py`` holds the sections and the
dataclass fields to each other.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass
from typing import Dict, Optional, Tuple

# Config, Task and Detector in the annotations are ocrloc.config.Config, ocrloc.data.task.Task and
# ocrloc.models.family.Detector, named and not imported: this module sits below all three (ocrloc.config
# reads it; tests/test_import_graph.py holds the package free of cycles, TYPE_CHECKING imports included).

__all__ = ["FAMILIES", "Family", "MODEL_TYPES", "ORACLE_LABEL", "applies_to", "get_family", "is_told", "labelled"]

# Keys every dense detector (ocrloc's heatmap families) reads and the others do not.
_DENSE_KEYS = ("model.shared_head_stem", "model.max_stride", "loss.heatmap", "loss.size", "loss.offset", "loss.point",
               "loss.point_heatmap", "loss.giou", "postprocess.nms_kernel")


@dataclass(frozen=True)
class Family:
    """One ``model.type`` (module docstring)."""

    name: str
    builder: str
    section: Optional[str] = None
    reads: Tuple[str, ...] = ()
    recalibrates_scores: bool = False
    every_parameter_trains: bool = False
    flat_graph: bool = False
    research: bool = False
    oracle: Optional[str] = None

    def build(self, config: "Config", task: "Task") -> "Detector":
        """The family's :class:`~ocrloc.models.family.Detector` of ``config`` for ``task`` (use
        :func:`ocrloc.models.build.build`, which adds the config's error wording), with the rule
        oracle written in when the config asks for it (``model.<section>.point_init: rule``)."""
        detector = _resolve(self.builder)(config, task)
        section = getattr(config.model, self.section) if self.section is not None else None
        if self.oracle is not None and getattr(section, "point_init", None) == "rule":
            # The oracle is a research instrument (ocrloc/research/oracle.py): named here, never
            # imported by the product's modules, so the product does not depend on research.
            _resolve(self.oracle)(detector, config)
        return detector


def _resolve(target: str):
    """The function a ``"module:function"`` string names (imported on first use)."""
    module, function = target.split(":")
    return getattr(importlib.import_module(module), function)


def _baseline(name: str) -> Family:
    # torchvision's detectors: their loss heads skip parameters on some steps (DDP must look for them).
    return Family(name, "ocrloc.models.build:build_baseline_family", section="baseline")


FAMILIES: Tuple[Family, ...] = (
    Family("centernet", "ocrloc.models.build:build_centernet", section="centernet", reads=_DENSE_KEYS,
           every_parameter_trains=True, flat_graph=True),
    Family("argmax", "ocrloc.models.build:build_argmax", section="argmax",
           reads=_DENSE_KEYS + ("loss.argmax_point", "loss.crop_class", "loss.point_map"),
           recalibrates_scores=True, every_parameter_trains=True, flat_graph=True,
           oracle="ocrloc.research.oracle:tell_argmax_detector"),
    Family("study", "ocrloc.research.study:build_study", section="study", reads=("loss.point",), research=True),
    _baseline("retinanet"),
    _baseline("ssd"),
    _baseline("fcos"),
    _baseline("keypointrcnn"),
)

MODEL_TYPES: Tuple[str, ...] = tuple(family.name for family in FAMILIES)
_BY_NAME: Dict[str, Family] = {family.name: family for family in FAMILIES}


def get_family(name: str) -> Family:
    """The family of ``model.type`` ``name``.

    Raises:
        ValueError: for a name that is not registered, listing those that are.
    """
    if name not in _BY_NAME:
        raise ValueError(f"unknown model.type {name!r}; known types: {', '.join(MODEL_TYPES)}")
    return _BY_NAME[name]


def applies_to() -> Dict[str, Tuple[str, ...]]:
    """Which ``model.type`` reads each key that not every family reads: a family section
    (``model.<section>``: every key in it) or a single key -> the families reading it, in table
    order. Sections first, then the single keys, each in the order the table first names it."""
    readers: Dict[str, Tuple[str, ...]] = {}
    for family in FAMILIES:
        if family.section is not None:
            key = f"model.{family.section}"
            readers[key] = readers.get(key, ()) + (family.name,)
    for family in FAMILIES:
        for key in family.reads:
            readers[key] = readers.get(key, ()) + (family.name,)
    return readers


ORACLE_LABEL = "oracle: rule told"


def is_told(config: "Config") -> bool:
    """Whether a config asks for the rule oracle (``point_init: rule`` of the argmax detector or the head study)."""
    return config.model.argmax.point_init == "rule" or config.model.study.point_init == "rule"


def labelled(name: str, config: "Config") -> str:
    """``name`` as a table shows it: with ``(oracle: rule told)`` when ``config`` is told the rule."""
    return f"{name} ({ORACLE_LABEL})" if is_told(config) else name
