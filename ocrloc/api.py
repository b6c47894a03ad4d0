"""The Python inference API: :class:`Predictor` (a checkpoint or an exported file -> detections).

Example::

    from ocrloc import Predictor
    from ocrloc.constants import DEFAULT_SCORE_THRESHOLD

    predictor = Predictor("runs/quickstart/checkpoints/best.pt")   # a checkpoint: data, never a program
    # an exported file (.pt, .pt2, .onnx) is a program, run only when asked for by name:
    # predictor = Predictor.from_exported("runs/quickstart/model.onnx")
    det = predictor("photo.jpg")   # a light page is found and inverted; scores below 0.5 dropped
    print(det.polarity)            # how the page was read: light_on_dark or dark_on_light
    for name, score, points in zip(det.class_names, det.scores.tolist(), det.points.tolist()):
        print(name, round(score, 3), points)  # one [x, y] per keypoint of the class

Inputs of any size, grey or colour, are converted to what the models were trained on (one grey
channel in [0, 1], light ink on a dark background) by the one input path (:mod:`ocrloc.preprocess`),
padded on the bottom and right to the model's input rule, run in same-size batches through the one
predict loop (:func:`ocrloc.engine.inference.iterate_predictions`), and the detections come back in
the coordinates of the image given, kept from :data:`~ocrloc.constants.DEFAULT_SCORE_THRESHOLD` up.
"""

from __future__ import annotations

import os
from collections import OrderedDict
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Dict, List, Optional, Sequence, Tuple, Union

import numpy as np
import torch
from torch import Tensor

from ocrloc.constants import DEFAULT_MAX_PIXELS, DEFAULT_SCORE_THRESHOLD
from ocrloc.preprocess import (POLARITIES, apply_polarity, checked_image, input_rule_text, padded_side, to_grey,
                               too_large_text)

if TYPE_CHECKING:
    from ocrloc.data.task import Task

__all__ = ["DEFAULT_MAX_PIXELS", "DEFAULT_SCORE_THRESHOLD", "Detections", "Predictor", "POLARITIES"]

Item = Union[str, os.PathLike, "Image.Image", np.ndarray, Tensor]  # noqa: F821 (PIL is imported lazily)


@dataclass
class Detections:
    """The detections on one image, sorted by score (highest first), in that image's pixels.

    Attributes:
        boxes: ``[N, 4]`` float32, ``(x1, y1, x2, y2)``, clipped to the image.
        scores: ``[N]`` float32, the detection scores.
        labels: ``[N]`` int64 class indices.
        points: ``[N, K, 2]`` float32, ``(x, y)`` of each detection's keypoints (K: the model's
            keypoint slots; a class with fewer keypoints uses the first ``len(keypoint_names[i])``),
            clipped to the image.
        point_scores: ``[N, K]`` float32, the score the model gave each keypoint (the third value).
        class_names: the class name of each detection (``labels`` looked up in the model's class names).
        image_size: ``(height, width)`` of the image given.
        category_ids: the dataset's category id of each detection (what COCO results carry).
        keypoint_names: the keypoint names of each detection's class.
        polarity: how the image was read: ``light_on_dark`` (as given) or ``dark_on_light`` (inverted
            first), the one asked for or, with ``polarity="auto"``, the one found
            (:func:`ocrloc.preprocess.is_light_page`).
        task: the model's classes and keypoints (``None`` for a model without them: category id = class
            index, every keypoint slot kept), what :meth:`to_coco` maps labels with.

    All tensors are on the CPU. ``len(det)`` is N.
    """

    boxes: Tensor
    scores: Tensor
    labels: Tensor
    points: Tensor
    point_scores: Tensor
    class_names: List[str]
    image_size: Tuple[int, int]
    category_ids: List[int]
    keypoint_names: List[List[str]]
    polarity: str = "light_on_dark"
    task: Optional["Task"] = field(default=None, repr=False)

    def __len__(self) -> int:
        return int(self.scores.numel())

    def __repr__(self) -> str:
        shown = ", ".join(f"{n}:{s:.2f}" for n, s in zip(self.class_names[:8], self.scores[:8].tolist()))
        more = ", ..." if len(self) > 8 else ""
        return (f"Detections({len(self)} on {self.image_size[0]} x {self.image_size[1]}, {self.polarity}: "
                f"[{shown}{more}])")

    def to_dict(self) -> Dict[str, Tensor]:
        """The torchvision-style dict of the family contract: ``boxes``, ``scores``, ``labels`` and
        ``keypoints`` ``[N, K, 3]`` (x, y, point score), as the model's predictor returns it (what
        :func:`ocrloc.engine.inference.detections_to_results` and :mod:`ocrloc.visualize` take)."""
        keypoints = torch.cat([self.points, self.point_scores[..., None]], dim=2)
        return {"boxes": self.boxes, "scores": self.scores, "labels": self.labels, "keypoints": keypoints}

    def to_coco(self, image_id: int = 0) -> List[Dict[str, Any]]:
        """COCO results entries, as ``ocrloc predict`` writes them, by the one writer of results
        (:func:`ocrloc.engine.inference.detections_to_results`): ``image_id``, ``category_id`` (the
        dataset's id), ``bbox`` ``[x, y, w, h]``, ``score`` and ``keypoints`` ``[x, y, v, ...]`` for
        each keypoint of the class (``v`` = the detection's score; ``docs/task.md``, "Ground-truth and
        results files")."""
        from ocrloc.engine.inference import detections_to_results

        return detections_to_results([self.to_dict()], [image_id], self.task)


class Predictor:
    """A trained model as a function from images to :class:`Detections`.

    ``Predictor(path)`` (or :meth:`from_checkpoint`) reads a checkpoint: data only (``torch.load``
    with ``weights_only=True``), so a file given there never runs code. A file written by ``ocrloc
    export`` (TorchScript ``.pt``, ``torch.export`` ``.pt2``, ONNX ``.onnx``) is a program (its code
    runs on every call), so it runs only when asked for by name: :meth:`from_exported` (``ocrloc
    predict --exported FILE``), which runs all three with the checkpoint's detections.
    ``Predictor(path)`` refuses a TorchScript file in a ``ValueError`` that says so, having read
    only the zip's table of contents (a TorchScript archive holds ``constants.pkl`` and a ``code/``
    folder), whatever the file is called. :meth:`from_module` wraps a predictor module in memory.

    Attributes:
        rule: the point rule the model was trained for (e.g. ``all10``; ``None`` for a model trained
            on a COCO folder, whose annotations define the points).
        train_size: ``[H, W]`` of its training images (``None`` when the file does not say).
        class_names: the name of each class index.
        task: the classes (dataset ids, names) and keypoint names per class
            (:class:`ocrloc.data.task.Task`), from the checkpoint or the exported file.
        device: the ``torch.device`` the model runs on.
        input_rule: the model's input rule in words (inputs are padded to it automatically).
        max_pixels: the largest image (height x width) taken (0: no limit; :data:`DEFAULT_MAX_PIXELS`).
        module: the predictor module (``[B, 1, H, W]`` in [0, 1] -> list of detection dicts).
        source: ``checkpoint``, ``exported`` or ``module``.
        format: ``checkpoint``, ``torchscript``, ``torch.export``, ``onnx`` or ``module``.
        path: the file loaded (``None`` for :meth:`from_module`).
    """

    rule: Optional[str]
    train_size: Optional[List[int]]
    class_names: List[str]
    device: torch.device
    input_rule: str
    module: torch.nn.Module
    source: str
    path: Optional[Path]

    def __init__(self, path: Union[str, os.PathLike], device: Optional[Union[str, torch.device]] = None, *,
                 max_pixels: Optional[int] = DEFAULT_MAX_PIXELS) -> None:
        """Load the checkpoint ``path`` (what :meth:`from_checkpoint` loads; data only, never a program).

        Args:
            device: ``auto`` (CUDA when present, else the CPU), ``cpu``, ``cuda``, ``cuda:N``;
                ``None``: ``auto``.
            max_pixels: the largest image (height x width) taken; a larger one raises a
                ``ValueError`` before it is decoded or converted (:data:`DEFAULT_MAX_PIXELS`;
                ``0`` or ``None``: no limit of ocrloc's, PIL's own decompression-bomb limit of
                2 x ``PIL.Image.MAX_IMAGE_PIXELS`` still applies to files).

        Raises:
            FileNotFoundError: naming the path.
            ValueError: when the path is a folder, an exported file (a program: run it with
                :meth:`from_exported`), or not a loadable checkpoint: a checkpoint that is
                truncated, corrupt or refused by the safe loader (``weights_only=True``: a file holding
                Python objects beyond tensors and plain containers cannot run code) raises
                :class:`ocrloc.engine.checkpoint.CheckpointError`, a ``ValueError`` naming the file.
        """
        self.max_pixels = _max_pixels(max_pixels)
        path = _existing_file(path)
        try:
            self._load_checkpoint(path, "auto" if device is None else device)
        except (FileNotFoundError, ValueError):
            raise
        except Exception as err:  # load_checkpoint names every bad file itself; this is the last resort
            reason = " ".join(f"{type(err).__name__}: {err}".split())  # one line, whatever raised it
            raise ValueError(f"{path}: not a loadable ocrloc checkpoint ({reason})") from err

    # -- loaders ----------------------------------------------------------------------------------

    @classmethod
    def from_checkpoint(cls, path: Union[str, os.PathLike], device: Union[str, torch.device] = "auto", *,
                        max_pixels: Optional[int] = DEFAULT_MAX_PIXELS) -> "Predictor":
        """A checkpoint written by ``ocrloc train`` (needs ocrloc and the model's timm backbone).

        Rule, training size and class names come from the checkpoint's ``meta``, read by the one
        reader of it, :func:`ocrloc.engine.checkpoint.read_checkpoint_meta` (falling back to its
        config and its preset, and to the digits ``"0"``..``"9"`` for the class names). ``max_pixels``:
        as for ``Predictor(path)``.
        """
        self = cls.__new__(cls)
        self.max_pixels = _max_pixels(max_pixels)
        self._load_checkpoint(_existing_file(path), device)
        return self

    @classmethod
    def from_exported(cls, path: Union[str, os.PathLike], device: Union[str, torch.device] = "cpu", *,
                      max_pixels: Optional[int] = DEFAULT_MAX_PIXELS) -> "Predictor":
        """Run a file written by ``ocrloc export``, in any of its formats, chosen by the suffix
        ``ocrloc export --out`` gave it (:mod:`ocrloc.exported`): ``.pt2`` a ``torch.export``
        program, ``.onnx`` an ONNX model run by onnxruntime (imported only then: an ``ImportError``
        in one line when it is missing), anything else TorchScript.

        The file is a program: loading builds its code and every call runs it, with the rights of
        this process. Load only files you trust; this is the one loader that runs one
        (``Predictor(path)`` refuses it). Images go through the same input path, polarity and
        threshold as a checkpoint's, so a file gives the detections of the checkpoint it was exported
        from (the ``.pt2`` and ``.onnx`` graphs of uint8 input get ``round(255 x)`` of the grey image:
        the bytes of a uint8 image exactly). Rule, training size, class names and ids come from the
        file's attributes or metadata (a file without ``class_names`` names each class by its index).
        ``max_pixels``: as for ``Predictor(path)``.
        """
        self = cls.__new__(cls)
        self.max_pixels = _max_pixels(max_pixels)
        self._load_exported(_existing_file(path), device)
        return self

    @classmethod
    def from_module(cls, module: torch.nn.Module, *, rule: Optional[str] = None,
                    train_size: Optional[Sequence[int]] = None, class_names: Optional[Sequence[str]] = None,
                    device: Union[str, torch.device] = "cpu",
                    max_pixels: Optional[int] = DEFAULT_MAX_PIXELS) -> "Predictor":
        """A predictor module in memory (a ``Detector``'s ``predictor``, or a loaded export), moved
        to ``device`` and put in eval mode. ``max_pixels``: as for ``Predictor(path)``."""
        self = cls.__new__(cls)
        self.max_pixels = _max_pixels(max_pixels)
        resolved = _resolve_device(device)
        self._setup(module.to(resolved).eval(), resolved, rule, train_size, class_names, "module", None)
        return self

    def _load_checkpoint(self, path: Path, device: Union[str, torch.device]) -> None:
        from ocrloc.engine.checkpoint import detector_from_checkpoint, read_checkpoint_meta

        if _is_torchscript(path):  # read from the zip's table of contents: nothing is loaded, nothing runs
            raise ValueError(_exported_given_as_checkpoint(path))
        resolved = _resolve_device(device)
        detector, config, state = detector_from_checkpoint(path, map_location=resolved)
        from ocrloc.data.task import digits_task

        task = detector.task or digits_task()
        meta = read_checkpoint_meta(state, config, task)
        self._setup(detector.predictor, resolved, meta.rule, meta.train_size, meta.class_names, "checkpoint", path,
                    task)
        # The dtype it trained in: with train.amp the forward runs under bf16 autocast here too.
        self.amp = bool(config.train.amp)

    def _load_exported(self, path: Path, device: Union[str, torch.device]) -> None:
        from ocrloc.data.task import Task
        from ocrloc.exported import load_exported

        resolved = _resolve_device(device)
        loaded = load_exported(path, resolved)
        task = None
        if loaded.class_ids is not None and loaded.class_names is not None and loaded.keypoint_names is not None:
            task = Task.from_dict({"class_ids": loaded.class_ids, "class_names": loaded.class_names,
                                   "keypoint_names": loaded.keypoint_names})
        self._setup(loaded.module, resolved, loaded.rule, loaded.train_size, loaded.class_names, "exported", path,
                    task)
        self.format = loaded.format

    def _setup(self, module: torch.nn.Module, device: torch.device, rule: Optional[str],
               train_size: Optional[Sequence[int]], class_names: Optional[Sequence[str]], source: str,
               path: Optional[Path], task: Optional[Any] = None) -> None:
        for name in ("size_divisible", "min_size", "max_size"):
            if not isinstance(getattr(module, name, None), int):
                raise ValueError(f"{type(module).__name__} declares no input rule (int attribute {name!r} missing)")
        self.module = module
        self.device = device
        self.rule = None if rule is None else str(rule)
        self.train_size = None if train_size is None else [int(v) for v in train_size]
        # A module without class names (from_module without them, a file from before names were
        # stored) names each class by its index: nothing here assumes ten digits.
        self.class_names = [str(n) for n in class_names] if class_names else []
        self.task = task
        self.input_rule = input_rule_text(module.size_divisible, module.min_size, module.max_size)
        self.source = source
        self.format = source  # a file's format, for source "exported" (set by _load_exported)
        self.path = path
        self.amp = False

    def __repr__(self) -> str:
        where = f" {self.path}" if self.path is not None else ""
        source = self.format if self.source == "exported" else self.source
        return (f"Predictor({source}{where}, rule={self.rule}, train_size={self.train_size}, "
                f"classes={len(self.class_names) or 'unnamed'}, device={self.device}, input: {self.input_rule})")

    # -- prediction -------------------------------------------------------------------------------

    def check_files(self, paths: Sequence[Union[str, os.PathLike]]) -> None:
        """Open every image file without decoding it (PIL reads the header alone) and refuse one
        that is missing, not an image, or past :attr:`max_pixels`: what :meth:`__call__` would
        refuse of a file, found before any is decoded (``ocrloc predict`` calls it before its loop).

        Raises:
            FileNotFoundError: naming a path that is not a file.
            ValueError: naming the file (not an image PIL knows, or its size past ``max_pixels``).
        """
        for index, path in enumerate(paths):
            checked_image(Path(path), f"input {index} ({path})", self.max_pixels, lambda image: None)

    def __call__(self, inputs: Union[Item, Sequence[Item]], *, polarity: str = "auto",
                 score_threshold: Optional[float] = DEFAULT_SCORE_THRESHOLD, batch_size: int = 32
                 ) -> Union[Detections, List[Detections]]:
        """Detect on one image or a list of images.

        Args:
            inputs: one item or a list (or tuple) of items. An item is

                * a path (``str`` or ``os.PathLike``) to an image file, read with PIL (EXIF
                  orientation applied, as a photo viewer shows it);
                * a PIL image;
                * a numpy array ``H x W`` or ``H x W x C`` (channels last, C = 1, 3 or 4);
                * a torch tensor ``[H, W]``, ``[C, H, W]`` (channels first, C = 1, 3 or 4) or a
                  batch ``[B, C, H, W]``, which counts as B items (one result each, in order).

                Any size. Colour is converted to grey with the ITU-R 601 luma weights (0.299 R +
                0.587 G + 0.114 B, as PIL's ``"L"`` mode; alpha is ignored). Value ranges:
                ``uint8`` is scaled by 1/255, ``uint16`` (either byte order) by 1/65535, ``bool`` is 0/1, other integer
                types must hold values in 0..255 (scaled by 1/255), and floats are taken as
                [0, 1] already: a float input with values outside [0, 1] raises a ``ValueError``
                (divide 0-255 floats by 255 first, or pass ``uint8``) rather than being guessed at.
            polarity: ``auto`` (the default: each image read as a light page, and inverted, when its
                median grey value is above :data:`ocrloc.preprocess.LIGHT_PAGE_MEDIAN`, 0.5: black ink
                on white paper; as given otherwise), ``light_on_dark`` (the training data's look:
                MNIST's white digits on black, taken as is) or ``dark_on_light`` (black ink on white
                paper: inverted, ``1 - x``, before padding). Each result's ``polarity`` says how its
                image was read.
            score_threshold: keep detections scoring at least this; the default,
                :data:`ocrloc.constants.DEFAULT_SCORE_THRESHOLD` (0.5), is the threshold ``ocrloc
                evaluate`` / ``ocrloc report`` give recall and precision at (measured on val with the
                calibrated score). ``0`` or ``None``: every detection the model's decoder keeps (what
                an AP over all scores wants).
            batch_size: images per forward pass; images of the same size are batched together.

        Returns:
            For a single item, its :class:`Detections`; for a list, or a 4-D tensor, a list of
            them in input order. Images are padded on the bottom and right with zeros (after
            inversion) to the model's input rule; boxes and points are returned in the given
            image's pixels, clipped to its width and height.

        Raises:
            FileNotFoundError: naming a path that is not a file.
            ValueError: for an input of an unknown shape, dtype or value range, an unknown
                polarity, or an image larger than the model takes or than :attr:`max_pixels`
                (naming the sizes; a file's size is read from its header, before decoding).
            TypeError: for an input of an unknown type.
        """
        if polarity not in POLARITIES:
            raise ValueError(f"polarity must be one of {', '.join(POLARITIES)}; got {polarity!r}")
        if score_threshold is not None and not 0.0 <= float(score_threshold) <= 1.0:  # NaN fails too
            raise ValueError(f"score_threshold must be in [0, 1] (0: keep every detection); got {score_threshold!r}")
        if int(batch_size) < 1:
            raise ValueError(f"batch_size must be at least 1; got {batch_size}")
        single = not isinstance(inputs, (list, tuple))
        items = [inputs] if single else list(inputs)
        images: List[Tensor] = []
        for index, item in enumerate(items):
            images += to_grey(item, f"input {index}" if not single else "input", self.max_pixels)
        read = [apply_polarity(image, polarity) for image in images]  # each image's own, with "auto"
        images, polarities = [image for image, _ in read], [chosen for _, chosen in read]
        if single and not (torch.is_tensor(inputs) and inputs.dim() == 4):
            return self._predict(images, polarities, score_threshold, int(batch_size))[0]
        return self._predict(images, polarities, score_threshold, int(batch_size))

    @torch.no_grad()
    def _predict(self, images: List[Tensor], polarities: List[str], score_threshold: Optional[float],
                 batch_size: int) -> List[Detections]:
        """``images``: grey ``[H, W]`` in [0, 1], already light on dark; ``polarities``: how each was read."""
        from ocrloc.engine.inference import iterate_predictions

        groups: "OrderedDict[Tuple[int, int], List[int]]" = OrderedDict()
        for index, image in enumerate(images):
            groups.setdefault(tuple(image.shape), []).append(index)
        for (height, width), indices in groups.items():  # every size checked before any work
            self._check_size(height, width, indices[0])

        def batches():
            for (height, width), indices in groups.items():
                for start in range(0, len(indices), batch_size):
                    chunk = indices[start:start + batch_size]
                    batch = torch.stack([images[i] for i in chunk])[:, None]
                    yield batch, [{"index": i, "size": (height, width)} for i in chunk]

        results: List[Optional[Detections]] = [None] * len(images)
        for _, targets, detections in iterate_predictions(self.module, batches(), self.device, self.amp):
            for target, det in zip(targets, detections):
                results[target["index"]] = self._detections(det, target["size"], score_threshold,
                                                            polarities[target["index"]])
        return results  # type: ignore[return-value]

    def _check_size(self, height: int, width: int, index: int) -> None:
        m = self.module
        if m.max_size <= 0:
            return
        padded = [padded_side(v, m.size_divisible, m.min_size) for v in (height, width)]
        if max(padded) > m.max_size:
            raise ValueError(f"image {index}: {too_large_text(height, width, *padded, m.max_size)} "
                             f"({self.input_rule})")

    def _detections(self, det: Dict[str, Tensor], size: Tuple[int, int], score_threshold: Optional[float],
                    polarity: str) -> Detections:
        height, width = size
        boxes = det["boxes"].detach().float().cpu().reshape(-1, 4)
        scores = det["scores"].detach().float().cpu().reshape(-1)
        labels = det["labels"].detach().long().cpu().reshape(-1)
        keypoints = det["keypoints"].detach().float().cpu().reshape(-1, det["keypoints"].shape[-2], 3)  # [N, K, 3]
        keep = torch.ones_like(scores, dtype=torch.bool) if score_threshold is None else scores >= score_threshold
        order = torch.sort(scores[keep], descending=True, stable=True).indices
        boxes, scores, labels, keypoints = (t[keep][order] for t in (boxes, scores, labels, keypoints))
        boxes = torch.stack([boxes[:, 0].clamp(0, width), boxes[:, 1].clamp(0, height),
                             boxes[:, 2].clamp(0, width), boxes[:, 3].clamp(0, height)], dim=1)
        points = torch.stack([keypoints[..., 0].clamp(0, width), keypoints[..., 1].clamp(0, height)], dim=2)
        names = [self.class_names[k] if 0 <= k < len(self.class_names) else str(k) for k in labels.tolist()]
        if self.task is not None:
            ids = [self.task.class_ids[k] for k in labels.tolist()]
            keypoint_names = [list(self.task.keypoint_names[k]) for k in labels.tolist()]
        else:  # a file without the dataset's ids: class index = category id, every slot a keypoint
            ids = labels.tolist()
            keypoint_names = [[f"keypoint{j}" for j in range(keypoints.shape[1])] for _ in ids]
        return Detections(boxes=boxes, scores=scores, labels=labels, points=points,
                          point_scores=keypoints[..., 2].contiguous(), class_names=names,
                          image_size=(int(height), int(width)), category_ids=ids, keypoint_names=keypoint_names,
                          polarity=polarity, task=self.task)


# -- helpers --------------------------------------------------------------------------------------


def _resolve_device(device: Union[str, torch.device]) -> torch.device:
    """``auto``/``cpu``/``cuda``/``cuda:N`` via :func:`ocrloc.engine.distributed.resolve_device`,
    leaving torch's thread count as it is (the API is a library: threads are the caller's)."""
    from ocrloc.engine.distributed import resolve_device

    return resolve_device(str(device), threads=torch.get_num_threads())


def _existing_file(path: Union[str, os.PathLike]) -> Path:
    path = Path(path)
    if path.is_dir():
        raise ValueError(f"{path}: a folder, not a checkpoint or exported file")
    if not path.is_file():
        raise FileNotFoundError(f"no such file: {path}")
    return path


def _exported_given_as_checkpoint(path: Path) -> str:
    """The one line refusing an exported TorchScript file where a checkpoint was asked for, saying
    how to run it on purpose (the CLI says the same for ``--checkpoint``)."""
    return (f"{path}: an exported TorchScript file, not a checkpoint; it is a program and runs only when asked "
            f"for by name: ocrloc predict --exported {path}, or ocrloc.Predictor.from_exported(path) in Python")


def _is_torchscript(path: Path) -> bool:
    """Whether ``path`` is a TorchScript archive (:func:`ocrloc.engine.checkpoint.is_torchscript_archive`)."""
    from ocrloc.engine.checkpoint import is_torchscript_archive

    return is_torchscript_archive(path)


def _max_pixels(value: Optional[int]) -> int:
    """``max_pixels`` checked: a whole number >= 0 (``None`` -> 0, no limit)."""
    if value is None:
        return 0
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 0:
        raise ValueError(f"max_pixels must be a whole number >= 0 (0: no limit); got {value!r}")
    return int(value)
