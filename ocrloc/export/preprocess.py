"""What every exported file does before the model, by its import path of before: the one input path,
:mod:`ocrloc.preprocess`, owns :class:`CanvasPreprocess` (any ``[B, 1 or 3, H, W]`` uint8 or float
image -> the predictor's grey, padded canvas), the luma weights and the float tolerance, and
``ocrloc.Predictor`` and the predict loop read images through the same module."""

from ocrloc.preprocess import FLOAT_TOLERANCE, LUMA_WEIGHTS, CanvasPreprocess

__all__ = ["FLOAT_TOLERANCE", "LUMA_WEIGHTS", "CanvasPreprocess"]
