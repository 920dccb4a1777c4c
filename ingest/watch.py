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
SIGINT/SIGTERM (or ``stop_event``) stop the loop, leaving the heartbeat ``stopped``.
"""

from __future__ import annotations

import os
import signal
import socket
import threading
import time
from collections.abc import Callable, Iterable
from pathlib import Path

import orjson
from watchdog.events import FileSystemEvent, FileSystemEventHandler
from watchdog.observers import Observer

from .db import now_iso, open_db, retry_busy
from .lock import LockBusy, WatchLock, WriterLock
from .sync import PassResult, run_pass

WATCHED_EVENTS = {"created", "modified", "moved", "deleted", "closed"}
LOCK_WAIT = 1.0  # seconds a pass waits for another writer before trying again later
APPEAR_POLL = 0.5  # seconds between looks for a root that does not exist yet


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
        with WriterLock(db_path):  # open_db may apply migrations: a writer's job
            self.conn = open_db(db_path)
        self.host = host
        self.roots = orjson.dumps([str(r) for r in roots]).decode()
        self.started_at = now_iso()
        self.last = 0.0

    def beat(self, state: str) -> None:
        def write():
            self.conn.execute(
                "INSERT INTO sync_heartbeat (id, pid, host, started_at, beat_at, state, projects) "
                "VALUES (1, ?, ?, ?, ?, ?, ?) ON CONFLICT (id) DO UPDATE SET pid = excluded.pid, "
                "host = excluded.host, started_at = excluded.started_at, "
                "beat_at = excluded.beat_at, state = excluded.state, projects = excluded.projects",
                (os.getpid(), self.host, self.started_at, now_iso(), state, self.roots),
            )

        retry_busy(write)
        self.last = time.monotonic()

    def close(self) -> None:
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
    pass's result, ``on_error`` a sentence for every pass that failed (the loop goes on).
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
    scheduled: set[Path] = set()
    failed: set[Path] = set()
    # The heartbeat names this machine's real host name, whatever --host the files get:
    # the web app signals the sidecar's pid only on the host it runs on.
    heartbeat = Heartbeat(db_path, socket.gethostname(), roots)

    def schedule_roots() -> None:
        for root in roots:
            if root in scheduled or not root.is_dir():
                continue
            try:
                observer.schedule(changes, str(root), recursive=True)
            except OSError as e:  # e.g. the inotify watch limit
                if root not in failed:
                    on_error(
                        f"Cannot follow file events under {root} ({e.strerror or e}); "
                        f"relying on a rescan every {rescan_interval:g} s."
                    )
                    failed.add(root)
                continue
            scheduled.add(root)

    def sync(trigger: str, paths: list[str] | None = None) -> bool:
        heartbeat.beat("syncing")

        def progress(done: int, total: int) -> None:
            if time.monotonic() - heartbeat.last >= heartbeat_interval:
                heartbeat.beat("syncing")

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
        except Exception as e:  # the failure is in sync_runs; keep watching
            on_error(f"{trigger} pass failed: {type(e).__name__}: {e}")
            return True
        finally:
            heartbeat.beat("idle")
        if on_pass is not None:
            on_pass(result)
        return True

    restore = install_signals(stop, manual, wake)
    try:
        heartbeat.beat("syncing")
        schedule_roots()  # before the initial pass, so nothing written during it is missed
        observer.start()
        while not sync("initial") and not stop.is_set():
            pass
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
            if manual.is_set():
                manual.clear()
                if not sync("manual"):
                    manual.set()
                continue
            paths = changes.take(debounce)
            if paths is not None and not sync("watch", paths):
                changes.put_back(paths)
            if time.monotonic() >= next_look:
                # A root that did not exist yet (a fresh machine): follow it as soon as
                # Claude Code creates it, and read what it already wrote.
                next_look = time.monotonic() + APPEAR_POLL
                waiting = [r for r in roots if r not in scheduled and r not in failed]
                if waiting and any(r.is_dir() for r in waiting):
                    schedule_roots()
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
            observer.join(timeout=5)
        try:
            heartbeat.beat("stopped")
        finally:
            heartbeat.close()
            restore()


def install_signals(stop: threading.Event, manual: threading.Event, wake: threading.Event):
    """SIGINT/SIGTERM stop, SIGUSR1 asks for a pass; returns a function undoing this.
    Only possible in the main thread; elsewhere stop_event is the way to stop."""
    if threading.current_thread() is not threading.main_thread():
        return lambda: None

    def on_stop(signum, frame):
        stop.set()
        wake.set()

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
