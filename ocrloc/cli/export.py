"""Export a checkpoint to one TorchScript file (SPEC section 8).

examples:
  ocrloc export --checkpoint runs/quickstart/checkpoints/best.pt --out runs/quickstart/model.pt

Load it anywhere with torch and torchvision only:

    import torch, torchvision  # torchvision registers the nms operator the model uses
    model = torch.jit.load("model.pt")
    detections = model(images)  # images: float [B, 1, H, W] in [0, 1]
    # H and W must follow the model's input rule: model.size_divisible, model.min_size, model.max_size
    # (0: none); ocrloc.Predictor(path) pads any image to it.

`python tools/export.py` takes the same arguments.
"""

from __future__ import annotations

import argparse
import sys
from typing import Optional, Sequence

from ocrloc.cli._common import fail, standalone_main


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The options of ``ocrloc export``."""
    parser.add_argument("--checkpoint", required=True, help="a checkpoint written by ocrloc train")
    parser.add_argument("--out", required=True, help="TorchScript file to write")


def run(args: argparse.Namespace) -> int:
    """Export; return 0, or 2 for a missing or bad checkpoint (truncated, corrupt, or refused by the
    safe loader: see :func:`ocrloc.engine.checkpoint.load_checkpoint`) or an unwritable ``--out``."""
    from ocrloc.engine.checkpoint import detector_from_checkpoint
    from ocrloc.export import export_torchscript

    try:
        detector, config, state = detector_from_checkpoint(args.checkpoint)
    except (FileNotFoundError, ValueError) as err:
        return fail(err)
    meta = state.get("meta") or {}
    rule, train_size = meta.get("rule", config.data.rule), meta.get("train_size") or [128, 128]
    try:
        export_torchscript(detector.predictor, rule, train_size, args.out, detector.task)
    except OSError as err:  # the write is atomic: nothing is left at --out
        return fail(f"--out {args.out}: cannot write it ({err.strerror or err})")
    print(f"wrote {args.out} (rule {rule or 'from the annotations'}, {detector.task.num_classes} classes, "
          f"{detector.task.num_keypoints} keypoint(s) each, trained on {train_size} images, "
          f"input: {detector.predictor.input_rule()})")
    return 0


def main(argv: Optional[Sequence[str]] = None) -> int:
    """``python tools/export.py``: parse ``argv`` (``None``: ``sys.argv[1:]``) and export."""
    return standalone_main(__doc__, add_arguments, run, argv)


if __name__ == "__main__":
    sys.exit(main())
