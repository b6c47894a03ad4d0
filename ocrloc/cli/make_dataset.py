"""Write a split of generated canvases (MNIST digits or printed glyphs) as a COCO keypoints folder
(docs/task.md, "Benchmark canvases" and "Ground-truth and results files"; the glyphs: docs/glyphs.md).

examples:
  ocrloc make-dataset --preset canvas128 --rule all10 --split test \\
      --count 1000 --seed 1000 --out data/test_all10
  ocrloc make-dataset --preset canvas128 --rule all10 --split test \\
      --count 1000 --seed 0 --out data/canvas128_all10_test --preview preview.png
  ocrloc make-dataset --rule my_rule.yaml --split val --count 500 --out data/val_my_rule
  ocrloc make-dataset --preset glyphs128 --split test --count 1000 --seed 1000 --out data/test_glyphs128 \\
      --preview glyphs_preview.png    # printed characters, five named points each; needs no MNIST

`python tools/make_dataset.py` takes the same arguments.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path
from typing import Optional, Sequence

from ocrloc.cli._common import fail, standalone_main
from ocrloc.data.catalog import PRESET_NAMES, RULE_NAMES, SPLIT_NAMES


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The options of ``ocrloc make-dataset``."""
    parser.add_argument("--preset", default="canvas128", choices=sorted(PRESET_NAMES),
                        help="canvas recipe: canvas128 and single compose MNIST digits (the --rule picks each digit's point); "
                             "glyphs128 composes printed characters (62 classes, five named points each, docs/glyphs.md) "
                             "(default: %(default)s)")
    # No default in argparse: a --rule given with glyphs128 must be told apart from none (run() says all10).
    parser.add_argument("--rule", default=None,
                        help=f"a built-in rule ({', '.join(RULE_NAMES)}) or a YAML / JSON rule file mapping classes to "
                             "point names (docs/data.md, 'Rules'; default: all10); the MNIST presets only: "
                             "glyphs128 annotates all five named points of every glyph and refuses a --rule")
    parser.add_argument("--split", default="test", choices=SPLIT_NAMES,
                        help="the MNIST presets: which (disjoint) MNIST digits are drawn; glyphs128: which random "
                             "stream (docs/glyphs.md) (default: %(default)s)")
    parser.add_argument("--count", type=int, required=True, help="number of canvases")
    parser.add_argument("--seed", type=int, default=0,
                        help="split seed; canvas i depends only on (preset, rule, split, seed, i) "
                             "(default: %(default)s)")
    parser.add_argument("--out", required=True, help="output folder: images/*.png and annotations.json")
    parser.add_argument("--data-root", default=None,
                        help="folder holding MNIST/raw/, for the MNIST presets (default: $OCRLOC_DATA, ./data, "
                             "../shared/data; `ocrloc download-mnist` fetches it)")
    parser.add_argument("--preview", default=None, metavar="FILE.png",
                        help="also save a grid of the first canvases with boxes, classes and target points (several "
                             "points per class: a marker and colour each, named in a legend)")
    parser.add_argument("--preview-count", type=int, default=16,
                        help="canvases drawn with --preview (default: %(default)s)")
    parser.add_argument("--augment", action="store_true",
                        help="digit- and canvas-level augmentation (train split only)")
    parser.add_argument("--no-images", action="store_true", help="write annotations.json only, no PNGs")
    parser.add_argument("--overwrite", action="store_true", help="replace an existing output folder")


def _nearest_existing(path: Path) -> Path:
    path = path.absolute()
    while not path.exists() and path != path.parent:
        path = path.parent
    return path


def _check_can_create(path: Path, flag: str) -> None:
    """Refuse, before any canvas is made, a ``path`` that could not be created: the split takes
    minutes, and failing after it (or half-way) wastes them or leaves a half-written output."""
    home = _nearest_existing(path.parent)
    if not home.is_dir():
        raise ValueError(f"{flag} {path}: {home} is not a folder")
    if not os.access(home, os.W_OK | os.X_OK):
        raise ValueError(f"{flag} {path}: {home} is not writable")


def _check_arguments(args: argparse.Namespace) -> None:
    """The checks that need no MNIST and write nothing (ValueError / FileExistsError naming the flag)."""
    if args.count < 1:
        raise ValueError(f"--count must be >= 1, got {args.count}")
    if args.seed < 0:  # numpy's seed sequence takes no negative entropy
        raise ValueError(f"--seed must be >= 0, got {args.seed}")
    from ocrloc.data.splits import check_split_output

    out = Path(args.out)
    check_split_output(out, args.overwrite)
    _check_can_create(out, "--out")
    if args.preview:
        if args.preview_count < 1:
            raise ValueError(f"--preview-count must be >= 1, got {args.preview_count}")
        preview = Path(args.preview)
        if preview.is_dir():
            raise ValueError(f"--preview {preview} is a folder; give a file such as {preview / 'preview.png'}")
        _check_can_create(preview, "--preview")


def run(args: argparse.Namespace) -> int:
    """Write the split; return 0, or 2 for a bad rule, an existing folder, an unwritable --out or
    --preview, or missing MNIST (all checked before any canvas is made, so nothing is half-written)."""
    from ocrloc.data.augment_config import CanvasAugmentConfig, DigitAugmentConfig
    from ocrloc.data.build import canvas_generator
    from ocrloc.data.catalog import GLYPH_PRESETS
    from ocrloc.data.data_config import DataConfig
    from ocrloc.data.rules import get_rule
    from ocrloc.data.splits import write_split
    from ocrloc.visualize import save_canvas_preview

    try:
        _check_arguments(args)
        if args.preset in GLYPH_PRESETS and args.rule is not None:
            # A glyph canvas labels every named point of each glyph: a rule would be dropped without a word.
            raise ValueError(f"--rule {args.rule}: --preset {args.preset} takes no rule (its annotations carry all "
                             f"five named points of every glyph; the rules pick one point per digit for the MNIST "
                             f"presets); leave out --rule")
        rule = "all10" if args.rule is None else args.rule
        get_rule(rule)  # an unknown rule or a bad rule file fails before any MNIST is read
        data = DataConfig(preset=args.preset, rule=rule, data_root=args.data_root,
                          digit_augment=DigitAugmentConfig(enabled=args.augment),
                          canvas_augment=CanvasAugmentConfig(enabled=args.augment))
        generator = canvas_generator(data, args.split, args.seed, augment=args.augment)
        start = time.perf_counter()
        coco = write_split(generator, args.count, args.out, write_images=not args.no_images, overwrite=args.overwrite)
        elapsed = time.perf_counter() - start
    except (OSError, ValueError) as err:  # FileNotFoundError (no MNIST), FileExistsError, an unwritable folder
        return fail(err)
    print(f"wrote {len(coco['images'])} canvases, {len(coco['annotations'])} characters to {args.out} "
          f"in {elapsed:.1f} s ({len(coco['images']) / elapsed:.0f} canvases/s)")
    if args.preview:
        try:
            save_canvas_preview(generator, args.preview, count=args.preview_count)
        except OSError as err:  # checked above; a disk that fills up in between still gets one line
            return fail(f"--preview {args.preview}: cannot write it ({err.strerror or err}); the split in "
                        f"{args.out} is complete")
        print(f"preview: {args.preview}")
    return 0


def main(argv: Optional[Sequence[str]] = None) -> int:
    """``python tools/make_dataset.py``: parse ``argv`` (``None``: ``sys.argv[1:]``) and write the split."""
    return standalone_main(__doc__, add_arguments, run, argv)


if __name__ == "__main__":
    sys.exit(main())
