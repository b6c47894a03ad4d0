"""The printed-glyph generator: fonts, determinism, placement, boxes and points on the final ink."""

from __future__ import annotations

import math
import os
import sys
from collections import Counter, defaultdict

import cv2
import numpy as np
import pytest

from ocrloc.data import glyphs as glyphs_module
from ocrloc.data.glyphs import (
    DESCENDER_CLASSES,
    GLYPH_CLASSES,
    GLYPH_FONTS,
    GLYPH_POINT_NAMES,
    GLYPH_PRESETS,
    INK_THRESHOLD,
    GlyphCanvasGenerator,
    GlyphPreset,
    cap_height_ratio,
    check_fonts,
    font_dir,
    font_path,
    render_glyph,
)
from ocrloc.data.points import boxes_gap, ink_box

# Classes that descend in only some fonts (docs/glyphs.md): left out of the "sits on the
# baseline" check.
SOME_FONTS_DESCEND = ("J", "f", "z", "4")


@pytest.fixture(scope="module")
def train_canvases():
    gen = GlyphCanvasGenerator("glyphs128", "train", 0)
    return [gen(i) for i in range(300)]


@pytest.fixture(scope="module")
def upright_canvases():
    preset = GlyphPreset("upright128", 128, 128, max_angle=0.0)
    gen = GlyphCanvasGenerator(preset, "test", 5)
    return [gen(i) for i in range(400)]


def same_canvas(a, b) -> bool:
    return np.array_equal(a.image, b.image) and a.glyphs == b.glyphs


def test_classes_are_digits_then_capitals_then_lowercase():
    assert len(GLYPH_CLASSES) == 62 and len(set(GLYPH_CLASSES)) == 62
    assert "".join(GLYPH_CLASSES) == "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
    assert GLYPH_POINT_NAMES == ("topleft", "center", "baseline_left", "baseline", "baseline_right")


def test_every_font_is_bundled_with_matplotlib_and_draws_all_62_classes():
    import matplotlib

    data = os.path.realpath(matplotlib.get_data_path())
    assert len(GLYPH_FONTS) == len(set(GLYPH_FONTS)) >= 16
    for name in GLYPH_FONTS:
        assert os.path.realpath(font_path(name)).startswith(data + os.sep)
    # In the cmap, with ink, and 62 different drawings (no .notdef box standing in for all).
    assert check_fonts(GLYPH_FONTS) == {}


def test_every_class_has_ink_in_every_font_at_the_smallest_size():
    cap = GLYPH_PRESETS["glyphs128"].cap_height[0]
    for name in GLYPH_FONTS:
        size = max(1, round(cap / cap_height_ratio(name)))
        for char in GLYPH_CLASSES:
            glyph = render_glyph(char, name, size, angle=-10.0)
            assert (glyph.image >= INK_THRESHOLD).any(), (name, char)


def test_check_fonts_flags_fonts_without_the_classes():
    problems = check_fonts(["DejaVuSansDisplay.ttf", "LastResortHE-Regular.ttf", "DejaVuSans.ttf"])
    assert set(problems) == {"DejaVuSansDisplay.ttf", "LastResortHE-Regular.ttf"}
    assert any(p.startswith("not in cmap") for p in problems["DejaVuSansDisplay.ttf"])
    assert any(p.startswith("same drawing") for p in problems["LastResortHE-Regular.ttf"])


def test_no_font_is_opened_outside_matplotlibs_data_path(monkeypatch):
    import matplotlib
    from PIL import ImageFont

    opened = []
    real_truetype = ImageFont.truetype

    def recording_truetype(font=None, *args, **kwargs):
        opened.append(font)
        return real_truetype(font, *args, **kwargs)

    monkeypatch.setattr(ImageFont, "truetype", recording_truetype)
    monkeypatch.setattr(glyphs_module, "_FONT_CACHE", {})
    monkeypatch.setattr(glyphs_module, "_CAP_RATIO_CACHE", {})
    gen = GlyphCanvasGenerator("glyphs128", "val", 3)
    for i in range(40):
        gen(i)
    data = os.path.realpath(matplotlib.get_data_path())
    assert opened, "the generator loaded no font through ImageFont.truetype"
    assert all(isinstance(p, str) and os.path.realpath(p).startswith(data + os.sep) for p in opened), opened
    assert {os.path.basename(p) for p in opened} <= set(GLYPH_FONTS)


def test_a_missing_matplotlib_is_a_clear_import_error(monkeypatch):
    monkeypatch.setitem(sys.modules, "matplotlib", None)  # makes "import matplotlib" fail
    with pytest.raises(ImportError, match="matplotlib"):
        font_dir()


def test_canvases_are_deterministic_and_index_independent():
    first = GlyphCanvasGenerator("glyphs128", "test", 7)
    second = GlyphCanvasGenerator("glyphs128", "test", 7)
    in_order = [first(i) for i in range(10)]
    assert same_canvas(second(9), in_order[9])  # alone, before any other
    for i in (3, 0, 7):
        assert same_canvas(second(i), in_order[i])
    assert same_canvas(first(4), in_order[4])  # the same generator, asked again
    assert not np.array_equal(in_order[0].image, in_order[1].image)


@pytest.mark.parametrize("change", [{"seed": 8}, {"split": "val"}, {"split": "train"},
                                    {"preset": GlyphPreset("other128", 128, 128)}])
def test_each_part_of_the_key_changes_the_canvases(change):
    key = {"preset": "glyphs128", "split": "test", "seed": 7}
    base = GlyphCanvasGenerator(**key)
    key.update(change)
    other = GlyphCanvasGenerator(**key)
    assert not any(np.array_equal(base(i).image, other(i).image) for i in range(5))


def test_bad_arguments_are_refused():
    with pytest.raises(ValueError, match="split"):
        GlyphCanvasGenerator("glyphs128", "holdout", 0)
    with pytest.raises(ValueError, match="glyphs128"):
        GlyphCanvasGenerator("glyphs64", "train", 0)
    with pytest.raises(ValueError, match="ink_value"):
        GlyphCanvasGenerator(GlyphPreset("dim", 128, 128, ink_value=(100, 255)), "train", 0)
    with pytest.raises(FileNotFoundError):
        GlyphCanvasGenerator(GlyphPreset("nofont", 128, 128, fonts=("Arial.ttf",)), "train", 0)
    with pytest.raises(ValueError):
        GlyphCanvasGenerator(GlyphPreset("abs", 128, 128, fonts=("/usr/share/fonts/x.ttf",)), "train", 0)
    with pytest.raises(IndexError):
        GlyphCanvasGenerator("glyphs128", "train", 0)(-1)


def test_glyphs128_follows_the_preset(train_canvases):
    preset = GLYPH_PRESETS["glyphs128"]
    counts, fonts, caps_seen = set(), set(), Counter()
    for canvas in train_canvases:
        assert canvas.image.shape == (128, 128) and canvas.image.dtype == np.uint8
        counts.add(len(canvas.glyphs))
        for k, glyph in enumerate(canvas.glyphs):
            assert GLYPH_CLASSES[glyph.label] == glyph.char
            assert glyph.font in GLYPH_FONTS and isinstance(glyph.size, int)
            assert abs(glyph.angle) <= preset.max_angle
            x, y, w, h = glyph.bbox
            assert all(isinstance(v, int) for v in glyph.bbox)
            assert 0 <= x and 0 <= y and x + w <= 128 and y + h <= 128 and w > 0 and h > 0
            assert tuple(glyph.points) == GLYPH_POINT_NAMES
            for px, py in glyph.points.values():
                assert isinstance(px, float) and isinstance(py, float)
                assert 0.0 <= px <= 128.0 and 0.0 <= py <= 128.0
            for other in canvas.glyphs[k + 1:]:
                assert boxes_gap(glyph.bbox, other.bbox) >= preset.min_gap
            fonts.add(glyph.font)
            caps_seen[round(glyph.size * cap_height_ratio(glyph.font))] += 1
    assert counts == set(range(preset.glyphs_per_canvas[0], preset.glyphs_per_canvas[1] + 1))
    assert fonts == set(GLYPH_FONTS)
    lo, hi = preset.cap_height
    assert min(caps_seen) >= lo - 1 and max(caps_seen) <= hi + 1 and len(caps_seen) > 12


def test_every_class_appears(train_canvases):
    seen = Counter(g.char for c in train_canvases for g in c.glyphs)
    assert set(seen) == set(GLYPH_CLASSES), sorted(set(GLYPH_CLASSES) - set(seen))


def test_boxes_and_points_match_the_final_ink_and_survive_a_png(train_canvases):
    """Every ink pixel of the canvas lies in exactly one glyph box, each box is tight on the
    ink inside it, and topleft/center follow from that box; all of it from the PNG alone."""
    for canvas in train_canvases[:60]:
        ok, png = cv2.imencode(".png", canvas.image)
        image = cv2.imdecode(png, cv2.IMREAD_UNCHANGED)
        assert np.array_equal(image, canvas.image)
        ink = image >= INK_THRESHOLD
        covered = np.zeros_like(ink, dtype=np.int32)
        for glyph in canvas.glyphs:
            x, y, w, h = glyph.bbox
            covered[y:y + h, x:x + w] += 1
            crop = np.zeros_like(ink)
            crop[y:y + h, x:x + w] = ink[y:y + h, x:x + w]
            assert ink_box(crop) == glyph.bbox
            assert glyph.points["topleft"] == (float(x), float(y))
            assert glyph.points["center"] == (x + w / 2.0, y + h / 2.0)
        assert covered.max() <= 1
        assert not (ink & (covered == 0)).any(), "ink outside every glyph box"


def test_bbox_is_the_ink_box_of_the_glyphs_own_rendering(monkeypatch):
    """Render records: the glyph that was placed is the last one rendered in its placement."""
    rendered, placed_at = [], []
    real_render = glyphs_module.render_glyph
    real_place = GlyphCanvasGenerator._place_glyph

    def recording_render(*args, **kwargs):
        rendered.append(real_render(*args, **kwargs))
        return rendered[-1]

    def recording_place(self, *args, **kwargs):
        result = real_place(self, *args, **kwargs)
        placed_at.append(len(rendered) - 1)
        return result

    monkeypatch.setattr(glyphs_module, "render_glyph", recording_render)
    monkeypatch.setattr(GlyphCanvasGenerator, "_place_glyph", recording_place)
    gen = GlyphCanvasGenerator("glyphs128", "test", 11)
    for i in range(20):
        start = len(placed_at)
        canvas = gen(i)
        for glyph, at in zip(canvas.glyphs, placed_at[start:]):
            own = rendered[at]
            own_ink = own.image >= INK_THRESHOLD
            ix, iy, iw, ih = own.ink_bbox
            x, y, w, h = glyph.bbox
            assert (iw, ih) == (w, h)
            # The glyph's own ink, and only it, is the canvas ink in its box.
            assert np.array_equal(own_ink[iy:iy + ih, ix:ix + iw], canvas.image[y:y + h, x:x + w] >= INK_THRESHOLD)
            for name, (u, v) in own.metric_points.items():
                assert glyph.points[name] == pytest.approx((u + x - ix, v + y - iy), abs=1e-9)


def test_baseline_points_are_rotated_with_the_glyph(train_canvases):
    for canvas in train_canvases[:100]:
        for glyph in canvas.glyphs:
            (xl, yl), (xm, ym), (xr, yr) = (glyph.points[n] for n in ("baseline_left", "baseline", "baseline_right"))
            assert (xm, ym) == pytest.approx(((xl + xr) / 2, (yl + yr) / 2), abs=1e-9)
            assert xr - xl > 0
            # Counter-clockwise on the image: the baseline's direction rises by the angle.
            assert math.degrees(math.atan2(-(yr - yl), xr - xl)) == pytest.approx(glyph.angle, abs=1e-6)


def test_the_baseline_is_above_the_ink_bottom_only_for_descenders(upright_canvases):
    drops = defaultdict(list)  # ink bottom minus baseline, in pixels (y down)
    for canvas in upright_canvases:
        for glyph in canvas.glyphs:
            assert glyph.angle == 0.0
            x, y, w, h = glyph.bbox
            yl, ym, yr = (glyph.points[n][1] for n in ("baseline_left", "baseline", "baseline_right"))
            assert yl == ym == yr
            drops[glyph.char].append(y + h - ym)
    descending = [d for c in DESCENDER_CLASSES for d in drops[c]]
    sitting = [d for c in GLYPH_CLASSES if c not in DESCENDER_CLASSES + SOME_FONTS_DESCEND for d in drops[c]]
    assert len(descending) > 100 and len(sitting) > 500
    # Descenders hang at least 2 px below the baseline; the rest sit on it (to within
    # anti-aliasing, the quarter-pixel pen and the overshoot of round letters).
    assert min(descending) >= 2.0
    assert max(abs(d) for d in sitting) <= 1.5
    assert np.mean(np.abs(sitting)) < 0.5


def test_glyph_sizes_are_comparable_to_the_mnist_canvases(train_canvases):
    heights = np.array([g.bbox[3] for c in train_canvases for g in c.glyphs])
    # canvas128 digits: s = 18..36 px, ink about 0.7 s = 13..26 px tall.
    assert 8 <= heights.min() and heights.max() <= 48
    assert 12 <= np.median(heights) <= 30
