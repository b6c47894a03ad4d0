"""MNIST digits, found on disk (never downloaded unless asked: ``ocrloc download-mnist``, or a Python caller
that opts in), split as ``docs/task.md``, "Benchmark canvases", says.

The data root is the explicit argument (``--data-root`` / ``data.data_root``), else the
``OCRLOC_DATA`` environment variable; a root named either way must hold MNIST (an error names it
otherwise, nothing else is tried). Only when neither is given are ``./data`` then
``../shared/data`` searched. A root holds MNIST the way ``torchvision.datasets.MNIST`` expects:
``ROOT/MNIST/raw/*-ubyte``.
"""

from __future__ import annotations

import functools
import os
import socket
from dataclasses import dataclass
from pathlib import Path
from typing import Dict, List, Optional, Tuple

import numpy as np

from ocrloc.data.catalog import SPLIT_NAMES

__all__ = [
    "SPLITS",
    "MnistNotFoundError",
    "DigitPool",
    "candidate_roots",
    "resolve_data_root",
    "load_digit_pool",
    "download_mnist",
]

# split -> (MNIST file: train=True/False, first index, end index) in file order, for the splits of
# ocrloc.data.catalog.SPLIT_NAMES (train, val, test), in that order.
SPLITS: Dict[str, Tuple[bool, int, int]] = dict(zip(SPLIT_NAMES, [
    (True, 0, 55_000),
    (True, 55_000, 60_000),
    (False, 0, 10_000),
], strict=True))

_RAW_FILES = (
    "train-images-idx3-ubyte",
    "train-labels-idx1-ubyte",
    "t10k-images-idx3-ubyte",
    "t10k-labels-idx1-ubyte",
)
_DOWNLOAD_HOST = ("ossci-datasets.s3.amazonaws.com", 443)  # torchvision's first MNIST mirror


class MnistNotFoundError(FileNotFoundError):
    """The named data root (or, with none named, every searched root) lacks MNIST; the message is one line."""


@dataclass(frozen=True)
class DigitPool:
    """The MNIST digits one split may draw from.

    Attributes:
        split: ``train``, ``val`` or ``test``.
        images: uint8 array ``[N, 28, 28]``.
        labels: int64 array ``[N]``.
        source_index: int64 array ``[N]``, each digit's index in its MNIST file, so that
            disjointness of the splits can be checked from the annotations.
        source_file: ``"train"`` or ``"t10k"``.
    """

    split: str
    images: np.ndarray
    labels: np.ndarray
    source_index: np.ndarray
    source_file: str

    def indices_of(self, classes: Tuple[int, ...]) -> np.ndarray:
        """Positions (into this pool) of the digits whose label is in ``classes``."""
        return np.flatnonzero(np.isin(self.labels, classes))


def _explicit_root(data_root: Optional[str | os.PathLike]) -> Optional[Tuple[Path, str]]:
    """The root the user named and where it came from, or None when they named none."""
    if data_root is not None and str(data_root) != "":
        return Path(data_root), "--data-root / data.data_root"
    if os.environ.get("OCRLOC_DATA"):
        return Path(os.environ["OCRLOC_DATA"]), "OCRLOC_DATA"
    return None


def candidate_roots(data_root: Optional[str | os.PathLike] = None) -> List[Path]:
    """The data roots to try, in order, without duplicates.

    A root the user named (``data_root``, else ``$OCRLOC_DATA``) is the only candidate: falling back
    to another root would train on data they did not ask for while ``config.yaml`` records theirs.
    The search of ``./data`` and ``../shared/data`` applies only when neither is given.
    """
    explicit = _explicit_root(data_root)
    if explicit is not None:
        return [explicit[0]]
    roots = [Path("data"), Path("..") / "shared" / "data"]
    unique: List[Path] = []
    for root in roots:
        if root.resolve() not in [r.resolve() for r in unique]:
            unique.append(root)
    return unique


def _missing_files(root: Path) -> List[str]:
    return [name for name in _RAW_FILES if not (root / "MNIST" / "raw" / name).is_file()]


def _has_mnist(root: Path) -> bool:
    return not _missing_files(root)


def _network_reachable(timeout: float = 2.0) -> bool:
    try:
        with socket.create_connection(_DOWNLOAD_HOST, timeout=timeout):
            return True
    except OSError:
        return False


def resolve_data_root(data_root: Optional[str | os.PathLike] = None, download: bool = False) -> Path:
    """The data root holding MNIST: the one the user named, or the first of the search.

    Args:
        data_root: explicit root (a ``--data-root`` flag or ``data.data_root``); when given (or when
            ``$OCRLOC_DATA`` is set) it must hold MNIST, nothing else is tried.
        download: opt-in for Python callers only (no command or config sets it): let torchvision
            download MNIST into the named root (``./data`` when none is named) if no root has it
            and its host answers. Off by default: ocrloc never reaches the network on its own.

    Raises:
        MnistNotFoundError: one line naming the root(s) looked in and how to fix it.
    """
    explicit = _explicit_root(data_root)
    tried = candidate_roots(data_root)
    for root in tried:
        if _has_mnist(root):
            return root
    if download and _network_reachable():
        return download_mnist(explicit[0] if explicit is not None else Path("data"))
    if explicit is not None:
        root, source = explicit
        raw = (root / "MNIST" / "raw").resolve()
        what = (f"{root.resolve()} is not a folder" if not root.is_dir()
                else f"{raw} lacks {', '.join(_missing_files(root))}")
        raise MnistNotFoundError(
            f"MNIST not found in the data root {root} given by {source}: {what}; point {source} at a folder DIR "
            "whose DIR/MNIST/raw/ holds the four raw IDX files (no other root is tried when one is given), "
            f"or fetch them there: ocrloc download-mnist --root {root}")
    looked = ", ".join(str((root / "MNIST" / "raw").resolve()) for root in tried)
    raise MnistNotFoundError(
        f"MNIST not found: none of {looked} holds the four raw IDX files ({', '.join(_RAW_FILES)}); "
        "pass --data-root DIR (or set OCRLOC_DATA=DIR) where DIR/MNIST/raw/ holds them, "
        "or fetch them into ./data: ocrloc download-mnist")


@functools.lru_cache(maxsize=4)
def _load_file(root: str, train: bool) -> Tuple[np.ndarray, np.ndarray]:
    # Cached per process: parsing the 60,000-digit file takes seconds, and every dataset,
    # DataLoader worker (forked after the first load) and test reuses the same read-only arrays.
    import torchvision

    mnist = torchvision.datasets.MNIST(root, train=train, download=False)
    images = mnist.data.numpy()
    labels = mnist.targets.numpy().astype(np.int64)
    images.setflags(write=False)
    labels.setflags(write=False)
    return images, labels


def load_digit_pool(split: str, data_root: Optional[str | os.PathLike] = None, download: bool = False) -> DigitPool:
    """The digits of ``split`` (``docs/task.md``, "Benchmark canvases"): train 0-54,999, val 55,000-59,999 of the
    MNIST training file, test all 10,000 test digits.

    Raises:
        ValueError: for an unknown split.
        MnistNotFoundError: when the named data root, or with none named every searched root, lacks MNIST.
    """
    if split not in SPLITS:
        raise ValueError(f"unknown split {split!r}; expected one of {', '.join(SPLITS)}")
    train, start, end = SPLITS[split]
    root = resolve_data_root(data_root, download=download)
    images, labels = _load_file(str(root.resolve()), train)
    return DigitPool(
        split=split,
        images=images[start:end],
        labels=labels[start:end],
        source_index=np.arange(start, end, dtype=np.int64),
        source_file="train" if train else "t10k",
    )


def download_mnist(root: str | os.PathLike) -> Path:
    """Fetch MNIST with torchvision's own downloader (its mirrors, its checksums) into ``root/MNIST/raw/``,
    where ocrloc looks; return ``root``. A root that already holds the four files is left as it is.

    Only ``ocrloc download-mnist`` (or a Python caller) runs this: ocrloc never downloads on its own. The
    files are fetched into a temporary folder in ``root`` and moved into ``MNIST/raw/`` once all four
    arrived and passed torchvision's checksums, so a failed download leaves no file behind.

    Raises:
        OSError: the download failed (one line naming the root and the cause; torchvision's own
            message, one line per mirror tried, is joined into it), or ``root`` cannot be written.
    """
    import shutil
    import tempfile

    import torchvision

    root = Path(root)
    if _has_mnist(root):
        return root
    raw = root / "MNIST" / "raw"
    root.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=".mnist-download-", dir=root))
    try:
        try:
            torchvision.datasets.MNIST(str(staging), train=True, download=True)
        except (RuntimeError, OSError) as err:  # torchvision: RuntimeError listing each mirror; URLError is an OSError
            cause = " ".join(str(err).split())
            raise OSError(f"could not download MNIST into {raw}: {cause}") from None
        raw.mkdir(parents=True, exist_ok=True)
        for name in _RAW_FILES:
            os.replace(staging / "MNIST" / "raw" / name, raw / name)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return root
