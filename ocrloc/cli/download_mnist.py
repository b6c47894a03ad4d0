"""Fetch MNIST (the four raw IDX files) into DIR/MNIST/raw/, where ocrloc looks for it.

ocrloc never downloads anything on its own: this command is the one opt-in way. It uses torchvision's own
MNIST downloader (its mirrors and checksums; about 11 MB) and writes nothing until all four files arrived.
A root that already holds them is left as it is. Without --root it writes where `ocrloc train` and
`ocrloc make-dataset` look first: $OCRLOC_DATA when set, else ./data.

examples:
  ocrloc download-mnist                          # ./data/MNIST/raw/
  ocrloc download-mnist --root ~/datasets        # then: ocrloc train --data-root ~/datasets ... (or OCRLOC_DATA)

A failed download prints `error: could not download MNIST into DIR/MNIST/raw: ...` on stderr and exits 2.
`python tools/download_mnist.py` takes the same arguments.
"""

from __future__ import annotations

import argparse
import os
from typing import Optional, Sequence

from ocrloc.cli._common import fail, standalone_main


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The options of ``ocrloc download-mnist``."""
    parser.add_argument("--root", default=None, metavar="DIR",
                        help="the data root to write DIR/MNIST/raw/ into (default: $OCRLOC_DATA, else ./data)")


def run(args: argparse.Namespace) -> int:
    """Download MNIST; return the exit status (0, or 2 when the download or the write failed)."""
    from ocrloc.data.mnist import download_mnist

    root = args.root if args.root else (os.environ.get("OCRLOC_DATA") or "data")
    try:
        download_mnist(root)
    except OSError as err:
        return fail(err)
    print(f"MNIST is in {os.path.join(root, 'MNIST', 'raw')}")
    return 0


def main(argv: Optional[Sequence[str]] = None) -> int:
    """``python tools/download_mnist.py``: parse ``argv`` (``None``: ``sys.argv[1:]``) and download."""
    return standalone_main(__doc__, add_arguments, run, argv)
