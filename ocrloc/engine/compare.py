"""Train (or reuse) several configs at one budget, score each on one test split, tabulate.

Every row gets the same rule, the same number of training steps (so the same number of
training canvases at the configs' shared batch size) and the same test split; wall minutes
and images/s are measured beside it. A run folder that already holds the finished run is
reused, a partial one resumed, so a comparison can be extended row by row across sessions.
The model scored is ``best.pt``: the checkpoint its own validation chose (never the test split).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Callable, Dict, List, Optional, Sequence

from torch.utils.data import DataLoader

from ocrloc.config import Config, load_config
from ocrloc.constants import DEFAULT_SCORE_THRESHOLD
from ocrloc.data.coco import ANNOTATIONS_FILE
from ocrloc.data.datasets import CocoKeypointDataset, collate_detection
from ocrloc.engine.checkpoint import detector_from_checkpoint
from ocrloc.engine.inference import predict_results
from ocrloc.engine.runs import train_or_reuse
from ocrloc.evaluation import evaluate
from ocrloc.families import labelled
from ocrloc.utils.io import cached_json, write_json_atomic

__all__ = ["TABLE_COLUMNS", "compare_configs", "comparison_table"]

TABLE_COLUMNS = ("model", "type", "backbone", "params (M)", "train canvases", "train min", "img/s", "kpt AP",
                 "AP50", "AP75", "box AP", "median px", "p95 px", "cls acc",
                 f"recall @ {DEFAULT_SCORE_THRESHOLD}", f"precision @ {DEFAULT_SCORE_THRESHOLD}")


def _row(name: str, config: Config, state: Dict[str, Any], params: int, scores: Dict[str, Any]) -> Dict[str, Any]:
    images = int(state["step"]) * config.train.batch_size
    wall_s = float(state.get("wall_s", 0.0))
    return {
        "model": labelled(name, config), "type": config.model.type, "backbone": config.model.backbone, "params": params,
        "rule": config.data.rule, "steps": int(state["step"]), "images": images, "wall_s": wall_s,
        "img_per_s": images / wall_s if wall_s > 0 else None, **scores,
    }


def compare_configs(config_paths: Sequence[str | os.PathLike], rule: str, steps: int, test_dir: str | os.PathLike,
                    out_dir: str | os.PathLike, overrides: Sequence[str] = (), device: str = "auto",
                    progress: bool = True, on_row: Optional[Callable[[List[Dict[str, Any]]], None]] = None
                    ) -> List[Dict[str, Any]]:
    """Train or reuse each config at ``steps`` steps on ``rule`` and score it on ``test_dir``.

    Each config runs in ``out_dir/<config stem>``; its test results and scores are written
    there too (``test_results.json``, ``test_scores.json``) and reused while the checkpoint
    and the test split are unchanged. ``on_row`` is called with the rows so far after each row.

    Raises:
        FileNotFoundError: a missing config or test split, naming it.
    """
    from ocrloc.engine.distributed import resolve_device

    test_dir = Path(test_dir)
    gt_path = test_dir / ANNOTATIONS_FILE
    if not gt_path.is_file():
        raise FileNotFoundError(f"test split not found: {gt_path} (write it with tools/make_dataset.py --split test)")
    configs = [(Path(p).stem, load_config(p, [f"data.rule={rule}", f"train.steps={steps}", *overrides]))
               for p in config_paths]
    names = [name for name, _ in configs]
    if len(set(names)) != len(names):
        raise ValueError(f"config names must differ (they name the run folders): {names}")
    out_dir = Path(out_dir)
    torch_device = resolve_device(device)
    rows: List[Dict[str, Any]] = []
    for name, config in configs:
        run_dir = out_dir / name
        state = train_or_reuse(config, run_dir, progress)
        best = run_dir / "checkpoints" / "best.pt"
        # The run's own config: train.amp as it trained (an 'auto' resolved), for the test pass too.
        detector, config, best_state = detector_from_checkpoint(best, map_location=torch_device)
        params = sum(p.numel() for p in detector.model.parameters())
        # "scores": the evaluator's fields (recall and precision at the threshold joined them), so
        # scores cached before are recomputed rather than shown as missing.
        key = {"scores": "recall-precision", "threshold": DEFAULT_SCORE_THRESHOLD,
               "test_split": str(gt_path.resolve()), "gt_mtime": gt_path.stat().st_mtime,
               "checkpoint_step": int(best_state["step"]), "checkpoint_mtime": best.stat().st_mtime}

        def score_on_test() -> Dict[str, Any]:
            loader = DataLoader(CocoKeypointDataset(test_dir), batch_size=config.train.batch_size,
                                collate_fn=collate_detection)
            results = predict_results(detector.predictor, loader, torch_device, detector.task, config.train.amp)
            write_json_atomic(results, run_dir / "test_results.json")
            return evaluate(str(gt_path), results, threshold=DEFAULT_SCORE_THRESHOLD)

        scores = cached_json(run_dir / "test_scores.json", key, score_on_test)
        rows.append(_row(name, config, state, params, scores))
        if on_row is not None:
            on_row(rows)
    return rows


def _fmt(value: Any, digits: int = 3) -> str:
    return "-" if value is None else f"{value:.{digits}f}"


def comparison_table(rows: Sequence[Dict[str, Any]]) -> str:
    """The rows as a markdown table (:data:`TABLE_COLUMNS`)."""
    lines = ["| " + " | ".join(TABLE_COLUMNS) + " |", "|" + "---|" * len(TABLE_COLUMNS)]
    for r in rows:
        cells = [r["model"], r["type"], r["backbone"], f"{r['params'] / 1e6:.2f}", f"{r['images']:,}",
                 _fmt(r["wall_s"] / 60, 1), _fmt(r["img_per_s"], 1), _fmt(r["kpt_AP"]), _fmt(r["kpt_AP50"]),
                 _fmt(r["kpt_AP75"]), _fmt(r["box_AP"]), _fmt(r["median_px"], 2), _fmt(r["p95_px"], 2),
                 _fmt(r["cls_acc"]), _fmt(r.get("recall")), _fmt(r.get("precision"))]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"

