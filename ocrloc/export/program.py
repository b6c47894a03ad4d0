"""``torch.export``: the predictor as an ``ExportedProgram`` saved as one ``.pt2`` file.

Loading it needs only torch and torchvision (for the ``torchvision::nms`` and ``roi_align``
operators the graph calls)::

    import json, torch, torchvision
    meta = {"ocrloc.json": ""}
    program = torch.export.load("model.pt2", extra_files=meta)
    info = json.loads(meta["ocrloc.json"])     # rule, train_size, class names, input, outputs
    outputs = program.module()(images)          # images: [B, 1 or 3, H, W] of info["input"]["dtype"]

The graph is :class:`~ocrloc.export.flat.FlatDetector`: any batch size (0 included), 1 or 3
channels and any height and width (the symbols are dynamic), one input dtype (``uint8`` or
``float32``, chosen at export: a graph's input dtype is fixed), and flat outputs (see
:mod:`ocrloc.export.flat`).
"""

from __future__ import annotations

import io
import json
import os
from typing import Any, Dict, List, Optional, Union

import torch

from ocrloc.constants import EXPORT_METADATA_FILE
from ocrloc.data.task import Task, digits_task
from ocrloc.export.flat import OUTPUT_NAMES, FlatDetector
from ocrloc.models.family import PredictorModule
from ocrloc.utils.io import write_bytes_atomic

__all__ = ["INPUT_DTYPES", "METADATA_FILE", "export_program", "flat_metadata", "trace_flat"]

INPUT_DTYPES = {"uint8": torch.uint8, "float32": torch.float32}
METADATA_FILE = EXPORT_METADATA_FILE  # the extra file of a .pt2 holding flat_metadata()


def flat_metadata(predictor: PredictorModule, rule: Optional[str], train_size: List[int], task: Optional[Task],
                  input_dtype: str, export_format: str) -> Dict[str, Any]:
    """What a user of the file needs besides the graph: the attributes of the TorchScript file
    (``rule``, ``train_size``, ``class_ids``, ``class_names``, ``keypoint_names``), the input
    rule and the output layout."""
    task = task if task is not None else digits_task()
    return {
        "format": export_format,
        "rule": rule or "",
        "train_size": [int(v) for v in train_size],
        "class_ids": list(task.class_ids),
        "class_names": list(task.class_names),
        "keypoint_names": [list(names) for names in task.keypoint_names],
        "input": {"dtype": input_dtype, "shape": "[B, C, H, W]", "channels": [1, 3],
                  "values": "0..255" if input_dtype == "uint8" else "[0, 1]",
                  "padding": "zeros on the bottom and right",
                  "size_divisible": predictor.size_divisible, "min_size": predictor.min_size,
                  "max_size": predictor.max_size},
        "outputs": list(OUTPUT_NAMES),
    }


def trace_flat(predictor: PredictorModule, input_dtype: str = "uint8") -> torch.export.ExportedProgram:
    """``torch.export.export`` of :class:`FlatDetector` with a dynamic batch (0 included), channel
    count (1 to 3), height and width.

    Raises:
        ValueError: for a family without a flat graph, or an unknown ``input_dtype``.
    """
    if input_dtype not in INPUT_DTYPES:
        raise ValueError(f"input dtype must be one of {', '.join(INPUT_DTYPES)}; got {input_dtype!r}")
    flat = FlatDetector(predictor).eval()
    dtype = INPUT_DTYPES[input_dtype]
    # An example away from the 0/1 sizes torch.export treats as special: 2 images, 3 channels, 96 x 80.
    example = torch.zeros(2, 3, 96, 80).to(dtype)
    dims = {0: torch.export.Dim("batch", min=0), 1: torch.export.Dim("channels", min=1, max=3),
            2: torch.export.Dim("height", min=1), 3: torch.export.Dim("width", min=1)}
    with torch.no_grad():
        return torch.export.export(flat, (example,), dynamic_shapes=(dims,), strict=False)


def export_program(predictor: PredictorModule, rule: Optional[str], train_size: List[int],
                   path: Union[str, os.PathLike], task: Optional[Task] = None,
                   input_dtype: str = "uint8") -> torch.export.ExportedProgram:
    """Trace ``predictor`` (:func:`trace_flat`) and save it to ``path`` (``torch.export.save``,
    written atomically) with :func:`flat_metadata` as the extra file ``ocrloc.json``; return the program."""
    program = trace_flat(predictor, input_dtype)
    metadata = flat_metadata(predictor, rule, train_size, task, input_dtype, "torch.export")
    # Through a buffer: saved to a path, the archive's root folder would take the temporary file's name.
    buffer = io.BytesIO()
    torch.export.save(program, buffer, extra_files={METADATA_FILE: json.dumps(metadata)})
    write_bytes_atomic(buffer.getbuffer(), path, suffix=".tmp.pt2")
    return program
