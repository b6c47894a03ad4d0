"""MNIST digits, found on disk (or downloaded where a network is), split as SPEC section 5 says.

The data root is looked up in this order: the explicit argument (``--data-root``), the
``OCRLOC_DATA`` environment variable, ``./data``, ``../shared/data``. A root holds MNIST
the way ``torchvision.datasets.MNIST`` expects: ``ROOT/MNIST/raw/*-ubyte``.
"""

from __future__ import annotations

import functools
import os
import socket
from dataclasses import dataclass
from pathlib import Path
from typing import Dict, List, Optional, Tuple

import numpy as np

__all__ = [
    "SPLITS",
    "MnistNotFoundError",
    "DigitPool",
    "candidate_roots",
    "resolve_data_root",
    "load_digit_pool",
]

# split -> (MNIST file: train=True/False, first index, end index) in file order.
SPLITS: Dict[str, Tuple[bool, int, int]] = {
    "train": (True, 0, 55_000),
    "val": (True, 55_000, 60_000),
    "test": (False, 0, 10_000),
}

_RAW_FILES = (
    "train-images-idx3-ubyte",
    "train-labels-idx1-ubyte",
    "t10k-images-idx3-ubyte",
    "t10k-labels-idx1-ubyte",
)
_DOWNLOAD_HOST = ("ossci-datasets.s3.amazonaws.com", 443)  # torchvision's first MNIST mirror


class MnistNotFoundError(FileNotFoundError):
    """No data root holds MNIST and it could not be downloaded."""


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


def candidate_roots(data_root: Optional[str | os.PathLike] = None) -> List[Path]:
    """The data roots to try, in order, without duplicates."""
    roots: List[Path] = []
    if data_root is not None:
        roots.append(Path(data_root))
    if os.environ.get("OCRLOC_DATA"):
        roots.append(Path(os.environ["OCRLOC_DATA"]))
    roots += [Path("data"), Path("..") / "shared" / "data"]
    unique: List[Path] = []
    for root in roots:
        if root.resolve() not in [r.resolve() for r in unique]:
            unique.append(root)
    return unique


def _has_mnist(root: Path) -> bool:
    return all((root / "MNIST" / "raw" / name).is_file() for name in _RAW_FILES)


def _network_reachable(timeout: float = 2.0) -> bool:
    try:
        with socket.create_connection(_DOWNLOAD_HOST, timeout=timeout):
            return True
    except OSError:
        return False


def resolve_data_root(data_root: Optional[str | os.PathLike] = None, download: bool = True) -> Path:
    """Find the first root holding MNIST; download into ``./data`` if none does and a network is reachable.

    Args:
        data_root: explicit root (a ``--data-root`` flag or a config value); tried first.
        download: allow torchvision's download when no root has the files.

    Raises:
        MnistNotFoundError: listing every path tried and how to fix it.
    """
    tried = candidate_roots(data_root)
    for root in tried:
        if _has_mnist(root):
            return root
    if download and _network_reachable():
        import torchvision

        target = Path("data")
        for train in (True, False):
            torchvision.datasets.MNIST(str(target), train=train, download=True)
        return target
    lines = "\n".join(f"  - {(root / 'MNIST' / 'raw').resolve()}" for root in tried)
    raise MnistNotFoundError(
        "MNIST not found. Looked for the four raw IDX files "
        f"({', '.join(_RAW_FILES)}) in:\n{lines}\n"
        + ("and no network was reachable to download it. " if download else "and downloading is off. ")
        + "Fix: pass --data-root DIR (or set OCRLOC_DATA=DIR) where DIR/MNIST/raw/ holds the files, "
        "or run once on a machine with a network so torchvision downloads them into ./data."
    )


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


def load_digit_pool(split: str, data_root: Optional[str | os.PathLike] = None, download: bool = True) -> DigitPool:
    """The digits of ``split`` (SPEC section 5): train 0-54,999, val 55,000-59,999 of the
    MNIST training file, test all 10,000 test digits.

    Raises:
        ValueError: for an unknown split.
        MnistNotFoundError: when no data root has MNIST.
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
