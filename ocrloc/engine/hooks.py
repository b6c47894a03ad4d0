"""Hooks: work the trainer hands off at fixed points of a run, instead of doing it itself.

The trainer trains, validates, logs its metrics and writes its checkpoints; anything else a run does with a
validation's results (TensorBoard pictures, :class:`~ocrloc.engine.tensorboard_images.ValidationImages`) is a
:class:`TrainerHook` it calls, as detectron2's ``HookBase`` and ultralytics' callbacks do. A hook reads the
trainer's public state and must not change what is trained: the weights, the optimizer, the random streams
and the metrics rows are the trainer's, so a run's results are the same with or without hooks.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Dict

if TYPE_CHECKING:
    from ocrloc.engine.trainer import Trainer

__all__ = ["TrainerHook"]


class TrainerHook:
    """A no-op hook; subclasses override the points they need.

    Rank 0 alone calls the hooks (the rank that validates and writes the run folder).
    """

    def after_validation(self, trainer: "Trainer", scores: Dict[str, Any]) -> None:
        """Called after each validation, once its metrics row and checkpoint are committed.

        Args:
            trainer: the trainer; ``trainer.step``, ``trainer.val_results`` (the validation's COCO results),
                ``trainer.val_set``, ``trainer.val_gt`` and ``trainer.log.writer`` (TensorBoard, or None) describe it.
            scores: the validation's loss terms and scores (as ``metrics.csv`` records them).
        """
