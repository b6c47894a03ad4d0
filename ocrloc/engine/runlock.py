"""One writer per run folder: an exclusive lock held for the whole training.

Two trainings on one ``--out`` would interleave their ``metrics.csv`` rows and overwrite each
other's checkpoints; a ``--resume`` of a run that still goes would repeat its rows. The lock is
the file ``<run>/.lock``, held with ``flock`` (the kernel drops it when its process dies, even
by ``kill -9``, so a lock left by a dead process is taken over, never waited for) and holding
the holder's pid, host and start time, so the refusal can name who holds it. It is opened
without following a symbolic link: a link there would have the file it points to truncated.
"""

from __future__ import annotations

import fcntl
import json
import os
import socket
import time
from pathlib import Path
from typing import Optional

from ocrloc.utils.io import open_no_follow

__all__ = ["LOCK_FILE", "RunLock", "RunLockedError"]

LOCK_FILE = ".lock"


class RunLockedError(RuntimeError):
    """Another live process holds the run folder's lock."""


class RunLock:
    """Exclusive lock of a run folder (a context manager; :meth:`release` is idempotent).

    Args:
        run_dir: the run folder; made if it does not exist.
    """

    def __init__(self, run_dir: str | os.PathLike) -> None:
        self.path = Path(run_dir) / LOCK_FILE
        self._fd: Optional[int] = None

    def acquire(self) -> "RunLock":
        """Take the lock, or raise :class:`RunLockedError` naming the holder
        (:class:`ocrloc.utils.io.SymlinkError` when ``.lock`` is a symbolic link)."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        while True:
            fd = open_no_follow(self.path, os.O_RDWR | os.O_CREAT, 0o644)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                os.close(fd)
                raise RunLockedError(f"{self.path.parent} is in use by {self._holder()}; wait for it to finish "
                                     f"(or stop it) before training or resuming in this folder") from None
            # The holder we raced with may have removed the file between our open and our lock:
            # then we hold a lock on a file nobody else can see. Retry on the file that is there.
            try:
                same = os.path.samestat(os.fstat(fd), os.lstat(self.path))
            except FileNotFoundError:
                same = False
            if same:
                break
            os.close(fd)
        holder = {"pid": os.getpid(), "host": socket.gethostname(), "started": time.strftime("%Y-%m-%d %H:%M:%S")}
        os.ftruncate(fd, 0)
        os.write(fd, json.dumps(holder).encode())
        os.fsync(fd)
        self._fd = fd
        return self

    def release(self) -> None:
        """Remove the lock file and drop the lock (removal first: see :meth:`acquire`)."""
        if self._fd is None:
            return
        try:
            self.path.unlink()
        except FileNotFoundError:
            pass
        os.close(self._fd)
        self._fd = None

    def _holder(self) -> str:
        try:
            info = json.loads(self.path.read_text() or "{}")
            return f"pid {info['pid']} on {info['host']} (since {info['started']})"
        except (OSError, ValueError, KeyError, TypeError):
            return "another process (its lock file is being written)"

    def __enter__(self) -> "RunLock":
        return self.acquire()

    def __exit__(self, *exc) -> None:
        self.release()

    def __del__(self) -> None:
        if getattr(self, "_fd", None) is not None:
            os.close(self._fd)
