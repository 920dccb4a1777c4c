"""The writer's connection to the archive: open it, retry when busy, checkpoint on a
thread of its own."""

from __future__ import annotations

import os
import sqlite3
import threading
import time
from collections.abc import Callable
from typing import TypeVar

from . import migrations, schema
from .clock import now_iso as now_iso  # re-exported: the row timestamps (clock.py)

T = TypeVar("T")
# While a pass checkpoints on a thread of its own (see Checkpointer), the WAL may grow to
# about this size plus one transaction before the writer waits for the checkpoint.
WAL_LIMIT = 256 << 20
CACHE_KB = 8000  # the writer's page cache (see _prepare)


_schema_ready: set[tuple[str, int, int, int]] = set()


def open_db(db_path: str | os.PathLike) -> sqlite3.Connection:
    """Connect with the writer's pragmas and make sure the schema is current."""
    conn = schema.connect(str(db_path))
    try:
        return _prepare(conn, db_path)
    except BaseException:
        # (a full disk, a read-only folder): close now, or the connection lives on in
        # the traceback and keeps the files it opened, and their space, held
        conn.close()
        raise


def _prepare(conn: sqlite3.Connection, db_path: str | os.PathLike) -> sqlite3.Connection:
    # The foreign keys are declared for Datasette (it links rows by them), not enforced
    # here: the engine writes the derived tables before the sessions rows they name and
    # checking each row cost an initial sync 15% of its time.  The tests check the
    # archive with PRAGMA foreign_key_check instead.
    conn.execute("PRAGMA foreign_keys=OFF")
    # 8 MB of page cache.  An initial sync's transactions dirty far more pages than the
    # cache holds, so SQLite spills them to the WAL and reads them back, and the indexes
    # keyed by random ids (events.uuid, tool_calls' and api_calls' keys) are touched all
    # over: with 4 MB an initial sync of the 100 MB small mix made 139,621 writes and
    # 148,500 reads of pages, with 8 MB 82,021 and 79,966 (1.2 s less system time), for
    # 3-4 MB more peak memory (docs/benchmarks.md).
    conn.execute(f"PRAGMA cache_size=-{CACHE_KB}")
    conn.execute("PRAGMA temp_store=MEMORY")
    # A big transaction grows the WAL; give the disk space back once it is checkpointed.
    conn.execute(f"PRAGMA journal_size_limit={64 << 20}")
    # Keyed by the file itself, not its name: an archive deleted or replaced since (the
    # watch sidecar goes on into the new file, maybe with the old inode number) gets its
    # schema checked again (a read of the migrations table, when nothing is pending).
    try:
        st = os.stat(db_path)
        key = (os.path.abspath(db_path), st.st_dev, st.st_ino, st.st_ctime_ns)
    except OSError:
        key = None
    if key is None or key not in _schema_ready:
        migrations.ensure_schema(conn)
        if key is not None:
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
