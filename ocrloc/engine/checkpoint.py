"""Checkpoints: written atomically, carrying the resolved config so a model rebuilds from the file alone."""

from __future__ import annotations

import dataclasses
import os
from pathlib import Path
from typing import Any, Dict, Tuple

import torch
from torch import nn

from ocrloc.config import Config, config_from_dict
from ocrloc.utils.io import atomic_path

__all__ = ["save_checkpoint", "load_checkpoint", "model_from_checkpoint"]


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


def model_from_checkpoint(path: str | os.PathLike, map_location: str | torch.device = "cpu"
                          ) -> Tuple[nn.Module, nn.Module, Config, Dict[str, Any]]:
    """Rebuild ``(model, postprocess, config, state)`` from a checkpoint, model in eval mode."""
    from ocrloc.models.build import build

    state = load_checkpoint(path, map_location)
    config = config_from_dict(state["config"], source=str(path))
    # The weights come from the checkpoint; a backbone file named at training time need not exist here.
    config = dataclasses.replace(config, model=dataclasses.replace(config.model, pretrained_path=None))
    model, _, postprocess = build(config)
    model.load_state_dict(state["model"])
    model.to(map_location).eval()
    return model, postprocess, config, state
