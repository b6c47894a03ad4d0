"""Helpers shared by the subcommands; imports nothing heavy."""

from __future__ import annotations

import argparse
import sys
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
    return run(parser.parse_args(argv))


def fail(err: BaseException | str) -> int:
    """Report a user error as one ``error: ...`` line on stderr; return 2, the status argparse uses for bad usage."""
    print(f"error: {err}", file=sys.stderr)
    return 2
