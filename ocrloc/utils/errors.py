"""The configuration's error, and one-line error messages out of DataLoader workers and the YAML parser.

Standard library only: any layer may raise :class:`ConfigError` (the data layer names a config key in it)
without importing :mod:`ocrloc.config`, which itself imports the data layer's settings.
"""

from __future__ import annotations

from typing import Any

__all__ = ["ConfigError", "worker_error_message", "yaml_problem"]


class ConfigError(ValueError):
    """A config file or override names an unknown key, gives a value of the wrong type or
    outside the field's choices, or sets a key that its ``model.type`` does not read."""


def yaml_problem(err: Any) -> str:
    """A PyYAML error as one line: ``invalid YAML at line L, column C: what was wrong (while parsing X
    from line L', column C')``. PyYAML's own message spans 4 to 8 lines (each place quoted with a caret
    under it, in a file it calls ``<unicode string>``); lines and columns here count from 1, as an
    editor does."""
    def where(mark: Any) -> str:
        return f"line {mark.line + 1}, column {mark.column + 1}"

    mark, problem = getattr(err, "problem_mark", None), getattr(err, "problem", None)
    if problem is None:  # not a marked error: its text, on one line
        return f"invalid YAML: {' '.join(str(err).split())}"
    text = f"invalid YAML at {where(mark)}: {problem}" if mark is not None else f"invalid YAML: {problem}"
    context, context_mark = getattr(err, "context", None), getattr(err, "context_mark", None)
    if context:
        text += f" ({context}" + (f" from {where(context_mark)})" if context_mark is not None else ")")
    return " ".join(text.split())


def worker_error_message(text: str) -> str:
    """``text`` as one line. An error raised in a DataLoader worker comes back re-raised with the
    worker's traceback as its message (``Caught X in DataLoader worker ... Original Traceback
    ...``); its original message is the traceback's last line, ``module.Type: message``, and that
    message alone is returned."""
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    if not lines:
        return text
    if "Original Traceback" not in text:
        return " ".join(lines)
    head, sep, tail = lines[-1].partition(": ")
    return tail if sep and all(part.isidentifier() for part in head.split(".")) else lines[-1]
