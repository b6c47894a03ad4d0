"""Checkpoints: written atomically, carrying the resolved config so a model rebuilds from the file alone.

A checkpoint holds only tensors, plain containers (dict, list, tuple), numbers, strings and None,
and is read with ``torch.load(..., weights_only=True)``: unpickling a file can then build nothing
else, so a crafted file cannot run code. :func:`save_checkpoint` refuses any other value, so what
ocrloc writes always loads; :func:`load_checkpoint` turns every file it cannot load into one
:class:`CheckpointError` line naming the file.
"""

from __future__ import annotations

import dataclasses
import io
import os
import pickle
import re
import warnings
import zipfile
from collections import OrderedDict
from pathlib import Path
from typing import TYPE_CHECKING, Any, Dict, Iterator, List, Optional, Tuple

import torch

from ocrloc.config import Config, config_from_dict
from ocrloc.utils.io import write_bytes_atomic

if TYPE_CHECKING:
    from ocrloc.data.task import Task
    from ocrloc.models.family import Detector

__all__ = ["CheckpointError", "CheckpointMeta", "save_checkpoint", "load_checkpoint", "detector_from_checkpoint",
           "is_torchscript_archive", "read_checkpoint_meta"]

# Exact types, not isinstance: a numpy float64 is a float subclass, yet weights_only refuses it.
_LEAVES = (type(None), bool, int, float, str)
_CONTAINERS = (dict, OrderedDict, list, tuple)
_TENSORS = (torch.Tensor, torch.nn.Parameter)


class CheckpointError(ValueError):
    """A file that is not a loadable ocrloc checkpoint: truncated, corrupt, foreign, refused by the
    safe loader, or holding weights that do not fit the model its config builds. The message is one
    line naming the file. A ``ValueError``, so callers that report bad input catch it as one."""


def _non_plain(value: Any, where: str) -> Iterator[Tuple[str, Any]]:
    """``(key path, value)`` of every value in ``value`` that is not a tensor, plain container,
    number, string or None (dict keys included)."""
    kind = type(value)
    if kind in _LEAVES or kind in _TENSORS:
        return
    if kind not in _CONTAINERS:
        yield where, value
        return
    if isinstance(value, dict):
        for key, item in value.items():
            if type(key) not in _LEAVES:
                yield f"{where} key {key!r}", key
            yield from _non_plain(item, f"{where}[{key!r}]")
    else:
        for k, item in enumerate(value):
            yield from _non_plain(item, f"{where}[{k}]")


def save_checkpoint(state: Dict[str, Any], path: str | os.PathLike) -> None:
    """``torch.save`` to a temporary name beside ``path``, then rename: a crash never leaves a torn file.

    Raises:
        ValueError: naming the key path of the first value that is not a tensor, dict, list, tuple,
            str, int, float, bool or None (a numpy scalar, a Path, a dataclass, ...); nothing is written.
        OutputError: (an ``OSError``) one line naming ``path`` and the cause when it cannot be written
            (a full disk); the temporary is removed and a file already at ``path`` is left as it was.
    """
    for where, value in _non_plain(state, "state"):
        kind = type(value)
        raise ValueError(f"cannot save checkpoint {path}: {where} is a {kind.__module__}.{kind.__qualname__}; "
                         f"a checkpoint holds only tensors, dict, list, tuple, str, int, float, bool and None "
                         f"(convert it, e.g. float(x) or str(x)) so that it loads with weights_only=True")
    # Through memory: torch's C++ writer reports a failed write (a full disk) as an "unexpected pos"
    # RuntimeError that never names the cause; Python's write says ENOSPC.
    buffer = io.BytesIO()
    torch.save(state, buffer)
    write_bytes_atomic(buffer.getbuffer(), path, suffix=".pt.tmp")


def _one_line(text: str, limit: int = 160) -> str:
    """``text`` without ANSI colours, on one line, at most ``limit`` characters."""
    text = " ".join(re.sub(r"\x1b\[[0-9;]*m", "", text).split())
    return text if len(text) <= limit else text[:limit - 3].rstrip() + "..."


def _unpickling_reason(message: str) -> Tuple[bool, str]:
    """``(refused, reason)`` for torch's multi-line ``Weights only load failed`` text: refused when
    the safe unpickler met a global or an object it will not build, else why the bytes did not read."""
    detail = message.split("WeightsUnpickler error:", 1)[-1]
    detail = detail.split("Check the documentation of torch.load", 1)[0]
    named = re.search(r"GLOBAL (\S+)", detail)
    if named:
        return True, f"it names {named.group(1)}"
    for marker in ("Can only create new object", "Trying to call reduce", "Can only build"):
        if marker in detail:
            return True, _one_line(detail, 100)
    return False, f"not a torch.save file: {_one_line(detail, 100)}"


def is_torchscript_archive(path: str | os.PathLike) -> bool:
    """Whether ``path`` is a TorchScript archive (``torch.jit.save``, what ``ocrloc export`` writes):
    a zip with ``<root>/constants.pkl`` or ``<root>/code/...``. ``torch.save`` archives hold
    ``<root>/data.pkl`` and data only. Reads the zip's table of contents, unpickles nothing."""
    if not zipfile.is_zipfile(path):
        return False
    try:
        with zipfile.ZipFile(path) as archive:
            names = archive.namelist()
    except zipfile.BadZipFile:
        return False
    inner = [n.split("/", 1)[1] for n in names if "/" in n]
    return any(n == "constants.pkl" or n.startswith("code/") for n in inner)


def _is_torch_export_archive(path: Path) -> bool:
    """Whether ``path`` is a ``torch.export.save`` archive (``.pt2``): a zip with ``<root>/archive_format``."""
    if not zipfile.is_zipfile(path):
        return False
    try:
        with zipfile.ZipFile(path) as archive:
            return any(name.split("/", 1)[-1] == "archive_format" for name in archive.namelist())
    except zipfile.BadZipFile:
        return False


def load_checkpoint(path: str | os.PathLike, map_location: str | torch.device = "cpu") -> Dict[str, Any]:
    """Load a checkpoint written by :func:`save_checkpoint`, with ``weights_only=True``.

    Raises:
        FileNotFoundError: naming the path.
        CheckpointError: (a ``ValueError``) one line naming the path, when the file is a folder,
            unreadable, empty, truncated or corrupt, holds objects beyond tensors and plain
            containers, or is not an ocrloc checkpoint (a dict with ``model`` and ``config``).
    """
    path = Path(path)
    if path.is_dir():
        raise CheckpointError(f"{path}: a folder, not a checkpoint file")
    if not path.is_file():
        raise FileNotFoundError(f"checkpoint not found: {path}")
    if path.suffix == ".onnx" or _is_torch_export_archive(path):
        raise CheckpointError(f"{path}: an exported {'ONNX' if path.suffix == '.onnx' else 'torch.export'} file, "
                              f"not a checkpoint: it runs on its own (README, Deploying); ocrloc predict --exported "
                              f"and ocrloc.Predictor.from_exported run TorchScript exports")
    if is_torchscript_archive(path):
        raise CheckpointError(f"{path}: an exported TorchScript file, not a checkpoint (ocrloc predict --exported "
                              f"and ocrloc.Predictor.from_exported run it; this needs the checkpoint written by "
                              f"ocrloc train)")
    corrupt = f"{path}: not a loadable ocrloc checkpoint (truncated or corrupt: {{}})"
    try:
        empty = path.stat().st_size == 0
        if not empty:
            with warnings.catch_warnings():  # a foreign pickle's protocol warning would break the one error line
                warnings.filterwarnings("ignore", message=r"Detected pickle protocol", category=UserWarning)
                state = torch.load(path, map_location=map_location, weights_only=True)
    except pickle.UnpicklingError as err:
        refused, reason = _unpickling_reason(str(err))
        if refused:
            raise CheckpointError(
                f"{path}: refused: the file holds Python objects beyond tensors and plain containers ({reason}: "
                f"an old ocrloc checkpoint or a foreign pickle); ocrloc loads checkpoints with weights_only=True "
                f"so a file cannot run code") from err
        raise CheckpointError(corrupt.format(reason)) from err
    except EOFError as err:
        raise CheckpointError(corrupt.format("the file ends early")) from err
    except OSError as err:
        raise CheckpointError(f"{path}: cannot read the checkpoint ({err.strerror or err})") from err
    except Exception as err:  # any other failure on these bytes (torch's zip reader raises RuntimeError)
        # torch's zip reader appends several sentences of advice; the first one says what is wrong.
        first = str(err).split(". ", 1)[0]
        raise CheckpointError(corrupt.format(_one_line(f"{type(err).__name__}: {first}"))) from err
    if empty:
        raise CheckpointError(corrupt.format("the file is empty, 0 bytes"))
    if not isinstance(state, dict):
        raise CheckpointError(f"{path}: not an ocrloc checkpoint (it holds a {type(state).__name__}, not a dict "
                              f"with 'model' and 'config' entries)")
    missing = [key for key in ("model", "config") if key not in state]
    if missing:
        raise CheckpointError(f"{path}: not an ocrloc checkpoint (no {' and no '.join(repr(k) for k in missing)} "
                              f"entry; needs 'model' and 'config' entries)")
    for key in ("model", "config", "meta"):
        if key in state and not isinstance(state[key], dict) and not (key == "meta" and state[key] is None):
            raise CheckpointError(f"{path}: not an ocrloc checkpoint ({key!r} is a {type(state[key]).__name__}, "
                                  f"not a dict)")
    return state


def _names(keys: list, shown: int = 3) -> str:
    more = f" and {len(keys) - shown} more" if len(keys) > shown else ""
    return ", ".join(keys[:shown]) + more


def _check_weights(path: Path, weights: Dict[str, Any], expected: Dict[str, torch.Tensor]) -> None:
    """A :class:`CheckpointError` line for weights that do not fit the model: missing or unexpected
    keys, or another shape (``load_state_dict`` reports these over many lines)."""
    problems = []
    not_tensors = [k for k, v in weights.items() if not torch.is_tensor(v)]
    if not_tensors:
        problems.append(f"not tensors: {_names([str(k) for k in not_tensors])}")
    missing = [k for k in expected if k not in weights]
    if missing:
        problems.append(f"missing: {_names(missing)}")
    unexpected = [str(k) for k in weights if k not in expected]
    if unexpected:
        problems.append(f"unexpected: {_names(unexpected)}")
    shapes = [f"{k} {list(weights[k].shape)} vs {list(v.shape)}" for k, v in expected.items()
              if k in weights and torch.is_tensor(weights[k]) and weights[k].shape != v.shape]
    if shapes:
        problems.append(f"shape (checkpoint vs model): {_names(shapes, 2)}")
    if problems:
        raise CheckpointError(f"{path}: the weights do not fit the model its config builds ({'; '.join(problems)})")


def detector_from_checkpoint(path: str | os.PathLike, map_location: str | torch.device = "cpu"
                             ) -> Tuple["Detector", Config, Dict[str, Any]]:
    """Rebuild ``(detector, config, state)`` from a checkpoint: the
    :class:`~ocrloc.models.family.Detector` with the checkpoint's weights, on ``map_location``,
    in eval mode (``detector.predictor(images)`` gives detections).

    Raises:
        FileNotFoundError: naming the path.
        CheckpointError: as :func:`load_checkpoint`, and for a malformed ``meta['task']`` or weights
            that do not fit the model the config builds (missing or unexpected keys, other shapes).
        ConfigError: a saved config that today's checks refuse, naming the path.
    """
    from ocrloc.data.task import Task
    from ocrloc.models.build import build

    path = Path(path)
    state = load_checkpoint(path, map_location)
    config = config_from_dict(state["config"], source=str(path))
    # The weights come from the checkpoint; a backbone file named at training time need not exist here.
    config = dataclasses.replace(config, model=dataclasses.replace(config.model, pretrained_path=None))
    meta = state.get("meta") or {}
    # The task the weights were trained for; checkpoints from before it was recorded are the digits'.
    task = None
    if isinstance(meta, dict) and "task" in meta:
        try:
            task = Task.from_dict(meta["task"])
        except (KeyError, TypeError, ValueError) as err:
            reason = _one_line(f"{type(err).__name__}: {err}")
            raise CheckpointError(f"{path}: meta['task'] is malformed ({reason})") from None
    detector = build(config, task)
    # Load first, check after: the model's load pre-hooks bring older checkpoints' layouts up to
    # date (renamed keys, a buffer's new shape), so only what still misfits after them is an error.
    try:
        loaded = detector.model.load_state_dict(state["model"], strict=False)
        misfit = _names(loaded.missing_keys + loaded.unexpected_keys)
    except RuntimeError as err:
        misfit = _one_line(str(err))
    if misfit:
        # Named on one line as saved (torch's message runs over many lines), else torch's own first line.
        _check_weights(path, state["model"], detector.model.state_dict())
        raise CheckpointError(f"{path}: the weights do not fit the model its config builds ({misfit})")
    detector.to(map_location).eval()
    return detector, config, state


@dataclasses.dataclass(frozen=True)
class CheckpointMeta:
    """What a checkpoint says about the model's data, as every reader of it takes it
    (:func:`read_checkpoint_meta`: ``ocrloc.Predictor`` and ``ocrloc export``).

    Attributes:
        rule: the point rule it trained on (``None``: a COCO folder's annotations defined the points).
        train_size: ``[H, W]`` of its training images (``None`` when neither the checkpoint nor its preset says).
        class_names: the name of each class index.
    """

    rule: Optional[str]
    train_size: Optional[List[int]]
    class_names: List[str]


def read_checkpoint_meta(state: Dict[str, Any], config: Config, task: "Task") -> CheckpointMeta:
    """The one reader of a checkpoint's ``meta`` (the trainer writes ``rule``, ``preset``,
    ``train_size``, ``task``, ``class_names``), with one set of fallbacks for older checkpoints:

    * ``rule``: ``meta['rule']``, else the config's ``data.rule``;
    * ``train_size``: ``meta['train_size']``, else the size of the preset (``meta['preset']`` when
      ``meta`` has the key, else the config's ``data.preset``), else ``None`` (never a guessed size);
    * ``class_names``: the task's when ``meta`` records the task, else ``meta['class_names']``, else the task's.

    ``state`` and ``config`` as :func:`detector_from_checkpoint` returns them, ``task`` the detector's.
    """
    meta = state.get("meta") or {}
    train_size = meta.get("train_size")
    if train_size is None:
        try:
            from ocrloc.data.catalog import get_preset

            preset = get_preset(meta.get("preset", config.data.preset))
            train_size = [preset.height, preset.width]
        except (KeyError, ValueError):
            train_size = None
    names = task.class_names if "task" in meta else (meta.get("class_names") or task.class_names)
    return CheckpointMeta(rule=meta.get("rule", config.data.rule),
                          train_size=None if train_size is None else [int(v) for v in train_size],
                          class_names=[str(n) for n in names])
