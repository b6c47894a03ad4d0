"""Checkpoints: written atomically, carrying the resolved config so a model rebuilds from the file alone."""

from __future__ import annotations

import dataclasses
import os
from pathlib import Path
from typing import TYPE_CHECKING, Any, Dict, Tuple

import torch

from ocrloc.config import Config, config_from_dict
from ocrloc.utils.io import atomic_path

if TYPE_CHECKING:
    from ocrloc.models.family import Detector

__all__ = ["save_checkpoint", "load_checkpoint", "detector_from_checkpoint"]


def save_checkpoint(state: Dict[str, Any], path: str | os.PathLike) -> None:
    """``torch.save`` to a temporary name beside ``path``, then rename: a crash never leaves a torn file."""
    with atomic_path(path, suffix=".pt.tmp") as tmp:
        torch.save(state, tmp)


def load_checkpoint(path: str | os.PathLike, map_location: str | torch.device = "cpu") -> Dict[str, Any]:
    """Load a checkpoint written by :func:`save_checkpoint`.

    Raises:
        FileNotFoundError: naming the path.
        ValueError: when the file is not an ocrloc checkpoint.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"checkpoint not found: {path}")
    state = torch.load(path, map_location=map_location, weights_only=False)
    if not isinstance(state, dict) or "model" not in state or "config" not in state:
        raise ValueError(f"{path}: not an ocrloc checkpoint (needs 'model' and 'config' entries)")
    return state


def detector_from_checkpoint(path: str | os.PathLike, map_location: str | torch.device = "cpu"
                             ) -> Tuple["Detector", Config, Dict[str, Any]]:
    """Rebuild ``(detector, config, state)`` from a checkpoint: the
    :class:`~ocrloc.models.family.Detector` with the checkpoint's weights, on ``map_location``,
    in eval mode (``detector.predictor(images)`` gives detections)."""
    from ocrloc.data.task import Task
    from ocrloc.models.build import build

    state = load_checkpoint(path, map_location)
    config = config_from_dict(state["config"], source=str(path))
    # The weights come from the checkpoint; a backbone file named at training time need not exist here.
    config = dataclasses.replace(config, model=dataclasses.replace(config.model, pretrained_path=None))
    meta = state.get("meta") or {}
    # The task the weights were trained for; checkpoints from before it was recorded are the digits'.
    detector = build(config, Task.from_dict(meta["task"]) if "task" in meta else None)
    detector.model.load_state_dict(state["model"])
    detector.to(map_location).eval()
    return detector, config, state
