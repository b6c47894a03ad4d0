"""What every data source gives: the one protocol the trainer, the split writer and the previews read.

A data source is the MNIST canvases (:class:`~ocrloc.data.canvas.CanvasGenerator`), the printed glyphs
(:class:`~ocrloc.data.glyphs.GlyphCanvasGenerator`) or a user's COCO keypoints folder
(:class:`~ocrloc.data.datasets.CocoKeypointDataset`). Each says

* its **task**: the classes (ids, names) and each class's keypoint names (:class:`~ocrloc.data.task.Task`);
* its **rule**: the built-in rule or rule file that made its points, or None when the annotations alone
  define them (the glyphs, which carry every named point, and a COCO folder);
* its **preset** (the recipe of generated canvases; None for a COCO folder) and its **image size**;
* and per sample ``i``: the sample (an object with ``image``, uint8 ``[H, W]``), its training **target**
  (:mod:`ocrloc.data.target`) and its **COCO annotations**.

Code that needs any of these asks the source, never which class it is: a new source is a new class that
follows this protocol, not a new branch in the trainer, the writer or the previews. This module imports
nothing heavy, so code may name the protocol without importing a generator.
"""

from __future__ import annotations

from typing import Any, Dict, List, Optional, Protocol, Tuple, runtime_checkable

from ocrloc.data.task import Task

__all__ = ["DataSource"]


@runtime_checkable
class DataSource(Protocol):
    """A source of images with boxes, classes and named keypoints (see the module's docstring)."""

    task: Task
    rule: Optional[str]
    preset: Optional[Any]

    @property
    def image_size(self) -> Optional[Tuple[int, int]]:
        """``(height, width)`` of its images: the canvas size, or a COCO folder's largest; None when unknown."""

    def sample(self, index: int) -> Any:
        """Sample ``index`` (0-based): an object whose ``image`` is uint8 ``[H, W]``; the same every call."""

    def target(self, sample: Any, image_id: int) -> Dict[str, Any]:
        """The training target of ``sample`` (:func:`~ocrloc.data.target.detection_target`), as image ``image_id``."""

    def annotations(self, sample: Any, image_id: int, first_annotation_id: int) -> List[Dict[str, Any]]:
        """The COCO annotations of ``sample`` as image ``image_id``, ids from ``first_annotation_id`` on."""

    def categories(self) -> List[Dict[str, Any]]:
        """The COCO ``categories`` of its task."""

    def info(self) -> Dict[str, Any]:
        """The COCO ``info`` of a split written from it: what made it (description, preset, rule, split, seed)."""
