"""Write archived transcripts back out as a projects tree, byte for byte.

A JSONL file is the ``raw`` of its current-generation rows in byte_offset order, each
followed by a newline except the last row of a file whose last line had none
(``sync_files.tail_unterminated``).  A meta.json file is its newest stored content.
"""

from __future__ import annotations

import os
import sqlite3
from pathlib import Path

from . import schema


class ExportError(Exception):
    """A request export cannot satisfy (one sentence)."""


def export_files(
    db_path: str | os.PathLike, out_dir: str | os.PathLike, session_id: str | None = None
) -> list[Path]:
    """Write every archived file (or one session's files) under out_dir at its rel_path.

    A session's files are its main transcript, its subagent transcripts and their
    meta.json files, and workflow journals.  Returns the paths written.
    """
    conn = schema.connect(str(db_path))
    try:
        if session_id is None:
            files = conn.execute(
                "SELECT id, rel_path, kind, generation, tail_unterminated FROM sync_files "
                "ORDER BY rel_path"
            ).fetchall()
        else:
            files = conn.execute(
                "SELECT id, rel_path, kind, generation, tail_unterminated FROM sync_files "
                "WHERE session_id = ? ORDER BY rel_path",
                (session_id,),
            ).fetchall()
            if not files:
                raise ExportError(f"No archived files belong to session {session_id}.")
        out = Path(out_dir)
        written = []
        for file_id, rel_path, kind, generation, tail_unterminated in files:
            target = out.joinpath(*rel_path.split("/"))
            if not target.resolve().is_relative_to(out.resolve()):
                raise ExportError(f"Refusing to write {rel_path} outside {out}.")
            target.parent.mkdir(parents=True, exist_ok=True)
            with open(target, "wb") as f:
                if kind == "meta":
                    write_meta(conn, file_id, f)
                else:
                    write_lines(conn, file_id, generation, tail_unterminated, f)
            written.append(target)
        return written
    finally:
        conn.close()


def write_meta(conn: sqlite3.Connection, file_id: int, f) -> None:
    row = conn.execute(
        "SELECT content FROM file_contents WHERE file_id = ? ORDER BY id DESC LIMIT 1",
        (file_id,),
    ).fetchone()
    if row is not None:
        f.write(as_bytes(row[0]))


def write_lines(conn: sqlite3.Connection, file_id: int, generation: int, tail: int, f) -> None:
    rows = conn.execute(
        "SELECT raw FROM events WHERE file_id = ? AND generation = ? ORDER BY byte_offset",
        (file_id, generation),
    )
    previous = None
    for (raw,) in rows:
        if previous is not None:
            f.write(previous)
            f.write(b"\n")
        previous = as_bytes(raw)
    if previous is not None:
        f.write(previous)
        if not tail:
            f.write(b"\n")


def as_bytes(value) -> bytes:
    if isinstance(value, str):
        return value.encode("utf-8")
    return bytes(value) if value is not None else b""
