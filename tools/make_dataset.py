#!/usr/bin/env python
"""Write a split of MNIST canvases as a COCO keypoints folder (SPEC sections 5 and 6).

    python tools/make_dataset.py --preset canvas128 --rule all10 --split test \
        --count 1000 --seed 0 --out data/canvas128_all10_test --preview preview.png
"""

from __future__ import annotations

import argparse
import sys
import time

from ocrloc.data.augment import CanvasAugmentConfig, DigitAugmentConfig
from ocrloc.data.canvas import PRESETS, CanvasGenerator
from ocrloc.data.coco import write_split
from ocrloc.data.mnist import SPLITS, MnistNotFoundError, load_digit_pool
from ocrloc.data.rules import RULES, get_rule
from ocrloc.visualize import save_canvas_preview


def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--preset", default="canvas128", choices=sorted(PRESETS))
    p.add_argument("--rule", default="all10",
                   help=f"a SPEC rule ({', '.join(sorted(RULES))}) or a YAML / JSON rule file mapping classes to "
                        "point names (docs/data.md, 'Rules')")
    p.add_argument("--split", default="test", choices=list(SPLITS))
    p.add_argument("--count", type=int, required=True, help="number of canvases")
    p.add_argument("--seed", type=int, default=0, help="split seed; canvas i depends only on (preset, rule, split, seed, i)")
    p.add_argument("--out", required=True, help="output folder: images/*.png and annotations.json")
    p.add_argument("--data-root", default=None,
                   help="folder holding MNIST/raw/ (default: $OCRLOC_DATA, ./data, ../shared/data)")
    p.add_argument("--preview", default=None, metavar="FILE.png",
                   help="also save a grid of the first canvases with boxes, classes and target points")
    p.add_argument("--preview-count", type=int, default=16)
    p.add_argument("--augment", action="store_true", help="digit- and canvas-level augmentation (train split only)")
    p.add_argument("--no-images", action="store_true", help="write annotations.json only, no PNGs")
    p.add_argument("--overwrite", action="store_true", help="replace an existing output folder")
    return p.parse_args(argv)


def main(argv=None) -> int:
    args = parse_args(argv)
    try:
        get_rule(args.rule)  # an unknown rule or a bad rule file fails before any MNIST is read
        pool = load_digit_pool(args.split, args.data_root)
        generator = CanvasGenerator(
            args.preset, args.rule, args.split, args.seed, pool,
            digit_augment=DigitAugmentConfig(enabled=args.augment),
            canvas_augment=CanvasAugmentConfig(enabled=args.augment),
        )
        start = time.perf_counter()
        coco = write_split(generator, args.count, args.out, write_images=not args.no_images, overwrite=args.overwrite)
        elapsed = time.perf_counter() - start
    except (FileNotFoundError, FileExistsError, ValueError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    print(f"wrote {len(coco['images'])} canvases, {len(coco['annotations'])} digits to {args.out} "
          f"in {elapsed:.1f} s ({len(coco['images']) / elapsed:.0f} canvases/s)")
    if args.preview:
        save_canvas_preview(generator, args.preview, count=args.preview_count)
        print(f"preview: {args.preview}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
