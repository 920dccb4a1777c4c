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
"""

from __future__ import annotations

import gc
import json
import os
import re
import socket
import sqlite3
import sys
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import TypeVar

import orjson

from . import derive, schema
from .digest import blake2b, sha1
from .lock import WriterLock
from .parse import (
    ERROR_COLUMNS,
    EVENT_COLUMNS,
    SESSION_ID_INDEX,
    LineError,
    NewEvent,
    extract,
    parse_line,
    skeleton,
)

T = TypeVar("T")
CHUNK_BYTES = 1 << 20
HEAD_BYTES = 4096
# An unterminated last line that is not valid JSON is archived (as an error) once the
# file has not changed for this long: the writer is gone and will not finish it.
STALE_TAIL_SECONDS = 3600
EXCERPT_CHARS = 200
AGENT_ID_INDEX = EVENT_COLUMNS.index("agent_id")
EMPTY_COLUMNS = (None,) * len(EVENT_COLUMNS)
UUID_RE = re.compile(
    r"^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$"
)

# raw is bound as bytes and stored as TEXT when the last parameter says the bytes are
# UTF-8 (SQLite's CAST keeps them as they are; no decoding to a Python str and back).
_N = len(EVENT_COLUMNS) + 6


def _insert_event(raw: str) -> str:
    """INSERT INTO events with ?1 .. ?{_N - 1} for the columns before raw, and raw as given."""
    columns = ", ".join(EVENT_COLUMNS)
    params = ", ".join(f"?{i}" for i in range(1, _N))
    return (
        f"INSERT INTO events (id, file_id, generation, byte_offset, line_number, {columns}, "
        f"raw) VALUES ({params}, {raw})"
    )


INSERT_EVENT = _insert_event(f"CASE WHEN ?{_N + 1} THEN CAST(?{_N} AS TEXT) ELSE ?{_N} END")
# A huge line's raw comes from a function that hands its bytes over (see write_huge).
INSERT_HUGE_EVENT = _insert_event(
    f"CASE WHEN ?{_N} THEN CAST(huge_line() AS TEXT) ELSE huge_line() END"
)
# events_fts indexes the text and the kind (so search filters by kind inside the index).
INSERT_FTS = "INSERT INTO events_fts (rowid, text, kind) VALUES (?, ?, ?)"
INSERT_FTS_PREFIX = (
    "INSERT INTO events_fts (rowid, text, kind) "
    "SELECT id, substr(text, 1, ?), kind FROM events WHERE id = ?"
)
KIND_INDEX = EVENT_COLUMNS.index("kind")
INSERT_ERROR = (
    "INSERT INTO ingest_errors (file_id, event_id, byte_offset, line_number, error, excerpt, "
    "created_at) VALUES (?, ?, ?, ?, ?, ?, ?)"
)


def batch_bytes() -> int:
    """Bytes of source read per transaction: $CLAUDE_SESSIONS_BATCH_BYTES when set, else
    64 MiB (a second or two of work: progress callbacks, such as watch's heartbeat, run
    between transactions).

    Each transaction rewrites the index pages its lines land on, and lines land all over
    the indexes keyed by uuid or timestamp, so larger transactions write less (an initial
    sync of 100 MB: 3% faster than with 16 MiB; with 2 MiB transactions it took twice as
    long).  Memory does not grow with it: lines are parsed and written WRITE_BYTES at a
    time, SQLite's cache is fixed and spills to the WAL.
    """
    env = os.environ.get("CLAUDE_SESSIONS_BATCH_BYTES")
    if env:
        return int(env)
    return 64 << 20


# Lines are parsed and written to the open transaction this many bytes at a time, so
# Python holds one small batch of parsed records, never a whole transaction's.
WRITE_BYTES = 512 << 10
# Lines at least this long keep only what the derivers read (see slim_tool_use_result).
SLIM_BYTES = 64 << 10
BATCH_LINES = 20_000
# Only the first FTS_CHARS characters of an event's text are indexed for search (the
# whole text stays in events.text, and snippets are cut from it).  Indexing a text costs
# SQLite several times its size in memory until the transaction commits: without the cap
# one 5 MB line took some 18 MB, with it 9 MB.  Texts this long are tool outputs
# (file dumps, logs) whose first MB is what a search would find anyway.
FTS_CHARS = 1 << 20
# While a pass checkpoints on a thread of its own (see Checkpointer), the WAL may grow to
# about this size plus one transaction before the writer waits for the checkpoint.
WAL_LIMIT = 256 << 20
# A line at least this long is "huge" (a tool output of MBs): it goes in a transaction of
# its own, is parsed from its skeleton (strings cut to KEEP_BYTES, see parse.skeleton) and
# written through SQLite's blob I/O, so that memory stays near twice its size instead of
# six times.  Its ``text`` and its tool call's ``result`` keep the first KEEP_BYTES of each
# long string; ``raw`` keeps every byte.  Afterwards freed memory goes back to the OS.
HUGE_BYTES = 1 << 20
KEEP_BYTES = 256 << 10


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


class Source:
    """A transcript file found on disk.

    A pass holds one per file of the tree (thousands), so it keeps only the path, its
    root, its kind and four stat fields; the rest is worked out when the file is read."""

    __slots__ = ("path", "root", "kind", "size", "mtime", "inode", "device")

    def __init__(self, path: str, root: str, kind: str, stat: os.stat_result):
        self.path = path
        self.root = root
        self.kind = kind
        self.size = stat.st_size
        self.mtime = stat.st_mtime
        self.inode = stat.st_ino
        self.device = stat.st_dev

    @property
    def rel_path(self) -> str:
        return self.path[len(self.root) :].lstrip(os.sep).replace(os.sep, "/")

    @property
    def project_dir(self) -> str | None:
        return classify(self.rel_path)[1]

    @property
    def session_id(self) -> str | None:
        return classify(self.rel_path)[2]

    @property
    def agent_id(self) -> str | None:
        return classify(self.rel_path)[3]


def now_iso() -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def classify(rel_path: str) -> tuple[str, str | None, str | None, str | None] | None:
    """(kind, project_dir, session_id, agent_id) for a path relative to its root, or
    None when the file is not one we archive."""
    parts = rel_path.split("/")
    name = parts[-1]
    if name.endswith(".meta.json"):
        kind = "meta"
        stem = name[: -len(".meta.json")]
    elif name.endswith(".jsonl"):
        stem = name[: -len(".jsonl")]
        if name == "journal.jsonl" and "workflows" in parts[:-1]:
            kind = "journal"
        elif stem.startswith("agent-"):
            kind = "agent"
        elif len(parts) == 2 and UUID_RE.match(stem):
            kind = "session"
        else:
            kind = "other"
    else:
        return None
    project_dir = parts[0] if len(parts) > 1 else None
    agent_id = stem[len("agent-") :] if stem.startswith("agent-") else None
    session_id = None
    if kind == "session":
        session_id = stem
    elif "subagents" in parts[:-1]:
        i = parts.index("subagents")
        if i >= 1:
            session_id = parts[i - 1]
    return kind, project_dir, session_id, agent_id


def discover(root: Path) -> Iterator[Source]:
    """Every archivable file under root, at any depth."""
    root_str = str(root)
    stack = [root_str]
    while stack:
        folder = stack.pop()
        try:
            entries = list(os.scandir(folder))
        except (FileNotFoundError, NotADirectoryError, PermissionError):
            continue
        for entry in entries:
            try:
                if entry.is_dir(follow_symlinks=False):
                    stack.append(entry.path)
                    continue
                if not entry.is_file():
                    continue
                name = entry.name
                if not (name.endswith(".jsonl") or name.endswith(".meta.json")):
                    continue
                source = make_source(root_str, entry.path, entry.stat())
            except FileNotFoundError:
                continue
            if source is not None:
                yield source


def make_source(root: str, path: str, stat: os.stat_result) -> Source | None:
    """The Source for a file at path under root (path starts with root)."""
    rel_path = path[len(root) :].lstrip(os.sep).replace(os.sep, "/")
    info = classify(rel_path)
    if info is None:
        return None
    return Source(path, root, info[0], stat)


_schema_ready: set[str] = set()


def open_db(db_path: str | os.PathLike) -> sqlite3.Connection:
    """Connect with the writer's pragmas and make sure the schema is current."""
    conn = schema.connect(str(db_path))
    # The foreign keys are declared for Datasette (it links rows by them), not enforced
    # here: the engine writes the derived tables before the sessions rows they name and
    # checking each row cost an initial sync 15% of its time.  The tests check the
    # archive with PRAGMA foreign_key_check instead.
    conn.execute("PRAGMA foreign_keys=OFF")
    conn.execute("PRAGMA cache_size=-4000")
    conn.execute("PRAGMA temp_store=MEMORY")
    # A big transaction grows the WAL; give the disk space back once it is checkpointed.
    conn.execute(f"PRAGMA journal_size_limit={64 << 20}")
    conn.create_function("huge_line", 0, huge_line)
    key = os.path.abspath(db_path)
    if key not in _schema_ready:
        schema.ensure_schema(conn)
        _schema_ready.add(key)
    return conn


class Checkpointer:
    """Copies committed WAL frames into the database file on a thread of its own, so a
    long pass goes on writing while the last transaction is checkpointed (on two cores
    that hides most of the checkpoint: 0.5 s of a 2.5 s initial sync of 100 MB).

    The writer turns its own automatic checkpoints off while this runs, and waits for
    this one before starting a transaction when the WAL has grown past WAL_LIMIT: the
    WAL restarts from its beginning only when a transaction starts after a complete
    checkpoint, so the wait keeps its size (and the disk it takes) bounded."""

    def __init__(self, db_path: str):
        self.conn = schema.connect(db_path)
        self.cond = threading.Condition()
        self.requested = self.busy = self.stopping = False
        self.thread = threading.Thread(target=self.run, name="checkpointer", daemon=True)
        self.thread.start()

    def request(self) -> None:
        with self.cond:
            self.requested = True
            self.cond.notify_all()

    def wait(self) -> None:
        with self.cond:
            while self.requested or self.busy:
                self.cond.wait()

    def run(self) -> None:
        while True:
            with self.cond:
                while not (self.requested or self.stopping):
                    self.cond.wait()
                if not self.requested:
                    return
                self.requested, self.busy = False, True
            try:
                self.conn.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchall()
            except sqlite3.Error:
                pass  # a later checkpoint (or the writer's, at close) copies these frames
            finally:
                with self.cond:
                    self.busy = False
                    self.cond.notify_all()

    def close(self) -> None:
        with self.cond:
            self.stopping = True
            self.cond.notify_all()
        self.thread.join()
        self.conn.close()


def run_pass(
    db_path: str | os.PathLike,
    roots: Iterable[str | os.PathLike],
    *,
    trigger: str = "cli",
    host: str | None = None,
    progress: Callable[[int, int], None] | None = None,
    wait: bool | float = True,
    paths: Iterable[str | os.PathLike] | None = None,
) -> PassResult:
    """One incremental pass over ``roots``; returns what it did.

    ``wait``: how long to wait for another writer (True: as long as it takes, False: not at
    all, a number: seconds); raises ingest.lock.LockBusy when giving up.
    ``paths``: only look at these files or folders (all under one of the roots); a
    tracked file among them that is gone is marked deleted.  None means everything.
    ``progress(done_bytes, total_bytes)`` is called as the pass reads, after each commit.
    """
    lock = WriterLock(db_path)
    lock.acquire(wait)
    limit_heap()
    # Parsed records hold no reference cycles: reference counting frees them, and the
    # cyclic collector, run every few hundred of them, only cost time (4% of a sync).
    collecting = gc.isenabled()
    gc.disable()
    try:
        conn = open_db(db_path)
        try:
            host = host or socket.gethostname()
            sync = Pass(conn, [Path(r) for r in roots], host, progress, str(db_path))
            try:
                return sync.run(trigger, None if paths is None else [Path(p) for p in paths])
            finally:
                sync.stop_checkpointer()
        finally:
            conn.close()
    finally:
        if collecting:
            gc.enable()
        lock.release()


def retry_busy(fn: Callable[[], T], attempts: int = 6) -> T:
    """fn() (a write), retried with backoff while another connection holds the database
    longer than the busy timeout."""
    delay = 0.05
    for attempt in range(attempts):
        try:
            return fn()
        except sqlite3.OperationalError as e:
            msg = str(e)
            if attempt == attempts - 1 or ("locked" not in msg and "busy" not in msg):
                raise
            time.sleep(delay)
            delay *= 2


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
        self.unreadable: list[str] = []
        self.touched_sessions: set[str | None] = set()
        self.touched_agents: set[str | None] = set()
        self.pending_bytes = 0  # source bytes written in the open transaction
        self.db_path = db_path
        self.checkpointer: Checkpointer | None = None
        self.commit_bytes = batch_bytes()

    # -- the pass -------------------------------------------------------------------

    def run(self, trigger: str, paths: list[Path] | None) -> PassResult:
        started = time.monotonic()
        conn = self.conn
        self.run_row = (trigger, self.host, os.getpid(), now_iso())
        self.result = result = PassResult(run_id=None)
        if trigger not in QUIET_TRIGGERS:
            self.record_run()
        try:
            self.sync_all(paths)
        except BaseException as e:
            if conn.in_transaction:
                conn.execute("ROLLBACK")
            result.seconds = time.monotonic() - started
            self.finish_run(result, f"{type(e).__name__}: {e}")
            raise
        result.seconds = time.monotonic() - started
        result.unreadable = self.unreadable
        result.errors += len(self.unreadable)
        note = None
        if self.unreadable:
            note = f"could not read {len(self.unreadable)} files, e.g. {self.unreadable[0]}"
        if result.run_id is not None or note:
            self.finish_run(result, note)
        return result

    def record_run(self) -> None:
        """Insert the pass's sync_runs row (once), outside any transaction."""
        if self.result.run_id is None:
            self.result.run_id = retry_busy(
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

        retry_busy(write)

    def sync_all(self, paths: list[Path] | None) -> None:
        conn = self.conn
        if paths is not None:
            paths = [real_path(p) for p in paths]
        for alias, real in self.aliases:
            self.rename_root(alias, real)
        conn.row_factory = sqlite3.Row
        try:
            known = {row["path"]: row for row in conn.execute("SELECT * FROM sync_files")}
        finally:
            conn.row_factory = None
        found = self.find(paths)
        result = self.result
        result.files_scanned = len(found)
        todo = []
        now = time.time()
        for source in found.values():
            row = known.get(source.path)
            if row is not None and unchanged(row, source, now):
                continue
            todo.append((source, row))
        looked_at = self.looked_at(paths)
        gone = [
            row
            for path, row in known.items()
            if row["deleted_at"] is None and path not in found and looked_at(path)
        ]
        self.total_bytes = sum(max(0, s.size - (row["position"] if row else 0)) for s, row in todo)
        if todo or gone:
            self.record_run()
        self.next_id = (conn.execute("SELECT max(id) FROM events").fetchone()[0] or 0) + 1
        self.next_file_id = (conn.execute("SELECT max(id) FROM sync_files").fetchone()[0] or 0) + 1
        for source, row in todo:
            FileSync(self, source, row).run()
            result.files_changed += 1
        self.flush(last=True)
        if gone:
            self.mark_deleted(gone)

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

        retry_busy(write)

    def find(self, paths: list[Path] | None) -> dict[str, Source]:
        found: dict[str, Source] = {}
        if paths is None:
            for root in self.roots:
                for source in discover(root):
                    found[source.path] = source
            return found
        for path in paths:
            root = next((r for r in self.roots if path == r or r in path.parents), None)
            if root is None:
                continue
            if path.is_dir():
                for source in discover(path):
                    source = make_source(str(root), source.path, os.stat(source.path))
                    if source is not None:
                        found[source.path] = source
                continue
            try:
                stat = path.stat()
            except (FileNotFoundError, NotADirectoryError):
                continue
            source = make_source(str(root), str(path), stat)
            if source is not None:
                found[source.path] = source
        return found

    def looked_at(self, paths: list[Path] | None) -> Callable[[str], bool]:
        """Whether this pass looked for a tracked file (so its absence means deleted)."""
        places = [str(p.absolute()) for p in (self.roots if paths is None else paths)]
        prefixes = tuple(p.rstrip(os.sep) + os.sep for p in places)
        exact = set(places)
        return lambda path: path in exact or path.startswith(prefixes)

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
        retry_busy(lambda: conn.execute("BEGIN IMMEDIATE"))
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
            retry_busy(lambda: conn.execute("BEGIN IMMEDIATE"))
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


def real_path(path: Path) -> Path:
    """path with its folders' symlinks resolved (a symlinked file stays itself; a file
    that is gone resolves too)."""
    path = path.expanduser().absolute()
    if path.is_dir():
        return Path(os.path.realpath(path))
    return Path(os.path.realpath(path.parent)) / path.name


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


STATEMENT_CACHE = 128  # sqlite3.connect's default cached_statements
# Blocks at least this large are mapped and unmapped on their own (glibc's M_MMAP_THRESHOLD)
MMAP_BYTES = 512 << 10
_glibc: object | None | bool = False  # False: not looked up yet


def glibc():
    """The C library when it is glibc (malloc_trim, mallopt), else None."""
    global _glibc
    if _glibc is False:
        _glibc = None
        if sys.platform == "linux":
            import ctypes

            try:
                lib = ctypes.CDLL(None)
                if hasattr(lib, "malloc_trim") and hasattr(lib, "mallopt"):
                    _glibc = lib
            except OSError:  # no glibc (musl and others)
                pass
    return _glibc


def limit_heap() -> None:
    """Have glibc map blocks of MMAP_BYTES or more on their own, so that freeing one (a
    huge line, SQLite's copy of it) gives its memory back to the OS at once.

    By default glibc raises that threshold each time such a block is freed, up to 32 MB:
    after the first huge line, the next ones were carved from the heap, and the heap
    only grew (a 100 MB sync peaked 6 MB higher)."""
    lib = glibc()
    if lib is not None:
        lib.mallopt(-3, MMAP_BYTES)  # M_MMAP_THRESHOLD


def release_memory(conn: sqlite3.Connection) -> None:
    """Give the memory freed after a huge line back to the OS.

    glibc keeps freed blocks for reuse, so without this the peak RSS ratchets up with
    every line of several MB (SQLite's copy of the record and its FTS entry, the parsed
    object); malloc_trim returns them.  Elsewhere (no glibc) this only asks SQLite."""
    # A prepared statement keeps the buffers of its largest row (the record of a 5 MB
    # line: some 10 MB) until it is finalized, and sqlite3 caches every statement (128,
    # least recently used first out): running 128 other statements finalizes them.
    for i in range(STATEMENT_CACHE):
        conn.execute(f"SELECT {i}")
    conn.execute("PRAGMA shrink_memory")
    lib = glibc()
    if lib is not None:
        lib.malloc_trim(0)


def head_hash(data: bytes) -> str:
    return blake2b(data, digest_size=16).hexdigest()


def excerpt(line: bytes) -> str:
    text = line[: EXCERPT_CHARS * 4].decode("utf-8", "replace")
    return text[:EXCERPT_CHARS]


def is_utf8(line: bytes) -> bool:
    try:
        line.decode("utf-8")
    except UnicodeDecodeError:
        return False
    return True


def without_surrogates(value):
    """The parsed value with lone surrogates (which SQLite and orjson refuse) replaced."""
    if isinstance(value, str):
        return value.encode("utf-8", "replace").decode("utf-8")
    if isinstance(value, dict):
        return {without_surrogates(k): without_surrogates(v) for k, v in value.items()}
    if isinstance(value, list):
        return [without_surrogates(v) for v in value]
    return value


def parse(line: bytes):
    """(obj, cols) for a good line; raises LineError.

    orjson rejects lone UTF-16 surrogates in escapes (a cut emoji), which real
    transcripts contain; such lines are valid JSON, so fall back to the json module.
    A huge line is parsed from its skeleton when that is JSON, else whole.
    """
    if len(line) >= HUGE_BYTES:
        small = skeleton(line, KEEP_BYTES)
        if small is not line:
            try:
                obj = parse_line(small)
                return obj, extract(obj)
            except LineError:
                pass  # parsed whole below: the error (or the surrogates) is in the line
    try:
        obj = parse_line(line)
        return obj, extract(obj)
    except LineError as e:
        try:
            obj = json.loads(line.decode("utf-8"))
        except (UnicodeDecodeError, ValueError):
            raise e from None
        if not isinstance(obj, dict):
            raise
        obj = without_surrogates(obj)
        return obj, extract(obj)


class FileSync:
    """Reads one changed file into the archive, batch by batch."""

    def __init__(self, sync: Pass, source: Source, row: sqlite3.Row | None):
        self.sync = sync
        self.conn = sync.conn
        self.source = source
        self.row = row
        self.file_id = row["id"] if row else None  # None until its row is inserted
        # the id its events rows carry: a new file's row gets it when first written
        self.row_id = self.file_id if row else sync.new_file_id()
        self.session_id = (row["session_id"] if row else None) or source.session_id
        self.agent_id = source.agent_id

    def run(self) -> None:
        try:
            f = open(self.source.path, "rb", buffering=0)
        except (FileNotFoundError, NotADirectoryError):
            return  # gone since the walk; the next pass marks it deleted
        except OSError as e:
            self.sync.unreadable.append(f"{self.source.path}: {e.strerror}")
            return  # tried again next pass
        with f:
            self.fd = f.fileno()
            st = os.fstat(self.fd)
            self.stat = st
            if self.source.kind == "meta":
                self.sync_meta(f, st)
            else:
                self.sync_jsonl(f, st)

    # -- sync_files bookkeeping -----------------------------------------------------

    def ensure_file_row(self) -> None:
        """Insert the sync_files row (inside the first batch's transaction)."""
        if self.file_id is not None:
            return
        s = self.source
        self.file_id = self.conn.execute(
            "INSERT INTO sync_files (id, path, root, rel_path, project_dir, kind, session_id, "
            "agent_id, host, device, inode, first_seen) "
            "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (
                self.row_id,
                s.path,
                s.root,
                s.rel_path,
                s.project_dir,
                s.kind,
                self.session_id,
                self.agent_id,
                self.sync.host,
                self.stat.st_dev,
                self.stat.st_ino,
                now_iso(),
            ),
        ).lastrowid

    def update_file_row(self, final: bool = True, **values) -> None:
        """Store the file's state.  Until its last batch is in, ``size`` stays at the
        position reached, so a pass that dies mid-file is never mistaken for a file
        that is fully read (and skipped) by the next pass."""
        st = self.stat
        values.update(
            device=st.st_dev,
            inode=st.st_ino,
            size=st.st_size if final else values["position"],
            mtime=st.st_mtime,
            last_synced=now_iso(),
            deleted_at=None,
            session_id=self.session_id,
        )
        sets = ", ".join(f"{k} = ?" for k in values)
        self.conn.execute(
            f"UPDATE sync_files SET {sets} WHERE id = ?", (*values.values(), self.file_id)
        )

    # -- meta.json ------------------------------------------------------------------

    def sync_meta(self, f, st: os.stat_result) -> None:
        content = f.read()
        digest = sha1(content).hexdigest()
        conn = self.conn

        def write():
            self.ensure_file_row()
            conn.execute(
                "INSERT OR IGNORE INTO file_contents (file_id, sha1, content, read_at) "
                "VALUES (?, ?, ?, ?)",
                (self.file_id, digest, content, now_iso()),
            )
            self.update_file_row(position=len(content))
            return {self.session_id}, {self.agent_id}

        self.sync.queue(len(content), write)

    # -- JSONL ----------------------------------------------------------------------

    def sync_jsonl(self, f, st: os.stat_result) -> None:
        row = self.row
        generation = row["generation"] if row else 0
        position = row["position"] if row else 0
        tail_flag = row["tail_unterminated"] if row else 0
        head_len = row["head_len"] if row else 0
        rewritten = False
        if row is not None:
            if (row["device"], row["inode"]) != (st.st_dev, st.st_ino) or st.st_size < position:
                rewritten = True
            elif head_len and head_hash(os.pread(self.fd, head_len, 0)) != row["head_hash"]:
                rewritten = True
            elif tail_flag and st.st_size > position:
                if os.pread(self.fd, 1, position) == b"\n":
                    position += 1  # the newline the archived tail was waiting for
                else:
                    rewritten = True  # the "complete" tail went on: read the file again
        if rewritten:
            generation += 1
            position = 0
        self.generation = generation
        self.dedup_until = -1
        if generation > 0:
            # Offsets up to which older generations hold rows that may repeat.
            self.dedup_until = self.conn.execute(
                "SELECT max(byte_offset) FROM events WHERE file_id = ? AND generation < ?",
                (self.file_id, generation),
            ).fetchone()[0]
            if self.dedup_until is None:
                self.dedup_until = -1
        self.line_number = 1
        if position > 0:
            last = self.conn.execute(
                "SELECT line_number FROM events WHERE file_id = ? AND generation = ? "
                "ORDER BY byte_offset DESC LIMIT 1",
                (self.file_id, generation),
            ).fetchone()
            self.line_number = (last[0] if last else 0) + 1
        self.clear_flag = bool(tail_flag) and not rewritten
        self.reset_generation = rewritten
        self.last_committed = position
        self.tail_flag = 0 if self.clear_flag or rewritten else tail_flag
        self.committed = False
        self.partial = False

        size = st.st_size
        f.seek(position)
        batch = Batch(self)
        limit = min(WRITE_BYTES, batch_bytes())
        for offset, line in read_lines(f, position, size):
            length = len(line)
            if length >= HUGE_BYTES:
                # A huge line goes in a batch of its own, with as little memory in use as
                # can be: what came before is written and its memory released.
                if batch.rows:
                    self.commit(batch, offset, 0, final=False)
                    batch = Batch(self)
                release_memory(self.conn)
                line = Huge(line)  # the batch frees the bytes once they are written
            batch.add(offset, line, terminated=True)
            line = None
            if batch.nbytes >= limit or len(batch.rows) >= BATCH_LINES or length >= HUGE_BYTES:
                self.commit(batch, offset + length + 1, 0, final=False)
                batch = Batch(self)
        position = batch.end if batch.rows else self.last_committed
        tail_flag = 0 if batch.rows else self.tail_flag
        if position < size:
            stale = time.time() - st.st_mtime >= STALE_TAIL_SECONDS
            end = os.pread(self.fd, min(64, size - position), size - min(64, size - position))
            if stale or end.rstrip()[-1:] in (b"}", b"]"):  # else: surely incomplete
                tail = os.pread(self.fd, size - position, position)
                if stale or tail_is_complete(tail):
                    batch.add(position, tail, terminated=False)
                    position = size
                    tail_flag = 1
        if batch.rows or position != self.last_committed or self.partial:
            self.commit(batch, position, tail_flag)
        elif not self.committed and (
            self.file_id is None or self.clear_flag or self.reset_generation or self.stat_changed()
        ):
            self.commit(batch, position, tail_flag)

    def stat_changed(self) -> bool:
        row, st = self.row, self.stat
        return (
            row is None
            or row["deleted_at"] is not None
            or (row["size"], row["mtime"], row["inode"], row["device"])
            != (st.st_size, st.st_mtime, st.st_ino, st.st_dev)
        )

    def commit(self, batch: Batch, position: int, tail_flag: int, final: bool = True) -> None:
        """Queue the batch and the file's new state for the pass's next transaction."""
        conn = self.conn
        sync = self.sync
        head_len = min(HEAD_BYTES, position)
        head = os.pread(self.fd, head_len, 0) if head_len else b""

        def write():
            self.ensure_file_row()
            if batch.rows:
                batch.write(conn, self.file_id)
            values = dict(
                position=position,
                generation=self.generation,
                tail_unterminated=tail_flag,
                head_len=len(head),
                head_hash=head_hash(head) if head else None,
            )
            self.update_file_row(final, **values)
            if batch.rows:
                conn.execute(
                    "UPDATE sync_files SET lines = lines + ?, errors = errors + ? WHERE id = ?",
                    (batch.inserted, len(batch.errors), self.file_id),
                )
            events = batch.new_events
            touched = {self.session_id}
            if self.source.kind != "journal":
                touched |= derive.on_batch(conn, events)
            return touched, {self.agent_id if self.source.kind == "agent" else None}

        sync.next_id = batch.next_id
        sync.queue(batch.nbytes, write)
        if batch.longest >= HUGE_BYTES:
            batch.rows, batch.fts, batch.new_events = [], [], []  # written: free them now
            release_memory(conn)
        self.last_committed = position
        self.tail_flag = tail_flag
        self.committed = True
        self.partial = not final
        result = sync.result
        result.lines_added += batch.inserted
        result.errors += len(batch.errors)


def slim_tool_use_result(obj: dict) -> None:
    """Drop what the derivers never read from a big line's ``toolUseResult`` (a copy of
    the tool's output, often MBs) so it is freed now, not when the batch is written;
    they read its ``agentId`` only.  The line itself is archived whole."""
    spawned = obj.get("toolUseResult")
    if isinstance(spawned, dict):
        obj["toolUseResult"] = {"agentId": spawned["agentId"]} if "agentId" in spawned else {}


def tail_is_complete(tail: bytes) -> bool:
    """An unterminated last line that is already a whole JSON object or array."""
    if tail.rstrip()[-1:] not in (b"}", b"]"):
        return False
    try:
        orjson.loads(tail)
    except orjson.JSONDecodeError:
        return False
    return True


def read_lines(f, position: int, end: int) -> Iterator[tuple[int, bytes]]:
    """(offset, line) for every complete line between position and end, in chunks.

    A line of a chunk or more is not pieced together from chunks (that would hold it
    twice): once its end is found it is read again in one piece."""
    pieces: list[bytes] = []  # the start of an unfinished line, while it is short
    pending = 0  # bytes of the unfinished line read so far
    offset = position
    remaining = end - position
    fd = f.fileno()
    while remaining > 0:
        chunk = f.read(min(CHUNK_BYTES, remaining))
        if not chunk:
            break
        remaining -= len(chunk)
        start = 0
        while (j := chunk.find(b"\n", start)) >= 0:
            length = pending + j - start
            if length >= CHUNK_BYTES:
                yield offset, os.pread(fd, length, offset)
            elif pieces:
                pieces.append(chunk[start:j])
                yield offset, b"".join(pieces)
            else:
                yield offset, chunk[start:j]
            pieces, pending = [], 0
            offset += length + 1
            start = j + 1
        if start < len(chunk):
            pending += len(chunk) - start
            pieces = [*pieces, chunk[start:]] if pending < CHUNK_BYTES else []


class Huge:
    """A huge line's bytes, held by one reference (see HUGE_BYTES)."""

    __slots__ = ("data",)

    def __init__(self, data: bytes):
        self.data: bytes | None = data

    def take(self) -> bytes | None:
        data, self.data = self.data, None
        return data


_handing_over = threading.local()  # .huge: the Huge that huge_line() hands over next


def huge_line() -> bytes | None:
    """The SQL function huge_line(): the bytes of the line write_huge is inserting."""
    huge, _handing_over.huge = _handing_over.huge, None
    return huge.take()


def write_huge(conn: sqlite3.Connection, row: tuple) -> None:
    """Insert a huge line's events row (raw is row[-2], a Huge; row[-1]: valid UTF-8).

    Bound as a parameter, the line would be held three times at once (the bytes, SQLite's
    copy of the parameter, the record).  Returned by a function that lets go of it, it is
    held twice: SQLite's copy (made TEXT in place by the CAST) and the record."""
    _handing_over.huge = row[-2]
    conn.execute(INSERT_HUGE_EVENT, (*row[:-2], row[-1]))


class Batch:
    """Rows read from one file, written in one transaction."""

    def __init__(self, fs: FileSync):
        self.fs = fs
        self.rows: list[tuple] = []
        self.fts: list[tuple] = []
        self.fts_long: list[tuple] = []
        self.errors: list[tuple] = []
        self.moves: list[tuple] = []
        self.new_events: list[NewEvent] = []
        self.nbytes = 0
        self.longest = 0
        self.inserted = 0
        self.end = 0
        self.next_id = fs.sync.next_id

    def add(self, offset: int, line: bytes | Huge, terminated: bool) -> None:
        fs = self.fs
        huge = line if isinstance(line, Huge) else None
        if huge is not None:
            line = huge.data
        n = len(line)
        self.nbytes += n + terminated
        if n > self.longest:
            self.longest = n
        self.end = offset + n + terminated
        line_number = fs.line_number
        fs.line_number += 1
        if offset <= fs.dedup_until:
            for generation in range(fs.generation - 1, -1, -1):
                old = fs.conn.execute(
                    "SELECT id FROM events WHERE file_id = ? AND generation = ? "
                    "AND byte_offset = ? AND CAST(raw AS BLOB) = ?",
                    (fs.file_id, generation, offset, line),
                ).fetchone()
                if old is not None:
                    self.moves.append((fs.generation, line_number, old[0]))
                    self.rows.append(None)
                    return
        event_id = self.next_id
        self.next_id += 1
        self.inserted += 1
        utf8 = 1  # parsed lines are valid UTF-8 (orjson checks), blank ones are ASCII
        if not line or line.isspace():  # (line.strip() would copy the line)
            obj, cols = None, EMPTY_COLUMNS
        else:
            try:
                obj, cols = parse(line)
            except LineError as e:
                obj, cols = None, ERROR_COLUMNS
                utf8 = is_utf8(line)
                error = str(e).splitlines()[0] if str(e) else "unreadable line"
                if not terminated:
                    error = f"unterminated last line: {error}"
                self.errors.append((event_id, offset, line_number, error, excerpt(line)))
        if obj is not None:
            record_session = cols[SESSION_ID_INDEX]
            if fs.session_id and (
                record_session is None or record_session.startswith(f"{fs.session_id}#")
            ):
                # no sessionId, or a workflow agent's "<session>#agent-<id>": the file's
                cols = cols[:SESSION_ID_INDEX] + (fs.session_id,) + cols[SESSION_ID_INDEX + 1 :]
            elif fs.session_id is None and cols[SESSION_ID_INDEX] and fs.source.kind != "session":
                fs.session_id = cols[SESSION_ID_INDEX]  # flat agent files: the records say
            if cols[AGENT_ID_INDEX] is None and fs.agent_id and fs.source.kind == "agent":
                cols = cols[:AGENT_ID_INDEX] + (fs.agent_id,) + cols[AGENT_ID_INDEX + 1 :]
            if len(line) >= SLIM_BYTES:
                slim_tool_use_result(obj)
            self.new_events.append(NewEvent(event_id, fs.row_id, obj, cols, fs.sync.host))
        text = cols[-1]
        if text and len(text) > FTS_CHARS:
            self.fts_long.append((FTS_CHARS, event_id))  # cut by SQLite, not copied here
        elif text:
            self.fts.append((event_id, text, cols[KIND_INDEX]))
        if huge is not None:
            line = huge
        self.rows.append(
            (event_id, fs.row_id, fs.generation, offset, line_number, *cols, line, utf8)
        )

    def write(self, conn: sqlite3.Connection, file_id: int) -> None:
        rows = [r for r in self.rows if r is not None] if self.moves else self.rows
        huge = (
            [row for row in rows if isinstance(row[-2], Huge)] if self.longest >= HUGE_BYTES else []
        )
        if huge:
            rows = [row for row in rows if not isinstance(row[-2], Huge)]
            for row in huge:
                write_huge(conn, row)
        if rows:
            conn.executemany(INSERT_EVENT, rows)
        if self.fts:
            conn.executemany(INSERT_FTS, self.fts)
        if self.fts_long:
            conn.executemany(INSERT_FTS_PREFIX, self.fts_long)
        if self.moves:
            conn.executemany(
                "UPDATE events SET generation = ?, line_number = ? WHERE id = ?", self.moves
            )
        if self.errors:
            stamp = now_iso()
            conn.executemany(INSERT_ERROR, [(file_id, *e, stamp) for e in self.errors])
