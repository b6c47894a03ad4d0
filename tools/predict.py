#!/usr/bin/env python
"""Run a trained checkpoint over images and write COCO results (SPEC section 6).

    python tools/predict.py --checkpoint runs/quickstart/checkpoints/best.pt \
        --images data/canvas128_all10_test/images --out results.json --viz viz/
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import torch
from tqdm import tqdm

from ocrloc.data.coco import read_grey_image
from ocrloc.engine.checkpoint import model_from_checkpoint
from ocrloc.engine.distributed import resolve_device
from ocrloc.engine.images import collect_images
from ocrloc.engine.predict import detections_to_results, pad_to_multiple
from ocrloc.utils.io import write_json_atomic
from ocrloc.visualize import draw_detections, save_grid


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--checkpoint", required=True)
    p.add_argument("--images", nargs="+", required=True, help="image files and/or folders of images")
    p.add_argument("--out", required=True, help="COCO results JSON to write")
    p.add_argument("--viz", default=None, metavar="OUT_DIR", help="also save PNGs with predicted boxes, classes, points")
    p.add_argument("--viz-count", type=int, default=16, help="images drawn with --viz")
    p.add_argument("--viz-score", type=float, default=0.3, help="smallest score drawn with --viz")
    p.add_argument("--batch-size", type=int, default=32)
    p.add_argument("--device", default="auto")
    args = p.parse_args(argv)
    try:
        device = resolve_device(args.device)
        model, postprocess, config, _ = model_from_checkpoint(args.checkpoint, map_location=device)
        images = collect_images(args.images)
    except (FileNotFoundError, ValueError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    results, panels = [], []
    with torch.no_grad():
        for start in tqdm(range(0, len(images), args.batch_size), desc="predict", unit="batch"):
            chunk = images[start:start + args.batch_size]
            arrays = [read_grey_image(path) for path, _ in chunk]
            # Images of different sizes go one by one; same-size images as one batch.
            groups = [arrays] if len({a.shape for a in arrays}) == 1 else [[a] for a in arrays]
            detections = []
            for group in groups:
                batch = torch.stack([torch.from_numpy(a).float().div(255).unsqueeze(0) for a in group]).to(device)
                detections += postprocess(model(pad_to_multiple(batch)))
            results += detections_to_results(detections, [image_id for _, image_id in chunk])
            if args.viz:
                for array, det in zip(arrays, detections):
                    if len(panels) < args.viz_count:
                        keep = det["scores"] >= args.viz_score
                        panels.append(draw_detections(array, det["boxes"][keep].cpu(), det["labels"][keep].cpu(),
                                                      det["keypoints"][keep].cpu(), det["scores"][keep].cpu()))
    write_json_atomic(results, args.out)
    print(f"wrote {len(results)} detections on {len(images)} images to {args.out}")
    if args.viz:
        viz_dir = Path(args.viz)
        for k, panel in enumerate(panels):
            save_grid([panel], viz_dir / f"{images[k][0].stem}.png", nrow=1)
        save_grid(panels, viz_dir / "grid.png")
        print(f"drawings: {viz_dir}/grid.png and one PNG per image")
    return 0


if __name__ == "__main__":
    sys.exit(main())
