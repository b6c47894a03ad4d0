"""One-line error messages out of DataLoader workers."""

from __future__ import annotations

__all__ = ["worker_error_message"]


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
