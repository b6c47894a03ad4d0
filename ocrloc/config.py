"""Typed configuration: dataclass defaults, one YAML file of overrides, ``--set a.b=value``.

No inheritance chains and no silent merges: every key in a YAML file must name a field of
the dataclasses below, with a value of the field's type, or loading fails with an error
naming the key and the file. The resolved config is saved with every run.
"""

from __future__ import annotations

import dataclasses
import os
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Dict, List, Optional, Sequence, Tuple, Union

import yaml

from ocrloc.data.augment import CanvasAugmentConfig, DigitAugmentConfig
from ocrloc.utils.io import atomic_path

__all__ = [
    "DataConfig",
    "ModelConfig",
    "StudyConfig",
    "LossConfig",
    "OptimConfig",
    "TrainConfig",
    "PostprocessConfig",
    "Config",
    "ConfigError",
    "load_config",
    "apply_overrides",
    "config_to_dict",
    "save_config",
    "config_from_dict",
]


class ConfigError(ValueError):
    """A config file or override names an unknown key or gives a value of the wrong type."""


@dataclass
class DataConfig:
    """Where the training and validation canvases come from.

    Attributes:
        preset: canvas preset (``canvas128``, ``single``).
        rule: point rule (``all10``, ``seed37``).
        data_root: folder holding ``MNIST/raw``; None searches ``$OCRLOC_DATA``, ``./data``, ``../shared/data``.
        train_seed: seed of the on-the-fly training canvases.
        val_seed: seed of the fixed validation split (canvases generated once, the same every time).
        val_count: number of validation canvases.
        train_path, val_path: a COCO keypoints folder to use instead of generated canvases.
        train_canvases: 0 draws a fresh canvas for every training sample (an unlimited stream);
            N > 0 cycles through a fixed set of N canvases, reshuffled every pass.
        num_workers: DataLoader worker processes.
        digit_augment, canvas_augment: training augmentation (see ``docs/data.md``).
    """

    preset: str = "canvas128"
    rule: str = "all10"
    data_root: Optional[str] = None
    train_seed: int = 0
    val_seed: int = 1
    val_count: int = 500
    train_path: Optional[str] = None
    val_path: Optional[str] = None
    train_canvases: int = 0
    num_workers: int = 1
    digit_augment: DigitAugmentConfig = field(default_factory=DigitAugmentConfig)
    canvas_augment: CanvasAugmentConfig = field(default_factory=CanvasAugmentConfig)


@dataclass
class StudyConfig:
    """The head-study model (``model.type: study``, :mod:`ocrloc.models.study`).

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
        point_init: ``default`` (PyTorch's initialisation) or ``rule``, an *oracle* ablation
            ("oracle: rule told"): the ``extremes`` head on the ``canvas`` starts as the SPEC rule
            of ``data.rule`` on exact features (:func:`ocrloc.models.oracle.tell_study_net`).
    """

    head: str = "pool"
    inputs: List[str] = field(default_factory=lambda: ["stage2"])
    hidden_layers: int = 1
    hidden: int = 256
    stem_pool: str = "max"
    argmax_channels: int = 8
    dummy: str = "none"
    width: int = 32
    point_fit: str = "gradient"
    canvas_maps: str = "conv"
    point_init: str = "default"


@dataclass
class ModelConfig:
    """The detector.

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
        point_mode: how the class-dependent point is predicted: ``heatmap`` (a heatmap per class
            peaking at the point, read inside the detection's box, plus a sub-cell offset) or
            ``offset`` (a vector from the peak cell, per class). ``heatmap`` is the default because
            it measured better on all10 at the quickstart budget (README, "Results").
        anchor_sizes: baselines only: anchor sizes in pixels, one list per FPN level (for SSD one
            list of default-box scales as fractions of the canvas, levels + 1 of them); None
            takes the defaults of ``ocrloc.models.baselines.DEFAULT_ANCHORS``.
        aspect_ratios: baselines only: anchor aspect ratios (h / w; for SSD the extra ratios).
        crop_size: ``argmax`` only: side in pixels of the canvas window the point head reads
            around each detection (must hold the largest digit and be a multiple of head_stride).
        box_margin: ``argmax`` only: pixels around the box kept in the head's ink mask.
        ink_reach: ``argmax`` only: the head's mask also keeps the ink connected to the box's own
            ink up to this many pixels beyond the box, so a detected box that cut its digit still
            gives the digit's extremes; 0 keeps the box plus ``box_margin`` only.
        argmax_channels: ``argmax`` only: channels whose soft-argmax the head adds as learned coordinates.
        box_jitter: ``argmax`` only: training boxes are shifted by up to this many pixels per edge.
        point_fit: ``argmax`` only: how the head learns each class's map from coordinates to
            point: ``ridge`` (closed-form ridge least squares on the training batches' coordinates
            and annotated points, plus a gradient-trained correction) or ``gradient`` (a map
            started at zero and trained by gradient alone). See ``docs/model.md``.
        crop_classifier: ``argmax`` only: name each detection with a small CNN on its
            size-normalised canvas crop (the dense heatmap only finds it).
        point_init: ``argmax`` only, with ``point_fit: gradient``: ``zero``, or ``rule``, an
            *oracle* ablation ("oracle: rule told"): the map starts as the SPEC definition of
            each class's point under ``data.rule`` (:mod:`ocrloc.models.oracle`), so training
            learns only a correction. Never a default; every result of it is labelled so.
        study: ``study`` only: the head-study model (:class:`StudyConfig`).
    """

    type: str = "centernet"
    backbone: str = "resnet18"
    pretrained_path: Optional[str] = None
    fpn_channels: int = 64
    head_stride: int = 4
    head_channels: int = 64
    point_mode: str = "heatmap"
    anchor_sizes: Optional[List[List[float]]] = None
    aspect_ratios: Optional[List[float]] = None
    crop_size: int = 48
    box_margin: float = 1.0
    ink_reach: float = 6.0
    argmax_channels: int = 8
    box_jitter: float = 1.0
    point_fit: str = "ridge"
    crop_classifier: bool = True
    point_init: str = "zero"
    study: StudyConfig = field(default_factory=StudyConfig)


@dataclass
class LossConfig:
    """Weights of the loss terms (see :mod:`ocrloc.models.criterion`)."""

    heatmap: float = 1.0
    size: float = 0.1
    offset: float = 1.0
    point: float = 1.0
    point_heatmap: float = 1.0
    giou: float = 0.0
    argmax_point: float = 1.0
    crop_class: float = 1.0


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
        amp: mixed precision on CUDA.
    """

    steps: int = 2000
    batch_size: int = 32
    val_every: int = 500
    log_every: int = 20
    checkpoint_every: int = 0
    device: str = "auto"
    threads: int = 0
    seed: int = 0
    amp: bool = False


@dataclass
class PostprocessConfig:
    """Decoding raw head outputs into detections.

    Attributes:
        max_detections: at most this many detections per image (SPEC section 8: 100).
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


def _apply(obj: Any, overrides: Dict[str, Any], source: str, prefix: str = "") -> Any:
    """A copy of dataclass ``obj`` with ``overrides`` (nested dicts) applied and type-checked."""
    if not isinstance(overrides, dict):
        raise ConfigError(f"{source}: {prefix.rstrip('.') or 'the top level'} must be a mapping, got {overrides!r}")
    hints = typing.get_type_hints(type(obj))
    names = {f.name for f in dataclasses.fields(obj)}
    changes = {}
    for key, value in overrides.items():
        path = f"{prefix}{key}"
        if key not in names:
            raise ConfigError(f"{source}: unknown key {path!r}; valid keys here: {', '.join(sorted(names))}")
        current = getattr(obj, key)
        if dataclasses.is_dataclass(current):
            changes[key] = _apply(current, value, source, prefix=f"{path}.")
        else:
            changes[key] = _coerce(value, hints[key], path, source)
    return dataclasses.replace(obj, **changes)


def apply_overrides(config: Config, assignments: Sequence[str]) -> Config:
    """Apply command-line overrides ``["a.b=value", ...]``; values are parsed as YAML (``1e-3``, ``true``, ``[1, 2]``)."""
    for item in assignments:
        if "=" not in item:
            raise ConfigError(f"--set {item!r}: expected KEY=VALUE, e.g. --set train.steps=100")
        key, raw = item.split("=", 1)
        nested: Dict[str, Any] = {}
        cursor = nested
        parts = key.strip().split(".")
        for part in parts[:-1]:
            cursor = cursor.setdefault(part, {})
        cursor[parts[-1]] = yaml.safe_load(raw)
        config = _apply(config, nested, f"--set {item}")
    return config


def load_config(path: Optional[str | os.PathLike] = None, overrides: Sequence[str] = ()) -> Config:
    """Defaults, then the YAML file at ``path`` (if any), then ``overrides``.

    Raises:
        ConfigError: naming the key and the file (or the ``--set`` item).
        FileNotFoundError: when ``path`` does not exist.
    """
    config = Config()
    if path is not None:
        path = Path(path)
        if not path.is_file():
            raise FileNotFoundError(f"config file not found: {path}")
        try:
            data = yaml.safe_load(path.read_text()) or {}
        except yaml.YAMLError as err:
            raise ConfigError(f"{path}: invalid YAML ({err})") from None
        config = _apply(config, data, str(path))
    return apply_overrides(config, overrides)


def config_to_dict(config: Any) -> Dict[str, Any]:
    """Plain nested dict (tuples as lists), fit for YAML and checkpoints."""

    def plain(value: Any) -> Any:
        if isinstance(value, (list, tuple)):
            return [plain(v) for v in value]
        if isinstance(value, dict):
            return {k: plain(v) for k, v in value.items()}
        return value

    return plain(dataclasses.asdict(config))


def config_from_dict(data: Dict[str, Any], source: str = "checkpoint") -> Config:
    """Rebuild a :class:`Config` from :func:`config_to_dict` output, with the same checks as a file."""
    return _apply(Config(), data, source)


def save_config(config: Config, path: str | os.PathLike) -> None:
    """Write the resolved config as YAML, atomically."""
    with atomic_path(path) as tmp:
        tmp.write_text(yaml.safe_dump(config_to_dict(config), sort_keys=False))
