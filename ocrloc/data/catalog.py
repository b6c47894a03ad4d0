"""The built-in data by name: canvas presets, rules, splits, the printed glyphs' classes and points.

What a model builder, a checkpoint reader and the command line's ``--help`` need to know about the
built-in data, without the data itself: this module imports the standard library only (``typing``, which
``--help`` loads anyway: the presets are ``NamedTuple`` records, not dataclasses, whose module would cost the
command line ~8 ms), never a generator (:mod:`ocrloc.data.canvas`, :mod:`ocrloc.data.glyphs`),
MNIST (:mod:`ocrloc.data.mnist`) or an augmentation (albumentations, cv2). Each name and each recipe is
defined here once; the generators read them from here (``tests/test_import_graph.py`` keeps this module
light). The definitions are those of ``docs/task.md`` ("Rules", "Benchmark canvases") and ``docs/glyphs.md``.
"""

from __future__ import annotations

from typing import Dict, Mapping, NamedTuple, Tuple, Union

__all__ = [
    "SPLIT_NAMES",
    "CanvasPreset",
    "PRESETS",
    "GLYPH_CLASSES",
    "GLYPH_POINT_NAMES",
    "GLYPH_FONTS",
    "GlyphPreset",
    "GLYPH_PRESETS",
    "PRESET_NAMES",
    "get_preset",
    "get_glyph_preset",
    "RULES",
    "RULE_NAMES",
]

# The splits of every built-in source, in this order: disjoint MNIST digits for the MNIST canvases
# (ocrloc.data.mnist.SPLITS), separate random streams for the printed glyphs.
SPLIT_NAMES: Tuple[str, ...] = ("train", "val", "test")


class CanvasPreset(NamedTuple):
    """An MNIST canvas recipe (``docs/task.md``, "Benchmark canvases").

    Attributes:
        name: preset name.
        height, width: canvas size in pixels.
        digits_per_canvas: inclusive range of the number of digits, drawn uniformly.
        digit_size: inclusive range of s; the 28 x 28 digit is resized to s x s.
        min_gap: smallest allowed distance in pixels between two ink boxes.
    """

    name: str
    height: int
    width: int
    digits_per_canvas: Tuple[int, int]
    digit_size: Tuple[int, int]
    min_gap: int = 2


PRESETS: Dict[str, CanvasPreset] = {
    "canvas128": CanvasPreset("canvas128", 128, 128, digits_per_canvas=(1, 5), digit_size=(18, 36)),
    # The original single-digit setting: one native 28 x 28 MNIST digit (no resampling) at a
    # random offset in a 32 x 32 canvas, so positions vary and heads cannot memorise them.
    "single": CanvasPreset("single", 32, 32, digits_per_canvas=(1, 1), digit_size=(28, 28)),
}

# Class index = position; the class name is the character itself.
GLYPH_CLASSES: Tuple[str, ...] = tuple("0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz")

GLYPH_POINT_NAMES: Tuple[str, ...] = ("topleft", "center", "baseline_left", "baseline", "baseline_right")

# File names under matplotlib's ``mpl-data/fonts/ttf``. Every one maps all 62 characters in
# its cmap, renders each with ink and renders the 62 differently (check_fonts, tested).
# Left out: DejaVu*Display and the STIXNonUni*/STIXSiz* files (no Latin letters or digits),
# LastResortHE (one placeholder shape for everything), cmex10/cmsy10 (math symbols at the
# ASCII code points) and cmmi10 (old-style digits that descend like g and p).
GLYPH_FONTS: Tuple[str, ...] = (
    "DejaVuSans.ttf",
    "DejaVuSans-Bold.ttf",
    "DejaVuSans-Oblique.ttf",
    "DejaVuSans-BoldOblique.ttf",
    "DejaVuSansMono.ttf",
    "DejaVuSansMono-Bold.ttf",
    "DejaVuSansMono-Oblique.ttf",
    "DejaVuSansMono-BoldOblique.ttf",
    "DejaVuSerif.ttf",
    "DejaVuSerif-Bold.ttf",
    "DejaVuSerif-Italic.ttf",
    "DejaVuSerif-BoldItalic.ttf",
    "STIXGeneral.ttf",
    "STIXGeneralBol.ttf",
    "STIXGeneralItalic.ttf",
    "STIXGeneralBolIta.ttf",
    "cmr10.ttf",
    "cmb10.ttf",
    "cmss10.ttf",
    "cmtt10.ttf",
    "cmti10.ttf",
)


class GlyphPreset(NamedTuple):
    """A printed-glyph canvas recipe (``docs/glyphs.md``).

    Attributes:
        name: preset name (part of every canvas's random stream).
        height, width: canvas size in pixels.
        glyphs_per_canvas: inclusive range of the number of glyphs, drawn uniformly.
        cap_height: inclusive range of the cap height in canvas pixels (the ink height of
            ``H``), drawn as a uniform integer; the font size is ``round(cap / ratio)`` with
            the font's measured cap-height-to-size ratio.
        max_angle: rotation drawn uniformly from ``[-max_angle, max_angle]`` degrees.
        ink_value: inclusive range of the stroke intensity (uint8), drawn per glyph; must
            start at >= 128 so a fully covered pixel is always ink.
        min_gap: smallest allowed distance in pixels between two ink boxes.
        fonts: font file names under matplotlib's ``fonts/ttf``, drawn uniformly.
        chars: the characters drawn, uniformly; labels stay positions in GLYPH_CLASSES.
    """

    name: str
    height: int
    width: int
    glyphs_per_canvas: Tuple[int, int] = (1, 6)
    cap_height: Tuple[int, int] = (14, 32)
    max_angle: float = 10.0
    ink_value: Tuple[int, int] = (200, 255)
    min_gap: int = 2
    fonts: Tuple[str, ...] = GLYPH_FONTS
    chars: Tuple[str, ...] = GLYPH_CLASSES


GLYPH_PRESETS: Dict[str, GlyphPreset] = {
    # Comparable to canvas128: MNIST digits of s = 18..36 px have ink about 13..26 px tall.
    "glyphs128": GlyphPreset("glyphs128", 128, 128),
}

# Every preset name, the MNIST ones first (the order the config's error messages list them in).
PRESET_NAMES: Tuple[str, ...] = tuple(PRESETS) + tuple(GLYPH_PRESETS)


def get_preset(name: str) -> Union[CanvasPreset, GlyphPreset]:
    """The preset called ``name``: an MNIST :class:`CanvasPreset` or a printed-glyph :class:`GlyphPreset`
    (both have ``name``, ``height``, ``width``); a ValueError lists the known ones."""
    if name in PRESETS:
        return PRESETS[name]
    if name in GLYPH_PRESETS:
        return GLYPH_PRESETS[name]
    known = sorted(PRESETS) + sorted(GLYPH_PRESETS)
    raise ValueError(f"unknown preset {name!r}; known presets: {', '.join(known)}")


def get_glyph_preset(name: str) -> GlyphPreset:
    """The glyph preset called ``name``; a ValueError lists the known ones."""
    try:
        return GLYPH_PRESETS[name]
    except KeyError:
        raise ValueError(f"unknown glyph preset {name!r}; known presets: {', '.join(sorted(GLYPH_PRESETS))}") from None


# The built-in rules (``docs/task.md``, "Rules"): class -> the named point it wants. These two names never
# change meaning; any other rule is a YAML / JSON file (ocrloc.data.rules, which also checks these tables).
RULES: Dict[str, Mapping[int, str]] = {
    "seed37": {3: "topleft", 7: "center"},
    "all10": {
        0: "topmost",
        1: "bottommost",
        2: "leftmost",
        3: "topleft",
        4: "rightmost",
        5: "centroid",
        6: "bottommost",
        7: "center",
        8: "centroid",
        9: "topmost",
    },
}

RULE_NAMES: Tuple[str, ...] = tuple(sorted(RULES))

