"""The training loop behind ``tools/train.py``.

* AdamW, linear warm-up then cosine decay, gradient clipping.
* Data: canvases generated on the fly in DataLoader workers (or any COCO keypoints folder);
  a :class:`~ocrloc.engine.sampler.StepSampler` makes the batch of every step a pure function
  of the step, and the torch seed is reset at every step from (seed, step, rank)
  (:func:`step_seed`), so the model's own random draws are one too: ``--resume`` is exact and
  ranks read disjoint samples under ``torchrun``.
* Periodic validation on a fixed val split: validation loss and the scores of ``docs/task.md``, "Scores".
* ``RUN_DIR/metrics.csv`` is only ever appended. Rows are committed together with
  ``checkpoints/last.pt`` (the checkpoint carries the rows it covers), so a crash and a
  ``--resume`` neither lose nor repeat a row. It is opened without following a symbolic link
  (as the run lock is; the other files are replaced by a rename, which replaces a link).
* Rank 0 alone writes logs, TensorBoard events and checkpoints.
* The data comes built from :mod:`ocrloc.data.build`; what a run does with a validation beyond its metrics
  and checkpoint (TensorBoard pictures) are hooks (:mod:`ocrloc.engine.hooks`) the trainer calls.
"""

from __future__ import annotations

import csv
import dataclasses
import math
import os
import sys
import time
from pathlib import Path
from typing import Any, Dict, Iterable, Iterator, List, Optional, Sequence, Tuple

import torch
import torch.distributed as dist
from torch import nn
from torch.nn.parallel import DistributedDataParallel
from torch.utils.data import DataLoader, Dataset
from tqdm import tqdm

from ocrloc.config import Config, ConfigError, config_to_dict, save_config
from ocrloc.data.build import build_train_dataset, build_val_data, describe_training_data
from ocrloc.data.datasets import collate_detection
from ocrloc.data.task import Task
from ocrloc.engine.amp import resolve_amp
from ocrloc.engine.calibration import recalibrate_scores
from ocrloc.engine.checkpoint import load_checkpoint, save_checkpoint
from ocrloc.engine.distributed import cpu_cores, data_workers, init_distributed
from ocrloc.engine.ema import make_weight_average
from ocrloc.engine.hooks import TrainerHook
from ocrloc.engine.runlock import RunLock
from ocrloc.engine.inference import detections_to_results, iterate_predictions, to_device
from ocrloc.engine.sampler import StepSampler
from ocrloc.engine.tensorboard_images import ValidationImages
from ocrloc.evaluation import evaluate
from ocrloc.families import get_family
from ocrloc.utils.errors import worker_error_message
from ocrloc.utils.io import OutputError, open_no_follow, refuse_symlink, write_text_atomic

__all__ = ["DataError", "Trainer", "default_hooks", "extra_classifier_updates", "lr_factor", "metric_columns",
           "remove_temporaries", "step_loss", "step_update"]

SCORE_COLUMNS = ("kpt_AP", "kpt_AP50", "kpt_AP75", "box_AP", "mean_px", "median_px", "p95_px", "miss_rate", "cls_acc")


class DataError(ValueError):
    """A training or validation sample could not be read (one line, naming the file)."""


def one_line(err: BaseException) -> str:
    """The message of ``err`` on one line, without the traceback a DataLoader worker's error is
    re-raised with (:func:`ocrloc.utils.errors.worker_error_message`)."""
    return worker_error_message(str(err)) or type(err).__name__


def remove_temporaries(folder: Path) -> List[Path]:
    """Remove the temporary files a killed atomic write left in ``folder`` (hidden ``.<name>.*.tmp``
    files of :func:`ocrloc.utils.io.atomic_path`); only the run's lock holder may call this."""
    removed = []
    if folder.is_dir():
        for path in folder.glob(".*.tmp"):
            if path.is_file():
                path.unlink()
                removed.append(path)
    return removed


def metric_columns(loss_terms: Sequence[str]) -> Tuple[str, ...]:
    """The columns of ``metrics.csv`` for a criterion with these loss terms."""
    return ("phase", "step", "images", "wall_s", "lr", "img_per_s", "loss",
            *(f"loss_{t}" for t in loss_terms), *SCORE_COLUMNS)


def lr_factor(step: int, warmup_steps: int, total_steps: int, min_ratio: float) -> float:
    """Learning-rate multiplier: linear warm-up from 0, then cosine decay to ``min_ratio``."""
    if step < warmup_steps:
        return (step + 1) / warmup_steps
    progress = min(1.0, (step - warmup_steps) / max(1, total_steps - warmup_steps))
    return min_ratio + (1 - min_ratio) * 0.5 * (1 + math.cos(math.pi * progress))


def step_seed(seed: int, step: int, rank: int) -> int:
    """The torch seed of training step ``step`` (0-based) on ``rank``: distinct per step and rank."""
    return (seed * 1_000_003 + step * 4_099 + rank) % (2 ** 63)


def parameter_groups(model: nn.Module, lr: float) -> List[Dict[str, Any]]:
    """The optimizer's parameter groups: everything at ``lr``, except the parameters whose names
    start with a prefix of the model's ``lr_scales`` (``{prefix: scale}``, optional), which learn
    at ``lr * scale``. The first group is the base one (its rate is the one logged)."""
    scales: Dict[str, float] = dict(getattr(model, "lr_scales", {}) or {})
    groups: Dict[float, List[nn.Parameter]] = {1.0: []}
    for name, parameter in model.named_parameters():
        scale = next((v for prefix, v in scales.items() if name.startswith(prefix)), 1.0)
        groups.setdefault(float(scale), []).append(parameter)
    return [{"params": params, "lr": lr * scale} for scale, params in groups.items() if params or scale == 1.0]


def default_hooks() -> List[TrainerHook]:
    """The hooks a :class:`Trainer` calls unless told otherwise: TensorBoard's validation pictures."""
    return [ValidationImages()]


def _number(value: str) -> Any:
    """A CSV cell as the number it was written from (``""`` and text stay as they are)."""
    try:
        return int(value)
    except ValueError:
        try:
            return float(value)
        except ValueError:
            return value


def step_loss(model: nn.Module, criterion: nn.Module, images: torch.Tensor, targets: List[Dict[str, Any]],
              amp: bool = False) -> Tuple[torch.Tensor, Dict[str, torch.Tensor]]:
    """The forward half of a training step, ``(loss, terms)``: the model under bf16 autocast when
    ``amp`` (on the images' device), the criterion in fp32 (heatmap focal terms and point errors of
    a fraction of a pixel need it). The trainer and ``benchmarks/train_step.py`` share it."""
    with torch.autocast(device_type=images.device.type, dtype=torch.bfloat16, enabled=amp):
        outputs = model(images, targets)
    if amp:
        outputs = {k: v.float() if torch.is_tensor(v) and v.is_floating_point() else v for k, v in outputs.items()}
    return criterion(outputs, targets)


def step_update(loss: torch.Tensor, model: nn.Module, optimizer: torch.optim.Optimizer, grad_clip: float = 0.0) -> None:
    """The backward half of a training step: gradients of ``loss``, clipped to ``grad_clip`` (0: not), one optimizer step."""
    optimizer.zero_grad(set_to_none=True)
    loss.backward()
    if grad_clip > 0:
        torch.nn.utils.clip_grad_norm_(model.parameters(), grad_clip)
    optimizer.step()


def extra_classifier_updates(model: nn.Module, images: torch.Tensor, targets: List[Dict[str, Any]],
                             optimizer: torch.optim.Optimizer, weight: float = 1.0, amp: bool = False,
                             grad_clip: float = 0.0, world_size: int = 1) -> int:
    """The crop classifier's updates beyond the step's own (``model.argmax.classifier_updates - 1``
    of them; a model without the attribute has none): each its loss (``model.classifier_loss``,
    times ``weight``) on the step's characters, its gradients alone (every other parameter's
    gradient is None, so AdamW leaves those parameters and their moments as they are), averaged
    over the ranks as DDP averages the step's (``model`` is the unwrapped module, so this is done
    here), clipped to ``grad_clip`` (0: not), one optimizer step. The jitter is drawn from the
    step's seeded stream, so ``--resume`` stays exact. Returns how many updates it made."""
    extra = int(getattr(model, "classifier_updates", 1)) - 1
    if extra <= 0:
        return 0
    parameters = [p for p in model.classifier.parameters() if p.requires_grad]
    for _ in range(extra):
        with torch.autocast(device_type=images.device.type, dtype=torch.bfloat16, enabled=amp):
            loss = model.classifier_loss(images, targets) * weight
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        if world_size > 1:
            for p in parameters:
                if p.grad is not None:
                    dist.all_reduce(p.grad)
                    p.grad.div_(world_size)
        if grad_clip > 0:
            torch.nn.utils.clip_grad_norm_(parameters, grad_clip)
        optimizer.step()
    return extra


def _readable(loader: Iterable[Any]) -> Iterator[Any]:
    """``loader``'s batches; a sample that cannot be read ends the loop as one :class:`DataError`
    line (naming the file), not as the DataLoader worker's traceback."""
    iterator = iter(loader)
    while True:
        try:
            batch = next(iterator)
        except StopIteration:
            return
        except (ValueError, OSError) as err:
            raise DataError(one_line(err)) from None
        yield batch


class ThroughputMeter:
    """Training images per second since the last :meth:`restart`.

    The trainer restarts it after each logged row and after each validation: validation time
    is not training time, and images counted before a validation must not be divided by the
    time after it.
    """

    def __init__(self, now: float) -> None:
        self.restart(now)

    def restart(self, now: float) -> None:
        self.start, self.images = now, 0

    def add(self, images: int) -> None:
        self.images += images

    def rate(self, now: float) -> float:
        return self.images / max(now - self.start, 1e-9)


class MetricsLog:
    """Rows for ``metrics.csv`` and TensorBoard, buffered until the next checkpoint commits them."""

    def __init__(self, run_dir: Path, enabled: bool, columns: Sequence[str]) -> None:
        self.path = run_dir / "metrics.csv"
        self.columns = tuple(columns)
        self.enabled = enabled
        if enabled:  # refused before the first step, not at the first commit (open_no_follow guards each open)
            refuse_symlink(self.path)
        self.pending: List[Dict[str, Any]] = []
        self._writer = None
        self._tb_dir = run_dir / "tensorboard"
        # The last step TensorBoard holds, written after each flush: rows the CSV got but
        # TensorBoard did not (a kill between the two writes) are sent again on resume.
        self._tb_step_file = self._tb_dir / "last_step"

    def add(self, row: Dict[str, Any]) -> None:
        self.pending.append({k: row.get(k, "") for k in self.columns})

    @property
    def writer(self) -> Optional[Any]:
        """The run's TensorBoard ``SummaryWriter``, open once rows were committed; None without TensorBoard."""
        return self._writer

    def rows(self) -> List[Dict[str, str]]:
        """The rows of ``metrics.csv`` as written (strings)."""
        if not self.path.is_file():
            return []
        with os.fdopen(open_no_follow(self.path, os.O_RDONLY), newline="") as f:
            return [r for r in csv.DictReader(f) if r.get("step")]

    def repair(self) -> None:
        """Cut a torn last line (a kill inside a row write) so the next rows start on a line of their own."""
        if not self.enabled or not self.path.is_file():
            return
        with os.fdopen(open_no_follow(self.path, os.O_RDWR), "r+b") as f:
            data = f.read()
            if data and not data.endswith(b"\n"):
                f.truncate(data.rfind(b"\n") + 1)
                f.flush()
                os.fsync(f.fileno())

    def sync_tensorboard(self) -> int:
        """Send TensorBoard the CSV rows it missed; return how many. Events it may hold beyond its
        recorded step (a kill inside its write) are purged, so each step is there exactly once."""
        if not self.enabled or self._writer is not None:
            return 0
        try:
            done = int(self._tb_step_file.read_text())
        except (OSError, ValueError):
            done = -1
        missed = [{k: _number(v) for k, v in r.items()} for r in self.rows() if int(r["step"]) > done]
        if not missed or not self._open_tensorboard(purge_step=done + 1):
            return 0
        self._tensorboard(missed)
        return len(missed)

    def commit(self, rows: Optional[List[Dict[str, Any]]] = None) -> None:
        """Append ``rows`` (default: the pending ones) to the CSV and TensorBoard."""
        rows = self.pending if rows is None else rows
        if self.enabled and rows:
            fd = open_no_follow(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT)
            try:
                with os.fdopen(fd, "a", newline="") as f:
                    writer = csv.DictWriter(f, fieldnames=self.columns)
                    if os.fstat(f.fileno()).st_size == 0:
                        writer.writeheader()
                    writer.writerows(rows)
                    f.flush()
                    os.fsync(f.fileno())
            except OSError as err:  # a full disk: say which file (the rows stay in last.pt, resume restores them)
                raise OutputError(self.path, err) from None
            self._tensorboard(rows)
        if rows is self.pending:
            self.pending = []

    def _open_tensorboard(self, purge_step: Optional[int] = None) -> bool:
        try:
            from torch.utils.tensorboard import SummaryWriter
        except ImportError:  # TensorBoard is optional at run time; the CSV is the record.
            return False
        if self._writer is None:
            self._writer = SummaryWriter(str(self._tb_dir), purge_step=purge_step)
        return True

    def _tensorboard(self, rows: List[Dict[str, Any]]) -> None:
        if not rows or not self._open_tensorboard():
            return
        for row in rows:
            for key, value in row.items():
                if key not in ("phase", "step") and isinstance(value, (int, float)) and value is not None:
                    self._writer.add_scalar(f"{row['phase']}/{key}", value, int(row["step"]))
        self._writer.flush()
        write_text_atomic(str(max(int(r["step"]) for r in rows)), self._tb_step_file)

    def close(self) -> None:
        if self._writer is not None:
            self._writer.close()
            self._writer = None


class Trainer:
    """Trains ``config``'s model into ``run_dir``.

    Args:
        config: the resolved config.
        run_dir: output folder (``config.yaml``, ``metrics.csv``, ``tensorboard/``, ``checkpoints/``).
        resume: continue from ``run_dir/checkpoints/last.pt``.
        progress: show the tqdm bar (rank 0 only).
        hooks: called after each validation (:class:`~ocrloc.engine.hooks.TrainerHook`); None: :func:`default_hooks`.
    """

    def __init__(self, config: Config, run_dir: str | os.PathLike, resume: bool = False, progress: bool = True,
                 hooks: Optional[Sequence[TrainerHook]] = None) -> None:
        from ocrloc.models.build import build

        self.run_dir = Path(run_dir)
        self.ckpt_dir = self.run_dir / "checkpoints"
        self.ctx, self.device = init_distributed(config.train.device, config.train.threads)
        self.progress = progress and self.ctx.is_main
        self.hooks: List[TrainerHook] = default_hooks() if hooks is None else list(hooks)
        # train.amp: auto becomes the bool this machine runs faster: rank 0 alone probes (ranks
        # probing at once on one machine would time each other), and every rank takes its choice.
        amp, amp_note = config.train.amp, ""
        if not isinstance(amp, bool):
            amp, amp_note = resolve_amp(amp, self.device) if self.ctx.is_main else (False, "")
            if self.ctx.enabled:
                choice = [amp]
                dist.broadcast_object_list(choice, src=0)
                amp = bool(choice[0])
        config = dataclasses.replace(config, train=dataclasses.replace(config.train, amp=amp))
        self.config = config
        if amp_note and self.ctx.is_main:
            print(amp_note, file=sys.stderr)
        # The process layout, resolved from the cores this process may use, printed and kept in
        # the checkpoints' meta so a run's speed can be read against it.
        self.workers = data_workers(config.data.num_workers, self.device)
        self.layout = {"device": str(self.device), "threads": torch.get_num_threads(), "workers": self.workers,
                       "cores": cpu_cores()}
        last = self.ckpt_dir / "last.pt"
        torch.manual_seed(config.train.seed)
        # The data is built and checked before anything is written: bad data leaves no run folder.
        cfg = config.train
        self.train_set, self.train_length, source = build_train_dataset(
            config.data, cfg.steps * cfg.batch_size * self.ctx.world_size, self.progress)
        data = describe_training_data(source)
        self.task: Task = data["task"]
        self.val_set: Optional[Dataset] = None
        self.val_gt: Optional[Dict[str, Any]] = None
        if self.ctx.is_main:
            self.val_set, self.val_gt = build_val_data(config.data, self.progress)
            if self.val_set.task != self.task:
                raise ConfigError(f"data.val_path {config.data.val_path}: its categories are not the training "
                                  f"data's (classes {list(self.val_set.task.class_ids)} vs {list(self.task.class_ids)}, "
                                  f"or other keypoint names)")
        self.detector = build(config, self.task).to(self.device)
        # Read from the data, not the config: what a checkpoint's user needs to know about its inputs.
        self.meta = {"rule": data["rule"], "preset": data["preset"], "train_size": data["train_size"],
                     "task": self.task.to_dict(), "class_names": list(self.task.class_names), "layout": self.layout}
        # From here on the run folder is written: one writer at a time (RunLock), and only then
        # is it decided whether the folder holds a run, so two starts cannot both find it empty.
        self.lock: Optional[RunLock] = RunLock(self.run_dir).acquire() if self.ctx.is_main else None
        try:
            self._open_run(config, resume, last)
        except BaseException:
            self.close()
            raise

    def _open_run(self, config: Config, resume: bool, last: Path) -> None:
        if resume and not last.is_file():
            raise FileNotFoundError(f"--resume: no checkpoint to resume at {last}")
        if not resume and last.is_file():
            raise FileExistsError(f"{self.run_dir} already holds a run; pass --resume to continue it or choose another --out")
        if self.ctx.is_main:  # what a killed atomic write left: we hold the lock, nobody writes them now
            for folder in (self.run_dir, self.ckpt_dir, self.run_dir / "tensorboard"):
                remove_temporaries(folder)
        self.model, self.criterion, self.predictor = self.detector.model, self.detector.criterion, self.detector.predictor
        self.optimizer = torch.optim.AdamW(parameter_groups(self.model, config.optim.lr), lr=config.optim.lr,
                                           weight_decay=config.optim.weight_decay)
        o, steps = config.optim, config.train.steps
        self.scheduler = torch.optim.lr_scheduler.LambdaLR(
            self.optimizer, lambda s: lr_factor(s, o.warmup_steps, steps, o.min_lr_ratio))
        self.step = 0
        self.wall_s = 0.0
        self.best: Dict[str, Any] = {"kpt_AP": -1.0, "step": -1}
        self.last_scores: Dict[str, Any] = {}
        # Each model family logs its own loss terms (torchvision's names for the baselines).
        self.log = MetricsLog(self.run_dir, self.ctx.is_main, metric_columns(self.criterion.loss_terms))
        self.average = make_weight_average(self.model, config.train.ema_decay)
        if resume:
            self._restore(last)
        if self.ctx.is_main:  # on resume too: config.yaml always describes the run as it continues
            save_config(config, self.run_dir / "config.yaml")
        self.train_model: nn.Module = self.model
        if self.ctx.enabled:
            # A family whose every parameter gets a gradient each step (the dense ones: their trunk
            # computes only the level the heads read; ocrloc/families.py) spares DDP the search for
            # unused ones; the other families are not held to that.
            self.train_model = DistributedDataParallel(
                self.model, device_ids=[self.device.index] if self.device.type == "cuda" else None,
                find_unused_parameters=not get_family(config.model.type).every_parameter_trains)

    def close(self) -> None:
        """Release the run folder (the lock); :meth:`fit` calls it when it ends, however it ends."""
        log = getattr(self, "log", None)
        if log is not None:
            log.close()
        if self.lock is not None:
            self.lock.release()
            self.lock = None

    # ------------------------------------------------------------------ checkpoints
    def _restore(self, path: Path) -> None:
        state = load_checkpoint(path, map_location=self.device)
        # With train.ema_decay, "model" holds the averaged weights (what predict and export read)
        # and "train_model" the trained ones.
        self.model.load_state_dict(state.get("train_model", state["model"]))
        if self.average is not None:
            if "train_model" in state:
                self.average.load_averaged(state["model"])
            else:  # a run that averaged nothing until now
                self.average.reset()
        self.optimizer.load_state_dict(state["optimizer"])
        self.scheduler.load_state_dict(state["scheduler"])
        self.step = int(state["step"])
        self.wall_s = float(state.get("wall_s", 0.0))
        self.best = dict(state.get("best", self.best))
        # Rows the checkpoint covers but the CSV lacks (a crash between the two writes), after the
        # rows TensorBoard missed (a crash between the CSV and TensorBoard writes): the run's own
        # record, repaired even when there is nothing left to train.
        if self.ctx.is_main:
            self.log.repair()
            self.log.sync_tensorboard()
            done = {(r["phase"], int(r["step"])) for r in self.log.rows()}
            self.log.commit([r for r in state.get("rows", []) if (r["phase"], int(r["step"])) not in done])
        steps = self.config.train.steps
        if self.step >= steps:  # before config.yaml is written: it keeps the run's own steps
            raise ConfigError(f"--resume: {self.run_dir} is at step {self.step} and train.steps is {steps}: nothing "
                              f"to train; to train on, pass --set train.steps=N with N > {self.step}")

    def _state(self, rows: List[Dict[str, Any]]) -> Dict[str, Any]:
        averaged = {} if self.average is None else {"train_model": self.model.state_dict()}
        return {
            "model": self.model.state_dict() if self.average is None else self.average.averaged_state(),
            **averaged,
            "optimizer": self.optimizer.state_dict(),
            "scheduler": self.scheduler.state_dict(),
            "step": self.step,
            "wall_s": self.wall_s,
            "best": self.best,
            "rows": rows,
            "config": config_to_dict(self.config),
            "meta": self.meta,
        }

    def _checkpoint(self, scores: Dict[str, Any]) -> None:
        if not self.ctx.is_main:
            return
        improved = scores.get("kpt_AP") is not None and scores["kpt_AP"] > self.best["kpt_AP"]
        if improved:
            self.best = {"kpt_AP": scores["kpt_AP"], "step": self.step}
        state = self._state(list(self.log.pending))
        # best.pt before last.pt: a kill between the two leaves a last.pt whose best step is older
        # than best.pt (resuming redoes the steps and writes the same best again), never a
        # last.pt naming a best.pt that is not there.
        if improved:  # the weights alone: resuming reads last.pt, so the optimizer's moments (2x the
            # weights) would only double the file and the write (model-only, as torchvision's references do)
            kept = {k: v for k, v in state.items() if k not in ("optimizer", "scheduler", "rows", "train_model")}
            save_checkpoint(kept, self.ckpt_dir / "best.pt")
        save_checkpoint(state, self.ckpt_dir / "last.pt")
        self.log.commit()

    # ------------------------------------------------------------------ validation
    @torch.no_grad()
    def validate(self, loader: DataLoader, gt: Dict[str, Any]) -> Dict[str, Any]:
        """Validation loss terms and scores (``docs/task.md``, "Scores") of the current model."""
        self.detector.eval()
        totals: Dict[str, float] = {}
        batches = 0
        results: List[Dict[str, Any]] = []
        collected: List[Any] = []
        amp = self.config.train.amp
        for images, targets, detections in iterate_predictions(self.predictor, _readable(loader), self.device, amp):
            # The loss needs the raw outputs at the ground truth; the detections come from the
            # predictor, the same call export and `ocrloc predict` make. Both in the training dtype.
            loss, terms = step_loss(self.model, self.criterion, images, targets, amp)
            for name, value in {"loss": loss, **{f"loss_{k}": v for k, v in terms.items()}}.items():
                totals[name] = totals.get(name, 0.0) + float(value)
            batches += 1
            collected.append((targets, detections))
        model = self.detector.model
        # Scores that a threshold means something on (calibration.py), for a family that fits them
        # (ocrloc/families.py) and a model built to.
        if get_family(self.config.model.type).recalibrates_scores and getattr(model, "calibrate_score", False):
            recalibrate_scores(model, collected)
        for targets, detections in collected:
            results += detections_to_results(detections, [t["image_id"] for t in targets], self.task)
        self.detector.train()
        self.val_results = results  # for the hooks (TensorBoard's pictures of this validation)
        scores = evaluate(gt, results)
        return {**{k: v / max(batches, 1) for k, v in totals.items()}, **scores}

    # ------------------------------------------------------------------ training
    def fit(self) -> Dict[str, Any]:
        """Train to ``train.steps``, validating every ``train.val_every`` steps; returns the final val scores.

        Raises:
            DataError: a sample could not be read (naming its file).
            FloatingPointError: the loss was not finite; ``checkpoints/last.pt`` then holds the
                weights before that step, to look at or to resume from with other settings.
        """
        try:
            return self._fit()
        finally:
            self.close()

    def _fit(self) -> Dict[str, Any]:
        cfg = self.config.train
        batch, world = cfg.batch_size, self.ctx.world_size
        sampler = StepSampler(self.train_length, batch, cfg.steps, self.step, cfg.seed, self.ctx.rank, world)
        workers = self.workers
        loader = DataLoader(self.train_set, batch_size=batch, sampler=sampler, num_workers=workers,
                            collate_fn=collate_detection, persistent_workers=False,
                            pin_memory=self.device.type == "cuda")
        val_loader, val_gt = None, self.val_gt
        if self.val_set is not None:
            # Generated val canvases are already in memory: a worker would only copy them.
            val_loader = DataLoader(self.val_set, batch_size=batch, num_workers=workers if self.config.data.val_path else 0,
                                    collate_fn=collate_detection)
        amp = cfg.amp
        if self.ctx.is_main:
            lay = self.layout
            tqdm.write(f"{lay['device']}: {lay['threads']} compute thread(s), {lay['workers']} data worker(s), "
                       f"{lay['cores']} core(s) for this process" + (", bf16 autocast" if amp else ""))
        bar = tqdm(total=cfg.steps, initial=self.step, desc="train", unit="step", disable=not self.progress,
                   dynamic_ncols=True)
        self.detector.train()
        last_tick = time.perf_counter()
        throughput = ThroughputMeter(last_tick)
        for images, targets in _readable(loader):
            images, targets = to_device(images, targets, self.device, non_blocking=True)
            # The model's own randomness (the argmax head's box jitter) drawn from a stream that is
            # a pure function of (seed, step, rank), as the batches are: --resume stays exact.
            torch.manual_seed(step_seed(cfg.seed, self.step, self.ctx.rank))
            loss, terms = step_loss(self.train_model, self.criterion, images, targets, amp)
            if not torch.isfinite(loss):
                # The weights are still those of the last good step: keep them, then stop.
                self._checkpoint({})
                bad = ", ".join(f"{k} {float(v.detach()):.4g}" for k, v in terms.items())
                raise FloatingPointError(f"step {self.step + 1}: loss is {float(loss.detach())} ({bad}); the weights of step "
                                         f"{self.step} are in {self.ckpt_dir / 'last.pt'} (lower optim.lr or "
                                         f"set optim.grad_clip, then --resume)")
            step_update(loss, self.model, self.optimizer, self.config.optim.grad_clip)
            extra_classifier_updates(self.model, images, targets, self.optimizer, self.config.loss.crop_class, amp,
                                     self.config.optim.grad_clip, world)
            self.scheduler.step()
            self.step += 1
            if self.average is not None:
                self.average.update(self.step)
            now = time.perf_counter()
            self.wall_s += now - last_tick
            last_tick = now
            throughput.add(images.shape[0] * world)
            if self.step % cfg.log_every == 0 or self.step == cfg.steps:
                rate = throughput.rate(now)
                self.log.add({"phase": "train", "step": self.step, "images": self.step * batch * world,
                              "wall_s": round(self.wall_s, 2), "lr": self.scheduler.get_last_lr()[0],
                              "img_per_s": round(rate, 2), "loss": loss.item(),
                              **{f"loss_{k}": v.item() for k, v in terms.items()}})
                bar.set_postfix(loss=f"{loss.item():.3f}", img_s=f"{rate:.1f}")
                throughput.restart(now)
            bar.update(1)
            validate = self.step % cfg.val_every == 0 or self.step == cfg.steps
            if validate or (cfg.checkpoint_every > 0 and self.step % cfg.checkpoint_every == 0):
                if validate:
                    self._validate_and_checkpoint(val_loader, val_gt)
                else:
                    self._checkpoint({})  # resumable without the cost of a validation
                last_tick = time.perf_counter()  # validating and saving are not training time
                throughput.restart(last_tick)
        bar.close()
        return self.last_scores

    def _validate_and_checkpoint(self, loader: Optional[DataLoader], gt: Optional[Dict[str, Any]]) -> None:
        if self.ctx.is_main and loader is not None and gt is not None:
            if self.average is None:
                scores = self.validate(loader, gt)
            else:
                with self.average.swapped_in():  # the weights best.pt will hold
                    scores = self.validate(loader, gt)
            self.last_scores = scores
            self.log.add({"phase": "val", "step": self.step, "images": self.step * self.config.train.batch_size
                          * self.ctx.world_size, "wall_s": round(self.wall_s, 2), **scores})
            mean_px = "n/a" if scores["mean_px"] is None else f"{scores['mean_px']:.2f} px"
            val_loss = f"{scores['loss']:.3f}" if "loss" in scores else "n/a"
            tqdm.write(f"step {self.step}: val loss {val_loss}  kpt AP {scores['kpt_AP']:.3f}  "
                       f"cls acc {scores['cls_acc']:.3f}  mean point error {mean_px}")
            self._checkpoint(scores)
            for hook in self.hooks:  # after the commit, which opens TensorBoard's writer (when installed)
                hook.after_validation(self, scores)
        self.ctx.barrier()
