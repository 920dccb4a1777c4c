"""Quarantine, not abort (issue 8): a line that cannot be stored as parsed never stops a
pass.

A batch's rows and derived rows are written as they are (``careful=False``): a SAVEPOINT
around every batch would journal every page it touches, a quarter more CPU for an
initial sync.  When a write fails because of one line (an integer of 2^63 or more bound
as a token count, a shape a deriver did not expect), NeedsCare goes up: the pass rolls
its open transaction back and goes on in careful mode (``careful=True``), where each
batch is written inside a SAVEPOINT and, when that fails, again line by line, each line
in a SAVEPOINT of its own: a line whose events row cannot be written as parsed is stored
as an error row (its bytes exact, kind ``error``), a line whose derived rows cannot be
written keeps its events row without them; each gets an ``ingest_errors`` row saying
why.  Every other line of the batch is written as usual.

Failures that are not about a line (the disk is full, the database is locked or damaged,
memory ran out) are not quarantined: they go up, so the pass fails and the next one does
the work again.
"""

from __future__ import annotations

import sqlite3

from . import derive
from .batch import (
    INSERT_ERROR,
    INSERT_EVENT,
    INSERT_FTS,
    INSERT_FTS_PREFIX,
    Batch,
    excerpt,
)
from .clock import now_iso
from .lines import line_bytes
from .parse import ERROR_COLUMNS, NewEvent

# Exceptions a line's content can cause while it is bound or derived.
LINE_FAULTS = (
    OverflowError,
    ValueError,
    TypeError,
    KeyError,
    IndexError,
    AttributeError,
    RecursionError,
    UnicodeError,
    sqlite3.IntegrityError,
    sqlite3.InterfaceError,
    sqlite3.ProgrammingError,
    sqlite3.DataError,
)


class NeedsCare(Exception):
    """A line could not be written as parsed: redo the transaction in careful mode."""


def is_line_fault(e: BaseException) -> bool:
    return isinstance(e, LINE_FAULTS) and not isinstance(e, sqlite3.OperationalError)


class _Savepoint:
    def __init__(self, conn: sqlite3.Connection, name: str):
        self.conn, self.name = conn, name

    def __enter__(self):
        self.conn.execute(f"SAVEPOINT {self.name}")
        return self

    def __exit__(self, kind, exc, tb):
        if exc is not None:
            self.conn.execute(f"ROLLBACK TO {self.name}")
        self.conn.execute(f"RELEASE {self.name}")
        return False


def write_rows(conn: sqlite3.Connection, batch: Batch, file_id: int, careful: bool = False) -> None:
    """batch.write, or line by line when one of its lines cannot be written as parsed."""
    if not careful:
        try:
            batch.write(conn, file_id)
        except Exception as e:
            if is_line_fault(e):
                raise NeedsCare(str(e)) from e
            raise
        return
    try:
        with _Savepoint(conn, "batch_rows"):
            batch.write(conn, file_id)
        return
    except Exception as e:
        if not is_line_fault(e):
            raise
    stamp = now_iso()
    rows = batch.packed_rows()
    errors = {e[0]: e for e in batch.errors}
    fts = {f[0]: f for f in batch.fts}
    fts_long = {f[1]: f for f in batch.fts_long}
    for row in rows:
        event_id = row[0]
        try:
            with _Savepoint(conn, "line_row"):
                _write_row(conn, row)
                if event_id in fts:
                    conn.execute(INSERT_FTS, fts[event_id])
                elif event_id in fts_long:
                    conn.execute(INSERT_FTS_PREFIX, fts_long[event_id])
                if event_id in errors:
                    conn.execute(INSERT_ERROR, (file_id, *errors[event_id], stamp))
        except Exception as e:
            if not is_line_fault(e):
                raise
            # the line's bytes as an error row: no columns that could not be stored
            raw = row[-1]
            stored = (*row[:5], *ERROR_COLUMNS[:-1], raw)  # (text: worked out from raw)
            with _Savepoint(conn, "line_row"):
                _write_row(conn, stored)
                data = line_bytes(raw, conn)
                conn.execute(
                    INSERT_ERROR,
                    (
                        file_id,
                        event_id,
                        row[3],
                        row[4],
                        f"cannot be stored as parsed: {type(e).__name__}: {e}",
                        excerpt(data) if data is not None else None,
                        stamp,
                    ),
                )
            batch.quarantined += 1
            batch.new_events = [ev for ev in batch.new_events if ev.event_id != event_id]
    if batch.moves:
        conn.executemany(
            "UPDATE events SET generation = ?, line_number = ? WHERE id = ?", batch.moves
        )


def _write_row(conn: sqlite3.Connection, row: tuple) -> None:
    conn.execute(INSERT_EVENT, row)


def derive_rows(
    conn: sqlite3.Connection,
    events: list[NewEvent],
    batch: Batch,
    file_id: int,
    careful: bool = False,
) -> set[str | None]:
    """derive.on_batch, or event by event when one of them cannot be derived: that event
    keeps its events row and gets an ingest_errors row instead of its derived rows."""
    if not careful:
        try:
            return derive.on_batch(conn, events)
        except Exception as e:
            if is_line_fault(e):
                raise NeedsCare(str(e)) from e
            raise
    try:
        with _Savepoint(conn, "batch_derive"):
            return derive.on_batch(conn, events)
    except Exception as e:
        if not is_line_fault(e):
            raise
    touched: set[str | None] = set()
    for ev in events:
        try:
            with _Savepoint(conn, "line_derive"):
                touched |= derive.on_batch(conn, [ev])
        except Exception as e:
            if not is_line_fault(e):
                raise
            _error_row(conn, file_id, ev.event_id, e)
            batch.quarantined += 1
    return touched


def _error_row(conn: sqlite3.Connection, file_id: int, event_id: int, e: BaseException) -> None:
    found = conn.execute(
        "SELECT byte_offset, line_number, raw FROM events WHERE id = ?",
        (event_id,),
    ).fetchone()
    offset, line_number, raw = found if found else (None, None, None)
    head = (line_bytes(raw, conn) or b"")[:800]
    conn.execute(
        INSERT_ERROR,
        (
            file_id,
            event_id,
            offset,
            line_number,
            f"stored without its derived rows: {type(e).__name__}: {e}"[:500],
            excerpt(bytes(head or b"")),
            now_iso(),
        ),
    )
