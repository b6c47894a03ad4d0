"""Printed glyphs: the second built-in data source, a pure canvas generator (``docs/glyphs.md``).

Each canvas holds 1 to 6 characters of the 62 classes ``0-9``, ``A-Z``, ``a-z``, printed with
one of the TrueType fonts that matplotlib ships (:data:`GLYPH_FONTS`; no operating-system
font folder is ever read, nothing is downloaded), at a random cap height, a small random
rotation and a random position. It follows the MNIST canvases' conventions
(:mod:`ocrloc.data.canvas`): uint8 canvases, white ink on black, a pixel is ink when its value
is >= 128, ``bbox`` is the ink box in whole pixels (COCO ``[x, y, w, h]``), two ink boxes are
at least ``min_gap`` pixels apart, and canvas ``i`` depends only on (preset, split, seed, i).

Every glyph carries every point of :data:`GLYPH_POINT_NAMES`:

* ``topleft`` and ``center``: the ink box's top-left corner and center, exactly as ``docs/task.md``,
  "Named points", defines them for digits (computed from the glyph's ink in the final uint8 canvas);
* ``baseline_left``, ``baseline``, ``baseline_right``: typographic points from the font's
  metrics, not from the ink: the pen position where the glyph was drawn (on the baseline),
  the point half the advance width further along the baseline, and the pen position after
  the glyph (one advance further). They are rotated with the glyph. Descenders (g, p, q, y, j)
  hang below the baseline, so these points sit inside the ink's height for them and at its
  bottom for most other classes: a genuinely class-dependent point.

Rendering: the glyph is drawn upright with PIL (FreeType, basic layout) at
:data:`SUPERSAMPLE` times its size, rotated there with ``cv2.warpAffine`` (bilinear), then
reduced to canvas pixels with ``cv2.resize(INTER_AREA)`` (an exact block mean), so its
edges are anti-aliased like a direct rendering. The canvas is the pixel-wise maximum of the
glyph images; with ink boxes apart, the ink of the final canvas inside a glyph's box is that
glyph's own ink, so points recomputed from a written PNG equal the annotated ones.
"""

from __future__ import annotations

import math
import os
import zlib
from dataclasses import dataclass, field
from typing import Dict, List, Sequence, Tuple

import cv2
import numpy as np

from ocrloc.data.catalog import (GLYPH_CLASSES, GLYPH_FONTS, GLYPH_POINT_NAMES, GLYPH_PRESETS, SPLIT_NAMES, GlyphPreset,
                                 get_glyph_preset)
from ocrloc.data.points import INK_THRESHOLD, boxes_gap, ink_box
from ocrloc.data.target import Target, detection_target
from ocrloc.data.task import Task

__all__ = [
    "GLYPH_CLASSES",
    "GLYPH_POINT_NAMES",
    "GLYPH_FONTS",
    "GLYPH_SPLITS",
    "DESCENDER_CLASSES",
    "SUPERSAMPLE",
    "INK_THRESHOLD",
    "GlyphPreset",
    "GLYPH_PRESETS",
    "get_glyph_preset",
    "GlyphInstance",
    "GlyphCanvas",
    "GlyphCanvasGenerator",
    "RenderedGlyph",
    "font_dir",
    "font_path",
    "cap_height_ratio",
    "check_fonts",
    "render_glyph",
]

_CLASS_INDEX: Dict[str, int] = {c: i for i, c in enumerate(GLYPH_CLASSES)}

# Classes whose ink goes below the baseline in every font of GLYPH_FONTS (Q by its tail). Some
# fonts also let J, f, z or 4 descend; those are not listed here (docs/glyphs.md).
DESCENDER_CLASSES: Tuple[str, ...] = ("Q", "g", "j", "p", "q", "y")

GLYPH_SPLITS: Tuple[str, ...] = SPLIT_NAMES
SUPERSAMPLE = 4  # glyphs are drawn and rotated at 4x, then area-reduced to canvas pixels
_CAP_REFERENCE_SIZE = 400  # font size at which each font's cap height ratio is measured
_MAX_GLYPH_DRAWS = 50  # fresh (class, font, size, angle) draws before giving up on one glyph
_MAX_POSITIONS = 50  # positions tried for one rendered glyph


@dataclass
class GlyphInstance:
    """One printed glyph.

    Attributes:
        label: class index, the position of ``char`` in :data:`GLYPH_CLASSES`.
        char: the character, which is also the class name.
        bbox: ink box, COCO ``[x, y, w, h]`` in canvas pixels (integers).
        points: every name of :data:`GLYPH_POINT_NAMES` -> ``(x, y)`` in canvas pixels
            (COCO continuous coordinates, Python floats).
        font: font file name (one of the preset's ``fonts``).
        size: font size in canvas pixels (the em size; drawn at ``SUPERSAMPLE`` times it).
        angle: rotation in degrees, counter-clockwise as seen on the image.
    """

    label: int
    char: str
    bbox: Tuple[int, int, int, int]
    points: Dict[str, Tuple[float, float]]
    font: str
    size: int
    angle: float


@dataclass
class GlyphCanvas:
    """A generated glyph canvas: ``image`` is uint8 ``[H, W]``; ``glyphs`` in drawing order."""

    image: np.ndarray
    glyphs: List[GlyphInstance] = field(default_factory=list)
    index: int = 0


@dataclass
class RenderedGlyph:
    """One glyph rendered alone on its own small uint8 image (see :func:`render_glyph`).

    ``ink_bbox`` is the ink box in that image; ``metric_points`` are the three baseline points
    in that image's continuous coordinates.
    """

    image: np.ndarray
    ink_bbox: Tuple[int, int, int, int]
    metric_points: Dict[str, Tuple[float, float]]


# ----------------------------------------------------------------------------- fonts


def font_dir() -> str:
    """matplotlib's bundled TrueType folder, ``<matplotlib.get_data_path()>/fonts/ttf``.

    Only ``matplotlib`` itself is imported (never ``matplotlib.font_manager``, which would
    scan the system's font folders).
    """
    try:
        import matplotlib
    except ImportError as exc:
        raise ImportError(
            "the printed-glyph data source needs the fonts that the 'matplotlib' package ships; "
            "install it with: pip install matplotlib"
        ) from exc
    return os.path.join(matplotlib.get_data_path(), "fonts", "ttf")


def font_path(name: str) -> str:
    """Full path of the bundled font file ``name``; FileNotFoundError when matplotlib lacks it."""
    if os.path.basename(name) != name:
        raise ValueError(f"fonts are named by file name inside matplotlib's font folder, got {name!r}")
    path = os.path.join(font_dir(), name)
    if not os.path.isfile(path):
        raise FileNotFoundError(f"font {name!r} is not in matplotlib's bundled fonts ({font_dir()})")
    return path


_FONT_CACHE: Dict[Tuple[str, int], object] = {}
_CAP_RATIO_CACHE: Dict[str, float] = {}


def _load_font(name: str, size: int):
    """The PIL font ``name`` at pixel size ``size``, loaded once per process (basic layout, so
    the rendering does not depend on whether libraqm is installed)."""
    key = (name, int(size))
    font = _FONT_CACHE.get(key)
    if font is None:
        from PIL import ImageFont

        font = ImageFont.truetype(font_path(name), int(size), layout_engine=ImageFont.Layout.BASIC)
        _FONT_CACHE[key] = font
    return font


def _mask_array(font, text: str) -> np.ndarray:
    mask = font.getmask(text)
    width, height = mask.size
    return np.asarray(mask, dtype=np.uint8).reshape(height, width) if width and height else np.zeros((0, 0), np.uint8)


def cap_height_ratio(name: str) -> float:
    """The font's ink height of ``H`` divided by its font size (measured once at a large size)."""
    ratio = _CAP_RATIO_CACHE.get(name)
    if ratio is None:
        ink = _mask_array(_load_font(name, _CAP_REFERENCE_SIZE), "H") >= INK_THRESHOLD
        rows = np.flatnonzero(ink.any(axis=1))
        if rows.size == 0:
            raise ValueError(f"font {name!r} draws no ink for 'H'")
        ratio = float(rows[-1] - rows[0] + 1) / _CAP_REFERENCE_SIZE
        _CAP_RATIO_CACHE[name] = ratio
    return ratio


def check_fonts(fonts: Sequence[str] = GLYPH_FONTS, size: int = 32) -> Dict[str, List[str]]:
    """Problems of each font with the 62 classes at ``size`` px: characters missing from the
    font's cmap, drawing no ink, or drawn identically to another character.

    Returns ``{font: [problem, ...]}`` for fonts with problems only (empty dict: all good).
    """
    from fontTools.ttLib import TTFont  # a dependency of matplotlib

    problems: Dict[str, List[str]] = {}
    for name in fonts:
        issues: List[str] = []
        with TTFont(font_path(name), lazy=True) as tt:
            cmap = tt.getBestCmap() or {}
        missing = [c for c in GLYPH_CLASSES if ord(c) not in cmap]
        if missing:
            issues.append("not in cmap: " + "".join(missing))
        font = _load_font(name, size)
        seen: Dict[bytes, str] = {}
        for c in GLYPH_CLASSES:
            mask = _mask_array(font, c)
            if not (mask >= INK_THRESHOLD).any():
                issues.append(f"no ink: {c}")
            key = repr(mask.shape).encode() + mask.tobytes()
            if key in seen:
                issues.append(f"same drawing: {seen[key]} {c}")
            seen.setdefault(key, c)
        if issues:
            problems[name] = issues
    return problems


# ----------------------------------------------------------------------------- rendering


def _transform(matrix: np.ndarray, x: float, y: float) -> Tuple[float, float]:
    """Apply an OpenCV affine matrix (pixel-center coordinates) to a continuous point."""
    u = matrix[0, 0] * (x - 0.5) + matrix[0, 1] * (y - 0.5) + matrix[0, 2] + 0.5
    v = matrix[1, 0] * (x - 0.5) + matrix[1, 1] * (y - 0.5) + matrix[1, 2] + 0.5
    return float(u), float(v)


def render_glyph(char: str, font: str, size: int, angle: float = 0.0, ink_value: int = 255,
                 jitter: Tuple[int, int] = (0, 0)) -> RenderedGlyph:
    """Render one glyph alone, exactly as the generator does.

    The glyph is drawn upright at ``SUPERSAMPLE * size`` px with its pen at an integer point of
    the supersampled grid (shifted by ``jitter``, each in ``0 .. SUPERSAMPLE - 1``, for
    sub-pixel phase), rotated by ``angle`` degrees (counter-clockwise on the image) about the
    middle of the square image, and area-reduced by ``SUPERSAMPLE``.

    Raises:
        ValueError: if the rendered glyph has no ink (too small a size).
    """
    from PIL import Image, ImageDraw

    k = SUPERSAMPLE
    pil_font = _load_font(font, k * int(size))
    left, top, right, bottom = pil_font.getbbox(char, anchor="ls")
    advance = float(pil_font.getlength(char))
    # Everything that can hold ink or a point, relative to the pen (x right, y down).
    x_lo, x_hi = min(left, 0), max(right, advance)
    y_lo, y_hi = min(top, 0), max(bottom, 0)
    half = math.hypot(x_hi - x_lo, y_hi - y_lo) / 2.0 + 2 * k  # room for any rotation
    side = int(math.ceil(2 * half / k)) * k  # a multiple of k
    centre = side // 2
    pen_x = int(round(centre - (x_lo + x_hi) / 2.0)) + int(jitter[0])
    pen_y = int(round(centre - (y_lo + y_hi) / 2.0)) + int(jitter[1])

    big = Image.new("L", (side, side), 0)
    ImageDraw.Draw(big).text((pen_x, pen_y), char, fill=int(ink_value), font=pil_font, anchor="ls")
    big_arr = np.asarray(big)
    # Rotation about the continuous point (centre, centre): pixel-center coordinates centre - 0.5.
    matrix = cv2.getRotationMatrix2D((centre - 0.5, centre - 0.5), float(angle), 1.0)
    if angle:
        big_arr = cv2.warpAffine(big_arr, matrix, (side, side), flags=cv2.INTER_LINEAR,
                                 borderMode=cv2.BORDER_CONSTANT, borderValue=0)
    image = cv2.resize(big_arr, (side // k, side // k), interpolation=cv2.INTER_AREA)
    ink = image >= INK_THRESHOLD
    if not ink.any():
        raise ValueError(f"{char!r} in {font} at size {size} draws no ink")
    metric = {}
    for name, along in (("baseline_left", 0.0), ("baseline", advance / 2.0), ("baseline_right", advance)):
        u, v = _transform(matrix, pen_x + along, pen_y)
        metric[name] = (u / k, v / k)
    return RenderedGlyph(image=image, ink_bbox=ink_box(ink), metric_points=metric)


# ----------------------------------------------------------------------------- generator


def _stable_id(name: str) -> int:
    # Python's hash() of a str changes per process; crc32 does not (as in ocrloc.data.canvas).
    return zlib.crc32(name.encode("utf-8"))


class GlyphCanvasGenerator:
    """Generates glyph canvas ``i`` of (preset, split, seed) on demand.

    Args:
        preset: a :class:`GlyphPreset` or its name (``glyphs128``).
        split: ``train``, ``val`` or ``test``. The splits share fonts, sizes and angles and
            differ only by their random streams (``docs/glyphs.md``).
        seed: split seed.
    """

    def __init__(self, preset: GlyphPreset | str = "glyphs128", split: str = "train", seed: int = 0) -> None:
        self.preset = get_glyph_preset(preset) if isinstance(preset, str) else preset
        if split not in GLYPH_SPLITS:
            raise ValueError(f"unknown split {split!r}; expected one of {', '.join(GLYPH_SPLITS)}")
        p = self.preset
        if not p.fonts:
            raise ValueError(f"glyph preset {p.name!r} has no fonts")
        unknown = [c for c in p.chars if c not in _CLASS_INDEX]
        if unknown or not p.chars:
            raise ValueError(f"glyph preset {p.name!r}: characters {unknown} are not glyph classes")
        if not (1 <= p.glyphs_per_canvas[0] <= p.glyphs_per_canvas[1]):
            raise ValueError(f"glyph preset {p.name!r}: bad glyphs_per_canvas {p.glyphs_per_canvas}")
        if not (1 <= p.cap_height[0] <= p.cap_height[1] <= min(p.height, p.width) // 2):
            raise ValueError(f"glyph preset {p.name!r}: cap heights {p.cap_height} do not fit the canvas")
        if not (INK_THRESHOLD <= p.ink_value[0] <= p.ink_value[1] <= 255):
            raise ValueError(f"glyph preset {p.name!r}: ink_value {p.ink_value} must lie in 128..255")
        if p.max_angle < 0:
            raise ValueError(f"glyph preset {p.name!r}: max_angle must be >= 0")
        for name in p.fonts:
            font_path(name)  # a clear error now rather than at the first canvas
        self.split = split
        self.task = glyph_task()  # what its canvases hold: 62 characters, five keypoints each
        self.seed = int(seed)
        self._labels = [_CLASS_INDEX[c] for c in p.chars]
        self._stream_key = [self.seed, _stable_id(p.name), _stable_id(split)]

    def rng(self, index: int) -> np.random.Generator:
        """The random stream of canvas ``index``: a function of (preset, split, seed, index) only."""
        if index < 0:
            raise IndexError(f"canvas index must be >= 0, got {index}")
        return np.random.default_rng(self._stream_key + [int(index)])

    def __call__(self, index: int) -> GlyphCanvas:
        return self.generate(index)

    def generate(self, index: int) -> GlyphCanvas:
        """Canvas ``index``; calling it twice gives identical canvases."""
        rng = self.rng(index)
        p = self.preset
        image = np.zeros((p.height, p.width), dtype=np.uint8)
        count = int(rng.integers(p.glyphs_per_canvas[0], p.glyphs_per_canvas[1] + 1))
        glyphs: List[GlyphInstance] = []
        for _ in range(count):
            glyphs.append(self._place_glyph(rng, image, glyphs, index))
        return GlyphCanvas(image=image, glyphs=glyphs, index=index)

    # -- the data source protocol (ocrloc.data.source) -------------------------------------------------

    rule = None  # every glyph carries every named point: no rule picks one

    @property
    def image_size(self) -> Tuple[int, int]:
        return self.preset.height, self.preset.width

    def sample(self, index: int) -> GlyphCanvas:
        """Canvas ``index`` (:meth:`generate`)."""
        return self.generate(index)

    def target(self, canvas: GlyphCanvas, image_id: int) -> Target:
        """The training target of ``canvas``: every named point of each glyph, as keypoints."""
        return detection_target([g.bbox for g in canvas.glyphs], [g.label for g in canvas.glyphs],
                                [[v for name in GLYPH_POINT_NAMES for v in (*g.points[name], 2.0)]
                                 for g in canvas.glyphs], image_id)

    def annotations(self, canvas: GlyphCanvas, image_id: int, first_annotation_id: int) -> List[Dict[str, object]]:
        return glyph_annotations(canvas, image_id, first_annotation_id)

    def categories(self) -> List[Dict[str, object]]:
        return self.task.categories("character")

    def info(self) -> Dict[str, object]:
        return {"description": "ocrloc printed-glyph canvases", "preset": self.preset.name, "rule": None,
                "split": self.split, "seed": self.seed}

    def _draw(self, rng: np.random.Generator) -> Tuple[int, str, int, float, int, Tuple[int, int]]:
        p = self.preset
        label = self._labels[int(rng.integers(len(self._labels)))]
        font = p.fonts[int(rng.integers(len(p.fonts)))]
        cap = int(rng.integers(p.cap_height[0], p.cap_height[1] + 1))
        size = max(1, int(round(cap / cap_height_ratio(font))))
        angle = float(rng.uniform(-p.max_angle, p.max_angle)) if p.max_angle > 0 else 0.0
        ink_value = int(rng.integers(p.ink_value[0], p.ink_value[1] + 1))
        jitter = (int(rng.integers(SUPERSAMPLE)), int(rng.integers(SUPERSAMPLE)))
        return label, font, size, angle, ink_value, jitter

    def _place_glyph(self, rng: np.random.Generator, image: np.ndarray, placed: List[GlyphInstance],
                     index: int) -> GlyphInstance:
        p = self.preset
        for _ in range(_MAX_GLYPH_DRAWS):
            label, font, size, angle, ink_value, jitter = self._draw(rng)
            char = GLYPH_CLASSES[label]
            try:
                glyph = render_glyph(char, font, size, angle, ink_value, jitter)
            except ValueError:  # no ink at this size: draw another glyph
                continue
            ix, iy, iw, ih = glyph.ink_bbox
            if iw > p.width or ih > p.height:
                continue
            for _ in range(_MAX_POSITIONS):
                bx = int(rng.integers(0, p.width - iw + 1))
                by = int(rng.integers(0, p.height - ih + 1))
                box = (bx, by, iw, ih)
                if not all(boxes_gap(box, other.bbox) >= p.min_gap for other in placed):
                    continue
                x0, y0 = bx - ix, by - iy  # where the glyph image's top-left pixel goes
                metric = {name: (x + x0, y + y0) for name, (x, y) in glyph.metric_points.items()}
                if not all(0.0 <= x <= p.width and 0.0 <= y <= p.height for x, y in metric.values()):
                    continue
                self._paste(image, glyph.image, x0, y0)
                points = {
                    "topleft": (float(bx), float(by)),
                    "center": (bx + iw / 2.0, by + ih / 2.0),
                    **metric,
                }
                return GlyphInstance(
                    label=label,
                    char=char,
                    bbox=box,
                    points={name: points[name] for name in GLYPH_POINT_NAMES},
                    font=font,
                    size=size,
                    angle=angle,
                )
        raise RuntimeError(
            f"could not place glyph {len(placed) + 1} on canvas {index} of glyph preset {p.name!r} "
            f"after {_MAX_GLYPH_DRAWS} draws: the preset packs too many glyphs for its canvas"
        )

    @staticmethod
    def _paste(image: np.ndarray, glyph: np.ndarray, x0: int, y0: int) -> None:
        """Pixel-wise maximum of ``glyph`` into ``image`` at (x0, y0), clipped to the canvas
        (only the glyph's faint rim, never its ink, can fall outside)."""
        h, w = glyph.shape
        H, W = image.shape
        cx0, cy0 = max(x0, 0), max(y0, 0)
        cx1, cy1 = min(x0 + w, W), min(y0 + h, H)
        region = image[cy0:cy1, cx0:cx1]
        np.maximum(region, glyph[cy0 - y0:cy1 - y0, cx0 - x0:cx1 - x0], out=region)


# -- the glyphs as a task and as COCO data ---------------------------------------------------------


def glyph_task() -> Task:
    """The printed glyphs' task: 62 classes named by their character, category id = the
    character's Unicode code point (``0`` is 48, ``A`` 65, ``a`` 97: gapped ids, as a user's COCO
    file may have them), and the :data:`GLYPH_POINT_NAMES` keypoints each."""
    return Task(tuple(ord(c) for c in GLYPH_CLASSES), tuple(GLYPH_CLASSES), (GLYPH_POINT_NAMES,) * len(GLYPH_CLASSES))


def glyph_annotations(canvas: GlyphCanvas, image_id: int, first_annotation_id: int) -> List[Dict[str, object]]:
    """COCO annotations of one glyph canvas: every named point as a keypoint (visibility 2)."""
    annotations: List[Dict[str, object]] = []
    for k, glyph in enumerate(canvas.glyphs):
        keypoints: List[float] = []
        for name in GLYPH_POINT_NAMES:
            keypoints += [float(glyph.points[name][0]), float(glyph.points[name][1]), 2]
        w, h = glyph.bbox[2], glyph.bbox[3]
        annotations.append({
            "id": first_annotation_id + k, "image_id": image_id, "category_id": ord(glyph.char),
            "bbox": [float(v) for v in glyph.bbox], "area": float(w * h), "keypoints": keypoints,
            "num_keypoints": len(GLYPH_POINT_NAMES), "iscrowd": 0, "font": glyph.font, "font_size": glyph.size,
            "angle": glyph.angle,
        })
    return annotations
