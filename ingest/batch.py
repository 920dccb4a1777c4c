"""Lines in, rows out: read a file's complete lines, parse them, and write them (events,
their FTS entries, error rows) in the pass's open transaction.

Each line is stored compressed (ingest.lines: ``raw`` is a zstd frame); a huge line
(HUGE_BYTES or more) is parsed from its skeleton, compressed, and its bytes let go of
before the batch is written, so memory stays near the line plus its frame.
"""

from __future__ import annotations

import os
import sqlite3
from collections.abc import Iterator
from typing import TYPE_CHECKING

from .clock import now_iso
from .lines import Packing, writing_rows
from .parse import (
    ERROR_COLUMNS,
    EVENT_COLUMNS,
    SESSION_ID_INDEX,
    STORED_COLUMNS,
    LineError,
    NewEvent,
    parse,
)

if TYPE_CHECKING:  # annotations only
    from .sync import FileSync

CHUNK_BYTES = 1 << 20
EXCERPT_CHARS = 200
AGENT_ID_INDEX = EVENT_COLUMNS.index("agent_id")
EMPTY_COLUMNS = (None,) * len(EVENT_COLUMNS)


def _insert_event() -> str:
    """INSERT INTO events: the id, file, generation, offset and line number, the
    EVENT_COLUMNS but text (worked out from raw when read: ingest.lines.event_text), and
    raw (the line compressed by ingest.lines)."""
    columns = ", ".join(STORED_COLUMNS)
    params = ", ".join("?" for _ in range(len(STORED_COLUMNS) + 6))
    return (
        f"INSERT INTO events (id, file_id, generation, byte_offset, line_number, {columns}, "
        f"raw) VALUES ({params})"
    )


INSERT_EVENT = _insert_event()
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
# Python holds one small batch of parsed records, never a whole transaction's (and its
# lines until the packing thread has compressed them).  256 KiB rather than 512: 1-1.5 MB
# less peak memory, for 0.1-0.2% more instructions (cachegrind, 10 MB syncs).
WRITE_BYTES = 256 << 10
# Lines at least this long keep only what the derivers read (see slim_tool_use_result).
SLIM_BYTES = 64 << 10
BATCH_LINES = 20_000
# A batch of fewer lines is compressed in the writer's thread (see Batch.start_packing).
PACK_ALONE_LINES = 8
# Only the first FTS_CHARS characters of an event's text are indexed for search (the
# whole text stays in events.text, and snippets are cut from it).  Indexing a text costs
# SQLite several times its size in memory until the transaction commits: without the cap
# one 5 MB line took some 18 MB, with it 9 MB.  Texts this long are tool outputs
# (file dumps, logs) whose first MB is what a search would find anyway.
FTS_CHARS = 1 << 20


def excerpt(line: bytes) -> str:
    text = line[: EXCERPT_CHARS * 4].decode("utf-8", "replace")
    return text[:EXCERPT_CHARS]


def slim_tool_use_result(obj: dict) -> None:
    """Drop what the derivers never read from a big line's ``toolUseResult`` (a copy of
    the tool's output, often MBs) so it is freed now, not when the batch is written;
    they read its ``agentId`` only.  The line itself is archived whole."""
    spawned = obj.get("toolUseResult")
    if isinstance(spawned, dict):
        obj["toolUseResult"] = {"agentId": spawned["agentId"]} if "agentId" in spawned else {}


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
    """A huge line's bytes, held by one reference (see HUGE_BYTES): the batch lets go of
    them as soon as the line is parsed and compressed."""

    __slots__ = ("data",)

    def __init__(self, data: bytes):
        self.data: bytes | None = data

    def take(self) -> bytes | None:
        data, self.data = self.data, None
        return data


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
        self.quarantined = 0  # lines stored without their derived rows (ingest.quarantine)
        self.end = 0
        self.next_id = fs.sync.next_id
        self.unpacked: list[bytes] = []  # lines not compressed yet (see start_packing)
        self.unpacked_rows: list[list] = []  # their rows, raw still None
        self.packing: Packing | None = None
        self.packed: list[list] | None = None  # the rows of the lines being packed

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
                    "AND byte_offset = ? AND raw_bytes(raw) = ?",
                    (fs.file_id, generation, offset, line),
                ).fetchone()
                if old is not None:
                    self.moves.append((fs.generation, line_number, old[0]))
                    self.rows.append(None)
                    return
        event_id = self.next_id
        self.next_id += 1
        self.inserted += 1
        if not line or line.isspace():  # (line.strip() would copy the line)
            obj, cols = None, EMPTY_COLUMNS
        else:
            try:
                obj, cols = parse(line)
            except LineError as e:
                obj, cols = None, ERROR_COLUMNS
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
        row = [event_id, fs.row_id, fs.generation, offset, line_number, *cols[:-1], None]
        self.rows.append(row)
        if huge is not None:
            row[-1] = fs.sync.packer.pack(line)  # now, and its bytes let go of
            huge.take()  # (the line's only other reference is the caller's, gone already)
        else:
            self.unpacked.append(line)
            self.unpacked_rows.append(row)

    def start_packing(self) -> None:
        """Compress the lines not compressed yet: on the packing thread
        (ingest.lines.Packing) while this one writes the search entries, or here and
        now when they are few (a pass that archives a line or two) or when no core is
        free for that thread (Pass.pack_on_thread)."""
        lines, rows = self.unpacked, self.unpacked_rows
        if not lines:
            return
        self.unpacked, self.unpacked_rows = [], []
        packer = self.fs.sync.packer
        if len(lines) < PACK_ALONE_LINES or not self.fs.sync.pack_on_thread:
            for line, row in zip(lines, rows, strict=True):
                row[-1] = packer.pack(line)
        else:
            self.packing = packer.start(lines)
            self.packed = rows

    def packed_rows(self) -> list[list]:
        """The rows to insert, each with its compressed line (waits for the packing
        thread)."""
        self.start_packing()
        if self.packing is not None:
            for row, frame in zip(self.packed, self.packing.frames(), strict=True):
                row[-1] = frame
            self.packing = self.packed = None
        return [r for r in self.rows if r is not None] if self.moves else self.rows

    def write(self, conn: sqlite3.Connection, file_id: int) -> None:
        self.start_packing()
        # The search entries first (external content: they do not read events), while
        # the packing thread compresses the lines the events rows hold.
        if self.fts:
            conn.executemany(INSERT_FTS, self.fts)
        rows = self.packed_rows()
        if rows:
            with writing_rows(conn):
                conn.executemany(INSERT_EVENT, rows)
        if self.fts_long:
            conn.executemany(INSERT_FTS_PREFIX, self.fts_long)
        if self.moves:
            conn.executemany(
                "UPDATE events SET generation = ?, line_number = ? WHERE id = ?", self.moves
            )
        if self.errors:
            stamp = now_iso()
            conn.executemany(INSERT_ERROR, [(file_id, *e, stamp) for e in self.errors])
