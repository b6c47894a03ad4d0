"""Run a checkpoint (or, asked for by name, an exported file) over images and write COCO results
(docs/task.md, "Ground-truth and results files").

Images of any size up to --max-pixels, grey or colour, are read as grey and run through
ocrloc.Predictor (the Python API: padded to the model's input rule, batched by size). A file named
twice (or reached twice, by a folder and by name) is predicted once: one image id per file.

--checkpoint reads a checkpoint written by ocrloc train: data only, never a program. A file
written by ocrloc export is a program (its code runs on every image): it runs only through
--exported, which takes all three formats (TorchScript .pt, torch.export .pt2, ONNX .onnx: chosen
by the suffix; .onnx needs onnxruntime) and gives the checkpoint's detections; --checkpoint
refuses a TorchScript file whatever its name.

polarity: by default (auto) each image whose median grey value is above 0.5 (dark ink on a light
page) is inverted, as the models were trained on light ink on dark; the count of each kind is
printed. --threshold (default 0.5, the score ocrloc evaluate gives recall and precision at) drops
the detections scoring below it; 0 keeps them all, what keypoint AP over every score wants.

image ids: an image in a folder with an annotations.json in it or in its parent folder (the
layout make-dataset writes: SPLIT/annotations.json, SPLIT/images/) gets the id that file gives
it, so the results score against it; an image that file does not list is an error unless
--unlisted says otherwise. Without any annotations.json the images are numbered 1, 2, ... in
the order given (each folder's files sorted by name). Images without an annotations.json given
together with images that have one are numbered above every id of those files.

examples:
  ocrloc predict --checkpoint runs/quickstart/checkpoints/best.pt --threshold 0 \\
      --images data/test_all10/images --out runs/quickstart/test_results.json
  ocrloc predict --checkpoint runs/quickstart/checkpoints/best.pt \\
      --images data/test_all10/images --out results.json --viz viz/
  ocrloc predict --exported runs/quickstart/model.onnx --images page.png --out results.json

`python tools/predict.py` takes the same arguments.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Optional, Sequence

from ocrloc.cli._common import check_output_file, fail, score_threshold, standalone_main
from ocrloc.constants import DEFAULT_MAX_PIXELS as MAX_PIXELS
from ocrloc.constants import DEFAULT_SCORE_THRESHOLD

def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The options of ``ocrloc predict``."""
    model = parser.add_mutually_exclusive_group(required=True)
    model.add_argument("--checkpoint",
                       help="a checkpoint written by ocrloc train (e.g. RUN/checkpoints/best.pt), read as data "
                            "only; a file written by ocrloc export is not one (a TorchScript file given here is "
                            "refused unloaded): run it with --exported")
    model.add_argument("--exported", metavar="FILE",
                       help="run a file written by ocrloc export, any format: TorchScript (.pt), torch.export "
                            "(.pt2) or ONNX (.onnx, needs onnxruntime), chosen by the suffix; a program, so only "
                            "a file you trust")
    parser.add_argument("--images", nargs="+", required=True,
                        help="image files and/or folders of images (ids: see 'image ids' above)")
    # ocrloc.engine.images.UNLISTED, spelled out: --help imports nothing beyond the CLI (tested equal).
    parser.add_argument("--unlisted", default="error", choices=("error", "skip", "new-ids"),
                        help="an image beside an annotations.json that does not list it: error (stop, naming "
                             "both), skip (leave it out, with a note), new-ids (number it above every id of the "
                             "annotation files, with a note) (default: %(default)s)")
    parser.add_argument("--out", required=True, help="COCO results JSON to write")
    parser.add_argument("--viz", default=None, metavar="OUT_DIR",
                        help="also save PNGs (grid.png and one per image) with predicted boxes, classes, points, "
                             "and the ground truth when an annotations.json describes the images (its point error "
                             "in px beside each matched detection)")
    parser.add_argument("--viz-count", type=int, default=16, help="images drawn with --viz, at least 1 "
                                                                   "(default: %(default)s)")
    parser.add_argument("--viz-score", type=float, default=DEFAULT_SCORE_THRESHOLD,
                        help="smallest score drawn with --viz (default: %(default)s)")
    parser.add_argument("--batch-size", type=int, default=32, help="images per forward pass (default: %(default)s)")
    parser.add_argument("--max-pixels", type=int, default=MAX_PIXELS, metavar="N",
                        help="refuse an image of more than N pixels (height x width), read from its header before "
                             "it is decoded: a guard against running out of memory (the quickstart model needs "
                             "~170 bytes per pixel on the CPU); 0: no limit (default: %(default)s, ~6300 x 6300)")
    # ocrloc.preprocess.POLARITIES, spelled out: --help imports nothing beyond the CLI (tested equal).
    parser.add_argument("--polarity", default="auto", choices=("auto", "light_on_dark", "dark_on_light"),
                        help="auto: each image read as dark_on_light when its median grey value is above 0.5 (a "
                             "light page), else as light_on_dark; light_on_dark: white ink on black, as the training "
                             "canvases; dark_on_light: black ink on white paper, inverted first (default: "
                             "%(default)s)")
    parser.add_argument("--threshold", default=DEFAULT_SCORE_THRESHOLD, metavar="T",
                        help="keep the detections scoring at least T, in [0, 1]; 0 keeps every one (for scoring "
                             "keypoint AP with ocrloc evaluate) (default: %(default)s, the score ocrloc evaluate "
                             "gives recall and precision at)")
    parser.add_argument("--device", default="auto", help="auto (CUDA if available, else CPU), cpu, cuda, cuda:N "
                                                         "(default: %(default)s)")


def run(args: argparse.Namespace) -> int:
    """Predict; return 0, or 2 for a missing or bad checkpoint or image."""
    from tqdm import tqdm

    from ocrloc.api import Predictor
    from ocrloc.data.coco import read_image_file
    from ocrloc.engine.images import images_and_ids
    from ocrloc.utils.io import write_json_atomic
    from ocrloc.visualize import draw_with_truth_beside, save_grid

    if args.batch_size < 1:
        return fail(f"--batch-size must be at least 1, got {args.batch_size}")
    try:
        threshold = score_threshold(args.threshold)
    except ValueError as err:
        return fail(err)
    if args.max_pixels < 0:
        return fail(f"--max-pixels must be >= 0 (0: no limit), got {args.max_pixels}")
    # Checked before anything runs: a count below 1 used to fail drawing, after the results were written.
    if args.viz and args.viz_count < 1:
        return fail(f"--viz-count must be at least 1 with --viz, got {args.viz_count} (leave out --viz to draw "
                    f"nothing)")
    try:
        check_output_file(args.out, "--out")  # before the images are read and predicted
        images, notes = images_and_ids(args.images, args.unlisted)
        if args.exported is not None:
            predictor = Predictor.from_exported(args.exported, device=args.device, max_pixels=args.max_pixels)
        else:
            predictor = Predictor(args.checkpoint, device=args.device, max_pixels=args.max_pixels)
        # Every file's header before any image is decoded: a missing, unreadable or too large file
        # stops here, in one line, not in the middle of the loop (and its progress bar).
        predictor.check_files([path for path, _ in images])
    except (FileNotFoundError, ValueError, ImportError) as err:  # ImportError: an .onnx file without onnxruntime
        return fail(err)
    for note in notes:
        print(f"note: {note}", file=sys.stderr)
    results, drawn, class_names, read_as = [], [], {}, {}
    for start in tqdm(range(0, len(images), args.batch_size), desc="predict", unit="batch"):
        chunk = images[start:start + args.batch_size]
        try:
            detections = predictor([path for path, _ in chunk], polarity=args.polarity, score_threshold=threshold,
                                   batch_size=args.batch_size)
        except (FileNotFoundError, ValueError, OSError) as err:
            return fail(err)
        for (path, image_id), det in zip(chunk, detections):
            read_as[det.polarity] = read_as.get(det.polarity, 0) + 1
            entries = det.to_coco(image_id)
            results += entries
            if args.viz and len(drawn) < args.viz_count:
                drawn.append((path, image_id, [e for e in entries if e["score"] >= args.viz_score]))
                class_names.update({e["category_id"]: n for e, n in zip(entries, det.class_names)})
    write_json_atomic(results, args.out)
    print(f"wrote {len(results)} detections scoring at least {threshold:g} on {len(images)} images to {args.out}")
    # How the pages were read: with auto, a light page (dark ink on paper) is inverted, and says so.
    kinds = ", ".join(f"{n} image{'s' if n != 1 else ''} read as {kind}" for kind, n in sorted(read_as.items()))
    inverted = " (inverted first)" if "dark_on_light" in read_as else ""
    print(f"polarity {args.polarity}: {kinds or 'no image'}{inverted}")
    if args.viz:
        viz_dir = Path(args.viz)
        panels = draw_with_truth_beside(drawn, class_names, read_image_file)
        for (path, _, _), panel in zip(drawn, panels):
            save_grid([panel], viz_dir / f"{path.stem}.png", nrow=1)
        save_grid(panels, viz_dir / "grid.png")
        print(f"drawings: {viz_dir}/grid.png and one PNG per image")
    return 0


def main(argv: Optional[Sequence[str]] = None) -> int:
    """``python tools/predict.py``: parse ``argv`` (``None``: ``sys.argv[1:]``) and predict."""
    return standalone_main(__doc__, add_arguments, run, argv)


if __name__ == "__main__":
    sys.exit(main())
