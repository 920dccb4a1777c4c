"""The sync engine: one incremental pass copies every new line of every transcript into
the archive.

How a pass works:

- Walk each root with os.scandir and stat every ``*.jsonl`` / ``*.meta.json``.  A file
  whose (device, inode, size, mtime) match its ``sync_files`` row is skipped unread.
- A changed JSONL file is read from its stored ``position`` in 1 MiB chunks, complete
  lines only.  Every line becomes one ``events`` row holding its exact bytes.
- Rows, their FTS entries, the derived tables and the file's new position are written in
  one transaction per 64 MiB of source (see batch_bytes), so a crash at any instant
  loses nothing and duplicates nothing: the next pass resumes at the committed position.
- A file that was replaced (new inode), truncated (smaller than its position) or rewritten
  (its first 4 KB changed) gets a new ``generation`` and is read again from the start;
  lines identical to an archived line at the same offset are moved to the new generation
  instead of being inserted twice.
- A file that disappeared keeps all its rows and gets ``deleted_at``.

Source files are opened read-only and never modified.

This module is the pass (run_pass, Pass); the rooms it uses: sources.py finds and names
the files, filesync.py reads one changed file, batch.py turns its lines into rows
(parse.py parses a line), db.py opens the archive (migrations.py shapes it) and
checkpoints it, memory.py keeps the heap small, keep.py stores the files beside the
transcripts.
"""

from __future__ import annotations

import gc
import os
import sqlite3
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path

from . import derive, lines, quarantine
from .batch import batch_bytes
from .clock import now_iso
from .db import WAL_LIMIT, Checkpointer, open_db, retry_busy
from .filesync import STALE_TAIL_SECONDS, FileSync
from .keep import KeepResult, keep_pass
from .lock import LockBusy, WriterLock
from .memory import limit_heap
from .sources import (
    Source,
    db_name,
    discover,
    make_source,
    not_regular,
    os_name,
    real_path,
    text_name,
)

# Passes of the watch sidecar (file events, the periodic rescan) leave a sync_runs row
# only when they find something to do: a rescan every 30 s that finds nothing would add
# thousands of rows a day, and the heartbeat already says the sidecar is alive.  Every
# other pass (sync, initial, manual: the web app's "Sync now" waits for its row) records one.
QUIET_TRIGGERS = ("watch", "rescan")


@dataclass
class PassResult:
    run_id: int | None  # None: a quiet pass (QUIET_TRIGGERS) that found nothing to do
    files_scanned: int = 0
    files_changed: int = 0
    lines_added: int = 0
    bytes_read: int = 0
    errors: int = 0
    seconds: float = 0.0
    unreadable: list[str] = field(default_factory=list)  # "path: reason", retried next pass
    kept: KeepResult | None = None  # what ingest.keep did (files beside the transcripts)


def run_pass(
    db_path: str | os.PathLike,
    roots: Iterable[str | os.PathLike],
    *,
    trigger: str = "cli",
    host: str | None = None,
    progress: Callable[[int, int], None] | None = None,
    wait: bool | float = True,
    paths: Iterable[str | os.PathLike] | None = None,
    claude_dirs: Iterable[str | os.PathLike] = (),
) -> PassResult:
    """One incremental pass over ``roots``; returns what it did.

    ``wait``: how long to wait for another writer (True: as long as it takes, False: not at
    all, a number: seconds); raises ingest.lock.LockBusy when giving up.
    ``paths``: only look at these files or folders (all under one of the roots); a
    tracked file among them that is gone is marked deleted.  None means everything.
    ``progress(done_bytes, total_bytes)`` is called as the pass reads, after each commit.
    ``claude_dirs``: Claude directories whose history.jsonl, file-history/, plans/ and
    todos/ are kept too (ingest.keep; files in the session folders always are).
    """
    lock = WriterLock(db_path)
    started = time.monotonic()
    lock.acquire(wait)
    if trigger != "statusline":  # (a process of milliseconds: not worth loading ctypes)
        limit_heap()
    # Parsed records hold no reference cycles: reference counting frees them, and the
    # cyclic collector, run every few hundred of them, only cost time (4% of a sync).
    collecting = gc.isenabled()
    gc.disable()
    try:
        conn = open_db(db_path)
        if wait is not True:
            # Another program (not a sync: those take the lock) may hold a write
            # transaction: wait for it what is left of ``wait``, not the 30 s default.
            left = 0.0 if wait is False else max(0.0, wait - (time.monotonic() - started))
            conn.execute(f"PRAGMA busy_timeout={int(left * 1000)}")
        try:
            # the host name (socket.gethostname() on Linux and macOS, without importing
            # socket: the status line's one-file pass starts faster)
            host = host or os.uname().nodename
            sync = Pass(conn, [Path(r) for r in roots], host, progress, str(db_path))
            sync.claude_dirs = [Path(c) for c in claude_dirs]
            sync.wait = wait
            try:
                return sync.run(trigger, None if paths is None else [Path(p) for p in paths])
            except sqlite3.OperationalError as e:
                if not is_busy(e):
                    raise
                waited = "" if wait is False else f" after waiting {float(wait):g} s"
                raise LockBusy(
                    f"Another program holds a write transaction on {db_path}; gave up"
                    f"{waited}, try again later."
                ) from None
            finally:
                sync.stop_checkpointer()
        finally:
            conn.close()
    finally:
        if collecting:
            gc.enable()
        lock.release()


class Pass:
    def __init__(
        self,
        conn: sqlite3.Connection,
        roots: list[Path],
        host: str,
        progress,
        db_path: str | None = None,  # None: no checkpointer thread
    ):
        self.conn = conn
        # Roots are keyed by their real path: the same file reached through a symlinked
        # projects folder is the same sync_files row.  aliases: (as given, real) pairs.
        given = [r.expanduser().absolute() for r in roots]
        self.roots = [Path(os.path.realpath(r)) for r in given]
        self.aliases = [(str(g), str(r)) for g, r in zip(given, self.roots, strict=True) if g != r]
        self.host = host
        self.progress = progress
        self.result: PassResult | None = None
        self.done_bytes = 0
        self.total_bytes = 0
        self.unreadable: list[str] = []  # "path: reason", for messages
        self.unreadable_paths: dict[str, str] = {}  # path -> reason
        self.touched_sessions: set[str | None] = set()
        self.touched_agents: set[str | None] = set()
        self.pending_bytes = 0  # source bytes written in the open transaction
        self.db_path = db_path
        self.checkpointer: Checkpointer | None = None
        self.commit_bytes = batch_bytes()
        self.claude_dirs: list[Path] = []
        self.wait: bool | float = True  # run_pass's wait (see retry)
        self.careful = False  # write batches in savepoints (see ingest.quarantine)
        # Compress lines on the packing thread (ingest.lines.Packing) only when a core
        # is free for it: on a busy machine the two threads cost more CPU than they save.
        self.pack_on_thread = lines.spare_core()
        self.committed_counts = (0, 0, 0, 0)  # the result's counts at the last commit

    # -- the pass -------------------------------------------------------------------

    def run(self, trigger: str, paths: list[Path] | None) -> PassResult:
        started = time.monotonic()
        conn = self.conn
        self.run_row = (trigger, self.host, os.getpid(), now_iso())
        self.result = result = PassResult(run_id=None)
        if trigger not in QUIET_TRIGGERS:
            self.record_run()
        try:
            try:
                self.sync_all(paths)
            except quarantine.NeedsCare:
                # A line could not be written as parsed: the open transaction is rolled
                # back; go on in careful mode, where such a line is quarantined.
                if conn.in_transaction:
                    conn.execute("ROLLBACK")
                self.restart_careful()
                self.sync_all(paths)
        except BaseException as e:
            if conn.in_transaction:
                conn.execute("ROLLBACK")
            result.seconds = time.monotonic() - started
            if isinstance(e, Exception):
                if not is_busy(e):  # (another writer holds the archive: no row to write)
                    self.finish_run(result, f"{type(e).__name__}: {e}")
            else:  # interrupted (a signal): say so if the archive is free now, never wait
                self.wait = False
                try:
                    conn.execute("PRAGMA busy_timeout=0")
                    self.finish_run(result, f"interrupted ({type(e).__name__})")
                except sqlite3.Error:
                    pass
            raise
        result.seconds = time.monotonic() - started
        result.unreadable = self.unreadable
        result.errors += len(self.unreadable)
        note = None
        if self.unreadable:
            first = text_name(self.unreadable[0])  # keep's may hold undecodable names
            note = f"could not read {len(self.unreadable)} files, e.g. {first}"
        if result.run_id is not None or note:
            self.finish_run(result, note)
        return result

    def record_run(self) -> None:
        """Insert the pass's sync_runs row (once), outside any transaction."""
        if self.result.run_id is None:
            self.result.run_id = self.retry(
                lambda: (
                    self.conn.execute(
                        "INSERT INTO sync_runs (trigger, host, pid, started_at) "
                        "VALUES (?, ?, ?, ?)",
                        self.run_row,
                    ).lastrowid
                )
            )

    def finish_run(self, result: PassResult, error: str | None) -> None:
        self.record_run()

        def write():
            self.conn.execute(
                "UPDATE sync_runs SET ended_at = ?, seconds = ?, files_scanned = ?, "
                "files_changed = ?, lines_added = ?, bytes_read = ?, errors = ?, error = ? "
                "WHERE id = ?",
                (
                    now_iso(),
                    round(result.seconds, 4),
                    result.files_scanned,
                    result.files_changed,
                    result.lines_added,
                    result.bytes_read,
                    result.errors,
                    error,
                    result.run_id,
                ),
            )

        self.retry(write)

    def sync_all(self, paths: list[Path] | None) -> None:
        conn = self.conn
        if paths is not None:
            paths = [real_path(p) for p in paths]
        for alias, real in self.aliases:
            self.rename_root(alias, real)
        conn.row_factory = sqlite3.Row
        try:
            sql, args = known_files_query(paths)
            known = {row["path"]: row for row in conn.execute(sql, args)}
        finally:
            conn.row_factory = None
        found = self.find(paths)
        result = self.result
        result.files_scanned = len(found)
        todo = []
        now = time.time()
        for key, source in found.items():
            row = known.get(key)
            if row is not None and unchanged(row, source, now):
                continue
            todo.append((source, row))
        looked_at = self.looked_at(paths)
        hidden = self.hidden()
        gone = [
            row
            for path, row in known.items()
            if row["deleted_at"] is None
            and path not in found
            and looked_at(path)
            and not hidden(path)
        ]
        self.total_bytes = sum(max(0, s.size - (row["position"] if row else 0)) for s, row in todo)
        if todo or gone:
            self.record_run()
        self.packer = self.prepare_packer(todo)
        self.next_id = (conn.execute("SELECT max(id) FROM events").fetchone()[0] or 0) + 1
        self.next_file_id = (conn.execute("SELECT max(id) FROM sync_files").fetchone()[0] or 0) + 1
        for source, row in todo:
            FileSync(self, source, row).run()
            result.files_changed += 1
        self.flush(last=True)
        if gone:
            self.mark_deleted(gone)
        self.keep_files(paths)
        self.store_unreadable(looked_at)

    def prepare_packer(self, todo: list[tuple[Source, sqlite3.Row | None]]) -> lines.Packer:
        """The compressor of this pass's lines (ingest.lines).  An archive without a
        dictionary gets one first, trained on the lines this pass is about to read (and
        any already archived), when there are enough of them; the rows already archived
        are compressed again with it, in the same transaction."""
        packer = lines.Packer(self.conn)
        if packer.dict_id or not todo:
            return packer
        samples = lines.samples_of(_coming_lines(todo))
        if sum(map(len, samples)) < lines.SAMPLE_BYTES:
            samples += lines.archive_samples(self.conn, lines.SAMPLE_BYTES)
        trained = lines.train(samples)
        if trained is None:
            return packer

        def write():
            lines.store_dictionary(self.conn, trained)
            lines.repack(self.conn, lines.Packer(self.conn))  # (rows of earlier passes)

        self.write(write)
        return lines.Packer(self.conn)

    def store_unreadable(self, looked_at: Callable[[str | bytes], bool]) -> None:
        """Keep sync_unreadable in step: what this pass could not read (kept until a pass
        that looks there reads it), for `status` and the status page."""
        conn = self.conn
        current = dict(self.unreadable_paths)
        for item in self.unreadable[len(current) :]:  # ingest.keep's, as "path: reason"
            path, _, reason = item.partition(": ")
            current.setdefault(path, reason)
        stored = {
            os_name(row[0]): row[1]
            for row in conn.execute("SELECT path, reason FROM sync_unreadable")
        }
        stale = [p for p in stored if p not in current and looked_at(p)]
        fresh = {p: r for p, r in current.items() if stored.get(p) != r}
        if not stale and not fresh:
            return
        stamp = now_iso()

        def write():
            conn.executemany(
                "DELETE FROM sync_unreadable WHERE path = ?", [(db_name(p),) for p in stale]
            )
            conn.executemany(
                "INSERT INTO sync_unreadable (path, reason, first_seen, last_seen) "
                "VALUES (?, ?, ?, ?) ON CONFLICT (path) DO UPDATE SET "
                "reason = excluded.reason, last_seen = excluded.last_seen",
                [(db_name(p), r, stamp, stamp) for p, r in fresh.items()],
            )

        self.write(write)

    def keep_files(self, paths: list[Path] | None) -> None:
        """Keep the files beside the transcripts (ingest.keep), in transactions of its own."""
        kept = keep_pass(
            self.conn,
            self.roots,
            self.claude_dirs,
            host=self.host,
            paths=paths,
            attempts=6 if self.wait is True else 1,
        )
        self.result.kept = kept
        self.unreadable += kept.skipped
        if kept.files_read or kept.deleted:
            self.record_run()

    def retry(self, fn):
        """fn() (a write) with the pass's patience for another writer: retried with
        backoff when the pass may wait as long as it takes, else once, for the busy
        timeout run_pass set (so --wait N waits about N seconds, not six times N)."""
        return retry_busy(fn, attempts=6 if self.wait is True else 1)

    def restart_careful(self) -> None:
        """Forget what the rolled-back transaction did; write carefully from now on."""
        self.careful = True
        self.touched_sessions, self.touched_agents = set(), set()
        self.pending_bytes = 0
        result = self.result
        result.files_changed, result.lines_added, result.bytes_read, result.errors = (
            self.committed_counts
        )

    def cannot_read(self, path: str, reason: str) -> None:
        """A file or folder this pass could not read: said, stored, retried next pass."""
        if path not in self.unreadable_paths:
            self.unreadable_paths[path] = reason
            self.unreadable.append(f"{text_name(path)}: {reason}")  # (a message: text)

    def new_file_id(self) -> int:
        """An id for a new sync_files row (this pass is the only writer)."""
        self.next_file_id += 1
        return self.next_file_id - 1

    def rename_root(self, alias: str, real: str) -> None:
        """Key the files archived under a symlink to a root (by an older version, which
        did not resolve it) by the root's real path, so they are not archived again."""
        n = len(alias) + 1

        def write():
            self.conn.execute(
                "UPDATE sync_files SET path = ?1 || substr(path, ?3), "
                "root = CASE WHEN root = ?2 THEN ?1 ELSE root END "
                "WHERE path >= ?2 || ?4 AND path < ?2 || ?5 AND NOT EXISTS ("
                "SELECT 1 FROM sync_files f WHERE f.path = ?1 || substr(sync_files.path, ?3))",
                (real, alias, n, os.sep, chr(ord(os.sep) + 1)),
            )

        self.retry(write)

    def find(self, paths: list[Path] | None) -> dict[str | bytes, Source]:
        """The sources to look at, keyed by their stored path (see sources.db_name)."""
        found: dict[str | bytes, Source] = {}
        if paths is None:
            for root in self.roots:
                for source in discover(root, self.cannot_read):
                    found[db_name(source.path)] = source
            return found
        for path in paths:
            root = next((r for r in self.roots if path == r or r in path.parents), None)
            if root is None:
                continue
            if path.is_dir():
                for source in discover(path, self.cannot_read, under=str(root)):
                    found[db_name(source.path)] = source
                continue
            try:
                stat = path.stat()
            except (FileNotFoundError, NotADirectoryError):
                continue
            except OSError as e:  # a symlink loop, a folder one may not enter, ...
                if path.name.endswith((".jsonl", ".meta.json")):
                    self.cannot_read(str(path), e.strerror or str(e))
                continue
            why = not_regular(stat.st_mode)
            if why is not None:
                if path.name.endswith((".jsonl", ".meta.json")):
                    self.cannot_read(str(path), why)
                continue
            source = make_source(str(root), str(path), stat)
            if source is not None:
                found[db_name(source.path)] = source
        return found

    def looked_at(self, paths: list[Path] | None) -> Callable[[str], bool]:
        """Whether this pass looked for a tracked file (so its absence means deleted)."""
        places = [str(p.absolute()) for p in (self.roots if paths is None else paths)]
        prefixes = tuple(p.rstrip(os.sep) + os.sep for p in places)
        exact = set(places)

        def looked(path: str | bytes) -> bool:
            path = os_name(path)
            return path in exact or path.startswith(prefixes)

        return looked

    def hidden(self) -> Callable[[str | bytes], bool]:
        """Whether a tracked file is under something this pass could not read (so its
        absence does not mean it was deleted)."""
        exact = set(self.unreadable_paths)
        prefixes = tuple(p.rstrip(os.sep) + os.sep for p in exact)

        def hidden(path: str | bytes) -> bool:
            path = os_name(path)
            return path in exact or bool(prefixes) and path.startswith(prefixes)

        return hidden

    def mark_deleted(self, rows: list[sqlite3.Row]) -> None:
        conn = self.conn
        stamp = now_iso()
        sessions = {row["session_id"] for row in rows if row["session_id"]}

        def write():
            conn.executemany(
                "UPDATE sync_files SET deleted_at = ? WHERE id = ?",
                [(stamp, row["id"]) for row in rows],
            )
            derive.refresh_sessions(conn, sessions)

        self.write(write)

    def write(self, fn: Callable[[], None]) -> None:
        """Run fn in one IMMEDIATE transaction.

        Only BEGIN can meet another writer (SQLITE_BUSY): it is retried with backoff.
        Once begun, WAL readers cannot block the commit."""
        conn = self.conn
        self.retry(lambda: conn.execute("BEGIN IMMEDIATE"))
        try:
            fn()
            conn.execute("COMMIT")
        except BaseException:
            if conn.in_transaction:
                conn.execute("ROLLBACK")
            raise

    def queue(self, nbytes: int, write: Callable[[], tuple[set, set]]) -> None:
        """Write a file's batch in the pass's open transaction (begun here when none is);
        ``write`` returns the (sessions, agents) it touched.  The transaction commits once
        it holds batch_bytes() of source: small files share a transaction, and an
        initial sync commits (and checkpoints the WAL) every 64 MiB, not once per file.
        The batch's Python objects are freed as soon as it is written."""
        conn = self.conn
        if not conn.in_transaction:
            if self.checkpointer is not None and self.wal_bytes() > WAL_LIMIT:
                self.checkpointer.wait()  # so that this transaction restarts the WAL
            self.retry(lambda: conn.execute("BEGIN IMMEDIATE"))
        try:
            sessions, agents = write()
        except BaseException:
            if conn.in_transaction:
                conn.execute("ROLLBACK")
            raise
        self.touched_sessions |= sessions
        self.touched_agents |= agents
        self.pending_bytes += nbytes
        self.advance(nbytes)
        if self.pending_bytes >= self.commit_bytes:
            self.flush()

    def flush(self, last: bool = False) -> None:
        """Refresh the subagents and sessions the open transaction touched, and commit."""
        conn = self.conn
        if not conn.in_transaction:
            return
        if not last and self.checkpointer is None and self.db_path is not None:
            conn.execute("PRAGMA wal_autocheckpoint=0")
            self.checkpointer = Checkpointer(self.db_path)
        sessions, self.touched_sessions = self.touched_sessions, set()
        agents, self.touched_agents = self.touched_agents, set()
        self.pending_bytes = 0
        try:
            agents.discard(None)
            sessions |= derive.refresh_subagents(conn, agents)
            sessions.discard(None)
            derive.refresh_sessions(conn, sessions)
            conn.execute("COMMIT")
            r = self.result
            self.committed_counts = (r.files_changed, r.lines_added, r.bytes_read, r.errors)
        except BaseException:
            if conn.in_transaction:
                conn.execute("ROLLBACK")
            raise
        if self.checkpointer is not None:
            self.checkpointer.request()
        # Only now, outside the transaction: a callback may write with a connection of
        # its own (watch refreshes its heartbeat row), which would wait for this one.
        if self.progress is not None:
            self.progress(self.done_bytes, self.total_bytes)

    def wal_bytes(self) -> int:
        try:
            return os.path.getsize(f"{self.db_path}-wal")
        except OSError:
            return 0

    def stop_checkpointer(self) -> None:
        if self.checkpointer is not None:
            self.checkpointer.close()
            self.checkpointer = None
            self.conn.execute("PRAGMA wal_autocheckpoint=1000")

    def advance(self, nbytes: int) -> None:
        self.result.bytes_read += nbytes
        self.done_bytes += nbytes


# A dictionary is trained on lines from files spread evenly over the pass's list, up to
# SAMPLE_CHUNK from where each file's next read starts (a session's lines repeat its own
# ids, cwd and words: the first files' lines alone trained a dictionary for those
# sessions; on the 100 MB small mix, 2,128 files, spreading the same 2 MiB over every
# 47th file stores the lines in 10% fewer bytes).
SAMPLE_CHUNK = 64 << 10


def _coming_lines(todo: list[tuple[Source, sqlite3.Row | None]]):
    """Complete lines from where each file's next read starts, for training: every n-th
    file, n such that their first SAMPLE_CHUNK (or less, a small file) come to about
    SAMPLE_BYTES, more of each when there are few; files that cannot be read now are
    left to the pass."""
    files = [item for item in todo if item[0].kind != "meta"]
    coming = sum(
        min(SAMPLE_CHUNK, max(0, source.size - (row["position"] if row else 0)))
        for source, row in files
    )
    files = files[:: max(1, -(-coming // lines.SAMPLE_BYTES))]  # (rounded up)
    per_file = max(SAMPLE_CHUNK, lines.SAMPLE_BYTES // max(1, len(files)))
    for source, row in files:
        try:
            fd = os.open(source.path, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)
        except OSError:
            continue
        try:
            if not_regular(os.fstat(fd).st_mode) is not None:
                continue
            position = row["position"] if row else 0
            chunk = os.pread(fd, per_file, position)
        except OSError:
            continue
        finally:
            os.close(fd)
        yield from chunk.split(b"\n")[:-1]


def is_busy(e: BaseException) -> bool:
    """Another connection holds the archive (SQLITE_BUSY / SQLITE_LOCKED)."""
    return isinstance(e, sqlite3.OperationalError) and ("locked" in str(e) or "busy" in str(e))


def unchanged(row: sqlite3.Row, source: Source, now: float) -> bool:
    if (
        row["deleted_at"] is not None
        or row["size"] != source.size
        or row["mtime"] != source.mtime
        or row["inode"] != source.inode
        or row["device"] != source.device
    ):
        return False
    # A pending unterminated tail is looked at again once it has gone stale.
    return row["position"] >= source.size or now - source.mtime < STALE_TAIL_SECONDS


def known_files_query(paths: list[Path] | None) -> tuple[str, list]:
    """The sync_files rows a pass needs: all of them, or with ``paths`` only those of
    these files and of the files under these folders (what ``looked_at`` accepts), read
    through the path index: a pass over one file of a large archive reads one row, not
    every tracked file (`claude-sessions statusline` runs one after every message)."""
    if paths is None or len(paths) > 100:  # many places: one scan is as good
        return "SELECT * FROM sync_files", []
    clauses, args = [], []
    for place in (str(p.absolute()) for p in paths):
        prefix = place.rstrip(os.sep) + os.sep
        clauses.append("path = ?")
        args.append(db_name(place))
        if isinstance(db_name(prefix), str):
            clauses.append("(path >= ? AND path < ?)")
            args += [prefix, prefix + "\U0010ffff"]
        # names that are not UTF-8 are stored as BLOBs (sources.db_name), which sort
        # after every text: a range of BLOBs (memcmp order) through the same index
        raw = os.fsencode(prefix)
        clauses.append("(path >= ? AND path < ?)")
        args += [raw, raw[:-1] + bytes([raw[-1] + 1])]
    return f"SELECT * FROM sync_files WHERE {' OR '.join(clauses)}", args
