"""One writer per archive: an flock on ``<db>.lock`` holding the writer's pid.

The lock file sits next to the archive's real file (symlinks in the --db path and its
folders resolved), so two names for one archive meet at one lock; SQLite, too, puts its
-wal and -shm files next to the real file.  Readers (Datasette) never take it; SQLite's
WAL mode lets them read while a pass writes.
"""

from __future__ import annotations

import fcntl
import os
import time
from pathlib import Path


def real_file(db_path: str | os.PathLike) -> str:
    """The archive's real path: every symlink on the way resolved, also when the file
    does not exist yet (then its folder's real path and its name)."""
    return os.path.realpath(os.path.abspath(os.fspath(db_path)))


class LockBusy(Exception):
    """Another process holds the lock."""


class WriterLock:
    """``with WriterLock(db_path): ...`` runs the block as the archive's only writer.

    ``acquire(wait)``: ``True`` waits as long as it takes, ``False`` gives up at once,
    a number waits up to that many seconds; giving up raises LockBusy.
    """

    suffix = ".lock"

    def __init__(self, db_path: str | os.PathLike):
        self.db_path = Path(db_path)
        self.path = Path(f"{real_file(self.db_path)}{self.suffix}")
        self._fd: int | None = None

    def holder_pid(self) -> int | None:
        """The pid written by the current holder (None when unknown or free)."""
        try:
            text = self.path.read_text().strip()
        except OSError:
            return None
        return int(text) if text.isdigit() else None

    @property
    def held(self) -> bool:
        return self._fd is not None

    def acquire(self, wait: bool | float = True) -> None:
        if self._fd is not None:
            return
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        deadline = None if wait is True else time.monotonic() + (0 if wait is False else wait)
        delay = 0.01
        try:
            while True:
                try:
                    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                    break
                except BlockingIOError:
                    if deadline is not None and time.monotonic() >= deadline:
                        raise LockBusy(self._busy_message(wait)) from None
                    time.sleep(delay)
                    delay = min(delay * 2, 0.1)
        except BaseException:  # given up, or interrupted (a signal): no fd left behind
            os.close(fd)
            raise
        try:
            os.ftruncate(fd, 0)
            os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
        except OSError:
            pass  # a full disk: the pid is for messages only, the flock is what counts
        self._fd = fd

    def release(self) -> None:
        if self._fd is None:
            return
        fd, self._fd = self._fd, None
        try:
            os.ftruncate(fd, 0)
        except OSError:
            pass
        finally:
            fcntl.flock(fd, fcntl.LOCK_UN)
            os.close(fd)

    def _busy_message(self, wait: bool | float) -> str:
        pid = self.holder_pid()
        holder = f"Another sync (pid {pid})" if pid else "Another sync"
        waited = "" if wait is False else f" after waiting {float(wait):g} s"
        return f"{holder} is writing to {self.db_path}; gave up{waited}, try again later."

    def __enter__(self) -> WriterLock:
        self.acquire()
        return self

    def __exit__(self, *exc) -> None:
        self.release()


class WatchLock(WriterLock):
    """Held by ``claude-sessions watch`` for its whole life: one sidecar per archive."""

    suffix = ".watch.lock"

    def _busy_message(self, wait: bool | float) -> str:
        pid = self.holder_pid()
        holder = f" (pid {pid})" if pid else ""
        return f"`claude-sessions watch`{holder} is already running on {self.db_path}."
