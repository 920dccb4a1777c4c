"""How the archive is opened: page size, WAL and the pragmas every connection uses.

Its tables, indexes, FTS and views are made by the migrations in ingest/migrations.py.
"""

from __future__ import annotations

import sqlite3

from . import lines

PAGE_SIZE = 16384


def connect(path: str, *, timeout: float = 30.0) -> sqlite3.Connection:
    """Open the archive with the pragmas every writer and reader here uses."""
    conn = sqlite3.connect(path, timeout=timeout, isolation_level=None, check_same_thread=False)
    if conn.execute("PRAGMA page_count").fetchone()[0] == 0:
        # A new archive: 16 KiB pages.  Rows average a few KB (a line plus its text), so
        # fewer of them spill into overflow pages, and a sync writes and checkpoints a
        # quarter as many pages (an initial sync of 100 MB: about 10% faster with 8 KiB
        # than with 4 KiB pages, and 3.6% faster again with 16 KiB; the web app's pages on
        # a 1 GB archive as fast as with 8 KiB or faster).
        conn.execute(f"PRAGMA page_size={PAGE_SIZE}")
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute("PRAGMA synchronous=NORMAL")
    conn.execute("PRAGMA foreign_keys=ON")
    conn.execute(f"PRAGMA busy_timeout={int(timeout * 1000)}")
    lines.register(conn)  # raw_bytes(raw), raw_json(raw), raw_length(raw)
    return conn
