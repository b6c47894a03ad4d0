"""Numbers the library, the command line and the docs share, each defined here once.

Standard library only (nothing imported), so the command line's ``--help`` and ``import ocrloc`` stay fast
and any module may import it.
"""

from __future__ import annotations

__all__ = ["DEFAULT_SCORE_THRESHOLD"]

# The score a detection needs to be kept when a user thresholds: the default of ``ocrloc evaluate --threshold``
# and ``ocrloc report --threshold`` (recall and precision at it), of ``ocrloc predict --viz-score``, and the value
# the README's ``Predictor`` example passes as ``score_threshold``. Change it here only. Measured for the argmax
# detector's calibrated score (ocrloc/engine/calibration.py): on a held-out half of 1,000 val canvases of all10,
# recall 0.976 / precision 0.980 at 0.5, 0.981 / 0.969 at 0.3, 0.966 / 0.986 at 0.7 (detectron2's default is 0.5).
DEFAULT_SCORE_THRESHOLD: float = 0.5
