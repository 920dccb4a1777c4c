"""history.jsonl, kept line by line (see ingest/keep.py).

It is append-only: it is read from where the last pass stopped, one ``history`` row per
line (exact bytes in ``raw``) with its prompt in ``history_fts``.  A rewritten file
(shorter, or its first 4 KiB changed) starts a new generation.
"""

from __future__ import annotations

import os
import sqlite3
import time
from datetime import UTC, datetime
from typing import TYPE_CHECKING

import orjson

from .clock import now_iso
from .sources import HEAD_BYTES, head_hash

if TYPE_CHECKING:
    from .keep import Keeper
    from .keep_walk import Found

HISTORY_CHUNK = 4 << 20
# An unterminated last line older than this is kept as it is (its writer is long gone).
STALE_TAIL_SECONDS = 3600


class HistoryReader:
    """Reads history.jsonl's new lines into ``history`` (see the module docstring)."""

    def __init__(self, keeper: Keeper, item: Found, row, fd: int, st: os.stat_result):
        self.keeper = keeper
        self.conn = keeper.conn
        self.item = item
        self.row = row
        self.fd = fd
        self.st = st

    def run(self) -> None:
        keeper, conn, row, fd, st = self.keeper, self.conn, self.row, self.fd, self.st
        position = row["position"] if row else 0
        generation = row["generation"] if row else 0
        tail = row["tail_unterminated"] if row else 0
        rewritten = False
        if row is not None:
            head_len = min(HEAD_BYTES, position)
            if st.st_size < position:
                rewritten = True
            elif head_len and head_hash(os.pread(fd, head_len, 0)) != row["head_hash"]:
                rewritten = True
            elif tail and st.st_size > position:
                if os.pread(fd, 1, position) == b"\n":
                    position += 1
                    tail = 0
                else:
                    rewritten = True
        if rewritten:
            generation += 1
            position = 0
            tail = 0
        dedup_until = -1
        if generation > 0 and row is not None:
            found = conn.execute(
                "SELECT max(byte_offset) FROM history WHERE file_id = ? AND generation < ?",
                (row["id"], generation),
            ).fetchone()[0]
            dedup_until = -1 if found is None else found
        keeper.begin()
        file_id = row["id"] if row else keeper.insert_row(self.item, None, now_iso())
        size = st.st_size
        offset = position
        carry = b""
        while offset + len(carry) < size:
            start = offset + len(carry)
            chunk = os.pread(fd, min(HISTORY_CHUNK, size - start), start)
            if not chunk:
                break
            data = carry + chunk if carry else chunk
            end = data.rfind(b"\n")
            if end < 0:
                carry = data
                continue
            lines = data[:end].split(b"\n")
            carry = data[end + 1 :]
            rows = []
            for line in lines:
                rows.append((offset, line))
                offset += len(line) + 1
            self.write_lines(file_id, generation, rows, dedup_until)
            keeper.result.bytes_read += end + 1
            keeper.done(end + 1)
            keeper.begin()
        if carry and time.time() - st.st_mtime >= STALE_TAIL_SECONDS:
            # the writer is long gone: the unterminated last line is kept as it is
            self.write_lines(file_id, generation, [(offset, carry)], dedup_until)
            keeper.result.bytes_read += len(carry)
            offset += len(carry)
            tail = 1
        head = os.pread(fd, min(HEAD_BYTES, offset), 0) if offset else b""
        conn.execute(
            "UPDATE kept_files SET size = ?, mtime = ?, position = ?, generation = ?, "
            "head_hash = ?, tail_unterminated = ?, last_synced = ?, deleted_at = NULL "
            "WHERE id = ?",
            (
                size,
                st.st_mtime,
                offset,
                generation,
                head_hash(head) if head else None,
                tail,
                now_iso(),
                file_id,
            ),
        )
        keeper.result.files_read += 1

    def write_lines(
        self, file_id: int, generation: int, lines: list[tuple[int, bytes]], dedup_until: int
    ) -> None:
        conn = self.conn
        inserts = []
        moves = []
        for offset, line in lines:
            if offset <= dedup_until:
                old = conn.execute(
                    "SELECT id FROM history WHERE file_id = ? AND generation < ? "
                    "AND byte_offset = ? AND CAST(raw AS BLOB) = ?",
                    (file_id, generation, offset, line),
                ).fetchone()
                if old is not None:
                    moves.append((generation, old[0]))
                    continue
            inserts.append((file_id, generation, offset, *history_columns(line)))
        if moves:
            conn.executemany("UPDATE history SET generation = ? WHERE id = ?", moves)
        for values in inserts:
            rowid = conn.execute(
                "INSERT INTO history (file_id, generation, byte_offset, timestamp, project, "
                "session_id, display, raw) VALUES (?, ?, ?, ?, ?, ?, ?, "
                "CASE WHEN ? THEN CAST(? AS TEXT) ELSE ? END)",
                (*values[:-2], values[-1], values[-2], values[-2]),
            ).lastrowid
            if values[6]:
                conn.execute(
                    "INSERT INTO history_fts (rowid, display) VALUES (?, ?)", (rowid, values[6])
                )
        self.keeper.result.history_lines += len(inserts)


def history_columns(line: bytes) -> tuple:
    """(timestamp, project, session_id, display, raw, raw is UTF-8) of a history line; the
    parsed fields are None when the line is not the JSON object expected."""
    timestamp = project = session_id = display = None
    utf8 = True
    try:
        obj = orjson.loads(line)
    except orjson.JSONDecodeError:
        obj = None
        try:
            line.decode("utf-8")
        except UnicodeDecodeError:
            utf8 = False
    if isinstance(obj, dict):
        display = text_or_none(obj.get("display"))
        project = text_or_none(obj.get("project"))
        session_id = text_or_none(obj.get("sessionId"))
        ms = obj.get("timestamp")
        if isinstance(ms, int | float) and not isinstance(ms, bool):
            try:
                timestamp = (
                    datetime.fromtimestamp(ms / 1000, UTC)
                    .isoformat(timespec="milliseconds")
                    .replace("+00:00", "Z")
                )
            except (OverflowError, OSError, ValueError):
                timestamp = None
    return timestamp, project, session_id, display, line, utf8


def text_or_none(value) -> str | None:
    return value if isinstance(value, str) else None


def write_history(conn: sqlite3.Connection, file_id: int, generation: int, tail: int, f) -> None:
    previous = None
    for (raw,) in conn.execute(
        "SELECT raw FROM history WHERE file_id = ? AND generation = ? ORDER BY byte_offset",
        (file_id, generation),
    ):
        if previous is not None:
            f.write(previous)
            f.write(b"\n")
        previous = raw.encode("utf-8") if isinstance(raw, str) else bytes(raw)
    if previous is not None:
        f.write(previous)
        if not tail:
            f.write(b"\n")
