"""ONNX: the predictor's flat graph (:mod:`ocrloc.export.flat`) as one ``.onnx`` file, run by onnxruntime.

Written with ``torch.onnx.export(..., dynamo=True)`` from the same ``torch.export`` program as the
``.pt2`` file (:func:`ocrloc.export.program.trace_flat`): dynamic batch (0 included), channels (1
or 3), height and width; one input ``images`` of the dtype chosen at export; outputs ``boxes``,
``scores``, ``labels``, ``keypoints``, ``batch_index`` (:mod:`ocrloc.export.flat`). The metadata of
:func:`~ocrloc.export.program.flat_metadata` is in the model's ``metadata_props``, one JSON string
per key. An input of more than 3 channels fails in the node named
``images_must_have_1_to_3_channels`` (the name onnxruntime's error gives). The ``torch.export``
graph's check of float values (finite, in [0, 1]) is an assertion the ONNX converter drops: a
float32 ``.onnx`` file takes any values, so its caller checks them (README, "Export"). Running it
needs onnxruntime and numpy only::

    import json, onnxruntime
    session = onnxruntime.InferenceSession("model.onnx")
    meta = {k: json.loads(v) for k, v in session.get_modelmeta().custom_metadata_map.items()}
    boxes, scores, labels, keypoints, batch_index = session.run(None, {"images": images})
"""

from __future__ import annotations

import json
import os
from collections import deque
from typing import Any, List, Optional, Union

import torch

from ocrloc.data.task import Task
from ocrloc.export.flat import OUTPUT_NAMES
from ocrloc.export.program import flat_metadata, trace_flat
from ocrloc.models.family import PredictorModule
from ocrloc.utils.io import atomic_path

__all__ = ["export_onnx"]

# The name of the node where an image of more than 3 channels fails: onnxruntime names the node in
# its error, so this is the one word about channels an ONNX graph (it has no asserts) can give.
CHANNEL_CHECK = "images_must_have_1_to_3_channels"


def export_onnx(predictor: PredictorModule, rule: Optional[str], train_size: List[int],
                path: Union[str, os.PathLike], task: Optional[Task] = None, input_dtype: str = "uint8",
                program: Optional[torch.export.ExportedProgram] = None) -> None:
    """Convert ``predictor``'s flat graph to ONNX and write it to ``path`` (atomically), with its
    metadata in ``metadata_props``.

    Args:
        program: the graph already traced (:func:`~ocrloc.export.program.trace_flat` of ``predictor``
            with ``input_dtype``, e.g. the one a ``.pt2`` file was written from); None: traced here.

    Raises:
        ValueError: for a family without a flat graph, or an unknown ``input_dtype``.
        ImportError: without the ``onnx`` and ``onnxscript`` packages (``pip install ocrloc[export]``).
    """
    program = program if program is not None else trace_flat(predictor, input_dtype)
    metadata = flat_metadata(predictor, rule, train_size, task, input_dtype, "onnx")
    # ONNX has no cumulative product (the argmax head's ink extremes take one): spelled out as products.
    program = program.run_decompositions({torch.ops.aten.cumprod.default: _cumprod_as_products})
    onnx_program = torch.onnx.export(program, dynamo=True, input_names=["images"], output_names=list(OUTPUT_NAMES),
                                     optimize=True, verbose=False)
    onnx_program.model.metadata_props.update({key: json.dumps(value) for key, value in metadata.items()})
    _name_the_channel_check(onnx_program.model.graph)
    with atomic_path(path, suffix=".tmp.onnx") as tmp:  # the writer reads the format from the name's ending
        onnx_program.save(str(tmp))


def _name_the_channel_check(graph: Any) -> None:
    """Name :data:`CHANNEL_CHECK` the node that weighs the channels by the luma weights.

    torch.export keeps the channel range (1 to 3) in its input spec; ONNX drops it, and 4 channels
    meet 3 weights in a multiplication that onnxruntime refuses as 'broadcast ... 3 by 4', naming
    the node but no channels. That node is the first multiplication downstream of the weights
    (the preprocessing's ``luma`` buffer: sliced to the channel count, normalised, reshaped)."""
    luma = [value for value in [*graph.initializers.values(), *(o for n in graph for o in n.outputs)]
            if value.name is not None and value.name.endswith("preprocess.luma")]
    queue, seen = deque(node for value in luma for node, _ in value.uses()), set()
    while queue:
        node = queue.popleft()
        if id(node) in seen:
            continue
        seen.add(id(node))
        if node.op_type == "Mul":
            node.name = CHANNEL_CHECK
            return
        queue.extend(user for out in node.outputs for user, _ in out.uses())


def _cumprod_as_products(values: torch.Tensor, dim: int, dtype: Optional[torch.dtype] = None) -> torch.Tensor:
    """``torch.cumprod`` as one multiplication per step along ``dim`` (a crop side: a fixed size), in
    the order torch's own loop multiplies, so the values are the same."""
    values = values if dtype is None else values.to(dtype)
    running = values.select(dim, 0)
    steps = [running]
    for i in range(1, values.shape[dim]):
        running = running * values.select(dim, i)
        steps.append(running)
    return torch.stack(steps, dim=dim)
