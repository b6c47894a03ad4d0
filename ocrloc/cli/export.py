"""Export a checkpoint to one deployable file: TorchScript (default), torch.export (.pt2) or ONNX.

examples:
  ocrloc export --checkpoint runs/quickstart/checkpoints/best.pt --out runs/quickstart/model.pt
  ocrloc export --checkpoint runs/quickstart/checkpoints/best.pt --out runs/quickstart/model.pt2 --format export
  ocrloc export --checkpoint runs/quickstart/checkpoints/best.pt --out runs/quickstart/model.onnx --format onnx

Every file takes images [B, C, H, W]: C = 1 (grey) or 3 (RGB), any H x W (padded inside on the
bottom and right), B from 0. Load it anywhere without ocrloc:

  torchscript  import torch, torchvision; model = torch.jit.load("model.pt")
               detections = model(images)   # uint8 or float in [0, 1]; one dict per image
  export       import torch, torchvision; model = torch.export.load("model.pt2").module()
               outputs = model(images)      # --input-dtype's dtype; flat: boxes, scores, labels,
                                            # keypoints, batch_index (detections of image i: batch_index == i)
  onnx         import onnxruntime; session = onnxruntime.InferenceSession("model.onnx")
               boxes, scores, labels, keypoints, batch_index = session.run(None, {"images": images})

torchscript works for every model type (torch calls TorchScript deprecated; it stays the
default, docs/task.md, "The exported model"); export and onnx for model.type centernet and argmax.
`python tools/export.py` takes the same arguments.
"""

from __future__ import annotations

import argparse
import importlib.util
import sys
from typing import Optional, Sequence

from ocrloc.cli._common import fail, standalone_main

FORMATS = ("torchscript", "export", "onnx")

LOADERS = {
    "torchscript": "import torch, torchvision; model = torch.jit.load({path!r}); "
                   "with torch.jit.optimized_execution(False): detections = model(images)  "
                   "# one dict per image; unoptimised: no slow first calls",
    "export": "import torch, torchvision; model = torch.export.load({path!r}).module(); "
              "outputs = model(images)  # {dtype} images; flat outputs with batch_index",
    "onnx": "import onnxruntime; session = onnxruntime.InferenceSession({path!r}); "
            "boxes, scores, labels, keypoints, batch_index = session.run(None, {{'images': images}})  # {dtype} images",
}


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The options of ``ocrloc export``."""
    parser.add_argument("--checkpoint", required=True, help="a checkpoint written by ocrloc train")
    parser.add_argument("--out", required=True, help="file to write")
    parser.add_argument("--format", choices=FORMATS, default="torchscript",
                        help="torchscript (default; any model type), export (torch.export .pt2) or onnx")
    parser.add_argument("--input-dtype", choices=("uint8", "float32"), default="uint8",
                        help="export and onnx: the dtype of the images the file takes (a graph's input dtype is "
                             "fixed; torchscript takes both). Default uint8")


def run(args: argparse.Namespace) -> int:
    """Export; return 0, or 2 for a missing or bad checkpoint (truncated, corrupt, or refused by the
    safe loader: see :func:`ocrloc.engine.checkpoint.load_checkpoint`), a model type the format
    cannot hold, a missing ONNX package, or an unwritable ``--out``."""
    from ocrloc.engine.checkpoint import detector_from_checkpoint, read_checkpoint_meta
    from ocrloc.export import export_program, export_torchscript, flat_supported

    if args.format == "onnx":  # checked before the model is loaded and traced
        missing = [name for name in ("onnx", "onnxscript") if importlib.util.find_spec(name) is None]
        if missing:
            return fail(f"--format onnx needs the onnx and onnxscript packages ({', '.join(missing)} missing): "
                        f"pip install onnx onnxscript onnxruntime")
    try:
        detector, config, state = detector_from_checkpoint(args.checkpoint)
    except (FileNotFoundError, ValueError) as err:
        return fail(err)
    meta = read_checkpoint_meta(state, config, detector.task)
    # A file that does not know its training size says so ([]: unknown) rather than guessing one.
    rule, train_size = meta.rule, meta.train_size if meta.train_size is not None else []
    if args.format != "torchscript" and not flat_supported(detector.predictor):
        return fail(f"--format {args.format}: model.type {config.model.type} has no batched graph for torch.export "
                    f"or ONNX (centernet and argmax have); use --format torchscript")
    try:
        if args.format == "torchscript":
            export_torchscript(detector.predictor, rule, train_size, args.out, detector.task)
        elif args.format == "export":
            export_program(detector.predictor, rule, train_size, args.out, detector.task, args.input_dtype)
        else:
            from ocrloc.export.onnx import export_onnx

            export_onnx(detector.predictor, rule, train_size, args.out, detector.task, args.input_dtype)
    except OSError as err:  # the write is atomic: nothing is left at --out
        return fail(f"--out {args.out}: cannot write it ({err.strerror or err})")
    dtype = "uint8 or float" if args.format == "torchscript" else args.input_dtype
    print(f"wrote {args.out} ({args.format}; rule {rule or 'from the annotations'}, {detector.task.num_classes} "
          f"classes, {detector.task.num_keypoints} keypoint(s) each, trained on {train_size or 'unknown-size'} "
          f"images; input: {dtype} [B, 1 or 3, H, W], any size, padded inside to {detector.predictor.input_rule()})")
    print("load it: " + LOADERS[args.format].format(path=str(args.out), dtype=args.input_dtype))
    return 0


def main(argv: Optional[Sequence[str]] = None) -> int:
    """``python tools/export.py``: parse ``argv`` (``None``: ``sys.argv[1:]``) and export."""
    return standalone_main(__doc__, add_arguments, run, argv)


if __name__ == "__main__":
    sys.exit(main())
