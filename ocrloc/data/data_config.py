"""The ``data`` section of a run's config: where the training and validation images come from.

Kept in the data layer, beside the augmentation settings (:mod:`ocrloc.data.augment_config`), so that the data
layer's builders (:mod:`ocrloc.data.build`) read their own settings without importing :mod:`ocrloc.config`,
which holds this section with the others. Light: the standard library and the light data modules only.
"""

from __future__ import annotations

import typing
from dataclasses import dataclass, field
from typing import Literal, Optional

from ocrloc.data.augment_config import CanvasAugmentConfig, DigitAugmentConfig
from ocrloc.data.catalog import PRESET_NAMES

__all__ = ["DataConfig", "PresetName"]

# The built-in presets' names (ocrloc.data.catalog), as the type the config's checks read their choices from.
PresetName = Literal[PRESET_NAMES]  # type: ignore[valid-type]
assert typing.get_args(PresetName) == PRESET_NAMES


@dataclass
class DataConfig:
    """Where the training and validation canvases come from.

    Attributes:
        preset: canvas preset (``canvas128``, ``single``, ``glyphs128``: :data:`ocrloc.data.catalog.PRESET_NAMES`).
        rule: point rule (``all10``, ``seed37``).
        data_root: folder holding ``MNIST/raw``; None searches ``$OCRLOC_DATA``, ``./data``, ``../shared/data``.
        train_seed: seed of the on-the-fly training canvases.
        val_seed: seed of the fixed validation split (canvases generated once, the same every time).
        val_count: number of validation canvases.
        train_path, val_path: a COCO keypoints folder to use instead of generated canvases.
        train_canvases: 0 draws a fresh canvas for every training sample (an unlimited stream);
            N > 0 cycles through a fixed set of N canvases, reshuffled every pass.
        num_workers: DataLoader worker processes; -1 (auto): on the CPU the cores left after
            ``train.threads`` (none when the threads take every core), on CUDA one per core up to 4.
        digit_augment, canvas_augment: training augmentation (see ``docs/data.md``).
    """

    preset: PresetName = "canvas128"
    rule: str = "all10"
    data_root: Optional[str] = None
    train_seed: int = 0
    val_seed: int = 1
    val_count: int = 500
    train_path: Optional[str] = None
    val_path: Optional[str] = None
    train_canvases: int = 0
    num_workers: int = -1
    digit_augment: DigitAugmentConfig = field(default_factory=DigitAugmentConfig)
    canvas_augment: CanvasAugmentConfig = field(default_factory=CanvasAugmentConfig)
