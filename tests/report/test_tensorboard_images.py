"""The trainer's validation pictures in TensorBoard: a grid of val canvases and the PR curves, per validation."""

from __future__ import annotations

from pathlib import Path

from ocrloc.config import load_config
from ocrloc.engine.tensorboard_images import log_validation_images
from ocrloc.engine.trainer import Trainer
from tests.helpers import TINY_TRAINING as TRAINER_TINY

TINY = TRAINER_TINY + [
    "train.val_every=1",
    "postprocess.score_threshold=0.0",  # random weights: keep every peak, so the pictures have detections
]


def _images(run: Path) -> dict:
    from tensorboard.backend.event_processing.event_accumulator import IMAGES, EventAccumulator

    events = EventAccumulator(str(run / "tensorboard"), size_guidance={IMAGES: 0})
    events.Reload()
    return {tag: events.Images(tag) for tag in events.Tags()["images"]}


def test_each_validation_writes_the_prediction_grid_and_pr_curves(tmp_path, pools):
    run = tmp_path / "run"
    Trainer(load_config(None, TINY + ["train.steps=2"]), run, progress=False).fit()
    images = _images(run)
    assert set(images) == {"val/predictions", "val/pr_curves"}
    for tag, events in images.items():
        assert [e.step for e in events] == [1, 2], tag  # one per validation
        for e in events:
            assert e.encoded_image_string[:8] == b"\x89PNG\r\n\x1a\n" and e.width > 100 and e.height > 100
    grid = images["val/predictions"][0]
    assert grid.width >= 4 * 3 * 28  # four canvases a row, drawn 3x


def test_nothing_is_written_without_a_tensorboard_writer():
    # MetricsLog.writer is None when TensorBoard is not installed
    assert log_validation_images(None, [], [1], {"images": []}, 1) is False
