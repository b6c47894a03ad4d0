#!/usr/bin/env python
"""Export a checkpoint to one TorchScript file (SPEC section 8).

    python tools/export.py --checkpoint runs/quickstart/checkpoints/best.pt --out model.pt

Load it anywhere with torch and torchvision only:

    import torch, torchvision  # torchvision registers the nms operator the model uses
    model = torch.jit.load("model.pt")
    detections = model(images)  # images: float [B, 1, H, W] in [0, 1], H, W multiples of 32, >= 64
"""

from __future__ import annotations

import argparse
import sys

from ocrloc.engine.checkpoint import model_from_checkpoint
from ocrloc.export import export_torchscript


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--checkpoint", required=True, help="a checkpoint written by tools/train.py")
    p.add_argument("--out", required=True, help="TorchScript file to write")
    args = p.parse_args(argv)
    try:
        model, postprocess, config, state = model_from_checkpoint(args.checkpoint)
    except (FileNotFoundError, ValueError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    meta = state.get("meta", {})
    export_torchscript(model, postprocess, meta.get("rule", config.data.rule), meta.get("train_size", [128, 128]), args.out)
    print(f"wrote {args.out} (rule {meta.get('rule', config.data.rule)}, trained on {meta.get('train_size')} canvases)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
