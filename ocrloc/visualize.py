"""Pictures people would rather see than read: canvases with boxes, classes and points, as PNG.

Two drawings:

* :func:`draw_detections`: boxes, classes and points of one set (the make-dataset preview), on
  ``torchvision.utils`` (``draw_bounding_boxes``, ``draw_keypoints``);
* :func:`draw_truth_and_prediction`: the ground truth and a prediction on one canvas, told apart by
  style and colour-blind-safe colours (truth: dashed bluish-green box, hollow ring per point;
  prediction: solid box in its class colour, filled dot), with labels in a real font (class, score,
  point error in px of a matched detection). ``ocrloc predict --viz`` and the trainer's TensorBoard
  images draw with it. Matches come from the evaluator (:func:`ocrloc.evaluation.match_points`).

Canvases are upscaled (nearest) before drawing, so that a point a fraction of a pixel off is
visible. Panels are saved with ``torchvision.utils.make_grid`` and PIL.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Dict, List, Mapping, Optional, Sequence, Tuple

import numpy as np
import torch
import torch.nn.functional as F
from torchvision.utils import draw_bounding_boxes, draw_keypoints, make_grid

from ocrloc.utils.io import atomic_path

__all__ = ["CLASS_COLORS", "TRUTH_COLOR", "PREDICTION_COLORS", "KEYPOINT_STYLES", "draw_detections",
           "draw_truth_and_prediction", "draw_with_truth_beside", "keypoint_legend",
           "match_for_drawing", "save_grid", "save_canvas_preview"]

# One colour per digit class (tab10), so a class reads at a glance.
CLASS_COLORS: List[tuple] = [
    (31, 119, 180), (255, 127, 14), (44, 160, 44), (214, 39, 40), (148, 103, 189),
    (140, 86, 75), (227, 119, 194), (127, 127, 127), (188, 189, 34), (23, 190, 207),
]
POINT_COLOR = (255, 40, 40)
# With several keypoints per class (the printed glyphs' five), keypoint slot k gets its own marker and colour
# (Okabe-Ito, readable with the common colour-vision deficiencies: the shape tells them apart as well), and
# the preview gets a legend naming them.
KEYPOINT_STYLES: List[Tuple[str, tuple]] = [
    ("circle", (230, 159, 0)), ("square", (86, 180, 233)), ("triangle", (0, 158, 115)),
    ("diamond", (240, 228, 66)), ("cross", (213, 94, 0)), ("plus", (204, 121, 167)), ("star", (0, 114, 178)),
]

# Okabe-Ito, told apart with the common colour-vision deficiencies: bluish green is the truth alone, the
# prediction takes the others by class (all visible on the canvases' black background).
TRUTH_COLOR = (0, 158, 115)
PREDICTION_COLORS: List[tuple] = [(230, 159, 0), (86, 180, 233), (213, 94, 0), (204, 121, 167), (240, 228, 66),
                                  (0, 114, 178)]
VIZ_SCALE = 4  # a 128 x 128 canvas is drawn at 512 x 512: labels fit, sub-pixel errors show


def draw_detections(
    image: np.ndarray | torch.Tensor,
    boxes: torch.Tensor,
    labels: torch.Tensor,
    points: Optional[torch.Tensor] = None,
    scores: Optional[torch.Tensor] = None,
    scale: int = 3,
    class_names: Optional[Sequence[str]] = None,
) -> torch.Tensor:
    """Draw boxes (coloured by class, captioned with class and score) and points on a grey canvas.

    Args:
        image: uint8 ``[H, W]`` array, or float ``[1, H, W]`` / ``[H, W]`` tensor in [0, 1].
        boxes: ``[N, 4]`` xyxy in canvas pixels.
        labels: ``[N]`` class indices.
        points: ``[N, 2]`` or ``[N, K, 2+]`` keypoints (x, y) in canvas pixels, or None. One keypoint per
            object: a red dot; several: keypoint ``k`` in ``KEYPOINT_STYLES[k]`` (its own marker and colour),
            unlabelled ones (``v = 0`` in ``[N, K, 3]``) left out.
        scores: ``[N]`` confidences to print beside the class, or None.
        scale: integer upscaling factor.
        class_names: the caption of each class index (default: the index).

    Returns:
        uint8 tensor ``[3, H * scale, W * scale]``.
    """
    img = torch.as_tensor(image)
    if img.dtype != torch.uint8:
        img = (img.float().clamp(0, 1) * 255).round().to(torch.uint8)
    img = img.reshape(1, 1, *img.shape[-2:]).float()
    img = F.interpolate(img, scale_factor=scale, mode="nearest").to(torch.uint8)[0].expand(3, -1, -1).contiguous()
    boxes = torch.as_tensor(boxes, dtype=torch.float32).reshape(-1, 4)
    labels = torch.as_tensor(labels).reshape(-1)
    if boxes.numel():
        names = [class_names[int(c)] if class_names is not None else str(int(c)) for c in labels]
        captions = names if scores is None else [f"{n} {float(s):.2f}" for n, s in zip(names, scores)]
        colors = [CLASS_COLORS[int(c) % len(CLASS_COLORS)] for c in labels]
        img = draw_bounding_boxes(img, boxes * scale, labels=captions, colors=colors, width=1)
    if points is not None and len(points):
        xy = torch.as_tensor(points, dtype=torch.float32)
        xy = xy.reshape(len(points), 1, -1) if xy.dim() == 2 else xy
        if xy.shape[1] == 1:
            img = draw_keypoints(img, xy[..., :2] * scale, colors=POINT_COLOR, radius=max(1, scale // 2 + 1))
        else:
            img = _draw_keypoint_markers(img, xy, scale)
    return img


def _marker(draw, center: Tuple[float, float], marker: str, color: tuple, radius: float) -> None:
    """One keypoint marker of ``KEYPOINT_STYLES`` at ``center``, outlined in black to show on white ink."""
    x, y, r = center[0], center[1], radius
    if marker == "circle":
        draw.ellipse((x - r, y - r, x + r, y + r), fill=color, outline=(0, 0, 0))
    elif marker == "square":
        draw.rectangle((x - r, y - r, x + r, y + r), fill=color, outline=(0, 0, 0))
    elif marker == "triangle":
        draw.polygon([(x, y - r), (x + r, y + r), (x - r, y + r)], fill=color, outline=(0, 0, 0))
    elif marker == "diamond":
        draw.polygon([(x, y - r), (x + r, y), (x, y + r), (x - r, y)], fill=color, outline=(0, 0, 0))
    elif marker == "star":
        draw.polygon([(x + (r if k % 2 == 0 else r / 2.5) * np.sin(k * np.pi / 5),
                       y - (r if k % 2 == 0 else r / 2.5) * np.cos(k * np.pi / 5)) for k in range(10)],
                     fill=color, outline=(0, 0, 0))
    else:  # "cross" (x) or "plus" (+): strokes
        ends = ([(x - r, y - r, x + r, y + r), (x - r, y + r, x + r, y - r)] if marker == "cross"
                else [(x - r, y, x + r, y), (x, y - r, x, y + r)])
        for line in ends:
            draw.line(line, fill=color, width=max(2, int(r) // 2))


def _draw_keypoint_markers(img: torch.Tensor, xy: torch.Tensor, scale: int) -> torch.Tensor:
    """``img`` (uint8 ``[3, H, W]``) with keypoint ``k`` of every object drawn as ``KEYPOINT_STYLES[k]``."""
    from PIL import Image, ImageDraw

    canvas = Image.fromarray(img.permute(1, 2, 0).contiguous().numpy())
    draw = ImageDraw.Draw(canvas)
    radius = max(2, scale)
    for obj in xy.tolist():
        for k, point in enumerate(obj):
            if len(point) > 2 and point[2] <= 0:
                continue  # not labelled
            marker, color = KEYPOINT_STYLES[k % len(KEYPOINT_STYLES)]
            _marker(draw, (point[0] * scale, point[1] * scale), marker, color, radius)
    return torch.from_numpy(np.asarray(canvas).copy()).permute(2, 0, 1).contiguous()


def keypoint_legend(names: Sequence[str], width: int, scale: int = 3) -> torch.Tensor:
    """A white strip ``width`` px wide naming keypoint ``k`` beside its marker (``KEYPOINT_STYLES[k]``), as
    uint8 ``[3, h, width]``; the entries wrap onto more lines when they do not fit."""
    from PIL import Image, ImageDraw

    font = _font(max(14, 5 * scale))
    radius = max(4, 2 * scale)
    probe = ImageDraw.Draw(Image.new("RGB", (1, 1)))
    entries = []
    for k, name in enumerate(names):
        left, top, right, bottom = probe.textbbox((0, 0), name, font=font)
        entries.append((k, name, right - left, bottom - top, left, top))
    line_height = max(2 * radius, max(e[3] for e in entries)) + 8
    gap, x, y, placed = 16, 4, 0, []
    for k, name, text_w, _, left, top in entries:
        entry_w = 2 * radius + 6 + text_w
        if x > 4 and x + entry_w > width - 4:
            x, y = 4, y + line_height
        placed.append((x, y, k, name, left, top))
        x += entry_w + gap
    strip = Image.new("RGB", (width, y + line_height), (255, 255, 255))
    draw = ImageDraw.Draw(strip)
    for x, y, k, name, left, top in placed:
        marker, color = KEYPOINT_STYLES[k % len(KEYPOINT_STYLES)]
        middle = y + line_height / 2
        _marker(draw, (x + radius, middle), marker, color, radius)
        text_h = draw.textbbox((0, 0), name, font=font)
        draw.text((x + 2 * radius + 6 - left, middle - (text_h[3] + text_h[1]) / 2), name, font=font, fill=(0, 0, 0))
    return torch.from_numpy(np.asarray(strip).copy()).permute(2, 0, 1).contiguous()


def save_grid(panels: Sequence[torch.Tensor], path: str | os.PathLike, nrow: int = 4,
              legend: Optional[Sequence[str]] = None) -> None:
    """Save uint8 ``[3, h, w]`` panels as one PNG grid, atomically; with ``legend`` (keypoint names), a
    strip above the grid names each keypoint's marker (:func:`keypoint_legend`)."""
    grid = make_grid([p.float() for p in panels], nrow=nrow, padding=4, pad_value=255).to(torch.uint8)
    if legend:
        grid = torch.cat([keypoint_legend(legend, grid.shape[2]), grid], dim=1)
    from PIL import Image

    with atomic_path(path, suffix=".png") as tmp:
        # PIL, not torchvision.io.write_png: torchvision 0.29 deprecates its image encoders.
        Image.fromarray(grid.permute(1, 2, 0).contiguous().numpy()).save(str(tmp), format="PNG")


def save_canvas_preview(generator, path: str | os.PathLike, count: int = 16, nrow: int = 4, scale: int = 3) -> None:
    """Save samples ``0 .. count-1`` of a data source (:class:`~ocrloc.data.source.DataSource`: MNIST digits,
    printed glyphs) with their ink boxes, class names and keypoints, as one PNG grid; with several keypoints
    per class, each keypoint gets its own marker and colour and a legend above the grid names them."""
    names = generator.task.class_names
    panels = []
    for index in range(count):
        canvas = generator.sample(index)
        target = generator.target(canvas, index + 1)
        panels.append(draw_detections(canvas.image, target["boxes"], target["labels"], target["keypoints"], scale=scale,
                                      class_names=names))
    task = generator.task
    shared = set(task.keypoint_names)  # the legend names slot k by the classes' own name when they agree
    legend = shared.pop() if len(shared) == 1 else [f"keypoint {k + 1}" for k in range(task.num_keypoints)]
    save_grid(panels, path, nrow=nrow, legend=legend if task.num_keypoints > 1 else None)


def _font(size: int):
    """A scalable font (Pillow's bundled one) at ``size`` px; the fixed bitmap font on Pillow < 10.1."""
    from PIL import ImageFont

    try:
        return ImageFont.load_default(size=size)
    except TypeError:  # Pillow < 10.1: no size
        return ImageFont.load_default()


def _dashed_rectangle(draw, box: Sequence[float], color: tuple, width: int, dash: int = 6) -> None:
    x1, y1, x2, y2 = box
    for (ax, ay, bx, by) in ((x1, y1, x2, y1), (x2, y1, x2, y2), (x2, y2, x1, y2), (x1, y2, x1, y1)):
        length = max(abs(bx - ax), abs(by - ay))
        steps = max(int(length // dash), 1)
        for k in range(0, steps, 2):
            t0, t1 = k / steps, min((k + 1) / steps, 1.0)
            draw.line((ax + (bx - ax) * t0, ay + (by - ay) * t0, ax + (bx - ax) * t1, ay + (by - ay) * t1),
                      fill=color, width=width)


def _label(draw, xy: Tuple[float, float], text: str, font, color: tuple, limits: Tuple[int, int],
           above: bool = True) -> None:
    """``text`` on a filled tag in ``color`` at a box corner, kept inside the image."""
    left, top, right, bottom = draw.textbbox((0, 0), text, font=font)
    w, h = right - left + 6, bottom - top + 4
    x = min(max(xy[0], 0), max(limits[0] - w, 0))
    y = xy[1] - h if above else xy[1]
    y = min(max(y, 0), max(limits[1] - h, 0))
    draw.rectangle((x, y, x + w, y + h), fill=color)
    ink = (0, 0, 0) if sum(color) > 300 else (255, 255, 255)  # dark text on light tags, light on dark
    draw.text((x + 3 - left, y + 2 - top), text, font=font, fill=ink)


def match_for_drawing(truth: Mapping[str, Any], results: Sequence[Mapping[str, Any]], sigma: Any = None
                      ) -> Tuple[Dict[int, float], set]:
    """Which detections the evaluator matches to which truth, for labels: one matching for all images drawn.

    Args:
        truth: COCO keypoints ground truth holding (at least) the images of ``results``.
        results: COCO results (``category_id``, ``keypoints``, ``score``).
        sigma: OKS sigma, one value or one per keypoint name (None: the evaluator's default).

    Returns:
        ``({index in results: largest point error in px of its same-class match}, {matched annotation ids})``.

    Raises:
        EvaluationInputError: the truth or results fail the evaluator's checks.
    """
    from ocrloc.evaluation import DEFAULT_SIGMA
    from ocrloc.evaluation.evaluator import check_sigma, match_checked, slot_sigmas_of
    from ocrloc.evaluation.inputs import check_ground_truth, check_results

    g = check_ground_truth(truth, "<ground truth>")
    r = check_results(list(results), "<results>", gt=g)
    m = match_checked(g, r, slot_sigmas_of(check_sigma(DEFAULT_SIGMA if sigma is None else sigma), g))
    errors: Dict[int, float] = {}
    matched = set()
    for i in np.flatnonzero(m.det >= 0).tolist():
        d = m.dist[i]
        errors[int(m.det[i])] = float(np.nanmax(d)) if np.isfinite(d).any() else 0.0
        matched.add(int(truth["annotations"][i]["id"]))
    return errors, matched


def draw_truth_and_prediction(
    image: np.ndarray | torch.Tensor,
    results: Sequence[Mapping[str, Any]],
    truth: Sequence[Mapping[str, Any]] = (),
    class_names: Optional[Mapping[int, str]] = None,
    errors: Optional[Sequence[Optional[float]]] = None,
    matched_truth: Optional[set] = None,
    scale: int = VIZ_SCALE,
    title: Optional[str] = None,
) -> torch.Tensor:
    """Draw the ground truth and a prediction of one image, in two styles, at ``scale`` times its size.

    Truth: dashed bluish-green box, a hollow ring on each labelled point, and the class name under the box
    when no detection of its class among ``results`` matched it ("missed"). Prediction: solid box in its
    class's colour, a filled dot on each point, a tag "class score" plus the point error in px when it matched
    a truth.

    Args:
        image: uint8 ``[H, W]`` array, or float ``[1, H, W]`` / ``[H, W]`` tensor in [0, 1].
        results: COCO result dicts of this image (``category_id``, ``bbox`` ``[x, y, w, h]``, ``keypoints``
            ``[x, y, v, ...]``, ``score``), drawn in the order given.
        truth: COCO annotation dicts of this image.
        class_names: category id -> name (default: the id).
        errors: per result, the point error in px of its match (None: unmatched); from :func:`match_for_drawing`.
        matched_truth: annotation ids some same-class detection matched (None: not known, nothing marked missed).
        scale: integer upscaling factor.
        title: a line printed in a strip above the canvas (e.g. the file name).

    Returns:
        uint8 tensor ``[3, H * scale (+ strip), W * scale]``.
    """
    from PIL import Image, ImageDraw

    img = torch.as_tensor(image)
    if img.dtype != torch.uint8:
        img = (img.float().clamp(0, 1) * 255).round().to(torch.uint8)
    grey = img.reshape(img.shape[-2:]).cpu().numpy()
    h, w = grey.shape
    canvas = Image.fromarray(grey).resize((w * scale, h * scale), Image.NEAREST).convert("RGB")
    draw = ImageDraw.Draw(canvas)
    font = _font(max(12, 3 * scale + 2))
    names = class_names or {}
    limits = canvas.size
    line = max(2, scale // 2)

    def name(category_id: int) -> str:
        return str(names.get(int(category_id), category_id))

    def points(entry: Mapping[str, Any], labelled_only: bool) -> List[Tuple[float, float]]:
        # A truth point with v = 0 is not labelled; a result's v is its point score, every point is drawn.
        kp = entry.get("keypoints", [])
        return [(kp[j] * scale, kp[j + 1] * scale) for j in range(0, len(kp) - 2, 3)
                if kp[j + 2] > 0 or not labelled_only]

    # Boxes, then labels, then points: a tag never hides a point (a top-left point sits under its tag).
    ring, dot = 2 * scale, max(2, scale - 1)
    tags = []
    for a in truth:
        x, y, bw, bh = a["bbox"]
        _dashed_rectangle(draw, (x * scale, y * scale, (x + bw) * scale, (y + bh) * scale), TRUTH_COLOR, line)
        if matched_truth is not None and int(a.get("id", -1)) not in matched_truth:
            tags.append(((x * scale, (y + bh) * scale + 2), f"missed {name(a['category_id'])}", TRUTH_COLOR, False))
    for k, r in enumerate(results):
        color = PREDICTION_COLORS[int(r["category_id"]) % len(PREDICTION_COLORS)]
        x, y, bw, bh = r["bbox"] if "bbox" in r else (r["keypoints"][0], r["keypoints"][1], 0, 0)
        draw.rectangle((x * scale, y * scale, (x + bw) * scale, (y + bh) * scale), outline=color, width=line)
        error = errors[k] if errors is not None else None
        text = f"{name(r['category_id'])} {float(r['score']):.2f}" + ("" if error is None else f" | {error:.2f} px")
        tags.append(((x * scale, y * scale - 1), text, color, True))
    for xy, text, color, above in tags:
        _label(draw, xy, text, font, color, limits, above=above)
    for a in truth:
        for px, py in points(a, labelled_only=True):
            draw.ellipse((px - ring, py - ring, px + ring, py + ring), outline=TRUTH_COLOR, width=line)
    for r in results:
        color = PREDICTION_COLORS[int(r["category_id"]) % len(PREDICTION_COLORS)]
        for px, py in points(r, labelled_only=False):
            draw.ellipse((px - dot, py - dot, px + dot, py + dot), fill=color, outline=(0, 0, 0))
    if title:
        left, top, right, bottom = draw.textbbox((0, 0), title, font=font)
        strip = Image.new("RGB", (canvas.width, bottom - top + 8), (255, 255, 255))
        ImageDraw.Draw(strip).text((4 - left, 4 - top), title, font=font, fill=(0, 0, 0))
        framed = Image.new("RGB", (canvas.width, canvas.height + strip.height))
        framed.paste(strip, (0, 0))
        framed.paste(canvas, (0, strip.height))
        canvas = framed
    return torch.from_numpy(np.asarray(canvas).copy()).permute(2, 0, 1).contiguous()


def draw_with_truth_beside(drawn: Sequence[Tuple[Path, int, List[Dict[str, Any]]]], class_names: Mapping[int, str],
                           read_image) -> List[torch.Tensor]:
    """Panels of ``ocrloc predict --viz``: each image's prediction and the ground truth of the annotations.json
    beside the images (``<images>/../annotations.json`` or in their folder) when there is one the evaluator accepts.

    Args:
        drawn: ``(image path, image id, COCO results to draw)`` per image.
        class_names: category id -> name, for the labels (the annotations' names win).
        read_image: path -> ``[1, H, W]`` image tensor.
    """
    import json
    import sys

    from ocrloc.data.coco import annotation_file_beside, coco_subset
    from ocrloc.evaluation import EvaluationInputError

    by_file: dict = {}
    for k, (path, _, _) in enumerate(drawn):
        by_file.setdefault(annotation_file_beside(path.parent), []).append(k)
    truth, errors, matched, names = {}, {}, {}, dict(class_names)
    for annotation_file, indices in by_file.items():
        if annotation_file is None:
            continue
        try:
            data = json.loads(annotation_file.read_text(encoding="utf-8"))
            ids = {drawn[k][1] for k in indices}
            subset = coco_subset(data, ids)
            if not subset["annotations"]:
                continue  # a file that lists the images but describes no object: nothing to draw
            dets = [e for k in indices for e in drawn[k][2]]
            det_errors, truth_matched = match_for_drawing(subset, dets)
        except (OSError, ValueError, KeyError, TypeError, EvaluationInputError) as err:
            print(f"note: --viz draws no ground truth from {annotation_file}: {err}", file=sys.stderr)
            continue
        names.update({c["id"]: str(c.get("name", c["id"])) for c in subset["categories"]})
        offset = 0
        for k in indices:
            count = len(drawn[k][2])
            errors[k] = [det_errors.get(offset + j) for j in range(count)]
            offset += count
            truth[k] = [a for a in subset["annotations"] if a["image_id"] == drawn[k][1]]
            matched[k] = truth_matched
    return [draw_truth_and_prediction(read_image(path), entries, truth.get(k, ()), names, errors.get(k),
                                      matched.get(k), title=path.name)
            for k, (path, _, entries) in enumerate(drawn)]
