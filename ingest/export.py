"""Write archived transcripts back out as a projects tree, byte for byte.

A JSONL file is the ``raw`` of its current-generation rows in byte_offset order, each
followed by a newline except the last row of a file whose last line had none
(``sync_files.tail_unterminated``).  A meta.json file is its newest stored content.
The files kept beside the transcripts (ingest.keep: tool-results/ and the rest of the
session folders, and the Claude directory's history.jsonl, file-history/, plans/ and
todos/) are written too, at their place in the tree, their current content.

With ``replaced=True`` every older generation of a file (from before it was truncated or
replaced) is also written, next to it, as ``<rel_path>.generation-<N>``: that
generation's rows in byte_offset order, each followed by a newline.  A line that the
later version repeated at the same offset was moved to the later generation when it
was read, so it is written there only: an older generation holds the lines the
replacement lost or changed.
"""

from __future__ import annotations

import os
import sqlite3
from collections import Counter
from pathlib import Path

from .archive import ExportError, connect_readonly, root_folder, safe_name
from .keep_copy import export_kept
from .lines import line_bytes
from .sources import os_name

MIN_PREFIX = 6


def export_files(
    db_path: str | os.PathLike,
    out_dir: str | os.PathLike,
    session_id: str | None = None,
    *,
    replaced: bool = False,
    notes: list[str] | None = None,
) -> list[Path]:
    """Write every archived file (or one session's files) under out_dir at its rel_path.

    A session's files are its main transcript, its subagent transcripts and their
    meta.json files, and workflow journals.  ``session_id`` may be a unique prefix of at
    least MIN_PREFIX characters.  ``replaced``: also write older generations (see the
    module docstring).  Returns the paths written.  Opens the archive read-only.
    ``notes`` gets a sentence when files were kept apart by host and root.
    """
    conn = connect_readonly(db_path)
    try:
        if conn.execute("SELECT 1 FROM sqlite_master WHERE name = 'share_copy'").fetchone():
            raise ExportError(
                f"{db_path} is a share copy (claude-sessions share): its lines were redacted, "
                "so it cannot give back the transcripts byte for byte; export from the "
                "archive itself."
            )
        if session_id is not None:
            session_id = resolve_session(conn, session_id)
        columns = "id, rel_path, kind, generation, tail_unterminated, host, root"
        if session_id is None:
            files = conn.execute(f"SELECT {columns} FROM sync_files ORDER BY rel_path").fetchall()
        else:
            files = conn.execute(
                f"SELECT {columns} FROM sync_files WHERE session_id = ? ORDER BY rel_path",
                (session_id,),
            ).fetchall()
            if not files:
                raise ExportError(f"No archived files belong to session {session_id}.")
        out = Path(out_dir)
        # a name that is not UTF-8 is stored as its bytes: back to the same bytes on disk
        files = [(i, os_name(rel), *rest) for i, rel, *rest in files]
        names = [rel_path for _, rel_path, *_ in files]
        apart = len(set(names)) < len(names)
        if apart:
            names = [
                f"{safe_name(h)}/{root_folder(os_name(r))}/{rel}" for _, rel, *_, h, r in files
            ]
            twice = sorted(n for n, k in Counter(names).items() if k > 1)
            if twice:
                raise ExportError(
                    f"Several archived files would be written to {', '.join(twice[:3])}"
                    f"{', …' if len(twice) > 3 else ''}; nothing was written."
                )
            if notes is not None:
                shared = sorted(n for n, k in Counter(r for _, r, *_ in files).items() if k > 1)
                notes.append(
                    f"Files of several machines or projects folders share a path (e.g. "
                    f"{shared[0]}): every file is under <host>/<projects folder>/ to keep "
                    "them apart."
                )
        written = []
        if has_kept_files(conn):
            written += map(Path, export_kept(conn, out, session_id, set(names), apart))
        for (file_id, _, kind, generation, tail_unterminated, _, _), rel_path in zip(
            files, names, strict=True
        ):
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
            if replaced and kind != "meta":
                written += write_generations(conn, file_id, generation, target)
        return written
    finally:
        conn.close()


def has_kept_files(conn: sqlite3.Connection) -> bool:
    """Whether the archive has the kept_files table (an archive of an older version may
    not, and export opens it read-only: no migration runs)."""
    return bool(
        conn.execute(
            "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'kept_files'"
        ).fetchone()
    )


def resolve_session(conn: sqlite3.Connection, session_id: str) -> str:
    """The archived session id ``session_id`` names: itself, or the one it is a prefix of."""
    exact = conn.execute(
        "SELECT 1 FROM sync_files WHERE session_id = ? LIMIT 1", (session_id,)
    ).fetchone()
    if exact or len(session_id) < MIN_PREFIX:
        return session_id
    matches = [
        r[0]
        for r in conn.execute(
            "SELECT DISTINCT session_id FROM sync_files WHERE substr(session_id, 1, ?) = ? "
            "ORDER BY session_id LIMIT 3",
            (len(session_id), session_id),
        )
    ]
    if len(matches) > 1:
        raise ExportError(
            f"{session_id} is ambiguous: it starts several session ids ({', '.join(matches[:2])}"
            f"{', …' if len(matches) > 2 else ''}); give more characters."
        )
    return matches[0] if matches else session_id


def write_generations(
    conn: sqlite3.Connection, file_id: int, current: int, target: Path
) -> list[Path]:
    """Each older generation of a file as ``<target>.generation-<N>``."""
    written = []
    older = conn.execute(
        "SELECT DISTINCT generation FROM events WHERE file_id = ? AND generation < ? "
        "ORDER BY generation",
        (file_id, current),
    ).fetchall()
    for (generation,) in older:
        path = target.with_name(f"{target.name}.generation-{generation}")
        with open(path, "wb") as f:
            write_lines(conn, file_id, generation, False, f)
        written.append(path)
    return written


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
        previous = line_bytes(raw, conn) or b""
    if previous is not None:
        f.write(previous)
        if not tail:
            f.write(b"\n")


def as_bytes(value) -> bytes:
    if isinstance(value, str):
        return value.encode("utf-8")
    return bytes(value) if value is not None else b""
