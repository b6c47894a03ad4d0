"""Atomic file writes: a reader never sees a half-written file, a crash leaves the old one intact.

A write that fails (a full disk, a read-only or missing folder) raises :class:`OutputError`, one
line naming the file and the cause, and leaves no temporary behind. A run folder's own files (its
lock, ``metrics.csv``) are opened with :func:`open_no_follow`, never through a symbolic link.
"""

from __future__ import annotations

import errno
import json
import os
import re
import shutil
import socket
import tempfile
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Callable, Iterator, List

__all__ = ["OutputError", "SymlinkError", "atomic_path", "cached_json", "open_no_follow", "refuse_symlink",
           "remove_stale_temporaries", "umask", "write_bytes_atomic", "write_json_atomic", "write_text_atomic",
           "writer_tag"]


class OutputError(OSError):
    """A file that could not be written. ``str()`` is one line naming the file and the cause
    (``runs/x/checkpoints/last.pt: cannot write it (No space left on device)``); ``errno`` and
    ``strerror`` are the failure's own, ``filename`` the file."""

    def __init__(self, path: str | os.PathLike, err: OSError) -> None:
        super().__init__(err.errno, err.strerror or str(err), str(path))

    def __str__(self) -> str:
        return f"{self.filename}: cannot write it ({self.strerror})"


class SymlinkError(OSError):
    """A run folder's file that is a symbolic link, refused (``str()``: one line naming it)."""

    def __init__(self, path: str | os.PathLike) -> None:
        super().__init__(errno.ELOOP, "a symbolic link", str(path))

    def __str__(self) -> str:
        return (f"{self.filename} is a symbolic link; ocrloc never opens a run folder's own files through one "
                f"(it would write wherever the link points): remove it")


def refuse_symlink(path: str | os.PathLike) -> None:
    """Raise :class:`SymlinkError` when ``path`` is a symbolic link (``lstat``: the link itself)."""
    if os.path.islink(path):
        raise SymlinkError(path)


def open_no_follow(path: str | os.PathLike, flags: int, mode: int = 0o644) -> int:
    """``os.open(path, flags)`` that refuses a symbolic link as the last component (``O_NOFOLLOW``):
    a link left in a run folder, in place of its lock or ``metrics.csv``, would otherwise have the
    file it points to truncated or appended to. Returns the file descriptor.

    Raises:
        SymlinkError: ``path`` is a symbolic link.
    """
    try:
        return os.open(path, flags | getattr(os, "O_NOFOLLOW", 0), mode)
    except OSError as err:
        # Linux says ELOOP, the BSDs EMLINK; where O_NOFOLLOW is missing the link check still holds.
        if err.errno in (errno.ELOOP, errno.EMLINK) and os.path.islink(path):
            raise SymlinkError(path) from None
        raise


def umask() -> int:
    """The process's umask (read by setting it and putting it back)."""
    mask = os.umask(0)
    os.umask(mask)
    return mask


@contextmanager
def atomic_path(path: str | os.PathLike, suffix: str = "") -> Iterator[Path]:
    """Yield a temporary path beside ``path``; rename it onto ``path`` only if the block succeeds.

    The rename replaces a symbolic link at ``path`` rather than writing through it.

    Args:
        path: final destination.
        suffix: suffix of the temporary file (some writers, e.g. cv2.imwrite, pick the format from it).

    Raises:
        OutputError: (an ``OSError``) one line naming ``path`` when its folder cannot be made, or the
            block or the rename fails with an ``OSError`` (a full disk, a read-only folder); the
            temporary is removed.
    """
    path = Path(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=suffix or ".tmp", dir=path.parent)
    except OutputError:
        raise
    except OSError as err:
        raise OutputError(path, err) from None
    os.close(fd)
    tmp_path = Path(tmp)
    try:
        yield tmp_path
        # mkstemp creates 0600 files; give the result the permissions a plain open() would.
        os.chmod(tmp_path, 0o666 & ~umask())
        os.replace(tmp_path, path)
    except OutputError:
        raise
    except OSError as err:  # the cause (e.g. ENOSPC) says nothing of which file: name the one asked for
        raise OutputError(path, err) from None
    finally:
        if tmp_path.exists():
            tmp_path.unlink()


def write_bytes_atomic(data: bytes | memoryview, path: str | os.PathLike, suffix: str = "") -> None:
    """Write ``data`` to ``path`` through a temporary file and a rename, synced to disk.

    Torch's own writers (``torch.save`` or ``torch.jit.save`` to a path) report a failed write as an
    ``unexpected pos`` RuntimeError, or abort the process when it fails in their destructor; they
    write to a buffer instead, and these bytes go to disk here, where a full disk is an
    :class:`OutputError` naming ``path``."""
    with atomic_path(path, suffix) as tmp:
        with open(tmp, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())


def write_json_atomic(obj: Any, path: str | os.PathLike, **dump_kwargs: Any) -> None:
    """Write ``obj`` as JSON to ``path`` through a temporary file and a rename."""
    with atomic_path(path) as tmp:
        with open(tmp, "w", encoding="utf-8") as f:
            json.dump(obj, f, **dump_kwargs)
            f.flush()
            os.fsync(f.fileno())


def write_text_atomic(text: str, path: str | os.PathLike) -> None:
    """Write ``text`` to ``path`` through a temporary file and a rename."""
    with atomic_path(path) as tmp:
        Path(tmp).write_text(text)


def cached_json(path: str | os.PathLike, key: Any, compute: Callable[[], Any]) -> Any:
    """The value stored at ``path`` under ``key``; otherwise ``compute()``, stored there with ``key``
    (written atomically). A stale or missing file is recomputed, never trusted."""
    path = Path(path)
    if path.is_file():
        try:
            saved = json.loads(path.read_text())
        except json.JSONDecodeError:
            saved = None  # unreadable: recomputed and overwritten below
        # An older layout (another field name) counts as stale too.
        if isinstance(saved, dict) and saved.get("key") == key and "value" in saved:
            return saved["value"]
    value = compute()
    write_json_atomic({"key": key, "value": value}, path)
    return value


def _host() -> str:
    # Only these characters, so that a folder name parses back unambiguously.
    return re.sub(r"[^A-Za-z0-9_]", "_", socket.gethostname()) or "host"


def writer_tag() -> str:
    """``tmp-HOST-PID``: which process writes a temporary folder (a split, a report), so a later run
    can tell a dead writer's leftovers from a live writer's work in progress (a PID means nothing on
    another host)."""
    return f"tmp-{_host()}-{os.getpid()}"


def _pid_alive(pid: int) -> bool:
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # exists, owned by someone else
        return True
    except (OverflowError, ValueError):
        return False
    return True


def remove_stale_temporaries(out_dir: str | os.PathLike, started: float) -> List[Path]:
    """Remove the temporary folders that killed writers of ``out_dir`` left beside it.

    A writer names its folder ``.NAME.tmp-HOST-PID.XXXXXXXX.tmp``; one is removed when HOST is this
    host and PID is no longer running. Folders of the older unnamed layout ``.NAME.XXXXXXXX.tmp`` are
    removed when last modified before ``started`` (this run's start). Anything else, including a
    live writer's folder and other outputs' folders, is left alone.

    Returns:
        The folders removed.
    """
    out_dir = Path(out_dir)
    parent = out_dir.parent
    if not parent.is_dir():
        return []
    name = re.escape(out_dir.name)
    tagged = re.compile(rf"^\.{name}\.tmp-(?P<host>[A-Za-z0-9_]+)-(?P<pid>\d+)\.[a-z0-9_]+\.tmp$")
    legacy = re.compile(rf"^\.{name}\.[a-z0-9_]{{8}}\.tmp$")
    host = _host()
    removed = []
    for entry in parent.iterdir():
        if not entry.name.startswith(f".{out_dir.name}.") or not entry.is_dir() or entry.is_symlink():
            continue
        match = tagged.match(entry.name)
        if match:
            stale = match["host"] == host and not _pid_alive(int(match["pid"]))
        else:
            try:
                stale = bool(legacy.match(entry.name)) and entry.stat().st_mtime < started
            except OSError:
                stale = False
        if stale:
            shutil.rmtree(entry, ignore_errors=True)
            removed.append(entry)
    return removed
