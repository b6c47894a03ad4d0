"""Pictures people would rather see than read: an evaluation drawn as PNGs and one ``index.html``.

:func:`write_report` scores a results file against its ground truth with :mod:`ocrloc.evaluation` (the same
checks, OKS and matching) and draws precision-recall curves per class, a confusion matrix, point-error
histograms and cumulative curves, the worst-placed points per class on their crops, and a run's training
curves; ``report.json`` beside the PNGs holds the numbers they draw. ``ocrloc report`` is its command.
"""

from ocrloc.evaluation.inputs import EvaluationInputError

from .analysis import ReportError
from .writer import write_report

__all__ = ["EvaluationInputError", "ReportError", "write_report"]
