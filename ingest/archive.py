"""Opening the archive from the command line: one sentence for every file it cannot use.

Readers (status, export, cost) open it read-only (``mode=ro``: no WAL pragma, nothing
written), which also works on a read-only mount.  Writers (sync, watch, merge, reprice,
serve) check first that the file is a SQLite database in a writable place, so a wrong
--db never ends in a traceback nor leaves a stray lock file behind.
"""

from __future__ import annotations

import os
import sqlite3
from pathlib import Path

import click

SQLITE_HEADER = b"SQLite format 3\x00"


class ReadOnlyWal(Exception):
    """The archive sits on a read-only location next to a -wal file SQLite cannot use."""


def read_only_location(db: Path) -> bool:
    """True when the archive or its folder cannot be written (read-only mount, modes)."""
    folder = db.parent if str(db.parent) else Path(".")
    if db.exists() and not os.access(db, os.W_OK):
        return True
    return not os.access(folder, os.W_OK | os.X_OK)


def sqlite_uri(db: str | os.PathLike, query: str = "") -> str:
    """A ``file:`` URI for db, its path %-escaped: a path with ``#``, ``?`` or ``%`` in it
    would otherwise be cut short (SQLite reads them as URI syntax) and open another file.
    ``query``: e.g. ``"mode=ro"``."""
    uri = Path(db).absolute().as_uri()
    return f"{uri}?{query}" if query else uri


def connect_readonly(db: str | os.PathLike) -> sqlite3.Connection:
    """A read-only connection that changes nothing on disk.

    SQLite needs to create the -shm file to read a WAL database; where it cannot (a
    read-only folder) and no -wal file holds recent changes, the file is complete and
    nobody can write it, so it is opened as immutable.  Raises ReadOnlyWal when a -wal
    file exists there, sqlite3.DatabaseError when the file is no database.
    """
    db = Path(db).absolute()
    conn = sqlite3.connect(sqlite_uri(db, "mode=ro"), uri=True, check_same_thread=False)
    try:
        conn.execute("SELECT count(*) FROM sqlite_master").fetchone()
        return conn
    except sqlite3.OperationalError:
        conn.close()
        if not read_only_location(db):
            raise
    wal = Path(f"{db}-wal")
    if wal.exists():
        readable = "cannot be read" if not os.access(wal, os.R_OK) else "cannot be used there"
        raise ReadOnlyWal(
            f"{db} is on a read-only location and its {wal.name} file (the latest changes) "
            f"{readable}; copy both files to a writable folder or ask for read access."
        )
    conn = sqlite3.connect(sqlite_uri(db, "immutable=1"), uri=True, check_same_thread=False)
    conn.execute("SELECT count(*) FROM sqlite_master").fetchone()
    return conn


def check_file(db: Path, option: str = "--db") -> None:
    """Raise a ClickException unless ``db`` is missing, empty or a SQLite database."""
    if db.is_dir():
        raise click.ClickException(f"{option} {db} is a directory; give a file path.")
    if not db.exists():
        return
    try:
        with open(db, "rb") as f:
            head = f.read(len(SQLITE_HEADER))
    except OSError as e:
        raise click.ClickException(f"Cannot read {db}: {e.strerror}.") from None
    if head and head != SQLITE_HEADER:
        raise click.ClickException(f"{db} is not a SQLite database.")


def check_writable(db: Path) -> None:
    """Before a writer opens ``db``: a SQLite file (or none yet) in a writable place."""
    check_file(db)
    if read_only_location(db):
        raise click.ClickException(
            f"{db} is on a read-only location; status, export and cost can read it, "
            "but sync, watch, merge and reprice need to write it."
        )


def open_read(db: Path, *, table: str = "sync_files") -> sqlite3.Connection:
    """Open an existing archive for reading, or raise a ClickException (one sentence).

    ``table``: a table the command needs (api_calls comes with a later schema version).
    """
    if not db.exists() and not db.is_symlink():
        raise click.ClickException(
            f"No archive at {db} yet: run `claude-sessions sync` first (or give --db)."
        )
    check_file(db)
    try:
        conn = connect_readonly(db)
    except ReadOnlyWal as e:
        raise click.ClickException(str(e)) from None
    except sqlite3.DatabaseError as e:
        raise click.ClickException(f"Cannot read {db}: {e}.") from None
    try:
        names = {r[0] for r in conn.execute("SELECT name FROM sqlite_master")}
    except sqlite3.DatabaseError as e:
        conn.close()
        raise click.ClickException(f"Cannot read {db}: {e}.") from None
    if "sync_files" not in names:
        conn.close()
        raise click.ClickException(f"{db} is not a claude-sessions archive (no sync_files table).")
    if table not in names:
        conn.close()
        raise click.ClickException(
            f"{db} has no {table} table; run `claude-sessions sync --db {db}` "
            "to bring it up to date."
        )
    return conn
