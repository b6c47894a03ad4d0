"""Validation pictures in TensorBoard: a few val canvases with prediction and ground truth, and PR curves.

At each validation the trainer calls its :class:`ValidationImages` hook (:mod:`ocrloc.engine.hooks`), which hands
:func:`log_validation_images` the validation's own COCO results (no second prediction pass): the first :data:`GRID_CANVASES` val canvases are drawn with
:func:`ocrloc.visualize.draw_truth_and_prediction` (the drawing of ``ocrloc predict --viz``) as
``val/predictions``, and the keypoint precision-recall curves of the whole split (the report's figure,
:mod:`ocrloc.report`) as ``val/pr_curves``, the curves behind the ``val/kpt_AP`` scalar.

Nothing is done when TensorBoard is not installed (the metrics log then has no writer), and a failure to
draw is a one-line note, never the end of a training run.
"""

from __future__ import annotations

from typing import Any, Dict, List, Optional

import torch

from ocrloc.constants import DEFAULT_SCORE_THRESHOLD
from ocrloc.engine.hooks import TrainerHook

__all__ = ["GRID_CANVASES", "ValidationImages", "log_validation_images"]

GRID_CANVASES = 8  # drawn in the val/predictions grid
GRID_SCALE = 3  # a 128 x 128 canvas at 384 x 384: labels legible, event file small
MIN_DRAWN_SCORE = DEFAULT_SCORE_THRESHOLD  # as `ocrloc predict --viz-score`


def figure_to_array(fig) -> Any:
    """A matplotlib Figure drawn on the Agg canvas as uint8 ``[H, W, 3]`` (no pyplot, no global backend)."""
    import numpy as np
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    from ocrloc.report import figures

    canvas = FigureCanvasAgg(fig)
    with figures.style():
        canvas.draw()
    return np.asarray(canvas.buffer_rgba())[..., :3].copy()


class ValidationImages(TrainerHook):
    """The trainer's default hook: ``val/predictions`` and ``val/pr_curves`` after every validation."""

    def __init__(self, grid: int = GRID_CANVASES) -> None:
        self.grid = grid

    def after_validation(self, trainer, scores: Dict[str, Any]) -> None:
        # After the checkpoint's commit, which opens TensorBoard's writer (when TensorBoard is installed).
        log_validation_images(trainer.log.writer, trainer.val_results, trainer.val_set, trainer.val_gt, trainer.step,
                              self.grid)


def log_validation_images(writer, results: List[Dict[str, Any]], dataset, gt: Optional[Dict[str, Any]], step: int,
                          grid: int = GRID_CANVASES) -> bool:
    """Write ``val/predictions`` and ``val/pr_curves`` images at ``step`` to the run's TensorBoard.

    Args:
        writer: the run's ``SummaryWriter`` (:attr:`~ocrloc.engine.trainer.MetricsLog.writer`); None: nothing
            is done.
        results: the validation's COCO results (every val canvas).
        dataset: the validation dataset (``(image, target)`` items with ``image_id``), for the drawn canvases.
        gt: its COCO ground truth.
        step: the training step.
        grid: canvases drawn.

    Returns:
        Whether images were written.
    """
    if writer is None or dataset is None or gt is None or len(dataset) == 0:
        return False
    try:
        _log(writer, results, dataset, gt, step, grid)
    except Exception as err:  # a picture must never end a training run
        from tqdm import tqdm

        tqdm.write(f"note: step {step}: TensorBoard validation images skipped ({type(err).__name__}: {err})")
        return False
    return True


def _log(writer, results, dataset, gt, step, grid) -> None:
    from torchvision.utils import make_grid

    from ocrloc.data.coco import coco_subset
    from ocrloc.report import figures
    from ocrloc.report.analysis import pr_numbers, precision_of
    from ocrloc.visualize import draw_truth_and_prediction, match_for_drawing

    samples = [dataset[i] for i in range(min(len(dataset), grid))]
    shown_ids = [target["image_id"] for _, target in samples]
    shown = [r for r in results if r["image_id"] in set(shown_ids) and r["score"] >= MIN_DRAWN_SCORE]
    truth = coco_subset(gt, shown_ids)
    errors, matched = match_for_drawing(truth, shown)
    names = {c["id"]: str(c.get("name", c["id"])) for c in gt["categories"]}
    panels = []
    for (image, _), image_id in zip(samples, shown_ids):
        indices = [k for k, r in enumerate(shown) if r["image_id"] == image_id]
        panels.append(draw_truth_and_prediction(
            image, [shown[k] for k in indices], [a for a in truth["annotations"] if a["image_id"] == image_id],
            names, [errors.get(k) for k in indices], matched, scale=GRID_SCALE).float())
    writer.add_image("val/predictions", make_grid(panels, nrow=4, padding=4, pad_value=255).to(torch.uint8), step)

    fig = figures.pr_figure(pr_numbers(*precision_of(gt, results)))
    fig.suptitle(f"Keypoint precision-recall per class, {len(gt['images'])} val canvases")
    writer.add_image("val/pr_curves", figure_to_array(fig), step, dataformats="HWC")
    writer.flush()
