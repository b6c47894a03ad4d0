"""Numbers the library, the command line and the docs share, each defined here once.

Standard library only (nothing imported), so the command line's ``--help`` and ``import ocrloc`` stay fast
and any module may import it.
"""

from __future__ import annotations

__all__ = ["DEFAULT_MAX_PIXELS", "DEFAULT_SCORE_THRESHOLD", "DEFAULT_SIGMA", "EXPORT_METADATA_FILE", "FLOAT_TOLERANCE"]

# The score a detection needs to be kept when a user thresholds: the default of ``ocrloc evaluate --threshold``
# and ``ocrloc report --threshold`` (recall and precision at it), of ``ocrloc predict --viz-score``, and the value
# the README's ``Predictor`` example passes as ``score_threshold``. Change it here only. Measured for the argmax
# detector's calibrated score (ocrloc/engine/calibration.py): on a held-out half of 1,000 val canvases of all10,
# recall 0.976 / precision 0.980 at 0.5, 0.981 / 0.969 at 0.3, 0.966 / 0.986 at 0.7 (detectron2's default is 0.5).
DEFAULT_SCORE_THRESHOLD: float = 0.5

# The OKS sigma of every keypoint unless told otherwise: the default of ``ocrloc.evaluation.evaluate``,
# ``ocrloc evaluate --sigma`` and ``ocrloc report --sigma`` (docs/task.md, "Scores"): OKS 0.5 is ~3.0 px, 0.95
# ~0.8 px on a 24 x 28 digit.
DEFAULT_SIGMA: float = 0.05

# The largest image (height x width, in pixels) ``ocrloc.Predictor`` and ``ocrloc predict --max-pixels`` take unless
# told otherwise: 40 million, about 6,300 x 6,300 (a 600-dpi A4 scan, 4,960 x 7,016, fits). In the spirit of PIL's
# ``Image.MAX_IMAGE_PIXELS`` (89 million, a decompression-bomb guard), but sized to the model: the quickstart model
# needs about 170 bytes per pixel on the CPU (measured at 2048 x 2048), so 40 million pixels take ~7 GB, and a
# 10000 x 10000 image (~17 GB) fails with one line up front instead of an allocator traceback half a minute in.
# 0 lifts it.
DEFAULT_MAX_PIXELS: int = 40_000_000

# Float images may overshoot [0, 1] by rounding; anything further is refused, not guessed at: by ``ocrloc.Predictor``
# and by the exported files' preprocessing alike (the one input path, ``ocrloc.preprocess``).
FLOAT_TOLERANCE: float = 1e-3

# The name under which a torch.export .pt2 file keeps ocrloc's metadata (an extra file of the archive): written by
# ``ocrloc export`` (ocrloc.export.program) and read by ``ocrloc.Predictor.from_exported`` (ocrloc.exported).
EXPORT_METADATA_FILE: str = "ocrloc.json"
