"""Running the files ``ocrloc export`` writes (TorchScript ``.pt``, ``torch.export`` ``.pt2``, ONNX ``.onnx``)
as predictor modules, for :meth:`ocrloc.Predictor.from_exported` (as ultralytics' AutoBackend runs
every format it exports).

Every file is a program: only :meth:`~ocrloc.Predictor.from_exported` and ``ocrloc predict --exported``
come here, asked for by name (``Predictor(path)`` and ``--checkpoint`` never run one). The format is
the file's suffix, the one ``ocrloc export --out`` gave it: ``.pt2`` torch.export, ``.onnx`` ONNX
(onnxruntime is imported then, and only then), anything else TorchScript.

Each loaded file becomes a module with the predictor contract ``ocrloc.Predictor`` runs (grey float
canvases ``[B, 1, H, W]`` in [0, 1], already padded to the input rule -> one detections dict per
image; attributes ``size_divisible``, ``min_size``, ``max_size``), so the one input path
(:mod:`ocrloc.preprocess`) and the one predict loop serve the three formats and the checkpoint alike.
Imports torch (and torchvision, for the operators the graphs call) and the predictor contract
(:mod:`ocrloc.models.family`, whose ``split_per_image`` splits a flat graph's outputs), never a
family's model code or timm.
"""

from __future__ import annotations

import json
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Dict, List, Optional

import torch
from torch import Tensor, nn

from ocrloc.constants import EXPORT_METADATA_FILE
from ocrloc.models.family import split_per_image

__all__ = ["ExportedFile", "FlatGraphPredictor", "ScriptedPredictor", "exported_format", "load_exported"]


@dataclass
class ExportedFile:
    """A loaded exported file: the predictor module and what the file says about its model
    (``class_ids``, ``class_names`` and ``keypoint_names`` are ``None`` in a file without them)."""

    module: nn.Module
    format: str
    rule: Optional[str]
    train_size: Optional[List[int]]
    class_ids: Optional[List[int]]
    class_names: Optional[List[str]]
    keypoint_names: Optional[List[List[str]]]


def exported_format(path: Path) -> str:
    """``torch.export``, ``onnx`` or ``torchscript``: the format of an exported file, by its suffix."""
    return {".pt2": "torch.export", ".onnx": "onnx"}.get(path.suffix.lower(), "torchscript")


def load_exported(path: Path, device: torch.device) -> ExportedFile:
    """Load the exported file ``path`` (a program: its code runs on every call) on ``device``.

    Raises:
        ValueError: one line naming the file, when it is not a loadable file of its format.
        ImportError: one line, for an ``.onnx`` file without onnxruntime installed.
    """
    fmt = exported_format(path)
    if fmt == "onnx":
        return _load_onnx(path, device)
    import torchvision  # noqa: F401  (registers torchvision::nms and roi_align, which the files call)

    return _load_program(path, device) if fmt == "torch.export" else _load_torchscript(path, device)


class FlatGraphPredictor(nn.Module):
    """A flat graph (``.pt2`` or ``.onnx``: one batch in, the batch's detections flat with a
    ``batch_index``, ``docs/task.md`` and README "Deploying") as a predictor module: canvases
    ``[B, 1, H, W]`` float in [0, 1] -> one dict per image (``boxes``, ``scores``, ``labels``, ``keypoints``).

    A graph takes one input dtype: for a ``uint8`` graph the canvases go in as ``round(255 x)``, which
    gives back exactly the bytes of a uint8 image (and of its inversion); a float image is rounded so.

    Args:
        run: the graph, ``images`` -> its outputs by name.
        input_dtype: ``uint8`` or ``float32``, the graph's.
        size_divisible, min_size, max_size: its input rule (from the file's metadata).
    """

    def __init__(self, run: Callable[[Tensor], Dict[str, Tensor]], input_dtype: str, size_divisible: int,
                 min_size: int, max_size: int) -> None:
        super().__init__()
        self._run = run  # a function, not a submodule: an exported program refuses train() / eval()
        self.input_dtype = input_dtype
        self.size_divisible, self.min_size, self.max_size = int(size_divisible), int(min_size), int(max_size)

    def forward(self, canvases: Tensor) -> List[Dict[str, Tensor]]:
        if self.input_dtype == "uint8":
            images = (canvases.float() * 255.0).round().clamp(0, 255).to(torch.uint8)
        else:
            images = canvases.float()
        return split_per_image(self._run(images), canvases.shape[0])


class ScriptedPredictor(nn.Module):
    """A loaded TorchScript file called with the graph executor's optimisation off
    (``torch.jit.optimized_execution(False)``): TorchScript otherwise profiles the first call and
    re-optimises the graph on the second, so the first calls of a process run several times slower
    than the rest; without it every call runs at the warm speed (``benchmarks/export_latency.py``,
    cold start). The file's input rule and metadata are read from ``scripted``."""

    def __init__(self, scripted: torch.jit.ScriptModule) -> None:
        super().__init__()
        self.scripted = scripted
        for name in ("size_divisible", "min_size", "max_size"):  # a file without them is refused by the Predictor
            if hasattr(scripted, name):
                setattr(self, name, getattr(scripted, name))

    def forward(self, canvases: Tensor) -> List[Dict[str, Tensor]]:
        with torch.jit.optimized_execution(False):
            return self.scripted(canvases)


def _first_line(err: BaseException) -> str:
    # torch's and onnxruntime's errors run over many lines (C++ frames); the first says what is wrong.
    return f"{type(err).__name__}: {(str(err).strip().splitlines() or [''])[0]}"


def _load_torchscript(path: Path, device: torch.device) -> ExportedFile:
    try:
        with warnings.catch_warnings():  # torch >= 2.9 calls TorchScript deprecated; the export format is ocrloc's
            warnings.filterwarnings("ignore", message=r".*torch\.jit\.load.* is deprecated", category=FutureWarning)
            module = torch.jit.load(str(path), map_location=device)
    except Exception as err:
        raise ValueError(f"{path}: not a loadable exported TorchScript file ({_first_line(err)})") from err
    module.eval()
    named = all(hasattr(module, name) for name in ("class_ids", "class_names", "keypoint_names"))
    rule = getattr(module, "rule", None)
    return ExportedFile(module=ScriptedPredictor(module), format="torchscript", rule=rule if rule else None,
                        train_size=getattr(module, "train_size", None),
                        class_ids=list(module.class_ids) if named else None,
                        class_names=getattr(module, "class_names", None),
                        keypoint_names=[list(k) for k in module.keypoint_names] if named else None)


def _from_metadata(module: nn.Module, fmt: str, meta: Dict[str, Any]) -> ExportedFile:
    train_size = meta.get("train_size") or None
    return ExportedFile(module=module, format=fmt, rule=meta.get("rule") or None, train_size=train_size,
                        class_ids=meta.get("class_ids"), class_names=meta.get("class_names"),
                        keypoint_names=meta.get("keypoint_names"))


def _flat_module(path: Path, run: Callable[[Tensor], Dict[str, Tensor]], meta: Dict[str, Any]) -> FlatGraphPredictor:
    rule = meta.get("input") or {}
    try:
        return FlatGraphPredictor(run, str(rule["dtype"]), rule["size_divisible"], rule["min_size"],
                                  rule["max_size"])
    except (KeyError, TypeError, ValueError) as err:
        raise ValueError(f"{path}: its ocrloc metadata has no input rule ({_first_line(err)}); "
                         f"export it again with ocrloc export") from None


def _load_program(path: Path, device: torch.device) -> ExportedFile:
    extra = {EXPORT_METADATA_FILE: ""}
    try:
        program = torch.export.load(str(path), extra_files=extra)
        meta = json.loads(extra[EXPORT_METADATA_FILE] or "{}")
        graph = program.module()
        if device.type != "cpu":
            graph = graph.to(device)
    except Exception as err:
        raise ValueError(f"{path}: not a loadable torch.export file written by ocrloc export "
                         f"({_first_line(err)})") from err

    def run(images: Tensor) -> Dict[str, Tensor]:
        return graph(images)

    return _from_metadata(_flat_module(path, run, meta), "torch.export", meta)


def _load_onnx(path: Path, device: torch.device) -> ExportedFile:
    try:
        import onnxruntime
    except ImportError:
        raise ImportError(f"{path}: running an .onnx file needs onnxruntime, which is not installed "
                          f"(pip install onnxruntime)") from None
    providers = (["CUDAExecutionProvider", "CPUExecutionProvider"] if device.type == "cuda"
                 else ["CPUExecutionProvider"])
    try:
        session = onnxruntime.InferenceSession(str(path), providers=providers)
        meta = {key: json.loads(value) for key, value in session.get_modelmeta().custom_metadata_map.items()}
    except Exception as err:
        raise ValueError(f"{path}: not a loadable ONNX file written by ocrloc export ({_first_line(err)})") from err
    names = [output.name for output in session.get_outputs()]

    def run(images: Tensor) -> Dict[str, Tensor]:
        outputs = session.run(None, {"images": images.detach().cpu().numpy()})
        return {name: torch.from_numpy(value).to(images.device) for name, value in zip(names, outputs)}

    return _from_metadata(_flat_module(path, run, meta), "onnx", meta)
