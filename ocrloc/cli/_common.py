"""Helpers shared by the subcommands; imports nothing heavy."""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path
from typing import Callable, Optional, Sequence


def summary(doc: str) -> str:
    """The first line of a module docstring: the command's one-line help in ``ocrloc --help``."""
    return doc.strip().splitlines()[0]


def new_parser(doc: str, prog: Optional[str] = None, **kwargs) -> argparse.ArgumentParser:
    """An argument parser whose description (with its examples) prints exactly as written."""
    return argparse.ArgumentParser(prog=prog, description=doc, formatter_class=argparse.RawDescriptionHelpFormatter,
                                   **kwargs)


def standalone_main(doc: str, add_arguments: Callable[[argparse.ArgumentParser], None],
                    run: Callable[[argparse.Namespace], int], argv: Optional[Sequence[str]] = None) -> int:
    """Parse ``argv`` (``None``: ``sys.argv[1:]``) with one subcommand's options and run it."""
    parser = new_parser(doc)
    add_arguments(parser)
    return run_command(run, parser.parse_args(argv))


def run_command(run: Callable[[argparse.Namespace], int], args: argparse.Namespace) -> int:
    """``run(args)``, with an output that could not be written (a full disk, a read-only folder:
    :class:`ocrloc.utils.io.OutputError`, already one line naming the file and the cause) reported
    as the user error it is, wherever in the command it happened."""
    from ocrloc.utils.io import OutputError  # light: the standard library only

    try:
        return run(args)
    except OutputError as err:
        return fail(err)


def check_output_file(path: str | os.PathLike, flag: str) -> None:
    """Refuse, before any work, an output file that could not be written: a folder, a path under
    something that is not a folder, or one in a folder this process may not write
    (``ValueError`` naming the flag and the path)."""
    out = Path(path)
    if out.is_dir():
        raise ValueError(f"{flag} {out} is a folder; name the file to write (e.g. {out / 'results.json'})")
    home = out.absolute().parent
    while not home.exists() and home != home.parent:
        home = home.parent
    if not home.is_dir():
        raise ValueError(f"{flag} {out}: {home} is not a folder")
    if not os.access(home, os.W_OK | os.X_OK):
        raise ValueError(f"{flag} {out}: {home} is not writable")


def score_threshold(value: object, flag: str = "--threshold") -> float:
    """A score threshold given on the command line (text, or the float default) as a float in [0, 1]
    (``ValueError`` naming the flag and the value otherwise: the caller reports it as one line)."""
    try:
        number = float(value)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        number = float("nan")
    if not 0.0 <= number <= 1.0:  # NaN fails too
        raise ValueError(f"{flag} must be a number in [0, 1] (a detection scoring at least it is kept), "
                         f"got {value}")
    return number


def fail(err: BaseException | str) -> int:
    """Report a user error as one ``error: ...`` line on stderr; return 2, the status argparse uses for bad usage."""
    print(f"error: {err}", file=sys.stderr)
    return 2
