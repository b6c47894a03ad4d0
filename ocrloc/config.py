"""Typed configuration: dataclass defaults, one YAML file of overrides, ``--set a.b=value``.

No inheritance chains, no silent merges and nothing silently ignored: every key in a YAML file
must name a field of the dataclasses below, with a value of the field's type (one of its
choices, for a ``Literal`` field), and a key that ``model.type`` does not read must keep its
default (:data:`APPLIES_TO`, :func:`check_config`); otherwise loading fails with an error
naming the key and the file (or the ``--set`` item). The fields every detector shares are flat
under ``model``; each family's own fields are in its section (``model.centernet``,
``model.argmax``, ``model.baseline``, ``model.study``). The resolved config is saved with
every run, and saved configs of the older flat layout still load (:func:`config_from_dict`).

The shipped configs live in the repository's ``configs/`` and travel inside the package as
``ocrloc/configs`` (a link to ``configs/`` in a clone, a copy in a built wheel: setup.cfg's
package data), so they load by name from any folder (``load_config("quickstart")``,
``compare/argmax``, or ``configs/quickstart.yaml`` spelt as in the repository;
:func:`list_config_names`).
"""

from __future__ import annotations

import copy
import dataclasses
import difflib
import math
import os
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Dict, Iterator, List, Literal, Mapping, Optional, Sequence, Tuple, Union

import yaml

# The data section and its augmentation settings live in the data layer, apart from the pipelines: importing
# ocrloc.data.augment would pull in albumentations (seconds) for every tool that only reads a config.
from ocrloc.data.catalog import PRESET_NAMES
from ocrloc.data.data_config import DataConfig
from ocrloc.families import MODEL_TYPES as REGISTERED_TYPES
from ocrloc.families import applies_to
from ocrloc.utils.errors import ConfigError, yaml_problem
from ocrloc.utils.io import atomic_path

__all__ = [
    "DataConfig",
    "ModelConfig",
    "CenterNetConfig",
    "ArgmaxConfig",
    "BaselineConfig",
    "StudyConfig",
    "LossConfig",
    "OptimConfig",
    "TrainConfig",
    "PostprocessConfig",
    "Config",
    "ConfigError",
    "MODEL_TYPES",
    "PRESET_NAMES",
    "APPLIES_TO",
    "MOVED_KEYS",
    "CONFIGS_DIR",
    "load_config",
    "apply_overrides",
    "check_config",
    "config_to_dict",
    "save_config",
    "config_from_dict",
    "migrate_config_dict",
    "config_path",
    "list_config_names",
]

# The families (model.type) and which of them reads each key that not all of them read come from
# their one table, ocrloc/families.py (which imports nothing heavy).
MODEL_TYPES: Tuple[str, ...] = REGISTERED_TYPES
ModelType = Literal[MODEL_TYPES]  # type: ignore[valid-type]  (the choices a config may name)


# Which model.type reads each key (a section: every key in it); a key not named here is read
# by every type. A value other than the default in a key the chosen type does not read is a
# ConfigError (check_config): it would otherwise change nothing and look as if it had.
APPLIES_TO: Dict[str, Tuple[str, ...]] = applies_to()

# A zero here would divide by zero or never run; a negative learning rate climbs the loss (AdamW
# refuses it only once the run folder is made, and takes a NaN without a word).
POSITIVE_KEYS = ("train.steps", "train.batch_size", "train.val_every", "train.log_every", "data.val_count",
                 "model.argmax.map_channels", "model.argmax.map_lr_scale", "model.argmax.classifier_width",
                 "model.argmax.classifier_updates", "optim.lr")
# Seeds too: numpy's SeedSequence refuses negative entropy, deep inside a DataLoader worker. The
# loss weights, decay, clipping and augmentation magnitudes: a negative one trains the opposite of
# what it names, silently.
NON_NEGATIVE_KEYS = ("train.checkpoint_every", "train.threads", "data.train_canvases",
                     "train.seed", "data.train_seed", "data.val_seed", "model.argmax.map_context",
                     "optim.weight_decay", "optim.warmup_steps", "optim.min_lr_ratio", "optim.grad_clip",
                     *(f"loss.{name}" for name in ("heatmap", "size", "offset", "point", "point_heatmap", "giou",
                                                   "argmax_point", "crop_class", "point_map")),
                     "model.argmax.box_margin", "model.argmax.ink_reach", "model.argmax.box_jitter",
                     *(f"data.digit_augment.{name}" for name in ("rotate_deg", "shear_deg", "elastic_alpha",
                                                                 "elastic_sigma")),
                     "data.canvas_augment.brightness", "data.canvas_augment.contrast")
# Probabilities and thresholds on scores or overlaps, which live in [0, 1].
UNIT_INTERVAL_KEYS = ("postprocess.score_threshold", "postprocess.iou_threshold",
                      *(f"data.digit_augment.{name}" for name in ("affine_p", "thickness_p", "elastic_p")),
                      *(f"data.canvas_augment.{name}" for name in ("noise_p", "blur_p", "brightness_contrast_p")))

# The flat model keys of configs saved before the family sections, and where each went.
MOVED_KEYS: Dict[str, str] = {
    "model.point_mode": "model.centernet.point_mode",
    **{f"model.{name}": f"model.argmax.{name}" for name in (
        "crop_size", "box_margin", "ink_reach", "argmax_channels", "box_jitter", "point_fit", "crop_classifier",
        "point_init")},
    "model.anchor_sizes": "model.baseline.anchor_sizes",
    "model.aspect_ratios": "model.baseline.aspect_ratios",
}

# Keys added after runs were saved without them, whose default would build another model than
# the one those runs trained: a saved config that lacks one gets this value instead.
ADDED_KEYS: Dict[str, Any] = {
    "model.argmax.point_map": False,
    "model.argmax.ink_boxes": False,
    "model.argmax.calibrate_score": False,
    "model.argmax.map_tolerance": 0.0,
    "model.argmax.classify_ink_box": False,
}

# Choices renamed with the family sections: (key, old value) -> new value.
RENAMED_VALUES: Dict[Tuple[str, str], str] = {
    ("model.argmax.point_init", "zero"): "learned",
    ("model.study.point_init", "default"): "learned",
}

CONFIGS_DIR = Path(__file__).resolve().parent / "configs"
# Shipped configs that moved, by the start of their old names: the research instruments' configs
# went to configs/research/ (as detectron2 keeps its projects apart), and their old names still load.
MOVED_CONFIGS: Dict[str, str] = {"experiments/head_study/": "research/head_study/",
                                 "ablations/argmax_rule_told": "research/argmax_rule_told"}
# Folders of CONFIGS_DIR whose YAML files are not run configs (rule tables for data.rule).
_NOT_RUN_CONFIGS = ("rules",)


@dataclass
class CenterNetConfig:
    """``model.type: centernet`` only: ocrloc's dense point detector (:mod:`ocrloc.models.centernet`).

    Attributes:
        point_mode: how the class-dependent point is predicted: ``heatmap`` (a heatmap per class
            peaking at the point, read inside the detection's box, plus a sub-cell offset) or
            ``offset`` (a vector from the peak cell, per class). ``heatmap`` is the default because
            it measured better on all10 at the quickstart budget (README, "Results").
    """

    point_mode: Literal["heatmap", "offset"] = "heatmap"


@dataclass
class ArgmaxConfig:
    """``model.type: argmax`` only: the dense detector + an argmax-feature point head
    (:mod:`ocrloc.models.argmax_detector`).

    Attributes:
        crop_size: side in pixels of the canvas window the point head reads around each
            detection (must hold the largest digit and be a multiple of ``model.head_stride``).
        box_margin: pixels around the box kept in the head's ink mask.
        ink_reach: the head's mask also keeps the ink connected to the box's own ink up to this
            many pixels beyond the box, so a detected box that cut its digit still gives the
            digit's extremes; 0 keeps the box plus ``box_margin`` only.
        argmax_channels: channels whose soft-argmax the head adds as learned coordinates.
        box_jitter: training boxes are shifted by up to this many pixels per edge.
        point_fit: how the head learns each class's map from coordinates to point: ``ridge``
            (closed-form ridge least squares on the training batches' coordinates and annotated
            points, plus a gradient-trained correction) or ``gradient`` (a map started at zero and
            trained by gradient alone). See ``docs/model.md``.
        crop_classifier: name each detection with a small CNN on its size-normalised canvas crop
            (the dense heatmap only finds it).
        classifier_width: channels of the crop classifier's first conv pair (then twice and four
            times as many): its cost per crop goes with the square of it.
        classifier_updates: optimiser updates the crop classifier gets per training step: the first
            with the rest of the model, each other one on its own, on the step's characters at a
            fresh box jitter (the classifier reads the canvas, not the backbone: an update costs
            its forward and backward alone). Its accuracy is limited by the count of updates, not
            by the characters it sees (``docs/model.md``, "The crop classifier"); 1 (the
            default) keeps the step as cheap as it was.
        point_map: give the head a second candidate for every (class, keypoint): a score map
            over the canvas window at full resolution, read by its arg-max cell plus a learned
            sub-pixel offset (:mod:`ocrloc.models.point_map`), which learns points that no
            coordinate gives (a pixel of the stroke found by a search over the ink). Each slot
            takes whichever candidate placed the training points better. Saved configs from
            before this key load with ``false``, as they were trained.
        map_channels: width of the point map's trunk and per-slot layers.
        map_context: channels of the finest FPN level the point map reads beside the canvas
            (a 1 x 1 conv of it, upsampled to the window; 0 reads the canvas alone).
        map_lr_scale: the point map's learning rate as a multiple of ``optim.lr``. 5 because the
            map starts from scratch while the rest of the head has the ridge fit: on val of the
            stroke rule at the quickstart budget, keypoint AP 0.812 at 5 against 0.779 at 1.
        map_tolerance: training only: a character skips the point map when the closed-form
            read-out already places its points within this many pixels (the running mean of each
            of its slots' training errors, the one that chooses between the candidates): where the
            closed form is exact the map cannot win, and its full-resolution window is the head's
            largest cost (on all10 every character skips it after the quickstart's first ~100
            steps, and the map then costs nothing). 0 trains the map on
            every character; saved configs from before this key load with 0, as they were trained.
        ink_boxes: each detection's box is the ink box the point head measured around the dense
            box (its ink and the ink connected to it), the dense box where it finds no ink; two
            detections whose ink boxes coincide (two peaks on one character) are one. Saved
            configs from before this key load with ``false`` (the dense box), as they were trained.
        calibrate_score: with a crop classifier, a detection's score is fitted on val at every
            validation (Platt scaling of the dense score's and the class probability's logits
            against whether the detection was right: :mod:`ocrloc.engine.calibration`), so a true
            character scores near 1 and a false one near 0; else the dense score times the class
            probability. Saved configs from before this key load with ``false``.
        classify_ink_box: the crop classifier names each detection from two crops, the dense box's
            and the ink box's, adding their log-probabilities (test-time augmentation with two
            views; the ink box is the annotated box wherever the head found the character's ink,
            the view the classifier trained on, jittered). On 1,000 val canvases of all10, four
            checkpoints: 0.10-0.26 points more digits named right, 0.10-0.22 fewer missed, keypoint
            AP +0.001 to +0.004 (``docs/model.md``). One more classifier pass per detection at
            inference; training is unchanged. Saved configs from before this key load with ``false``.
        point_init: ``learned`` (the map is learned from the annotations alone), or ``rule``, an
            *oracle* ablation ("oracle: rule told"), with ``point_fit: gradient``: the map starts
            as the definition of each class's named point under ``data.rule`` (``docs/task.md``, "Rules")
            (:mod:`ocrloc.research.oracle`), so training learns only a correction. Never a default;
            every result of it is labelled so.
    """

    crop_size: int = 48
    box_margin: float = 1.0
    ink_reach: float = 6.0
    argmax_channels: int = 8
    box_jitter: float = 1.0
    point_fit: Literal["ridge", "gradient"] = "ridge"
    crop_classifier: bool = True
    classifier_width: int = 32
    classifier_updates: int = 1
    point_map: bool = True
    map_channels: int = 32
    map_context: int = 8
    map_lr_scale: float = 5.0
    map_tolerance: float = 0.1
    ink_boxes: bool = True
    calibrate_score: bool = True
    classify_ink_box: bool = True
    point_init: Literal["learned", "rule"] = "learned"


@dataclass
class BaselineConfig:
    """The torchvision baselines only (``model.type``: ``retinanet``, ``ssd``, ``fcos``,
    ``keypointrcnn``; :mod:`ocrloc.models.baselines`).

    Attributes:
        anchor_sizes: anchor sizes in pixels, one list per FPN level (for SSD one list of
            default-box scales as fractions of the canvas, levels + 1 of them); None takes the
            defaults of ``ocrloc.models.baselines.DEFAULT_ANCHORS``.
        aspect_ratios: anchor aspect ratios (h / w; for SSD the extra ratios).
        shared_keypoints: ``keypointrcnn`` only: one set of K keypoint channels for every class
            (torchvision's own design, right when a keypoint name means the same on every class,
            as the glyphs' baseline does) instead of K channels per class (needed when one name
            means a different point per class, as the digits' rule ``point`` does).
    """

    anchor_sizes: Optional[List[List[float]]] = None
    aspect_ratios: Optional[List[float]] = None
    shared_keypoints: bool = False


@dataclass
class StudyConfig:
    """``model.type: study`` only: the head-study model (:mod:`ocrloc.research.study`).

    Attributes:
        head: point head: ``flatten``, ``pool``, ``coordconv``, ``soft_argmax``, ``hard_argmax``, ``extremes``.
        inputs: maps the point head reads: any of ``canvas``, ``stage1``, ``stage2``.
        hidden_layers: hidden layers of the point MLP.
        hidden: width of the MLPs.
        stem_pool: 2 x 2 pooling in the stem: ``avg``, ``max`` or ``min``.
        argmax_channels: maps per input of the coordinate heads.
        dummy: extra head inputs: ``none``, ``constant`` or ``random``.
        width: channels of the first stage.
        point_fit: the coordinate heads' linear path: ``gradient`` (trained with the rest) or
            ``ridge`` (fitted in closed form on the training batches, :class:`ocrloc.models.readout.RidgeReadout`).
        canvas_maps: the coordinate heads' maps of the ``canvas``: ``conv`` (a randomly started
            1 x 1 conv) or ``identity`` (each map starts as the canvas, cut at mid-grey).
        point_init: ``learned`` (PyTorch's initialisation, then training) or ``rule``, an *oracle*
            ablation ("oracle: rule told"): the ``extremes`` head on the ``canvas`` starts as the
            rule ``data.rule`` on exact features (:func:`ocrloc.research.oracle.tell_study_net`).
    """

    head: Literal["flatten", "pool", "coordconv", "soft_argmax", "hard_argmax", "extremes"] = "pool"
    inputs: List[Literal["canvas", "stage1", "stage2"]] = field(default_factory=lambda: ["stage2"])
    hidden_layers: int = 1
    hidden: int = 256
    stem_pool: Literal["avg", "max", "min"] = "max"
    argmax_channels: int = 8
    dummy: Literal["none", "constant", "random"] = "none"
    width: int = 32
    point_fit: Literal["gradient", "ridge"] = "gradient"
    canvas_maps: Literal["conv", "identity"] = "conv"
    point_init: Literal["learned", "rule"] = "learned"


@dataclass
class ModelConfig:
    """The detector: the fields every family shares, then one section per family.

    A family section other than ``type``'s must keep its defaults (:func:`check_config`).

    Attributes:
        type: detector family: ``centernet`` (ocrloc's dense point detector), ``argmax`` (the
            dense detector + an argmax-feature point head, :mod:`ocrloc.models.argmax_detector`),
            ``study`` (one digit per canvas, the head study's models) or a torchvision
            baseline on the same backbone + FPN: ``retinanet``, ``ssd``, ``fcos``, ``keypointrcnn``
            (see :mod:`ocrloc.models.baselines`).
        backbone: any timm model name that supports ``features_only``.
        pretrained_path: optional local checkpoint for the backbone (never downloaded).
        fpn_channels: FPN output channels.
        head_stride: stride of the feature level the heads read (4 or 8); for the baselines, the
            finest FPN level (8: levels p3-p5).
        head_channels: hidden channels of each head.
        shared_head_stem: ``centernet`` and ``argmax`` only: the dense heads share one 3 x 3 conv
            (each keeps its own 1 x 1 output conv) instead of one 3 x 3 conv each, as CenterNet has.
            ~6% faster a quickstart step, but val keypoint AP 0.903 vs 0.943 after 150 steps (README,
            Training speed): off by default.
        max_stride: ``centernet`` and ``argmax`` only: the coarsest backbone level built and fed to
            the FPN (at least ``head_stride``); the backbone's later stages are not built (timm's
            ``out_indices``). None: every level. Characters of 18-36 px need no stride-32 context,
            and a resnet18's last stage is about a quarter of its forward + backward (``docs/model.md``).
        centernet: ``centernet`` only (:class:`CenterNetConfig`).
        argmax: ``argmax`` only (:class:`ArgmaxConfig`).
        baseline: ``retinanet``, ``ssd``, ``fcos``, ``keypointrcnn`` only (:class:`BaselineConfig`).
        study: ``study`` only (:class:`StudyConfig`).
    """

    type: ModelType = "centernet"
    backbone: str = "resnet18"
    pretrained_path: Optional[str] = None
    fpn_channels: int = 64
    head_stride: int = 4
    head_channels: int = 64
    shared_head_stem: bool = False
    max_stride: Optional[int] = None
    centernet: CenterNetConfig = field(default_factory=CenterNetConfig)
    argmax: ArgmaxConfig = field(default_factory=ArgmaxConfig)
    baseline: BaselineConfig = field(default_factory=BaselineConfig)
    study: StudyConfig = field(default_factory=StudyConfig)


@dataclass
class LossConfig:
    """Weights of the loss terms (see :mod:`ocrloc.models.centernet_loss`).

    Which ``model.type`` reads each weight is :data:`APPLIES_TO`: the dense terms (``heatmap``
    to ``giou``) serve ``centernet`` and ``argmax``, ``point`` also ``study``, ``argmax_point``,
    ``crop_class`` and ``point_map`` (the point map's cell cross-entropy plus its offset L1)
    ``argmax`` alone; the baselines weigh torchvision's own losses and read none.
    """

    heatmap: float = 1.0
    size: float = 0.1
    offset: float = 1.0
    point: float = 1.0
    point_heatmap: float = 1.0
    giou: float = 0.0
    argmax_point: float = 1.0
    crop_class: float = 1.0
    point_map: float = 1.0


@dataclass
class OptimConfig:
    """AdamW with linear warm-up and cosine decay.

    Attributes:
        lr: peak learning rate.
        weight_decay: AdamW weight decay.
        warmup_steps: linear warm-up from 0.
        min_lr_ratio: final learning rate as a fraction of ``lr``.
        grad_clip: max gradient norm (0 disables clipping).
    """

    lr: float = 2e-3
    weight_decay: float = 1e-4
    warmup_steps: int = 200
    min_lr_ratio: float = 0.02
    grad_clip: float = 5.0


@dataclass
class TrainConfig:
    """The training loop.

    Attributes:
        steps: optimiser steps in total.
        batch_size: canvases per step (per process under torchrun).
        val_every: validate every this many steps (and at the end).
        log_every: append a row to ``metrics.csv`` every this many steps.
        checkpoint_every: also write ``last.pt`` (and commit ``metrics.csv``) every this many
            steps without validating, so a run that validates rarely can still resume after a
            crash; 0: only when validating.
        device: ``auto`` (CUDA when present, else CPU), ``cpu``, ``cuda``, ``cuda:1``.
        threads: CPU threads for torch; 0 gives one per core (shared among local processes).
        seed: seed of model initialisation and data order.
        amp: bf16 autocast of the model (the loss stays fp32), on CUDA or the CPU. Only for a CPU
            with bf16 instructions: without them bf16 convolutions run ~15x slower (measured by
            ``benchmarks/train_step.py``). ``auto``: a short probe at the start picks bf16 where
            it runs clearly faster on this machine, and the run's config.yaml records the choice
            (:mod:`ocrloc.engine.amp`).
        ema_decay: keep an exponential moving average of the weights (timm's ``ModelEmaV3``, as
            timm's and ultralytics' trainers do) with at most this decay per step, ramped up from 0
            over the first steps (``1 - (1 + step) ** -0.75``: 0.97 at step 100, 0.99 at step 460);
            validation, ``best.pt`` and every checkpoint's ``model`` then hold the averaged weights
            (``last.pt`` keeps the trained ones for ``--resume``). 0: off.
    """

    steps: int = 2000
    batch_size: int = 32
    val_every: int = 500
    log_every: int = 20
    checkpoint_every: int = 0
    device: str = "auto"
    threads: int = 0
    seed: int = 0
    amp: Union[bool, Literal["auto"]] = False
    ema_decay: float = 0.0


@dataclass
class PostprocessConfig:
    """Decoding raw head outputs into detections.

    Attributes:
        max_detections: at most this many detections per image (100: ``docs/task.md``,
            "The exported model").
        score_threshold: drop detections below this score.
        nms_kernel: size of the max-pool peak finder on the class heatmap.
        iou_threshold: class-agnostic duplicate suppression of the decoded boxes (``batched_nms``
            across classes would keep a 1 and a 7 on the same digit; one digit has one class).
    """

    max_detections: int = 100
    score_threshold: float = 0.05
    nms_kernel: int = 3
    iou_threshold: float = 0.6


@dataclass
class Config:
    """Everything a run needs; a YAML file overrides any subset."""

    data: DataConfig = field(default_factory=DataConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    loss: LossConfig = field(default_factory=LossConfig)
    optim: OptimConfig = field(default_factory=OptimConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    postprocess: PostprocessConfig = field(default_factory=PostprocessConfig)


def _type_name(tp: Any) -> str:
    return getattr(tp, "__name__", str(tp).replace("typing.", ""))


def _coerce(value: Any, tp: Any, key: str, source: str) -> Any:
    """Check ``value`` against the annotation ``tp``; ints are accepted where floats are expected."""
    origin = typing.get_origin(tp)
    if origin is Literal:
        choices = typing.get_args(tp)
        # `type(...) is` as well as `==`: True == 1, and a YAML `yes` must not pass for a choice.
        if not any(type(value) is type(c) and value == c for c in choices):
            renamed = RENAMED_VALUES.get((key, value)) if isinstance(value, str) else None
            hint = f" ({value!r} is now {renamed!r})" if renamed else ""
            raise ConfigError(f"{source}: {key} = {value!r} is not one of {', '.join(map(str, choices))}{hint}")
        return value
    if origin in (Union, types.UnionType):
        args = typing.get_args(tp)
        if value is None and type(None) in args:
            return None
        for arg in args:
            if arg is type(None):
                continue
            try:
                return _coerce(value, arg, key, source)
            except ConfigError:
                pass
        raise ConfigError(f"{source}: {key} = {value!r} is not a {_type_name(tp)}")
    if origin in (tuple, Tuple):
        args = typing.get_args(tp)
        if not isinstance(value, (list, tuple)) or len(value) != len(args):
            raise ConfigError(f"{source}: {key} = {value!r} must be a list of {len(args)} values")
        return tuple(_coerce(v, a, f"{key}[{i}]", source) for i, (v, a) in enumerate(zip(value, args)))
    if origin in (list, List):
        (arg,) = typing.get_args(tp)
        if not isinstance(value, list):
            raise ConfigError(f"{source}: {key} = {value!r} must be a list")
        return [_coerce(v, arg, f"{key}[{i}]", source) for i, v in enumerate(value)]
    if dataclasses.is_dataclass(tp):
        raise ConfigError(f"{source}: {key} is a section; give it a mapping of its keys, not {value!r}")
    if tp is float and isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    if tp is float and isinstance(value, str):
        # PyYAML follows YAML 1.1, where `1e-3` (no dot) is a string; read it as the float it means.
        try:
            return float(value)
        except ValueError:
            pass
    if tp in (int, float, str, bool) and (type(value) is not tp):
        raise ConfigError(f"{source}: {key} = {value!r} is a {type(value).__name__}, expected {tp.__name__}")
    return value


def _apply(obj: Any, overrides: Dict[str, Any], source: str, prefix: str = "",
           origins: Optional[Dict[str, str]] = None) -> Any:
    """A copy of dataclass ``obj`` with ``overrides`` (nested dicts) applied and type-checked;
    ``origins`` records the source of each key set."""
    if not isinstance(overrides, dict):
        raise ConfigError(f"{source}: {prefix.rstrip('.') or 'the top level'} must be a mapping, got {overrides!r}")
    hints = typing.get_type_hints(type(obj))
    names = {f.name for f in dataclasses.fields(obj)}
    changes = {}
    for key, value in overrides.items():
        path = f"{prefix}{key}"
        if key not in names:
            if path in MOVED_KEYS:
                raise ConfigError(f"{source}: unknown key {path!r}; it moved to {MOVED_KEYS[path]}")
            raise ConfigError(f"{source}: unknown key {path!r}; valid keys here: {', '.join(sorted(names))}")
        current = getattr(obj, key)
        if dataclasses.is_dataclass(current):
            changes[key] = _apply(current, value, source, prefix=f"{path}.", origins=origins)
        else:
            changes[key] = _coerce(value, hints[key], path, source)
            if origins is not None:
                origins[path] = source
    return dataclasses.replace(obj, **changes)


def _get(obj: Any, dotted: str) -> Any:
    for part in dotted.split("."):
        obj = getattr(obj, part)
    return obj


def _floats(value: Any, key: str) -> Iterator[Tuple[str, float]]:
    """``(dotted key, value)`` of every float under ``value``, list and tuple items as ``key[i]``."""
    if dataclasses.is_dataclass(value):
        for f in dataclasses.fields(value):
            yield from _floats(getattr(value, f.name), f"{key}.{f.name}" if key else f.name)
    elif isinstance(value, (list, tuple)):
        for i, item in enumerate(value):
            yield from _floats(item, f"{key}[{i}]")
    elif isinstance(value, float):
        yield key, value


def _changed(value: Any, default: Any, key: str) -> Iterator[str]:
    """The dotted keys under ``key`` whose value differs from the default."""
    if dataclasses.is_dataclass(value):
        for f in dataclasses.fields(value):
            yield from _changed(getattr(value, f.name), getattr(default, f.name), f"{key}.{f.name}")
    elif value != default:
        yield key


def check_config(config: Config, source: str = "config", origins: Optional[Mapping[str, str]] = None) -> Config:
    """Refuse what type-checking key by key cannot see: a setting that ``config.model.type``
    does not read (:data:`APPLIES_TO`), a float that is not finite (NaN, infinity), and a value
    outside its range (:data:`POSITIVE_KEYS` > 0, :data:`NON_NEGATIVE_KEYS` >= 0,
    :data:`UNIT_INTERVAL_KEYS` in [0, 1]).

    Args:
        config: the config to check.
        source: where it came from, named in the error.
        origins: where each dotted key was set (a file, a ``--set`` item), named instead of
            ``source`` when known.

    Returns:
        ``config``, unchanged.

    Raises:
        ConfigError: naming the key, e.g. ``--set model.argmax.crop_size=32:
        model.argmax.crop_size applies to model.type argmax, not centernet``.
    """
    origins = origins or {}

    def where(key: str) -> str:
        # A key that was not set itself was made wrong by whatever set model.type.
        return origins.get(key) or origins.get("model.type") or source

    kind = config.model.type
    defaults = Config()
    for key, kinds in APPLIES_TO.items():
        if kind in kinds:
            continue
        for changed in _changed(_get(config, key), _get(defaults, key), key):
            by = origins.get("model.type")
            by = f" (model.type from {by})" if by and by != where(changed) else ""
            raise ConfigError(f"{where(changed)}: {changed} applies to model.type {', '.join(kinds)}, not {kind}{by}")
    # A NaN or an infinity passes every type check (YAML reads `.nan` and `nan` as floats) and poisons
    # whatever it reaches: no float key of the config takes one.
    for key, value in _floats(config, ""):
        if not math.isfinite(value):
            field_key = key.split("[")[0]
            raise ConfigError(f"{where(field_key)}: {key} = {value!r} must be a finite number")
    for key in POSITIVE_KEYS:
        if not _get(config, key) > 0:  # `not >` refuses a NaN as well
            raise ConfigError(f"{where(key)}: {key} = {_get(config, key)!r} must be > 0")
    for key in NON_NEGATIVE_KEYS:
        if not _get(config, key) >= 0:
            raise ConfigError(f"{where(key)}: {key} = {_get(config, key)!r} must be >= 0")
    for key in UNIT_INTERVAL_KEYS:
        if not 0 <= _get(config, key) <= 1:
            raise ConfigError(f"{where(key)}: {key} = {_get(config, key)!r} must be in [0, 1]")
    if not 0 <= config.train.ema_decay < 1:  # 1 would keep the initial weights forever
        raise ConfigError(f"{where('train.ema_decay')}: train.ema_decay = {config.train.ema_decay!r} must be in "
                          f"[0, 1) (0: no moving average)")
    if config.data.num_workers < -1:
        raise ConfigError(f"{where('data.num_workers')}: data.num_workers = {config.data.num_workers!r} must be "
                          f">= 0, or -1 (auto)")
    return config


def _apply_overrides(config: Config, assignments: Sequence[str], origins: Dict[str, str]) -> Config:
    for item in assignments:
        if "=" not in item:
            raise ConfigError(f"--set {item!r}: expected KEY=VALUE, e.g. --set train.steps=100")
        key, raw = item.split("=", 1)
        nested: Dict[str, Any] = {}
        cursor = nested
        parts = key.strip().split(".")
        for part in parts[:-1]:
            cursor = cursor.setdefault(part, {})
        try:
            cursor[parts[-1]] = yaml.safe_load(raw)
        except yaml.YAMLError as err:  # PyYAML's own message is 4 lines, the value drawn with a caret
            raise ConfigError(f"--set {item}: the value {raw!r} is not valid YAML ({_yaml_problem(err)})") from None
        config = _apply(config, nested, f"--set {item}", origins=origins)
    return config


def _yaml_problem(err: yaml.YAMLError) -> str:
    """What PyYAML found wrong, on one line (with the column when it knows it)."""
    parts = [str(p) for p in (getattr(err, "context", None), getattr(err, "problem", None)) if p]
    text = ": ".join(parts) or " ".join(str(err).split())
    mark = getattr(err, "problem_mark", None)
    if mark is not None and not isinstance(err, yaml.constructor.ConstructorError):
        text += f" at column {mark.column + 1}"
    if isinstance(err, yaml.constructor.ConstructorError):
        # safe_load builds plain values only: a Python tag (or any unknown one) is refused, never run.
        text += "; only YAML's standard tags (!!str, !!int, !!float, ...) are read"
    return text


def apply_overrides(config: Config, assignments: Sequence[str]) -> Config:
    """Apply command-line overrides ``["a.b=value", ...]``, then :func:`check_config` the result;
    values are parsed as YAML (``1e-3``, ``true``, ``[1, 2]``)."""
    origins: Dict[str, str] = {}
    config = _apply_overrides(config, assignments, origins)
    return check_config(config, "--set " + " ".join(assignments) if assignments else "config", origins)


def list_config_names() -> List[str]:
    """Names of the shipped configs, sorted: paths under ``configs/`` without ``.yaml``
    (``quickstart``, ``compare/argmax``, ``research/head_study/07_hard_argmax``)."""
    names = []
    for path in CONFIGS_DIR.rglob("*.yaml"):
        relative = path.relative_to(CONFIGS_DIR)
        if relative.parts[0] not in _NOT_RUN_CONFIGS:
            names.append(relative.with_suffix("").as_posix())
    return sorted(names)


def config_path(name_or_path: str | os.PathLike) -> Path:
    """The YAML file of ``name_or_path``: an existing file, else a shipped config's name
    (see :func:`list_config_names`).

    Raises:
        FileNotFoundError: naming a few of the shipped configs (the closest first).
    """
    path = Path(name_or_path)
    if path.is_file():
        return path
    name = path.as_posix()
    names = list_config_names()
    if name in names:
        return CONFIGS_DIR / f"{name}.yaml"
    # A shipped config spelt as its path in the repository (configs/compare/argmax.yaml, as the
    # README writes it) is that config from any folder, an installed wheel's included.
    stem = name.removesuffix(".yaml").removesuffix(".yml")
    for prefix in ("ocrloc/configs/", "configs/"):
        stem = stem.removeprefix(prefix)
    for old, new in MOVED_CONFIGS.items():
        if stem.startswith(old):
            stem = new + stem[len(old):]
    if stem in names:
        return CONFIGS_DIR / f"{stem}.yaml"
    close = difflib.get_close_matches(stem, names, n=3, cutoff=0.6)
    shown = close + [n for n in names if n not in close][:max(0, 6 - len(close))]
    more = f", ... ({len(names)} in all)" if len(names) > len(shown) else ""
    raise FileNotFoundError(f"config not found: {name!r} is neither a file nor the name of a config in "
                            f"{CONFIGS_DIR}; names: {', '.join(shown)}{more}")


def load_config(path: Optional[str | os.PathLike] = None, overrides: Sequence[str] = ()) -> Config:
    """Defaults, then the YAML file ``path`` (a file or a shipped config's name, e.g.
    ``quickstart``), then ``overrides``, then :func:`check_config`.

    Raises:
        ConfigError: naming the key and the file (or the ``--set`` item).
        FileNotFoundError: when ``path`` is neither a file nor a config name.
    """
    config = Config()
    origins: Dict[str, str] = {}
    source = "defaults"
    if path is not None:
        path = config_path(path)
        source = str(path)
        try:
            data = yaml.safe_load(path.read_text()) or {}
        except yaml.YAMLError as err:
            raise ConfigError(f"{path}: {yaml_problem(err)}") from None
        config = _apply(config, data, source, origins=origins)
    config = _apply_overrides(config, overrides, origins)
    return check_config(config, source, origins)


def config_to_dict(config: Any) -> Dict[str, Any]:
    """Plain nested dict (tuples as lists), fit for YAML and checkpoints."""

    def plain(value: Any) -> Any:
        if isinstance(value, (list, tuple)):
            return [plain(v) for v in value]
        if isinstance(value, dict):
            return {k: plain(v) for k, v in value.items()}
        return value

    return plain(dataclasses.asdict(config))


def migrate_config_dict(data: Dict[str, Any], source: str = "checkpoint") -> Dict[str, Any]:
    """A copy of a saved config dict in today's layout: the flat ``model`` keys of configs saved
    before the family sections moved into them (:data:`MOVED_KEYS`), renamed choices renamed
    (``point_init: zero`` / ``default`` -> ``learned``). Today's layout comes back unchanged.

    Raises:
        ConfigError: when a dict gives a key both at its old and at its new place.
    """
    data = copy.deepcopy(data)
    model = data.get("model") if isinstance(data, dict) else None
    if not isinstance(model, dict):
        return data
    moved = False
    for old, new in MOVED_KEYS.items():
        old_name = old.split(".")[1]
        if old_name not in model:
            continue
        _, section, name = new.split(".")
        target = model.setdefault(section, {})
        if not isinstance(target, dict):
            continue  # _apply names the malformed section
        if name in target:
            raise ConfigError(f"{source}: both {old} and {new} are given; keep {new}")
        target[name] = model.pop(old_name)
        moved = True
    for (key, old_value), new_value in RENAMED_VALUES.items():
        _, section, name = key.split(".")
        if isinstance(model.get(section), dict) and model[section].get(name) == old_value:
            model[section][name] = new_value
    kind = model.get("type", ModelConfig.type)
    for key, value in ADDED_KEYS.items():
        _, section, name = key.split(".")
        reads = APPLIES_TO.get(f"model.{section}", MODEL_TYPES)
        if kind in reads and isinstance(model.get(section), dict) and name not in model[section]:
            model[section][name] = value
    if moved:
        # The flat layout saved every field, whichever family read it, at the defaults of its
        # day: the sections of other families held values that no model read. Dropping them
        # keeps such a run loadable even where a default has changed since.
        for key, kinds in APPLIES_TO.items():
            parts = key.split(".")
            if parts[0] == "model" and kind not in kinds:
                model.pop(parts[1], None)
    return data


def config_from_dict(data: Dict[str, Any], source: str = "checkpoint") -> Config:
    """Rebuild a :class:`Config` from :func:`config_to_dict` output (today's or the older flat
    layout, :func:`migrate_config_dict`), with the same checks as a file."""
    origins: Dict[str, str] = {}
    config = _apply(Config(), migrate_config_dict(data, source), source, origins=origins)
    return check_config(config, source, origins)


def save_config(config: Config, path: str | os.PathLike) -> None:
    """Write the resolved config as YAML, atomically."""
    with atomic_path(path) as tmp:
        tmp.write_text(yaml.safe_dump(config_to_dict(config), sort_keys=False))
