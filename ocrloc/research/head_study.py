"""Run a folder of configs over rules and seeds and tabulate mean +- std (the head study).

Each (rule, config, seed) trains into ``OUT/<rule>/<config>/seed<k>`` (a finished run is
reused, a partial one resumed) with ``train.seed = k``, then its ``best.pt`` (chosen on val)
is scored on one fixed test set per rule, generated in memory from MNIST's test digits:
point error in pixels (at the predicted class), PCK at 0.5 and 1 px, class accuracy.

:func:`fidelity_rows` asks a different question of the same runs: how exactly do the point
head's learned coordinate features match the ink? Two errors, in pixels: the best single
feature for each edge of the ink box (affine fit: does one feature *equal* an edge?), and all
features together for each named point (``docs/task.md``, "Named points"; linear, fitted on half
of the test canvases and measured on the other half: is the point *in* the features?).
"""

from __future__ import annotations

import math
import os
from pathlib import Path
from typing import Any, Callable, Dict, List, Optional, Sequence

import torch

from ocrloc.config import Config, load_config
from ocrloc.data.canvas import CanvasGenerator
from ocrloc.data.datasets import image_tensor
from ocrloc.data.mnist import load_digit_pool
from ocrloc.data.points import POINT_NAMES
from ocrloc.engine.checkpoint import detector_from_checkpoint
from ocrloc.engine.inference import iterate_predictions
from ocrloc.engine.runs import train_or_reuse
from ocrloc.research.oracle import labelled
from ocrloc.utils.io import cached_json

__all__ = ["STUDY_COLUMNS", "FIDELITY_COLUMNS", "StudyTestSet", "make_test_set", "point_scores", "run_experiments",
           "experiment_table", "fit_fidelity", "feature_fidelity", "fidelity_rows", "fidelity_table"]

STUDY_COLUMNS = ("rule", "config", "seeds", "params", "train min", "class acc", "point error px", "PCK@0.5px", "PCK@1px",
                 "true class: px", "true class: PCK@0.5px", "true class: PCK@1px")
SCORES_VERSION = 2  # bump when point_scores changes: cached study_scores.json files are then recomputed
FIDELITY_COLUMNS = ("rule", "config", "seeds", "features", "ink box edges, one feature",
                    *(f"{name}, linear" for name in POINT_NAMES))
# (point, axis) of the ink box's left, top, right and bottom edges among the named points.
_EDGES = ((POINT_NAMES.index("topleft"), 0), (POINT_NAMES.index("topleft"), 1),
          (POINT_NAMES.index("rightmost"), 0), (POINT_NAMES.index("bottommost"), 1))


class StudyTestSet:
    """Images and the one digit's class and point per canvas, held in memory; ``named_points``
    ``[N, 7, 2]`` holds all seven named points (:data:`POINT_NAMES` order) when known."""

    def __init__(self, images: torch.Tensor, labels: torch.Tensor, points: torch.Tensor, description: str,
                 named_points: Optional[torch.Tensor] = None) -> None:
        self.images, self.labels, self.points, self.description = images, labels, points, description
        self.named_points = named_points


def make_test_set(preset: str, rule: str, count: int, seed: int, data_root: Optional[str] = None) -> StudyTestSet:
    """``count`` test canvases of ``preset`` / ``rule`` (one digit each; the first digit otherwise)."""
    generator = CanvasGenerator(preset, rule, "test", seed, load_digit_pool("test", data_root))
    canvases = [generator(i) for i in range(count)]  # each generated once: images, labels and points
    digits = [c.digits[0] for c in canvases]
    images = torch.stack([image_tensor(c.image) for c in canvases])
    labels = torch.tensor([d.label for d in digits], dtype=torch.int64)
    points = torch.tensor([d.point(rule) for d in digits], dtype=torch.float32)
    named = torch.tensor([[d.points[name] for name in POINT_NAMES] for d in digits], dtype=torch.float32)
    return StudyTestSet(images, labels, points, f"{preset}/{rule}/test/seed{seed}/{count}", named)


def point_scores(predictor: torch.nn.Module, test: StudyTestSet, device: torch.device,
                 batch_size: int = 256) -> Dict[str, float]:
    """Point error (pixels, at the predicted class), PCK at 0.5 and 1 px, class accuracy; and the
    point error and PCK at the *true* class (``true_*``), which a wrong class cannot spoil: the
    study's question is where the head puts the point, and a misclassified digit's point belongs
    to another rule."""
    labels, points, true_points = [], [], []
    batches = ((test.images[start:start + batch_size], [{"label": int(c)} for c in test.labels[start:start + batch_size]])
               for start in range(0, len(test.labels), batch_size))
    for _, targets, detections in iterate_predictions(predictor, batches, device):
        labels += [int(d["labels"][0]) for d in detections]
        points += [d["keypoints"][0, 0, :2].cpu() for d in detections]
        # The study predictor gives every class's point: the one at the true class.
        true_points += [d["class_points"][0, t["label"]].cpu() for d, t in zip(detections, targets)]
    error = (torch.stack(points) - test.points).norm(dim=1)
    true_error = (torch.stack(true_points) - test.points).norm(dim=1)
    return {
        "point_px": float(error.mean()),
        "median_px": float(error.median()),
        "pck_0.5": float((error <= 0.5).float().mean()),
        "pck_1": float((error <= 1.0).float().mean()),
        "cls_acc": float((torch.tensor(labels) == test.labels).float().mean()),
        "true_px": float(true_error.mean()),
        "true_pck_0.5": float((true_error <= 0.5).float().mean()),
        "true_pck_1": float((true_error <= 1.0).float().mean()),
    }


def rule_label(rule: str) -> str:
    """A rule's name in run folders and tables: a rule file by its stem (``.../stroke.yaml`` ->
    ``stroke``), a built-in rule by its name."""
    return Path(rule).stem if rule.endswith((".yaml", ".yml")) else rule


def run_experiments(config_paths: Sequence[str | os.PathLike], rules: Sequence[str], seeds: Sequence[int],
                    out_dir: str | os.PathLike, test_count: int = 2000, test_seed: int = 1000,
                    overrides: Sequence[str] = (), device: str = "auto", progress: bool = True,
                    on_row: Optional[Callable[[List[Dict[str, Any]]], None]] = None) -> List[Dict[str, Any]]:
    """Train or reuse every (rule, config, seed), score it, and return one row per (rule, config)."""
    from ocrloc.engine.distributed import resolve_device

    torch_device = resolve_device(device)
    out_dir = Path(out_dir)
    rows: List[Dict[str, Any]] = []
    for rule in rules:
        configs = [(Path(p).stem, p) for p in config_paths]
        test: Optional[StudyTestSet] = None
        for name, path in configs:
            runs = []
            for seed in seeds:
                config: Config = load_config(path, [f"data.rule={rule}", f"train.seed={seed}", *overrides])
                run_dir = out_dir / rule_label(rule) / name / f"seed{seed}"
                state = train_or_reuse(config, run_dir, progress)
                best = run_dir / "checkpoints" / "best.pt"
                key = {"checkpoint_mtime": best.stat().st_mtime, "scores_version": SCORES_VERSION,
                       "test": f"{config.data.preset}/{rule}/test/seed{test_seed}/{test_count}"}
                detector, _, _ = detector_from_checkpoint(best, map_location=torch_device)

                def score_on_test() -> Dict[str, float]:
                    nonlocal test
                    if test is None:
                        test = make_test_set(config.data.preset, rule, test_count, test_seed, config.data.data_root)
                    return point_scores(detector.predictor, test, torch_device)

                scores = cached_json(run_dir / "study_scores.json", key, score_on_test)
                runs.append({"seed": seed, "wall_s": float(state.get("wall_s", 0.0)),
                             "params": sum(p.numel() for p in detector.model.parameters()), **scores})
            rows.append(_aggregate(rule_label(rule), labelled(name, config), runs))
            if on_row is not None:
                on_row(rows)
    return rows


def _mean_std(values: Sequence[float]) -> Dict[str, float]:
    mean = sum(values) / len(values)
    std = math.sqrt(sum((v - mean) ** 2 for v in values) / (len(values) - 1)) if len(values) > 1 else 0.0
    return {"mean": mean, "std": std}


def _aggregate(rule: str, name: str, runs: List[Dict[str, Any]]) -> Dict[str, Any]:
    row: Dict[str, Any] = {"rule": rule, "config": name, "seeds": [r["seed"] for r in runs],
                           "params": runs[0]["params"], "runs": runs}
    for key in ("wall_s", "point_px", "median_px", "pck_0.5", "pck_1", "cls_acc", "true_px", "true_pck_0.5", "true_pck_1"):
        row[key] = _mean_std([r[key] for r in runs])
    return row


def experiment_table(rows: Sequence[Dict[str, Any]]) -> str:
    """Markdown table of :func:`run_experiments` rows (mean +- std over seeds)."""

    def ms(stat: Dict[str, float], digits: int) -> str:
        return f"{stat['mean']:.{digits}f} ± {stat['std']:.{digits}f}"

    lines = ["| " + " | ".join(STUDY_COLUMNS) + " |", "|" + "---|" * len(STUDY_COLUMNS)]
    for r in rows:
        lines.append("| " + " | ".join([
            r["rule"], r["config"], str(len(r["seeds"])), f"{r['params'] / 1e3:.0f}k", f"{r['wall_s']['mean'] / 60:.1f}",
            ms(r["cls_acc"], 3), ms(r["point_px"], 2), ms(r["pck_0.5"], 3), ms(r["pck_1"], 3),
            ms(r["true_px"], 2), ms(r["true_pck_0.5"], 3), ms(r["true_pck_1"], 3)]) + " |")
    return "\n".join(lines) + "\n"


def fit_fidelity(features: torch.Tensor, targets: torch.Tensor) -> Dict[str, torch.Tensor]:
    """How well features ``[N, D]`` give targets ``[N, K]``: per target, the median absolute
    error of the best single feature under an affine least-squares fit (``single``, in-sample:
    two parameters per fit) and of a linear least-squares fit on all features, fitted on the
    first half of the rows and measured on the second (``linear``). Both ``[K]``, in the
    targets' units. Medians, because a few canvases on which an unused feature jumps would
    otherwise stand for all of them."""
    f = features.double()
    t = targets.double()
    n = f.shape[0]
    if n < 4:
        raise ValueError(f"fit_fidelity needs at least 4 rows, got {n}")
    fc, tc = f - f.mean(dim=0), t - t.mean(dim=0)
    cov = fc.T @ tc / n                                                    # [D, K]
    var_f, var_t = (fc ** 2).mean(dim=0), (tc ** 2).mean(dim=0)
    r2 = cov ** 2 / (var_f[:, None] * var_t[None, :]).clamp_min(1e-18)
    best = r2.argmax(dim=0)                                                # [K]
    columns = torch.arange(t.shape[1])
    slope = cov[best, columns] / var_f[best].clamp_min(1e-18)
    single = (tc - fc[:, best] * slope).abs().median(dim=0).values
    half = n // 2
    design = torch.cat([f, torch.ones(n, 1, dtype=f.dtype)], dim=1)
    weights = torch.linalg.lstsq(design[:half], t[:half], driver="gelsd").solution
    linear = (design[half:] @ weights - t[half:]).abs().median(dim=0).values
    return {"single": single.float(), "linear": linear.float()}


@torch.no_grad()
def feature_fidelity(model: torch.nn.Module, test: StudyTestSet, device: torch.device,
                     batch_size: int = 256) -> Dict[str, float]:
    """:func:`fit_fidelity` of a study model's point features against the named points (``docs/task.md``),
    in canvas pixels: ``edges``, the mean single-feature error over the ink box's four edges;
    per point name, the linear fit's error (mean of x and y)."""
    if test.named_points is None:
        raise ValueError(f"test set {test.description} holds no named points")
    model.eval()
    features = torch.cat([model.point_inputs(test.images[start:start + batch_size].to(device))[0].cpu()
                          for start in range(0, len(test.labels), batch_size)])
    fits = fit_fidelity(features, test.named_points.reshape(len(test.labels), -1))
    single = fits["single"].view(len(POINT_NAMES), 2)
    linear = fits["linear"].view(len(POINT_NAMES), 2).mean(dim=1)
    return {"edges": float(sum(single[p, a] for p, a in _EDGES) / len(_EDGES)),
            **{name: float(v) for name, v in zip(POINT_NAMES, linear)}, "features": int(features.shape[1])}


def fidelity_rows(config_paths: Sequence[str | os.PathLike], rules: Sequence[str], seeds: Sequence[int],
                  out_dir: str | os.PathLike, test_count: int = 2000, test_seed: int = 1000,
                  overrides: Sequence[str] = (), device: str = "auto") -> List[Dict[str, Any]]:
    """:func:`feature_fidelity` of every finished run of :func:`run_experiments` whose head reads
    coordinates (soft / hard arg-max, extremes), mean over seeds per (rule, config)."""
    from ocrloc.engine.distributed import resolve_device
    from ocrloc.research.study import COORDINATE_HEADS

    torch_device = resolve_device(device)
    rows: List[Dict[str, Any]] = []
    for rule in rules:
        test: Optional[StudyTestSet] = None
        for path in config_paths:
            name = Path(path).stem
            found = []
            for seed in seeds:
                config = load_config(path, [f"data.rule={rule}", f"train.seed={seed}", *overrides])
                best = Path(out_dir) / rule_label(rule) / name / f"seed{seed}" / "checkpoints" / "best.pt"
                if config.model.study.head not in COORDINATE_HEADS or not best.is_file():
                    continue
                if test is None:
                    test = make_test_set(config.data.preset, rule, test_count, test_seed, config.data.data_root)
                detector, _, _ = detector_from_checkpoint(best, map_location=torch_device)
                found.append(feature_fidelity(detector.model, test, torch_device))
            if found:
                row: Dict[str, Any] = {"rule": rule_label(rule), "config": labelled(name, config), "seeds": len(found),
                                       "features": found[0]["features"]}
                for key in ("edges", *POINT_NAMES):
                    row[key] = sum(f[key] for f in found) / len(found)
                rows.append(row)
    return rows


def fidelity_table(rows: Sequence[Dict[str, Any]]) -> str:
    """Markdown table of :func:`fidelity_rows` (errors in pixels, mean over seeds)."""
    lines = ["| " + " | ".join(FIDELITY_COLUMNS) + " |", "|" + "---|" * len(FIDELITY_COLUMNS)]
    for r in rows:
        lines.append("| " + " | ".join([r["rule"], r["config"], str(r["seeds"]), str(r["features"]),
                                         *(f"{r[k]:.2f}" for k in ("edges", *POINT_NAMES))]) + " |")
    return "\n".join(lines) + "\n"
