"""The sidecar loop behind ``claude-sessions watch``.

An initial pass, then a watchdog observer on every root: each burst of file events
becomes a pass over just the files named (after ``debounce`` seconds), a full rescan
every ``rescan_interval`` catches whatever the events missed, and the ``sync_heartbeat``
row says every ``heartbeat_interval`` that the sidecar is alive.  A root that does not
exist yet (a machine where Claude Code never ran) is looked for every APPEAR_POLL
seconds and followed, after a full pass, as soon as it appears.

The writer lock is taken per pass, so ``claude-sessions sync`` and the web app's
"Sync now" can run between passes; a second watch on the same archive is refused
(``<db>.watch.lock``).  SIGUSR1 asks for a full pass now (trigger ``manual``);
SIGINT/SIGTERM (or ``stop_event``) stop the loop, leaving the heartbeat ``stopped``; a
pass under way when the signal comes is rolled back (the next pass redoes it), so the
sidecar stops within a second or two whatever it is doing.

It heals (issue 8):
- a pass that fails (a full disk, an I/O error) is retried with backoff (0.5 s doubling
  up to MAX_BACKOFF) and said once a minute, not once per pass; the paths it was given
  are kept for the next pass, so nothing is lost, and a line says when passes work again;
- the archive file deleted or replaced by another file is noticed (its device and inode
  are checked every loop), said, and archiving goes on into the file now at that path
  (a fresh archive when none is there), starting with a full pass;
- a projects folder deleted (and made again) is no longer followed by file events:
  its observer watch is dropped and set up again on the new folder, with a full pass.
"""

from __future__ import annotations

import errno
import os
import signal
import socket
import sqlite3
import threading
import time
from collections.abc import Callable, Iterable
from pathlib import Path

import orjson
from watchdog.events import FileSystemEvent, FileSystemEventHandler
from watchdog.observers import Observer

from .clock import now_iso
from .db import open_db, retry_busy
from .heartbeat import archive_identity
from .lock import LockBusy, WatchLock, WriterLock
from .sync import PassResult, run_pass

WATCHED_EVENTS = {"created", "modified", "moved", "deleted", "closed"}
LOCK_WAIT = 1.0  # seconds a pass waits for another writer before trying again later
APPEAR_POLL = 0.5  # seconds between looks for a root that does not exist yet
FIRST_BACKOFF = 0.5  # seconds before retrying a failed pass, doubled per failure ...
MAX_BACKOFF = 4.0  # ... up to this (a line arrives within 10 s once the fault is gone)
SAY_EVERY = float(
    os.environ.get("HEAL_SAY", 60)
)  # seconds between two lines about the same kind of failure
HEARTBEAT_TIMEOUT = 0.5  # seconds a heartbeat waits for another writer (then skips a beat)


class Stopped(BaseException):
    """Raised in the main thread by SIGTERM/SIGINT during a pass: roll it back and stop."""


def is_disk_full(e: BaseException) -> bool:
    if isinstance(e, OSError) and e.errno in (errno.ENOSPC, errno.EDQUOT):
        return True
    return isinstance(e, sqlite3.Error) and "full" in str(e)


def identity(path) -> tuple[int, int] | None:
    """(device, inode) of the file or folder at path, None when there is none."""
    try:
        st = os.stat(path)
    except OSError:
        return None
    return st.st_dev, st.st_ino


class Complaints:
    """Say a failure once per SAY_EVERY seconds (per kind), and when it is over."""

    def __init__(self, say: Callable[[str], None]):
        self.say = say
        self.last: dict[str, float] = {}
        self.failures = 0

    def failed(self, kind: str, message: str) -> None:
        self.failures += 1
        now = time.monotonic()
        if now - self.last.get(kind, -SAY_EVERY) >= SAY_EVERY:
            self.last[kind] = now
            self.say(f"{message} (retrying; said again in a minute if it goes on)")

    def recovered(self) -> None:
        if self.failures and self.last:
            self.say(f"Archiving again after {self.failures} failed attempts.")
        self.failures = 0
        self.last.clear()


class Changes(FileSystemEventHandler):
    """Collects the paths that file events name, for the next pass."""

    def __init__(self, wake: threading.Event):
        self.wake = wake
        self.lock = threading.Lock()
        self.paths: set[str] = set()
        self.since: float | None = None

    def on_any_event(self, event: FileSystemEvent) -> None:
        if event.event_type not in WATCHED_EVENTS:
            return
        if event.is_directory and event.event_type in ("modified", "closed"):
            return
        names = [event.src_path]
        if event.event_type == "moved":
            names.append(event.dest_path)
        wanted = [
            os.fsdecode(n)
            for n in names
            if event.is_directory or os.fsdecode(n).endswith((".jsonl", ".meta.json"))
        ]
        if not wanted:
            return
        with self.lock:
            self.paths.update(wanted)
            if self.since is None:
                self.since = time.monotonic()
        self.wake.set()

    def take(self, debounce: float) -> list[str] | None:
        """The collected paths once the first of them is ``debounce`` seconds old."""
        with self.lock:
            if self.since is None or time.monotonic() - self.since < debounce:
                return None
            paths, self.paths, self.since = sorted(self.paths), set(), None
            return paths

    def put_back(self, paths: list[str]) -> None:
        """Paths whose pass could not run (another writer): try them again."""
        with self.lock:
            self.paths.update(paths)
            if self.since is None:
                self.since = time.monotonic()

    def due_in(self, debounce: float) -> float | None:
        with self.lock:
            if self.since is None:
                return None
            return max(0.0, self.since + debounce - time.monotonic())


class Heartbeat:
    """The sync_heartbeat row: who is watching, and since when it last said so."""

    def __init__(self, db_path, host: str, roots: list[Path]):
        self.db_path = db_path
        self.conn: sqlite3.Connection | None = None
        self.identity: tuple[int, int] | None = None
        self.host = host
        self.roots = orjson.dumps([str(r) for r in roots]).decode()
        self.started_at = now_iso()
        self.last = 0.0
        self.open()

    def open(self, wait: bool | float = True) -> None:
        """(Re)open the archive at db_path, creating it and its schema when missing."""
        if self.conn is not None:
            self.conn.close()
            self.conn = None
        lock = WriterLock(self.db_path)
        lock.acquire(wait)  # open_db may create the archive or apply migrations
        try:
            conn = open_db(self.db_path)
        finally:
            lock.release()
        conn.execute(f"PRAGMA busy_timeout={int(HEARTBEAT_TIMEOUT * 1000)}")
        self.conn = conn
        self.identity = identity(self.db_path)
        # This file's identity, written with every beat, so a copy of the archive (its
        # heartbeat row copied too) is not taken for one a sidecar writes (heartbeat.py).
        self.archive = archive_identity(self.db_path)

    def beat(self, state: str) -> None:
        """Refresh the heartbeat row; a beat that cannot be written (the disk is full,
        another writer holds the archive) is skipped: the next one says the same."""
        try:
            self._beat(state)
        except (sqlite3.Error, OSError):
            pass
        self.last = time.monotonic()

    def _beat(self, state: str) -> None:
        if self.conn is None:
            return  # the archive could not be reopened yet

        def write():
            self.conn.execute(
                "INSERT INTO sync_heartbeat (id, pid, host, started_at, beat_at, state, projects, "
                "archive) VALUES (1, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT (id) DO UPDATE SET "
                "pid = excluded.pid, host = excluded.host, started_at = excluded.started_at, "
                "beat_at = excluded.beat_at, state = excluded.state, "
                "projects = excluded.projects, archive = excluded.archive",
                (
                    os.getpid(),
                    self.host,
                    self.started_at,
                    now_iso(),
                    state,
                    self.roots,
                    self.archive,
                ),
            )

        retry_busy(write, attempts=1)

    def close(self) -> None:
        if self.conn is not None:
            self.conn.close()


def run_watch(
    db_path: str | os.PathLike,
    roots: Iterable[str | os.PathLike],
    *,
    host: str | None = None,
    debounce: float = 0.1,
    rescan_interval: float = 30.0,
    heartbeat_interval: float = 2.0,
    stop_event: threading.Event | None = None,
    on_pass: Callable[[PassResult], None] | None = None,
    on_error: Callable[[str], None] | None = None,
    claude_dirs: Iterable[str | os.PathLike] = (),
) -> None:
    """Keep the archive in step with the roots until stopped (see the module docstring).

    Raises LockBusy when another watch runs on the same archive.  ``on_pass`` gets every
    pass's result, ``on_error`` a sentence for what went wrong (at most one a minute per
    kind of failure) and for what healed (the loop goes on).
    """
    roots = [Path(r).expanduser().absolute() for r in roots]
    watch_lock = WatchLock(db_path)
    watch_lock.acquire(False)
    try:
        _watch(
            db_path,
            roots,
            host=host or socket.gethostname(),
            debounce=debounce,
            rescan_interval=rescan_interval,
            heartbeat_interval=heartbeat_interval,
            stop=stop_event or threading.Event(),
            on_pass=on_pass,
            on_error=on_error or (lambda message: None),
            claude_dirs=list(claude_dirs),
        )
    except Stopped:
        pass  # a signal during a pass: rolled back, the heartbeat says "stopped"
    finally:
        watch_lock.release()


def _watch(
    db_path,
    roots,
    *,
    host,
    debounce,
    rescan_interval,
    heartbeat_interval,
    stop,
    on_pass,
    on_error,
    claude_dirs=(),
) -> None:
    wake = threading.Event()
    manual = threading.Event()
    changes = Changes(wake)
    observer = Observer()
    scheduled: dict[Path, tuple] = {}  # root -> (its watch, its identity when scheduled)
    failed: set[Path] = set()
    complaints = Complaints(on_error)
    in_pass = threading.Event()
    # The heartbeat names this machine's real host name, whatever --host the files get:
    # the web app signals the sidecar's pid only on the host it runs on.
    heartbeat = Heartbeat(db_path, socket.gethostname(), roots)
    retry_at = 0.0  # no pass before this (backoff after a failure)
    announced = None  # the archive identity whose loss was last said
    backoff = FIRST_BACKOFF

    def schedule_roots() -> bool:
        """Follow the roots not followed yet; True when one was added."""
        added = False
        for root in roots:
            if root in scheduled or not root.is_dir():
                continue
            try:
                watch = observer.schedule(changes, str(root), recursive=True)
            except OSError as e:  # e.g. the inotify watch limit
                if root not in failed:
                    on_error(
                        f"Cannot follow file events under {root} ({e.strerror or e}); "
                        f"relying on a rescan every {rescan_interval:g} s."
                    )
                    failed.add(root)
                continue
            scheduled[root] = (watch, identity(root))
            added = True
        return added

    def check_roots() -> bool:
        """Drop the watch of a root deleted or replaced since; True when one was."""
        dropped = False
        for root, (watch, known) in list(scheduled.items()):
            if identity(root) == known:
                continue
            try:
                observer.unschedule(watch)
            except (KeyError, OSError):
                pass  # its emitter already stopped with the folder
            del scheduled[root]
            dropped = True
            on_error(f"{root} was deleted or replaced; following it again as soon as it is there.")
        return dropped

    def check_archive() -> bool:
        """Reopen the archive when its file was deleted or replaced; True when it was."""
        nonlocal announced
        now = identity(db_path)
        if now is not None and now == heartbeat.identity:
            return False
        what = "deleted" if now is None else "replaced by another file"
        if announced != heartbeat.identity:
            announced = heartbeat.identity
            on_error(
                f"The archive {db_path} was {what}; archiving goes on into "
                + ("a fresh archive" if now is None else "the file now")
                + " at that path, from a full pass over the projects folders."
            )
        try:
            heartbeat.open(wait=LOCK_WAIT)
        except (LockBusy, sqlite3.Error, OSError) as e:
            complaints.failed("archive", f"Cannot open the archive {db_path}: {e}")
        return True

    def sync(trigger: str, paths: list[str] | None = None) -> bool:
        """One pass; False when it did not run or failed (try again after retry_at)."""
        nonlocal retry_at, backoff
        heartbeat.beat("syncing")

        def progress(done: int, total: int) -> None:
            if time.monotonic() - heartbeat.last >= heartbeat_interval:
                heartbeat.beat("syncing")

        in_pass.set()
        try:
            result = run_pass(
                db_path,
                roots,
                trigger=trigger,
                host=host,
                progress=progress,
                wait=LOCK_WAIT,
                paths=paths,
                claude_dirs=claude_dirs,
            )
        except LockBusy:
            return False
        except Exception as e:  # the failure is in sync_runs when it could be written
            if is_disk_full(e):
                complaints.failed(
                    "disk full",
                    f"A {trigger} pass failed: the disk holding {db_path} is full ({e}); "
                    "nothing is lost, the lines wait in the transcripts",
                )
            else:
                kind = type(e).__name__
                complaints.failed(kind, f"A {trigger} pass failed: {kind}: {e}")
            retry_at = time.monotonic() + backoff
            backoff = min(backoff * 2, MAX_BACKOFF)
            return False
        finally:
            in_pass.clear()
            heartbeat.beat("idle")
        complaints.recovered()
        backoff = FIRST_BACKOFF
        retry_at = 0.0
        if on_pass is not None:
            on_pass(result)
        return True

    restore = install_signals(stop, manual, wake, in_pass)
    try:
        heartbeat.beat("syncing")
        schedule_roots()  # before the initial pass, so nothing written during it is missed
        observer.start()
        while not sync("initial") and not stop.is_set():
            wake.wait(max(0.0, retry_at - time.monotonic()))
        next_rescan = time.monotonic() + rescan_interval
        next_look = time.monotonic() + APPEAR_POLL
        while not stop.is_set():
            now = time.monotonic()
            timeouts = [next_rescan - now, heartbeat.last + heartbeat_interval - now, 0.2]
            due = changes.due_in(debounce)
            if due is not None:
                timeouts.append(due)
            wake.wait(max(0.0, min(timeouts)))
            wake.clear()
            if stop.is_set():
                break
            if check_archive():
                next_rescan = time.monotonic()  # a new archive: read everything again
            if time.monotonic() < retry_at:
                continue  # backing off after a failed pass
            if manual.is_set():
                manual.clear()
                if not sync("manual"):
                    manual.set()
                continue
            paths = changes.take(debounce)
            if paths is not None and not sync("watch", paths):
                changes.put_back(paths)
            if time.monotonic() >= next_look:
                # A root that did not exist yet (a fresh machine), or that was deleted and
                # made again: follow it as soon as it is there, and read what it holds.
                next_look = time.monotonic() + APPEAR_POLL
                check_roots()
                waiting = [r for r in roots if r not in scheduled and r not in failed]
                if waiting and any(r.is_dir() for r in waiting) and schedule_roots():
                    if not sync("rescan"):
                        next_rescan = time.monotonic()  # retry with the next rescan
            if time.monotonic() >= next_rescan:
                schedule_roots()
                if sync("rescan"):
                    next_rescan = time.monotonic() + rescan_interval
            if time.monotonic() - heartbeat.last >= heartbeat_interval:
                heartbeat.beat("idle")
    finally:
        observer.stop()
        if observer.is_alive():
            observer.join(timeout=2)
        try:
            heartbeat.beat("stopped")
        finally:
            heartbeat.close()
            restore()


def install_signals(
    stop: threading.Event,
    manual: threading.Event,
    wake: threading.Event,
    in_pass: threading.Event | None = None,
):
    """SIGINT/SIGTERM stop (a pass under way is interrupted: Stopped is raised in it and
    it rolls back), SIGUSR1 asks for a pass; returns a function undoing this.
    Only possible in the main thread; elsewhere stop_event is the way to stop."""
    if threading.current_thread() is not threading.main_thread():
        return lambda: None

    def on_stop(signum, frame):
        stop.set()
        wake.set()
        if in_pass is not None and in_pass.is_set():
            in_pass.clear()
            raise Stopped

    def on_usr1(signum, frame):
        manual.set()
        wake.set()

    previous = {
        sig: signal.signal(sig, handler)
        for sig, handler in (
            (signal.SIGINT, on_stop),
            (signal.SIGTERM, on_stop),
            (signal.SIGUSR1, on_usr1),
        )
    }

    def restore():
        for sig, handler in previous.items():
            signal.signal(sig, handler)

    return restore
