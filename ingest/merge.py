"""Merge another machine's archive into this one (``claude-sessions merge OTHER.db``).

What is copied: ``sync_files`` (matched by host and path), ``events`` (skipping lines
already present by file, generation and byte offset), ``events_fts``, ``file_contents``
and ``ingest_errors``, and the files kept beside the transcripts (``ingest.keep``:
contents by hash, files by host and path, their versions and history lines).  The derived tables (tool calls, subagents, sessions, projects,
api_calls) are then brought up to date from the new events only, by the same code the
sync engine runs, so merging is idempotent and an API call present in both archives is
counted once.

Paths of another machine may equal local ones, and ``sync_files.path`` is unique, so a
file that is new to this archive is stored under ``<host>:<path>``; the sync engine,
which only looks at absolute paths under its own roots, never mistakes it for a local
file.  A file whose host and path already exist here is the same file.
"""

from __future__ import annotations

import os
import sqlite3
from dataclasses import dataclass
from pathlib import Path

from . import derive, lines
from .archive import SQLITE_HEADER, read_only_location
from .batch import FTS_CHARS
from .db import open_db
from .keep_copy import merge_kept
from .lock import WriterLock
from .parse import STORED_COLUMNS, leaf_uuid

FILE_COLUMNS = (
    "path",
    "root",
    "rel_path",
    "project_dir",
    "kind",
    "session_id",
    "agent_id",
    "host",
    "device",
    "inode",
    "size",
    "position",
    "head_len",
    "head_hash",
    "generation",
    "tail_unterminated",
    "mtime",
    "first_seen",
    "last_synced",
    "deleted_at",
)
# (text is worked out from raw: ingest.lines.event_text)
EVENT_COPY = ("generation", "byte_offset", "line_number", *STORED_COLUMNS, "raw")


class MergeError(Exception):
    """A merge that cannot run; the message is one sentence for the user."""


@dataclass
class MergeResult:
    files_added: int = 0
    files_matched: int = 0
    events_added: int = 0
    errors_added: int = 0
    contents_added: int = 0
    sessions_touched: int = 0
    kept_added: int = 0  # files kept beside the transcripts (ingest.keep)


def check_other(db_path: Path, other: Path) -> None:
    """Raise MergeError unless ``other`` is another claude-sessions archive."""
    if not other.exists():
        raise MergeError(f"{other} does not exist.")
    if other.is_dir():
        raise MergeError(f"{other} is a directory, not an archive database.")
    if db_path.exists() and os.path.samefile(db_path, other):
        raise MergeError(f"{other} is the archive itself; give another machine's archive.")
    try:
        with open(other, "rb") as f:
            head = f.read(len(SQLITE_HEADER))
    except OSError as e:
        raise MergeError(f"Cannot read {other}: {e.strerror}.") from None
    if head != SQLITE_HEADER:
        raise MergeError(f"{other} is not a SQLite database.")
    if read_only_location(other):
        raise MergeError(
            f"{other} is on a read-only location, where SQLite cannot attach it; copy it "
            f'first (`sqlite3 {other} ".backup copy.db"`) and merge the copy.'
        )
    try:
        conn = sqlite3.connect(f"{other.resolve().as_uri()}?mode=ro", uri=True)
        try:
            tables = {r[0] for r in conn.execute("SELECT name FROM sqlite_master")}
        finally:
            conn.close()
    except sqlite3.DatabaseError as e:
        raise MergeError(f"Cannot read {other}: {e}.") from None
    if not {"sync_files", "events"} <= tables:
        raise MergeError(f"{other} is not a claude-sessions archive (no sync_files/events).")


def merge(db_path: str | os.PathLike, other: str | os.PathLike, *, wait=True) -> MergeResult:
    """Merge ``other`` into the archive at ``db_path`` as its only writer."""
    db_path, other = Path(db_path), Path(other)
    check_other(db_path, other)
    lock = WriterLock(db_path)
    lock.acquire(wait)
    try:
        conn = open_db(db_path)
        try:
            conn.execute("ATTACH DATABASE ? AS other", (str(other),))
            try:
                conn.execute("BEGIN IMMEDIATE")
                try:
                    result = _merge(conn)
                    conn.execute("COMMIT")
                except BaseException:
                    conn.execute("ROLLBACK")
                    raise
            finally:
                conn.execute("DETACH DATABASE other")
        finally:
            conn.close()
    finally:
        lock.release()
    return result


def foreign_path(host: str, path: str | bytes) -> str | bytes:
    """``<host>:<path>``, the key of another machine's file (a path that is not UTF-8
    is stored as its bytes: then the key is bytes too)."""
    prefix = f"{host}:"
    if isinstance(path, bytes):
        prefix = prefix.encode("utf-8", "surrogateescape")
    return path if path.startswith(prefix) else prefix + path


def _columns(conn, table: str, schema: str) -> set[str]:
    return {r[1] for r in conn.execute(f"PRAGMA {schema}.table_info({table})")}


def _merge(conn: sqlite3.Connection) -> MergeResult:
    result = MergeResult()
    conn.execute("PRAGMA defer_foreign_keys=ON")
    other_file_cols = _columns(conn, "sync_files", "other")
    cols = [c for c in FILE_COLUMNS if c in other_file_cols]
    conn.execute("CREATE TEMP TABLE IF NOT EXISTS file_map (other_id INTEGER PRIMARY KEY, id INT)")
    conn.execute("DELETE FROM temp.file_map")
    rows = conn.execute(f"SELECT id, {', '.join(cols)} FROM other.sync_files").fetchall()
    matched: list[tuple[int, int]] = []
    for other_id, *values in rows:
        row = dict(zip(cols, values, strict=True))
        host, path = row.get("host") or "unknown", row["path"]
        found = conn.execute(
            "SELECT id FROM sync_files WHERE host = ? AND path IN (?, ?)",
            (host, path, foreign_path(host, path)),
        ).fetchone()
        if found:
            file_id = found[0]
            result.files_matched += 1
            _refresh_file_row(conn, file_id, row)
            matched.append((other_id, file_id))
        else:
            row["host"] = host
            row["path"] = foreign_path(host, path)
            names = list(row)
            file_id = conn.execute(
                f"INSERT INTO sync_files ({', '.join(names)}) "
                f"VALUES ({', '.join('?' for _ in names)})",
                [row[n] for n in names],
            ).lastrowid
            result.files_added += 1
        conn.execute("INSERT INTO temp.file_map VALUES (?, ?)", (other_id, file_id))

    last_id = conn.execute("SELECT coalesce(max(id), 0) FROM events").fetchone()[0]
    for other_id, file_id in matched:
        _follow_moves(conn, other_id, file_id)
    ev_cols = [c for c in EVENT_COPY if c in _columns(conn, "events", "other")]
    names = ", ".join(ev_cols)
    conn.execute(
        f"INSERT OR IGNORE INTO events (file_id, {names}) "
        f"SELECT m.id, {', '.join('e.' + c for c in ev_cols)} FROM other.events e "
        "JOIN temp.file_map m ON m.other_id = e.file_id "
        # a line this archive already moved to a newer generation stays there only
        "WHERE NOT EXISTS (SELECT 1 FROM events x WHERE x.file_id = m.id "
        "AND x.generation > e.generation AND x.byte_offset = e.byte_offset "
        "AND raw_bytes(x.raw) = raw_bytes(e.raw)) ORDER BY e.id"
    )
    _packed_lines(conn, last_id)
    result.events_added = conn.execute(
        "SELECT count(*) FROM events WHERE id > ?", (last_id,)
    ).fetchone()[0]
    conn.execute(
        "INSERT INTO events_fts (rowid, text, kind) SELECT id, substr(text, 1, ?), kind "
        "FROM events WHERE id > ? AND text IS NOT NULL",
        (FTS_CHARS, last_id),
    )
    result.contents_added = conn.execute(
        "INSERT OR IGNORE INTO file_contents (file_id, sha1, content, read_at) "
        "SELECT m.id, c.sha1, c.content, c.read_at FROM other.file_contents c "
        "JOIN temp.file_map m ON m.other_id = c.file_id"
    ).rowcount
    result.errors_added = conn.execute(
        """
        INSERT INTO ingest_errors (file_id, event_id, byte_offset, line_number, error,
            excerpt, created_at)
        SELECT m.id,
            (SELECT t.id FROM events t JOIN other.events oe ON oe.id = x.event_id
             WHERE t.file_id = m.id AND t.generation = oe.generation
               AND t.byte_offset = oe.byte_offset),
            x.byte_offset, x.line_number, x.error, x.excerpt, x.created_at
        FROM other.ingest_errors x JOIN temp.file_map m ON m.other_id = x.file_id
        WHERE NOT EXISTS (
            SELECT 1 FROM ingest_errors y WHERE y.file_id = m.id
              AND y.byte_offset IS x.byte_offset AND y.error = x.error)
        """
    ).rowcount
    conn.execute(
        """
        UPDATE sync_files SET
            lines = (SELECT count(*) FROM events e WHERE e.file_id = sync_files.id),
            errors = (SELECT count(*) FROM ingest_errors x WHERE x.file_id = sync_files.id)
        WHERE id IN (SELECT id FROM temp.file_map)
        """
    )
    result.kept_added = merge_kept(conn)
    result.sessions_touched = _derive_new(conn, last_id)
    return result


STATE_COLUMNS = (
    "size",
    "position",
    "generation",
    "head_len",
    "head_hash",
    "tail_unterminated",
    "mtime",
    "device",
    "inode",
    "last_synced",
    "deleted_at",
)


def _packed_lines(conn, last_id: int) -> None:
    """The lines just copied, as this archive stores them (ingest.lines): the other
    archive's dictionaries come along; lines it stored as they were (an archive from
    before m703) are compressed; summaries get their leaf_uuid when it had none."""
    if "raw_dictionaries" in _tables(conn, "other"):
        conn.execute(
            "INSERT OR IGNORE INTO raw_dictionaries (id, data, created_at) "
            "SELECT id, data, created_at FROM other.raw_dictionaries"
        )
    lines.repack(conn, lines.Packer(conn), last_id)
    if "leaf_uuid" not in _columns(conn, "events", "other"):
        rows = conn.execute(
            "SELECT id, raw FROM events WHERE id > ? AND type = 'summary'", (last_id,)
        ).fetchall()
        conn.executemany(
            "UPDATE events SET leaf_uuid = ? WHERE id = ?",
            [(leaf_uuid(lines.line_bytes(raw, conn)), event_id) for event_id, raw in rows],
        )


def _tables(conn, schema: str) -> set[str]:
    return {r[0] for r in conn.execute(f"SELECT name FROM {schema}.sqlite_master")}


def _refresh_file_row(conn, file_id: int, row: dict) -> None:
    """Take the other archive's bookkeeping for a file when it got further: a newer
    generation, or more of the same one (a foreign file, or this machine's own file in
    a copy of this archive that was synced after the copy was made)."""
    generation, position = row.get("generation", 0), row.get("position", 0)
    state = [c for c in STATE_COLUMNS if c in row]
    conn.execute(
        f"UPDATE sync_files SET {', '.join(f'{c} = ?' for c in state)} "
        "WHERE id = ? AND (generation < ? OR (generation = ? AND position < ?))",
        (*(row[c] for c in state), file_id, generation, generation, position),
    )


def _follow_moves(conn, other_id: int, file_id: int) -> None:
    """Lines the other archive moved to a newer generation than this one's rows of them
    (the same bytes at the same offset, read again after a truncation): move them here
    too, so they are not inserted a second time."""
    moves = conn.execute(
        "SELECT o.generation, o.line_number, (SELECT x.id FROM events x WHERE x.file_id = ?1 "
        "AND x.byte_offset = o.byte_offset AND x.generation < o.generation "
        "AND raw_bytes(x.raw) = raw_bytes(o.raw) ORDER BY x.generation DESC LIMIT 1) "
        "AS moved FROM other.events o WHERE o.file_id = ?2 AND o.generation > 0 "
        "AND moved IS NOT NULL AND NOT EXISTS (SELECT 1 FROM events y WHERE y.file_id = ?1 "
        "AND y.generation = o.generation AND y.byte_offset = o.byte_offset)",
        (file_id, other_id),
    ).fetchall()
    if moves:
        conn.executemany("UPDATE events SET generation = ?, line_number = ? WHERE id = ?", moves)


def _derive_new(conn: sqlite3.Connection, last_id: int) -> int:
    """Run the sync engine's derivers over the events added since ``last_id``."""
    touched, agents = derive.replay(conn, last_id)
    if agents:
        touched |= derive.refresh_subagents(conn, agents)
    touched.discard(None)
    derive.refresh_sessions(conn, touched)
    ids = list(touched)
    return sum(  # sessions rows that exist: not every id named by a line makes one
        conn.execute(
            f"SELECT count(*) FROM sessions WHERE session_id IN ({', '.join('?' * len(part))})",
            part,
        ).fetchone()[0]
        for part in (ids[i : i + 500] for i in range(0, len(ids), 500))
    )
