"""Building the training and validation data of a run from its ``data`` config, as detectron2's
``build_detection_train_loader`` builds its loaders: the trainer asks for datasets and gets them.

The data is a :class:`~ocrloc.data.source.DataSource` (MNIST canvases, printed glyphs, or a COCO keypoints
folder), and what the trainer needs to know about it (task, image size, preset, rule) is read from the source
(:func:`describe_training_data`), never from which kind it is. Bad data is a :class:`~ocrloc.utils.errors.ConfigError`
naming the config key, raised before anything is written.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Dict, Optional, Tuple

from torch.utils.data import Dataset

from ocrloc.data.catalog import GLYPH_PRESETS
from ocrloc.data.data_config import DataConfig
from ocrloc.data.datasets import CocoKeypointDataset, InMemoryCocoDataset, SyntheticCanvasDataset
from ocrloc.data.source import DataSource
from ocrloc.data.splits import split_coco
from ocrloc.utils.errors import ConfigError

__all__ = ["canvas_generator", "coco_folder", "build_train_dataset", "build_val_data", "describe_training_data"]


def canvas_generator(data: DataConfig, split: str, seed: int, augment: bool = False) -> DataSource:
    """The generator of ``data.preset`` for ``split``: MNIST digits read from ``data.data_root``, or printed
    glyphs (which need no data root). The one place that picks a generator class; everything after it asks
    the :class:`~ocrloc.data.source.DataSource`.

    Raises:
        ConfigError: for augmentation asked of the printed glyphs (their fonts, sizes and
            rotations are their variation; the MNIST augmentations do not apply).
    """
    if data.preset in GLYPH_PRESETS:
        if augment and (data.digit_augment.enabled or data.canvas_augment.enabled):
            raise ConfigError(f"data.digit_augment / data.canvas_augment apply to the MNIST presets, not {data.preset}")
        from ocrloc.data.glyphs import GlyphCanvasGenerator  # imported only when glyphs are asked for

        return GlyphCanvasGenerator(data.preset, split, seed)
    from ocrloc.data.canvas import CanvasGenerator  # imported only when MNIST canvases are asked for
    from ocrloc.data.mnist import load_digit_pool

    pool = load_digit_pool(split, data.data_root)
    if augment:
        return CanvasGenerator(data.preset, data.rule, split, seed, pool, data.digit_augment, data.canvas_augment)
    return CanvasGenerator(data.preset, data.rule, split, seed, pool)


def coco_folder(path: str, key: str, progress: bool = False, check_images: bool = True) -> CocoKeypointDataset:
    """A COCO folder for training or validation; bad data is a ConfigError naming ``key``, the file and the entry.

    Checked at the start, before anything is written: the annotations (the evaluator's checks, at
    least one annotation), and every image read once (decodable, the size its entry declares:
    :meth:`~ocrloc.data.datasets.CocoKeypointDataset.check_images`, 1-2.5 s for 8,000 canvases of
    128 x 128 on 2 cores), so a bad file stops the start, not the step that first samples it."""
    try:
        dataset = CocoKeypointDataset(path)
        if not dataset.coco.dataset.get("annotations"):
            raise ValueError(f"{dataset.annotation_file}: no annotations ('annotations' is empty): nothing to "
                             f"{'train' if key == 'data.train_path' else 'validate'} on")
        if check_images:
            dataset.check_images(progress, desc=f"check {key} images")
        return dataset
    except (ValueError, FileNotFoundError) as err:
        raise ConfigError(f"{key}: {err}") from None


def build_train_dataset(data: DataConfig, total_samples: int,
                        progress: bool = False) -> Tuple[Dataset, Optional[int], DataSource]:
    """The training dataset, the length to hand the sampler (None: unlimited fresh canvases), and its data source;
    a COCO folder's images are all read once first (:func:`coco_folder`)."""
    if data.train_path:
        dataset = coco_folder(data.train_path, "data.train_path", progress)
        return dataset, len(dataset), dataset
    generator = canvas_generator(data, "train", data.train_seed, augment=True)
    if data.train_canvases > 0:
        return SyntheticCanvasDataset(generator, data.train_canvases), data.train_canvases, generator
    return SyntheticCanvasDataset(generator, max(1, total_samples)), None, generator


def build_val_data(data: DataConfig, progress: bool = False) -> Tuple[Dataset, Dict[str, Any]]:
    """The fixed validation split and its COCO ground truth (``data.val_path``, or canvases
    generated once, in memory: the images the model sees are the ones the ground truth describes)."""
    if data.val_path:
        # The training folder's images were just read: the same folder is not read twice.
        same = data.train_path is not None and Path(data.val_path).resolve() == Path(data.train_path).resolve()
        dataset = coco_folder(data.val_path, "data.val_path", progress, check_images=not same)
        return dataset, dataset.coco.dataset
    generator = canvas_generator(data, "val", data.val_seed)
    images: Dict[str, Any] = {}
    gt = split_coco(generator, data.val_count, image_writer=images.__setitem__, progress=False)
    return InMemoryCocoDataset(gt, images), gt


def describe_training_data(source: DataSource) -> Dict[str, Any]:
    """What the training data is, read from its source: the task (classes, ids, keypoint names), the image
    size the model trains on, and, for generated canvases, the preset and the rule that made them (None for a
    COCO folder, whose annotations define the points, and for the printed glyphs, which carry every point)."""
    size = source.image_size
    return {"task": source.task, "train_size": list(size) if size is not None else None,
            "preset": source.preset.name if source.preset is not None else None, "rule": source.rule}
