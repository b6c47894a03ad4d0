"""Option choices and defaults of the command line, as plain constants.

The modules they come from import numpy, cv2, albumentations or pycocotools; copying the
values here keeps ``ocrloc ... --help`` fast. ``tests/test_cli.py`` checks that each constant
still equals its source, so they cannot drift apart silently. A constant whose source is already light
(:mod:`ocrloc.constants`, standard library only) is imported, not copied.
"""

from __future__ import annotations

from ocrloc.constants import DEFAULT_SCORE_THRESHOLD  # --threshold of evaluate and report, predict --viz-score
from ocrloc.constants import DEFAULT_MAX_PIXELS as MAX_PIXELS  # predict --max-pixels

# sorted(ocrloc.data.canvas.PRESETS)
PRESET_NAMES: tuple[str, ...] = ("canvas128", "glyphs128", "single")

# sorted(ocrloc.data.rules.RULES): the built-in rules (docs/task.md, "Rules"); any other rule is a
# YAML / JSON rule file.
RULE_NAMES: tuple[str, ...] = ("all10", "seed37")

# tuple(ocrloc.data.mnist.SPLITS), in that order.
SPLIT_NAMES: tuple[str, ...] = ("train", "val", "test")

# ocrloc.evaluation.DEFAULT_SIGMA: OKS sigma of every keypoint unless --sigma says otherwise (docs/task.md, "Scores").
DEFAULT_SIGMA: float = 0.05
