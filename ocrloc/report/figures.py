"""The report's figures, drawn with matplotlib's object API on the Agg canvas.

No ``pyplot``: figures are plain :class:`matplotlib.figure.Figure` objects, so drawing never picks or changes
a global backend (it works without a display, in threads, inside a training run). Every figure is drawn and
saved inside :func:`style`, which sets readable font sizes (10 pt and up) and colour-blind-safe colours:
Tableau's colour-blind 10 for classes, Okabe-Ito for ground truth (bluish green) vs prediction (vermillion).
"""

from __future__ import annotations

import contextlib
import os
from typing import Any, Callable, Dict, Iterator, List, Optional, Sequence

import matplotlib
import numpy as np
from cycler import cycler
from matplotlib.figure import Figure

__all__ = ["CLASS_PALETTE", "GT_COLOR", "PRED_COLOR", "style", "save", "pr_figure", "confusion_figure",
           "error_histogram_figure", "error_cdf_figure", "keypoint_error_figure", "gallery_figure",
           "reliability_figure", "loss_figure", "validation_figure"]

# matplotlib's 'tableau-colorblind10' style: ten class colours told apart with the common colour-vision deficiencies.
CLASS_PALETTE = ["#006BA4", "#FF800E", "#ABABAB", "#595959", "#5F9ED1", "#C85200", "#898989", "#A2C8EC",
                 "#FFBC79", "#CFCFCF"]
# Okabe-Ito: ground truth and prediction must never be confused, whatever the reader's colour vision.
GT_COLOR = "#009E73"  # bluish green
PRED_COLOR = "#D55E00"  # vermillion
HIGHLIGHT = ["#0072B2", "#E69F00", "#CC79A7", "#56B4E9", "#D55E00"]  # Okabe-Ito, for a few picked lines
# Okabe-Ito without black (the total) and yellow (too pale on white), then the same colours dashed: loss terms.
TERM_STYLES = [(c, ls) for ls in ("-", "--")
               for c in ("#E69F00", "#56B4E9", "#009E73", "#0072B2", "#D55E00", "#CC79A7")]
MANY = 10  # beyond this many classes, one line each is unreadable: grey lines and a few highlighted ones

STYLE = {
    "font.size": 11, "axes.titlesize": 12, "axes.labelsize": 11, "xtick.labelsize": 10, "ytick.labelsize": 10,
    "legend.fontsize": 10, "figure.titlesize": 13, "axes.grid": True, "grid.alpha": 0.3,
    "axes.prop_cycle": cycler(color=CLASS_PALETTE), "image.cmap": "cividis", "savefig.dpi": 100,
    "savefig.bbox": "tight", "figure.dpi": 100, "axes.spines.top": False, "axes.spines.right": False,
}


@contextlib.contextmanager
def style() -> Iterator[None]:
    """The report's matplotlib settings, for drawing and saving (text is laid out when saved)."""
    with matplotlib.rc_context(STYLE):
        yield


def save(fig: Figure, path: str | os.PathLike) -> None:
    """Write ``fig`` as a PNG (Agg)."""
    with style():
        fig.savefig(path, format="png")


def _valid(precision: Sequence[float]) -> bool:
    return bool(len(precision)) and min(precision) > -1


def pr_figure(pr: Dict[str, Any], thresholds: Sequence[float] = (0.5, 0.75)) -> Figure:
    """Precision vs recall of every class at each OKS threshold (COCOeval's interpolated precision).

    Args:
        pr: :func:`ocrloc.report.analysis.pr_summary`'s dict.
        thresholds: the OKS thresholds to draw, one panel each.
    """
    recall = np.asarray(pr["recall"])
    classes = [(c, v) for c, v in pr["per_class"].items() if _valid(np.asarray(v["precision"]).ravel())]
    with style():
        fig = Figure(figsize=(5.2 * len(thresholds), 4.8 if len(classes) <= MANY else 4.4))
        axes = fig.subplots(1, len(thresholds), squeeze=False)[0]
        for ax, t in zip(axes, thresholds):
            row = int(np.argmin(np.abs(np.asarray(pr["oks_thresholds"]) - t)))
            curves = {c: np.asarray(v["precision"])[row] for c, v in classes}
            ap = {c: float(p.mean()) for c, p in curves.items()}
            if len(classes) <= MANY:
                for k, (c, v) in enumerate(classes):
                    ax.plot(recall, curves[c], color=CLASS_PALETTE[k % len(CLASS_PALETTE)], lw=1.8,
                            label=f"{v['name']}  AP {ap[c]:.3f}")
            else:
                for c, _ in classes:
                    ax.plot(recall, curves[c], color="#BBBBBB", lw=0.8)
                worst = sorted(curves, key=lambda c: ap[c])[:3]
                for k, c in enumerate(worst):
                    ax.plot(recall, curves[c], color=HIGHLIGHT[k], lw=2,
                            label=f"{pr['per_class'][c]['name']}  AP {ap[c]:.3f} (worst)")
            if curves:
                ax.plot(recall, np.mean(list(curves.values()), axis=0), color="black", lw=2.4, ls="--",
                        label=f"mean of classes  AP {np.mean(list(ap.values())):.3f}")
            ax.set(xlim=(0, 1.0), ylim=(0, 1.02), xlabel="recall (share of ground-truth objects found)",
                   ylabel="precision (share of detections correct)", title=f"OKS \u2265 {t:.2f}")
            ax.legend(loc="lower left", ncol=2 if len(classes) > 5 and len(classes) <= MANY else 1, frameon=True)
        fig.suptitle("Keypoint precision-recall per class")
        fig.set_layout_engine("constrained")
    return fig


def _pick_confused(matrix: np.ndarray, limit: int) -> List[int]:
    """The ``limit`` classes with the most errors (own misses and wrong names, and others named as them)."""
    n = matrix.shape[0]
    square = matrix[:, :n]
    wrong = square.sum(1) - np.diag(square) + matrix[:, n] + (square.sum(0) - np.diag(square))
    order = np.argsort(-wrong, kind="stable")
    return sorted(order[:limit].tolist())


def confusion_figure(cm: Dict[str, Any], max_classes: int = 20) -> Figure:
    """True class vs the class of its matched detection, with misses as a column; counts in the cells.

    With more than ``max_classes`` classes only the classes with the most errors are drawn (their row and
    column), and an ``other`` column collects the rest, so 62 glyph classes stay readable.
    """
    matrix = np.asarray(cm["matrix"], np.int64)
    names = list(cm["class_names"])
    n = len(names)
    if n > max_classes:
        keep = _pick_confused(matrix, max_classes)
        rest = [k for k in range(n) if k not in keep]
        shown = np.concatenate([matrix[np.ix_(keep, keep)], matrix[np.ix_(keep, rest)].sum(1, keepdims=True),
                                matrix[keep, n:n + 1]], axis=1)
        rows = [names[k] for k in keep]
        columns = rows + ["other", "missed"]
        title = f"Confusion matrix: the {len(keep)} of {n} classes with the most errors"
    else:
        shown, rows, columns = matrix, names, names + ["missed"]
        title = "Confusion matrix"
    share = shown / np.maximum(shown.sum(1, keepdims=True), 1)
    cell = 0.5 if len(columns) <= 24 else 0.4
    with style():
        # Sized to the cells (labels around them), no colour bar: the counts are written in, the colour only
        # shows the share of the row at a glance.
        fig = Figure(figsize=(1.4 + cell * len(columns), 2.0 + cell * len(rows)))
        ax = fig.subplots()
        ax.imshow(share, cmap="Blues", vmin=0, vmax=1, aspect="equal")
        ax.grid(False)
        for i in range(shown.shape[0]):
            for j in range(shown.shape[1]):
                if shown[i, j]:
                    ax.text(j, i, str(shown[i, j]), ha="center", va="center", fontsize=10,
                            color="white" if share[i, j] > 0.5 else "black")
        ax.set_xticks(range(len(columns)), columns, rotation=90 if max(map(len, columns)) > 2 else 0)
        ax.set_yticks(range(len(rows)), rows)
        ax.axvline(len(columns) - 1.5, color="black", lw=1)
        ax.set(xlabel="predicted class of the matched detection", ylabel="true class", title=title)
        fig.set_layout_engine("constrained")
    return fig


def _upper(values: np.ndarray) -> float:
    # The histograms end at the 99.5th percentile: one wild point would squeeze all the others into one bin.
    return float(max(np.percentile(values, 99.5) * 1.05, 1e-3)) if values.size else 1.0


def _hist(ax, values: np.ndarray, edges: np.ndarray, color: str) -> None:
    ax.hist(np.clip(values, edges[0], edges[-1]), bins=edges, color=color, edgecolor="white", linewidth=0.4)


def error_histogram_figure(errors: Dict[str, Any], names: Dict[str, str], max_panels: int = 12) -> Figure:
    """Point-error histograms: one panel per class, or (many classes) all points plus the worst classes' p95."""
    everything = np.asarray(errors["all"])
    edges = np.linspace(0, _upper(everything), 31)
    per_class = {c: np.asarray(v) for c, v in errors["per_class"].items()}
    with style():
        if len(per_class) <= max_panels:
            cols = min(5, max(len(per_class), 1))
            rows = -(-len(per_class) // cols)
            fig = Figure(figsize=(2.9 * cols, 2.3 * rows + 0.8))
            axes = fig.subplots(rows, cols, squeeze=False, sharex=True)
            for ax in axes.ravel()[len(per_class):]:
                ax.set_visible(False)
            for k, (ax, (c, v)) in enumerate(zip(axes.ravel(), per_class.items())):
                _hist(ax, v, edges, CLASS_PALETTE[k % len(CLASS_PALETTE)])
                median = f"median {np.median(v):.2f} px" if v.size else "no matched point"
                ax.set_title(f"{names[c]}: {median}", fontsize=11)
                if k % cols == 0:
                    ax.set_ylabel("points")
            for ax in axes[-1]:
                ax.set_xlabel("point error (px)")
            # Fixed margins: the constrained layout engine costs seconds on a dozen panels.
            fig.subplots_adjust(left=0.06, right=0.99, bottom=0.12 if rows == 1 else 0.08, top=0.86 if rows == 1
                                else 0.9, wspace=0.25, hspace=0.35)
        else:
            fig = Figure(figsize=(11, 5))
            left, right = fig.subplots(1, 2)
            _hist(left, everything, edges, CLASS_PALETTE[0])
            left.set(xlabel="point error (px)", ylabel="points", title=f"All classes ({everything.size} points)")
            p95 = {c: float(np.percentile(v, 95)) for c, v in per_class.items() if v.size}
            worst = sorted(p95, key=lambda c: -p95[c])[:20][::-1]
            right.barh([names[c] for c in worst], [p95[c] for c in worst], color=CLASS_PALETTE[1], label="p95")
            right.barh([names[c] for c in worst], [float(np.median(per_class[c])) for c in worst],
                       color=CLASS_PALETTE[0], label="median")
            right.set(xlabel="point error (px)", title=f"The {len(worst)} classes with the largest p95")
            right.legend(loc="lower right")
            fig.set_layout_engine("constrained")
        fig.suptitle("Point error of matched detections (last bin: everything beyond)")
    return fig


def _cdf(ax, values: np.ndarray, **kwargs) -> None:
    if values.size:
        x = np.sort(values)
        ax.step(np.concatenate([[0.0], x]), np.arange(x.size + 1) / x.size, where="post", **kwargs)


def error_cdf_figure(errors: Dict[str, Any], names: Dict[str, str]) -> Figure:
    """Cumulative share of matched points within each error, all points and per class."""
    everything = np.asarray(errors["all"])
    per_class = {c: np.asarray(v) for c, v in errors["per_class"].items() if len(v)}
    with style():
        fig = Figure(figsize=(7.5, 5))
        ax = fig.subplots()
        if len(per_class) <= MANY:
            for k, (c, v) in enumerate(per_class.items()):
                _cdf(ax, v, color=CLASS_PALETTE[k % len(CLASS_PALETTE)], lw=1.6, label=names[c])
        else:
            for v in per_class.values():
                _cdf(ax, v, color="#BBBBBB", lw=0.8)
            worst = sorted(per_class, key=lambda c: -float(np.median(per_class[c])))[:5]
            for k, c in enumerate(worst):
                _cdf(ax, per_class[c], color=HIGHLIGHT[k], lw=2, label=f"{names[c]} (largest median)")
        _cdf(ax, everything, color="black", lw=2.4, ls="--", label="all classes")
        ax.set(xlim=(0, _upper(everything)), ylim=(0, 1.01), xlabel="point error (px)",
               ylabel="share of matched points within", title="Cumulative point error per class")
        ax.legend(loc="lower right", ncol=2 if len(per_class) > 5 else 1)
        fig.set_layout_engine("constrained")
    return fig


def keypoint_error_figure(errors: Dict[str, Any]) -> Figure:
    """Point error per keypoint name (tasks whose classes name several keypoints): histograms and cumulative."""
    per_keypoint = {n: np.asarray(v) for n, v in errors["per_keypoint"].items()}
    edges = np.linspace(0, _upper(np.asarray(errors["all"])), 31)
    with style():
        fig = Figure(figsize=(12, 4.8))
        left, right = fig.subplots(1, 2)
        for k, (name, v) in enumerate(per_keypoint.items()):
            color = HIGHLIGHT[k % len(HIGHLIGHT)] if len(per_keypoint) <= len(HIGHLIGHT) else \
                CLASS_PALETTE[k % len(CLASS_PALETTE)]
            left.hist(np.clip(v, edges[0], edges[-1]), bins=edges, histtype="step", lw=1.8, color=color,
                      label=f"{name} (median {np.median(v):.2f} px)" if v.size else f"{name} (none)")
            _cdf(right, v, color=color, lw=1.8, label=name)
        left.set(xlabel="point error (px)", ylabel="points", title="Histogram per keypoint")
        right.set(xlim=(0, edges[-1]), ylim=(0, 1.01), xlabel="point error (px)",
                  ylabel="share of matched points within", title="Cumulative per keypoint")
        left.legend()
        right.legend(loc="lower right")
        fig.suptitle("Point error per keypoint name")
        fig.set_layout_engine("constrained")
    return fig


def gallery_figure(rows: List[tuple], crop: Callable[[Dict[str, Any]], Optional[tuple]], columns: int,
                   several_keypoints: bool) -> Figure:
    """The worst-placed points, one row per class: the character's crop, its true point and the predicted one.

    All cells share one axes, each crop placed at its cell by ``imshow``'s extent: one axes per cell would
    cost seconds of layout for the 80 cells of a page.

    Args:
        rows: ``(class name, [worst point dicts of analysis.worst_points])`` per class.
        crop: a point dict -> ``(pixels [h, w] uint8, (x0, y0))``, the crop and its top-left in image pixels,
            or None when the image cannot be read.
        columns: cells per row (``worst_per_class``).
        several_keypoints: also name the keypoint in each cell.
    """
    columns = max(columns, 1)
    fit = 0.92  # share of a cell the crop's longer side fills
    title_room = 0.42 if several_keypoints else 0.26  # above each crop, in cell units
    row_height = 1 + title_room
    with style():
        # Sized to the data limits below (1.45 in per cell) so the equal aspect leaves no empty band.
        fig = Figure(figsize=(1.45 * (columns + 0.9), 1.45 * (row_height * len(rows) + 0.1)))
        ax = fig.add_axes((0.0, 0.0, 1.0, 1.0))
        ax.set_axis_off()
        for r, (name, points) in enumerate(rows):
            top = r * row_height + title_room
            ax.text(-0.12, top + 0.5, name, ha="right", va="center", fontsize=14)
            for c, p in enumerate(points[:columns]):
                got = crop(p)
                if got is not None:
                    pixels, (x0, y0) = got
                    h, w = pixels.shape
                else:  # no image: the points alone, on a blank cell the size of the character's box
                    x0, y0 = min(p["bbox"][0], p["gt"][0], p["pred"][0]), min(p["bbox"][1], p["gt"][1], p["pred"][1])
                    w, h = max(p["bbox"][2], 1.0), max(p["bbox"][3], 1.0)
                    pixels = np.zeros((max(int(h), 1), max(int(w), 1)), np.uint8)
                scale = fit / max(w, h)
                left = c + (1 - w * scale) / 2
                upper = top + (1 - h * scale) / 2
                ax.imshow(pixels, cmap="gray", vmin=0, vmax=255, interpolation="nearest",
                          extent=(left, left + w * scale, upper + h * scale, upper))

                def place(x: float, y: float) -> tuple:
                    return left + (x - x0) * scale, upper + (y - y0) * scale

                (gx, gy), (px, py) = place(*p["gt"]), place(*p["pred"])
                ax.plot([gx, px], [gy, py], color="white", lw=1)
                ax.plot(gx, gy, "o", ms=13, mfc="none", mec=GT_COLOR, mew=2.2)
                ax.plot(px, py, "o", ms=5.5, color=PRED_COLOR, mec="black", mew=0.5)
                label = f"{p['error_px']:.2f} px"
                ax.text(c + 0.5, top - 0.04, f"{p['keypoint']}\n{label}" if several_keypoints else label,
                        ha="center", va="bottom", fontsize=10)
        ax.set_xlim(-0.9, columns)
        ax.set_ylim(row_height * len(rows) + 0.05, -0.05)
        ax.set_aspect("equal")
        fig.suptitle("Worst-placed points per class, error in px\n"
                     "green ring: ground truth, orange dot: prediction", y=1.0, va="bottom")
    return fig


def reliability_figure(rel: Dict[str, Any], threshold: float, recall: Optional[float],
                       precision: Optional[float]) -> Figure:
    """Reliability diagram: per score bin, the fraction of its detections that are correct (bars) against the
    diagonal a calibrated score would follow, with each bin's count; below, the counts; the threshold marked.

    Args:
        rel: :func:`ocrloc.report.analysis.reliability`'s dict.
        threshold, recall, precision: the score threshold and the recall and precision at it.
    """
    bins = rel["bins"]
    lo = np.array([b["lo"] for b in bins])
    width = np.array([b["hi"] - b["lo"] for b in bins])
    counts = np.array([b["count"] for b in bins])
    accuracy = np.array([np.nan if b["accuracy"] is None else b["accuracy"] for b in bins])
    mean_score = np.array([np.nan if b["mean_score"] is None else b["mean_score"] for b in bins])
    ece = "-" if rel["ece"] is None else f"{rel['ece']:.3f}"
    at = (f"threshold {threshold:g}: recall {'-' if recall is None else f'{recall:.3f}'}, "
          f"precision {'-' if precision is None else f'{precision:.3f}'}")
    with style():
        fig = Figure(figsize=(7.5, 7.2))
        top, bottom = fig.subplots(2, 1, sharex=True, gridspec_kw={"height_ratios": [3, 1]})
        top.bar(lo, np.nan_to_num(accuracy), width=width, align="edge", color=HIGHLIGHT[0], edgecolor="white",
                alpha=0.85, label="fraction correct")
        top.plot([0, 1], [0, 1], color="black", ls="--", lw=1.4, label="calibrated (score = fraction correct)")
        shown = ~np.isnan(mean_score)
        top.plot(mean_score[shown], accuracy[shown], "o", color=PRED_COLOR, mec="black", mew=0.5, ms=6,
                 label="mean score of the bin")
        for x, w, n, a in zip(lo, width, counts, accuracy):
            if n:
                top.text(x + w / 2, min(a, 0.9) + 0.035, f"n={n}", ha="center", va="bottom", fontsize=9)
        top.axvline(threshold, color=GT_COLOR, lw=1.8, label=at)
        top.set(xlim=(0, 1), ylim=(0, 1.05), ylabel="fraction of detections correct",
                title=f"Reliability of the scores ({rel['num_dets']} detections, ECE {ece})")
        top.legend(loc="upper left", fontsize=9)
        bottom.bar(lo, counts, width=width, align="edge", color="#898989", edgecolor="white")
        bottom.axvline(threshold, color=GT_COLOR, lw=1.8)
        filled = counts[counts > 0]
        if filled.size and filled.max() > 50 * filled.min():  # one crowded bin would flatten the others
            bottom.set_yscale("log")
        bottom.set(xlabel="detection score (binned)", ylabel="detections")
        fig.set_layout_engine("constrained")
    return fig


def loss_figure(curves: Dict[str, Dict[str, List[tuple]]]) -> Figure:
    """Training loss and its terms per step (log scale), with the validation loss when the run logged one."""
    train = curves.get("train", {})
    val = curves.get("val", {})
    terms = ["loss"] + sorted(k for k in train if k.startswith("loss_"))
    with style():
        fig = Figure(figsize=(8.5, 5))
        ax = fig.subplots()
        for k, name in enumerate(t for t in terms if t in train):
            steps, values = zip(*train[name])
            color, line = ("black", "-") if name == "loss" else TERM_STYLES[(k - 1) % len(TERM_STYLES)]
            ax.plot(steps, values, lw=2.4 if name == "loss" else 1.5, color=color, ls=line, label=f"train {name}")
        if "loss" in val:
            steps, values = zip(*val["loss"])
            ax.plot(steps, values, "s--", color=PRED_COLOR, ms=7, lw=1.6, label="validation loss")
        if any(v > 0 for name in terms for _, v in train.get(name, [])):
            ax.set_yscale("log")
        ax.set(xlabel="training step", ylabel="loss (log scale)", title="Training loss")
        ax.legend(loc="upper right", ncol=2)
        fig.set_layout_engine("constrained")
    return fig


VAL_SHARES = ("kpt_AP", "kpt_AP50", "kpt_AP75", "box_AP", "cls_acc", "miss_rate")
VAL_PIXELS = ("mean_px", "median_px", "p95_px")


def validation_figure(curves: Dict[str, Dict[str, List[tuple]]]) -> Figure:
    """Validation scores per step: AP, class accuracy and miss rate (left), point error in px (right)."""
    val = curves.get("val", {})
    with style():
        fig = Figure(figsize=(12, 4.8))
        left, right = fig.subplots(1, 2)
        for k, name in enumerate(n for n in VAL_SHARES if n in val):
            steps, values = zip(*val[name])
            left.plot(steps, values, "o-", color=HIGHLIGHT[k % len(HIGHLIGHT)] if k < len(HIGHLIGHT) else "black",
                      lw=1.6, ms=6, label=name)
        for k, name in enumerate(n for n in VAL_PIXELS if n in val):
            steps, values = zip(*val[name])
            right.plot(steps, values, "o-", color=HIGHLIGHT[k], lw=1.6, ms=6, label=name)
        left.set(ylim=(0, 1.02), xlabel="training step", ylabel="score (0 to 1)", title="Validation scores")
        right.set(xlabel="training step", ylabel="point error (px)", title="Validation point error")
        right.set_ylim(bottom=0)
        for ax in (left, right):
            if ax.lines:
                ax.legend(loc="best")
        fig.set_layout_engine("constrained")
    return fig


def time_to_accuracy_figure(tta: Dict[str, Any]) -> Figure:
    """Validation keypoint AP against minutes of training, each target's level dashed and its first
    crossing marked (:func:`ocrloc.report.analysis.time_to_accuracy`)."""
    with style():
        fig = Figure(figsize=(8.5, 5))
        ax = fig.subplots()
        ax.plot(tta["minutes"], tta["values"], "o-", color="black", lw=1.8, ms=5, label=f"validation {tta['score']}")
        for k, (target, minutes) in enumerate(tta["reached"].items()):
            color = HIGHLIGHT[k % len(HIGHLIGHT)]
            ax.axhline(float(target), color=color, ls="--", lw=1.2)
            if minutes is None:
                label = f"{target}: not reached"
            else:
                ax.axvline(minutes, color=color, ls=":", lw=1.2)
                label = f"{target} first reached at {minutes:.1f} min"
            ax.plot([], [], color=color, ls="--", label=label)
        low = min(min(tta["values"]), *(float(t) for t in tta["reached"])) - 0.02
        ax.set(xlabel="minutes of training (validation and saving not counted)", ylabel=tta["score"],
               title="Time to accuracy", ylim=(max(low, 0.0), 1.0))
        ax.set_xlim(left=0)
        ax.legend(loc="lower right")
        fig.set_layout_engine("constrained")
    return fig
