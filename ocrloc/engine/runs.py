"""Run folders that can be reused: train a config into a folder, resume it, or find it finished.

``compare`` and the head study extend their tables across sessions: a folder holding the
finished run of the same config is reused, a partial one resumed, one of another config refused.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Dict, Sequence

import yaml

from ocrloc.config import Config, ConfigError, apply_overrides, config_from_dict, config_to_dict
from ocrloc.engine.checkpoint import load_checkpoint
from ocrloc.utils.errors import yaml_problem

__all__ = ["SAFE_ON_RESUME", "resume_config", "same_config", "train_or_reuse"]

# What may change when a run continues: how long it runs, how often it reports, where it runs
# and where MNIST lies. Anything else would change the model or the data under its weights.
SAFE_ON_RESUME = ("train.steps", "train.val_every", "train.log_every", "train.checkpoint_every", "train.device",
                  "train.threads", "data.num_workers", "data.data_root")


def resume_config(run_dir: str | os.PathLike, overrides: Sequence[str] = ()) -> Config:
    """The config a run continues with: its own ``config.yaml``, plus ``overrides`` of the keys
    safe to change (:data:`SAFE_ON_RESUME`). Another key may be given with the run's own value
    (a script that always passes ``--set train.batch_size=4``): what is refused is a change.

    Raises:
        FileNotFoundError: when ``run_dir`` holds no ``config.yaml``.
        ConfigError: naming an override that changes a key not safe to change, or a bad value.
    """
    path = Path(run_dir) / "config.yaml"
    if not path.is_file():
        raise FileNotFoundError(f"--resume: no run to resume in {run_dir} (no config.yaml)")
    try:
        saved = yaml.safe_load(path.read_text()) or {}
    except yaml.YAMLError as err:
        raise ConfigError(f"{path}: {yaml_problem(err)}") from None
    config = config_from_dict(saved, source=str(path))
    own = config_to_dict(config)
    for item in overrides:
        key = item.split("=", 1)[0].strip()
        if key in SAFE_ON_RESUME:
            continue
        # Compared as values (as the config reads them), each item on its own: the run's own value is no change.
        if _value(config_to_dict(apply_overrides(config, [item])), key) != _value(own, key):
            raise ConfigError(f"--set {item}: {key} cannot change when a run resumes (its weights were made with "
                              f"{path.name}'s value, {_value(own, key)!r}); safe to change: "
                              f"{', '.join(SAFE_ON_RESUME)}")
    return apply_overrides(config, overrides)


def _value(config: Dict[str, Any], key: str) -> Any:
    """The value at a dotted ``key`` of a config dict (a key the dataclasses lack never reaches here:
    :func:`apply_overrides` refuses it first)."""
    for part in key.split("."):
        config = config[part]
    return config


def same_config(saved: Dict[str, Any], config: Config) -> bool:
    """Whether a checkpoint's saved config is ``config``. The saved one is read through today's
    dataclasses first, so a key added since (whose default keeps the old behaviour) does not
    orphan old runs; a key since removed makes it another config. ``train.amp: auto`` is the
    same config as the bool it resolved to."""
    try:
        saved_dict, wanted = config_to_dict(config_from_dict(saved)), config_to_dict(config)
    except ConfigError:
        return False
    if wanted["train"]["amp"] == "auto" and isinstance(saved_dict["train"]["amp"], bool):
        wanted["train"]["amp"] = saved_dict["train"]["amp"]  # what 'auto' chose for that run (engine/amp.py)
    return saved_dict == wanted


def train_or_reuse(config: Config, run_dir: Path, progress: bool = True) -> Dict[str, Any]:
    """Make ``run_dir`` hold the finished run of ``config``: train it, resume it, or reuse it.

    Raises:
        FileExistsError: when ``run_dir`` holds a run of another config.
    """
    from ocrloc.engine.trainer import Trainer

    last = run_dir / "checkpoints" / "last.pt"
    if last.is_file():
        state = load_checkpoint(last)
        if not same_config(state["config"], config):
            raise FileExistsError(f"{run_dir} holds a run of another config; remove it or choose another --out")
        if int(state["step"]) >= config.train.steps:
            return state
    Trainer(config, run_dir, resume=last.is_file(), progress=progress).fit()
    return load_checkpoint(last)
