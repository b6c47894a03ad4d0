"""``write_report``: one folder of PNGs, ``report.json`` (the numbers they draw) and an ``index.html`` showing them.

The folder is built under a temporary name beside ``out_dir`` and renamed into place only once every file
is written, so a failure (bad input, a full disk, Ctrl-C) leaves no half report, and an older report at
``out_dir`` stays whole until the new one replaces it. The temporary name says which process builds it
(:func:`ocrloc.utils.io.writer_tag`): one left by a killed report is removed by the next report of the
same folder, a live one's is left alone.
"""

from __future__ import annotations

import html
import json
import os
import shutil
import tempfile
import time
from pathlib import Path
from typing import Any, Dict, List, Optional, Tuple

import numpy as np

from ocrloc.evaluation import DEFAULT_SCORE_THRESHOLD, POINT_MATCH_PX
from ocrloc.evaluation.inputs import image_file
from ocrloc.report import figures
from ocrloc.report.analysis import (ReportData, ReportError, analyse, confusion_matrix, point_errors, pr_summary,
                                    read_metrics, reliability, time_to_accuracy, worst_points)
from ocrloc.utils.io import remove_stale_temporaries, umask, writer_tag

__all__ = ["write_report", "CLASSES_PER_GALLERY_PAGE"]

CLASSES_PER_GALLERY_PAGE = 10  # rows of one gallery PNG: 62 glyph classes make 7 pages, not one giant image
CROP_MARGIN_PX = 3  # image pixels shown around a character's box in the gallery
METRICS_FILE = "metrics.csv"
REPORT_FILES = ("index.html", "report.json")  # what marks a folder as a report that may be replaced


def _stats(values: List[float]) -> Dict[str, Any]:
    v = np.asarray(values, np.float64)
    if not v.size:
        return {"count": 0, "mean": None, "median": None, "p95": None}
    return {"count": int(v.size), "mean": float(v.mean()), "median": float(np.median(v)),
            "p95": float(np.percentile(v, 95))}


class _Crops:
    """Character crops from the ground truth's image files, each file read once."""

    def __init__(self, image_root: Path, file_names: Dict[int, Optional[str]]) -> None:
        self.root = image_root
        self.file_names = file_names
        self.cache: Dict[int, Optional[np.ndarray]] = {}
        self.missing: List[str] = []

    def image(self, image_id: int) -> Optional[np.ndarray]:
        if image_id not in self.cache:
            from PIL import Image

            name = self.file_names.get(image_id)
            pixels = None
            if name:
                try:
                    with Image.open(self.root / name) as im:
                        pixels = np.asarray(im.convert("L"))
                except (OSError, ValueError):
                    self.missing.append(name)
            self.cache[image_id] = pixels
        return self.cache[image_id]

    def __call__(self, point: Dict[str, Any]) -> Optional[Tuple[np.ndarray, Tuple[int, int]]]:
        pixels = self.image(point["image_id"])
        if pixels is None:
            return None
        x, y, w, h = point["bbox"]
        xs = [x, x + w, point["gt"][0], point["pred"][0]]
        ys = [y, y + h, point["gt"][1], point["pred"][1]]
        x0 = max(int(np.floor(min(xs))) - CROP_MARGIN_PX, 0)
        y0 = max(int(np.floor(min(ys))) - CROP_MARGIN_PX, 0)
        x1 = min(int(np.ceil(max(xs))) + CROP_MARGIN_PX, pixels.shape[1])
        y1 = min(int(np.ceil(max(ys))) + CROP_MARGIN_PX, pixels.shape[0])
        return pixels[y0:y1, x0:x1], (x0, y0)


def _fmt(value: Any, digits: int = 3) -> str:
    return "&ndash;" if value is None else (f"{value:.{digits}f}" if isinstance(value, float) else str(value))


# (key of the scores, label, digits); a label's {t} is the score threshold, {px} the match distance.
HEADLINE = (("kpt_AP", "keypoint AP (OKS 0.50:0.95)", 3), ("kpt_AP50", "keypoint AP at OKS 0.50", 3),
            ("kpt_AP75", "keypoint AP at OKS 0.75", 3), ("box_AP", "box AP", 3),
            ("cls_acc", "class accuracy", 3), ("miss_rate", "miss rate", 3),
            ("recall", "recall at score \u2265 {t} (same class, every point within {px} px)", 3),
            ("precision", "precision at score \u2265 {t}", 3),
            ("ece", "expected calibration error (score vs fraction correct, 10 bins)", 3),
            ("mean_px", "mean point error (px)", 3),
            ("median_px", "median point error (px)", 3), ("p95_px", "95th percentile point error (px)", 3),
            ("num_images", "images", 0), ("num_gt", "ground-truth objects", 0), ("num_dets", "detections", 0))


def _html(title: str, inputs: Dict[str, Any], scores: Dict[str, Any], sections: List[Tuple[str, List[Tuple[str, str]]]]
          ) -> str:
    esc = html.escape
    at = {"t": f"{scores.get('score_threshold', DEFAULT_SCORE_THRESHOLD):g}", "px": f"{POINT_MATCH_PX:g}"}
    rows = "\n".join(f"<tr><th>{esc(label.format(**at))}</th><td>{_fmt(scores.get(key), digits)}</td></tr>"
                     for key, label, digits in HEADLINE)
    given = "\n".join(f"<li>{esc(k)}: <code>{esc(str(v))}</code></li>" for k, v in inputs.items() if v is not None)
    body = []
    for heading, items in sections:
        body.append(f"<h2>{esc(heading)}</h2>")
        for png, caption in items:
            body.append(f'<figure><a href="{esc(png)}"><img src="{esc(png)}" alt="{esc(caption)}"></a>'
                        f"<figcaption>{esc(caption)}</figcaption></figure>")
    return f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>{esc(title)}</title>
<style>
body {{ font-family: sans-serif; font-size: 16px; max-width: 1400px; margin: 2em auto; padding: 0 1em; color: #222; }}
table {{ border-collapse: collapse; }}
th, td {{ padding: 0.25em 1em; border-bottom: 1px solid #ddd; text-align: left; }}
td {{ font-variant-numeric: tabular-nums; text-align: right; }}
figure {{ margin: 1.5em 0; }} img {{ max-width: 100%; border: 1px solid #eee; }}
figcaption {{ max-width: 60em; color: #444; margin-top: 0.4em; }}
</style></head><body>
<h1>{esc(title)}</h1>
<ul>
{given}
</ul>
<h2>Headline scores</h2>
<table>
{rows}
</table>
{chr(10).join(body)}
</body></html>
"""


def _check_out_dir(out_dir: Path) -> None:
    if out_dir.is_file():
        raise ReportError(f"{out_dir}: is a file; the report is a folder")
    home = out_dir.absolute().parent
    while not home.exists() and home != home.parent:
        home = home.parent
    if not home.is_dir():  # checked before the evaluation: making the folder would fail after it
        raise ReportError(f"{out_dir}: {home} is not a folder")
    if out_dir.is_dir() and any(out_dir.iterdir()) and not all((out_dir / f).is_file() for f in REPORT_FILES):
        # Never delete a folder that is not an older report: it may hold anything.
        raise ReportError(f"{out_dir}: folder exists and is not a report (no index.html and report.json); "
                          "choose another output folder")


def _move_into_place(built: Path, out_dir: Path) -> None:
    old = None
    if out_dir.exists():
        old = Path(tempfile.mkdtemp(prefix=f".{out_dir.name}.old.", dir=out_dir.parent))
        os.replace(out_dir, old / out_dir.name)
    try:
        os.replace(built, out_dir)
    except BaseException:
        if old is not None:  # put the older report back
            os.replace(old / out_dir.name, out_dir)
        raise
    finally:
        if old is not None:
            shutil.rmtree(old, ignore_errors=True)


def _draw(data: ReportData, out: Path, gt_path: Path, curves: Optional[Dict[str, Any]], worst_per_class: int
          ) -> Tuple[List[Tuple[str, List[Tuple[str, str]]]], Dict[str, Any]]:
    """Every PNG into ``out``; returns the HTML sections and the numbers for report.json."""
    g = data.gt
    names = {str(c): cat.name for c, cat in g.categories.items()}
    several = len(g.keypoint_names) > 1
    sections: List[Tuple[str, List[Tuple[str, str]]]] = []

    pr = pr_summary(data)
    figures.save(figures.pr_figure(pr), out / "pr_curves.png")
    sections.append(("Precision and recall", [(
        "pr_curves.png",
        f"Keypoint precision against recall for each class at OKS 0.50 and 0.75 (pycocotools' interpolated "
        f"precision, 20 detections per image and class). The dashed black line is the mean over classes; the mean "
        f"area under all the curves at OKS 0.50:0.95 is the keypoint AP, {_fmt(pr['kpt_AP'])}. A curve that drops "
        "to 0 before recall 1 marks objects never found within that OKS.")]))

    cm = confusion_matrix(data)
    figures.save(figures.confusion_figure(cm), out / "confusion.png")
    matrix = np.asarray(cm["matrix"])
    sections.append(("Classification", [(
        "confusion.png",
        f"Each ground-truth object (row: its class) against the class of the detection matched to it by the "
        f"evaluator's class-agnostic matching (nearest point, OKS \u2265 0.1, any class); 'missed': no detection "
        f"close enough. Cells count objects, colour is the share of the row. {int(np.trace(matrix[:, :-1]))} of "
        f"{int(matrix.sum())} objects have the right class (class accuracy {_fmt(data.scores['cls_acc'])}); "
        f"{cm['unmatched_detections']} detections (any score) matched no object.")]))

    rel = reliability(data)
    s = data.scores
    figures.save(figures.reliability_figure(rel, data.threshold, s["recall"], s["precision"]), out / "reliability.png")
    sections.append(("Scores", [(
        "reliability.png",
        f"Reliability diagram: every detection (any score) in {len(rel['bins'])} score bins; a bar is the fraction "
        f"of the bin's detections that are correct (same class, every labelled point within {POINT_MATCH_PX:g} px "
        f"of an object no higher-scoring detection took), n its count, the dot its mean score. A calibrated score "
        f"sits on the diagonal; the expected calibration error (count-weighted mean gap) is "
        f"{_fmt(rel['ece'])}. The vertical line is the score threshold {data.threshold:g}: keeping the detections "
        f"at or above it gives recall {_fmt(s['recall'])} and precision {_fmt(s['precision'])}. Below: the "
        f"detections per bin.")]))

    errors = point_errors(data)
    items = []
    if errors["all"]:
        figures.save(figures.error_histogram_figure(errors, names), out / "point_error_histograms.png")
        figures.save(figures.error_cdf_figure(errors, names), out / "point_error_cumulative.png")
        items += [("point_error_histograms.png",
                   "Distance in pixels between each labelled ground-truth keypoint and the same keypoint of its "
                   "same-class match (the points mean_px, median_px and p95_px summarise), per class."),
                  ("point_error_cumulative.png",
                   "Share of matched points whose error is at most x pixels, per class and over all classes "
                   "(dashed): the higher and further left, the better.")]
        if several:
            figures.save(figures.keypoint_error_figure(errors), out / "point_error_keypoints.png")
            items.append(("point_error_keypoints.png",
                          f"The same point errors per keypoint name ({', '.join(g.keypoint_names)})."))
    sections.append(("Point error", items))

    worst = worst_points(data, worst_per_class)
    gallery = [(names[c], points) for c, points in worst.items() if points]
    crops = _Crops(gt_path.parent, data.file_names)
    gallery_items = []
    for page, start in enumerate(range(0, len(gallery), CLASSES_PER_GALLERY_PAGE), start=1):
        png = f"worst_points_{page:02d}.png"
        figures.save(figures.gallery_figure(gallery[start:start + CLASSES_PER_GALLERY_PAGE], crops,
                                            worst_per_class, several), out / png)
        shown = gallery[start:start + CLASSES_PER_GALLERY_PAGE]
        gallery_items.append((png, f"Classes {shown[0][0]} to {shown[-1][0]}: the {worst_per_class} worst-placed "
                                   "points of each class among matched detections, largest error first; ring: "
                                   "ground truth, dot: prediction, on the character's crop."))
    if crops.missing:
        gallery_items = [(png, caption + f" {len(crops.missing)} image(s) could not be read under {gt_path.parent} "
                                         f"(e.g. {crops.missing[0]}): their cells show the points alone.")
                         for png, caption in gallery_items]
    if gallery_items:
        sections.append(("Worst-placed points", gallery_items))

    if curves is not None:
        training = []
        if curves.get("train") or curves.get("val", {}).get("loss"):
            figures.save(figures.loss_figure(curves), out / "training_loss.png")
            training.append(("training_loss.png", "Training loss and its terms per step from the run's metrics.csv "
                                                  "(log scale); squares: the loss on the validation split."))
        if any(k in curves.get("val", {}) for k in figures.VAL_SHARES + figures.VAL_PIXELS):
            figures.save(figures.validation_figure(curves), out / "validation_scores.png")
            training.append(("validation_scores.png", "Validation scores at each validation of the run "
                                                      "(metrics.csv 'val' rows): AP, class accuracy and miss rate "
                                                      "left, point error in pixels right."))
        tta = time_to_accuracy(curves)
        if tta is not None:
            figures.save(figures.time_to_accuracy_figure(tta), out / "time_to_accuracy.png")
            reached = ", ".join(f"{t} at {m:.1f} min" if m is not None else f"{t} not reached"
                                for t, m in tta["reached"].items())
            training.append(("time_to_accuracy.png", f"Validation keypoint AP against minutes of training (the run's "
                                                     f"wall_s, validation and saving not counted): {reached}."))
        if training:
            sections.append(("Training", training))

    numbers = {
        "scores": data.scores,
        "pr": pr,
        "confusion": cm,
        "point_errors": {"all": _stats(errors["all"]),
                         "per_class": {c: _stats(v) for c, v in errors["per_class"].items()},
                         "per_keypoint": {n: _stats(v) for n, v in errors["per_keypoint"].items()}},
        "worst_points": worst,
        "training": curves,
        "time_to_accuracy": time_to_accuracy(curves) if curves is not None else None,
        "reliability": rel,
        "at_threshold": {"score_threshold": data.threshold, "recall": s["recall"], "precision": s["precision"],
                         "match_px": POINT_MATCH_PX},
    }
    return [s for s in sections if s[1]], numbers


def write_report(gt_path: str | os.PathLike, results_path: str | os.PathLike, out_dir: str | os.PathLike,
                 run_dir: Optional[str | os.PathLike] = None, *, sigma: Any = None, worst_per_class: int = 8,
                 threshold: float = DEFAULT_SCORE_THRESHOLD) -> Path:
    """Draw the evaluation of ``results_path`` against ``gt_path`` (and a run's training curves) into ``out_dir``.

    Writes ``out_dir/index.html``, the PNGs it shows (PR curves, confusion matrix, reliability diagram of the
    scores, point-error histograms and cumulative curves, the worst-placed points per class, and with ``run_dir``
    the loss and validation curves)
    and ``report.json`` with the numbers they draw. An older report at ``out_dir`` is replaced; nothing is
    written when anything fails.

    Args:
        gt_path: COCO keypoints ground truth; the gallery reads the images its ``file_name`` entries name,
            relative to its folder (``make-dataset``'s ``SPLIT/images/``).
        results_path: COCO results for it (``ocrloc predict``'s output).
        out_dir: the report folder to write.
        run_dir: a training run folder holding ``metrics.csv`` (optional).
        sigma: OKS sigma, one value or one per keypoint name (None: the evaluator's default).
        worst_per_class: gallery cells per class.
        threshold: the score threshold, in [0, 1], of the recall and precision the report gives (and marks on
            the reliability diagram).

    Returns:
        The path of the written ``index.html``.

    Raises:
        EvaluationInputError: the ground truth, results, sigma or threshold are refused by the evaluator (one line naming
            the file and entry), or a ``file_name`` of the ground truth is absolute or climbs out of its
            folder with ``..`` (:func:`ocrloc.evaluation.inputs.image_file`).
        ReportError: a bad ``metrics.csv``, a bad ``worst_per_class``, an ``out_dir`` that is a file or a
            folder holding something other than a report, or one that cannot be written (a read-only or
            full disk: one line naming ``out_dir`` and the cause).
    """
    if isinstance(worst_per_class, bool) or not isinstance(worst_per_class, int) or worst_per_class < 1:
        raise ReportError(f"worst_per_class must be a whole number >= 1, got {worst_per_class!r}")
    gt_path, out_dir = Path(gt_path), Path(out_dir)
    target = out_dir.resolve()  # a name and a parent to build beside, even for "." or "report/"
    # The cheap checks first: a bad run folder or output folder fails before the evaluation runs.
    curves = read_metrics(Path(run_dir) / METRICS_FILE) if run_dir is not None else None
    _check_out_dir(out_dir)
    data = analyse(gt_path, results_path, sigma, threshold)
    # The gallery reads the images the ground truth names: only from inside its folder.
    for image_id, name in data.file_names.items():
        if name:
            image_file(gt_path.parent, name, f"{gt_path}: image {image_id}")
    started = time.time()
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        remove_stale_temporaries(target, started)
        built = Path(tempfile.mkdtemp(prefix=f".{target.name}.{writer_tag()}.", suffix=".tmp", dir=target.parent))
    except OSError as err:
        raise ReportError(f"{out_dir}: cannot write the report ({err.strerror or err})") from None
    try:
        sections, numbers = _draw(data, built, gt_path, curves, worst_per_class)
        inputs = {"ground truth": gt_path, "results": results_path, "run": run_dir,
                  "OKS sigma": ", ".join(f"{s:g}" for s in data.sigma), "score threshold": f"{data.threshold:g}"}
        numbers["inputs"] = {"gt": str(gt_path), "results": str(results_path),
                             "run_dir": None if run_dir is None else str(run_dir), "sigma": list(data.sigma),
                             "threshold": data.threshold}
        (built / "report.json").write_text(json.dumps(numbers, allow_nan=False, indent=1), encoding="utf-8")
        headline = {**data.scores, "ece": numbers["reliability"]["ece"]}
        (built / "index.html").write_text(_html(f"ocrloc report: {Path(results_path).name}", inputs, headline,
                                                sections), encoding="utf-8")
        os.chmod(built, 0o777 & ~umask())  # mkdtemp makes 0700; a report is as readable as any folder
        _move_into_place(built, target)
    except OSError as err:  # a full disk: the cause alone (ENOSPC) names no file
        raise ReportError(f"{out_dir}: cannot write the report ({err.strerror or err})") from None
    finally:
        if built.exists():
            shutil.rmtree(built, ignore_errors=True)
    return out_dir / "index.html"

