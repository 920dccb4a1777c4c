"""Opening the archive from the command line: one sentence for every file it cannot use.

Readers (status, export, cost) open it read-only (``mode=ro``: no WAL pragma, nothing
written), which also works on a read-only mount.  Writers (sync, watch, merge, reprice,
serve) check first that the file is a SQLite database in a writable place, so a wrong
--db never ends in a traceback nor leaves a stray lock file behind.
"""

from __future__ import annotations

import contextlib
import os
import re
import sqlite3
from pathlib import Path

import click

from .lines import register
from .lock import real_file

SQLITE_HEADER = b"SQLite format 3\x00"


class ExportError(Exception):
    """A request export cannot satisfy (one sentence)."""


def safe_name(text: str | None) -> str:
    """A single folder name for a host name or a path."""
    name = re.sub(r"[^A-Za-z0-9._-]+", "-", text or "unknown").strip("-.")
    return name or "unknown"


def root_folder(root: str) -> str:
    """The folder name for a projects root: its path, separators as dashes (a merged
    file's root has its machine's name before a colon, already in the host folder)."""
    return safe_name(
        root.split(":", 1)[-1] if ":" in root and not root.startswith(os.sep) else root
    )


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


def nobody_writes(db: Path) -> bool:
    """The file's mode gives nobody write permission (a sealed archive)."""
    try:
        return not os.stat(db).st_mode & 0o222
    except OSError:
        return False


def connect_readonly(db: str | os.PathLike) -> sqlite3.Connection:
    """A read-only connection that leaves nothing on disk that could block a writer.

    SQLite needs a -shm file to read a WAL database, and creates it with the database
    file's mode: reading a 0444 archive left a 0444 -shm behind, and the next writer
    (once the archive was writable again) failed with "attempt to write a readonly
    database".  So a file whose mode lets nobody write it, or that sits where this
    process cannot create a -shm, is opened as immutable (nothing created) when no -wal
    file holds recent changes: nobody can change it meanwhile.  Where a -wal file must be
    read, a -shm this open created is left writable by its owner.  Raises ReadOnlyWal
    when a -wal file exists but cannot be used, sqlite3.DatabaseError when the file is
    no database.  The path is %-escaped (sqlite_uri).
    """
    db = Path(db).absolute()
    wal = Path(f"{db}-wal")
    shm = Path(f"{db}-shm")
    wal_pending = wal.exists() and wal.stat().st_size > 0
    if not wal_pending and nobody_writes(db):
        return _immutable(db)
    shm_existed = shm.exists()
    conn = sqlite3.connect(sqlite_uri(db, "mode=ro"), uri=True, check_same_thread=False)
    try:
        conn.execute("SELECT count(*) FROM sqlite_master").fetchone()
        if not shm_existed:
            _owner_writable(shm)
        register(conn)
        return conn
    except sqlite3.OperationalError:
        conn.close()
        if not read_only_location(db):
            raise
    if wal_pending:
        readable = "cannot be read" if not os.access(wal, os.R_OK) else "cannot be used there"
        raise ReadOnlyWal(
            f"{db} is on a read-only location and its {wal.name} file (the latest changes) "
            f"{readable}; copy both files to a writable folder or ask for read access."
        )
    return _immutable(db)


def _immutable(db: Path) -> sqlite3.Connection:
    conn = sqlite3.connect(sqlite_uri(db, "immutable=1"), uri=True, check_same_thread=False)
    conn.execute("SELECT count(*) FROM sqlite_master").fetchone()
    register(conn)
    return conn


def _owner_writable(shm: Path) -> None:
    """Give a -shm file this process created its owner's write permission back."""
    try:
        st = shm.stat()
        if st.st_uid == os.geteuid() and not st.st_mode & 0o200:
            os.chmod(shm, (st.st_mode & 0o7777) | 0o200)
    except OSError:
        pass


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
    """Before a writer opens ``db``: a SQLite file (or none yet) in a writable place,
    with -wal and -shm files (when there are any) it can write."""
    check_file(db)
    if read_only_location(db):
        raise click.ClickException(
            f"{db} is on a read-only location; status, export and cost can read it, "
            "but sync, watch, merge and reprice need to write it."
        )
    for suffix in ("-wal", "-shm"):
        side = Path(f"{db}{suffix}")
        if side.exists() and not os.access(side, os.R_OK | os.W_OK):
            raise click.ClickException(
                f"{side} cannot be written (mode {side.stat().st_mode & 0o777:o}), so no "
                f"writer can use {db.name}; make it writable (chmod u+w), or delete it "
                "while no program has the archive open."
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


@contextlib.contextmanager
def database_errors(db: Path):
    """Turn SQLite failures on a wrong or damaged file, and file system errors (a
    read-only folder, a vanished disk), into one sentence."""
    try:
        yield
    except sqlite3.DatabaseError as e:
        raise click.ClickException(f"Cannot use {db} as the archive: {e}.") from None
    except OSError as e:
        filename = os.fsdecode(e.filename) if e.filename else None
        lock_names = (str(db), real_file(db))
        if filename and filename.endswith(".lock") and filename.startswith(lock_names):
            # The lock file lives next to the archive: the folder is what needs fixing.
            filename = str(db.parent)
            what = f"Cannot write in {filename}, the archive's folder: {e.strerror}"
        else:
            what = f"Cannot use {filename}: {e.strerror}" if filename else str(e)
        raise click.ClickException(f"{what}.") from None
