"""Deployable files of a predictor (``docs/task.md``, "The exported model"): TorchScript (the default),
``torch.export`` (.pt2) and ONNX.

Every format holds the preprocessing (:class:`ocrloc.preprocess.CanvasPreprocess`, the one input path): grey or RGB, uint8 or
float, any size. TorchScript returns one dict per image; the ``torch.export`` and ONNX graphs
return the batch's detections flat, with each one's image index (:mod:`ocrloc.export.flat`).
The ONNX writer is imported on use (it needs the ``onnx`` and ``onnxscript`` packages).
"""

from ocrloc.export.flat import OUTPUT_NAMES, FlatDetector, flat_supported, split_per_image
from ocrloc.preprocess import CanvasPreprocess
from ocrloc.export.program import INPUT_DTYPES, METADATA_FILE, export_program
from ocrloc.export.torchscript import ExportedDetector, export_torchscript

__all__ = ["CanvasPreprocess", "ExportedDetector", "FlatDetector", "INPUT_DTYPES", "METADATA_FILE", "OUTPUT_NAMES",
           "export_program", "export_torchscript", "flat_supported", "split_per_image"]
