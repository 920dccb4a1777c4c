"""``claude-sessions verify``: compare every source still on disk with what the archive
holds of it, byte for byte, and run SQLite's quick_check.

Transcripts only grow: the bytes of a file up to its archived ``position`` must be the
``raw`` of its current generation's rows, in byte_offset order, each followed by a newline
(but an unterminated last line).  A difference there is a file rewritten in place (an
editor, a tool, a restored backup) that the file's size, time and first 4 KiB did not
show.  A meta.json file must equal its newest stored content.  Bytes past the position
are lines not archived yet, not a difference.

``repair`` makes the next pass read the differing files again from their start, as a new
generation (as for a truncated file): lines that are still the same at the same offset
move to it, the others stay in the older generation, nothing is deleted.
"""

from __future__ import annotations

import os
import sqlite3
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from .lines import line_bytes

READ_BYTES = 1 << 20


@dataclass
class Difference:
    path: str
    reason: str


@dataclass
class VerifyResult:
    files: int = 0  # sources compared
    bytes: int = 0  # bytes compared
    identical: int = 0
    gone: int = 0  # tracked, not deleted, but no longer on disk (the next sync marks them)
    elsewhere: int = 0  # files of other machines (merged): nothing to compare here
    unreadable: list[Difference] = field(default_factory=list)
    differences: list[Difference] = field(default_factory=list)
    quick_check: str = "ok"

    @property
    def ok(self) -> bool:
        return not self.differences and self.quick_check == "ok"


def verify(
    db_path: str | os.PathLike, progress: Callable[[int], None] | None = None
) -> VerifyResult:
    """Compare every archived source on disk with the archive (see the module docstring).
    ``progress(nbytes)`` is called as bytes are compared."""
    from .archive import connect_readonly  # (imports click: not when sync imports this)

    result = VerifyResult()
    conn = connect_readonly(db_path)
    try:
        try:
            found = [r[0] for r in conn.execute("PRAGMA quick_check(10)")]
        except sqlite3.DatabaseError as e:
            found = [str(e)]
        result.quick_check = "ok" if found == ["ok"] else "; ".join(found)
        files = conn.execute(
            "SELECT id, path, kind, position, generation, tail_unterminated FROM sync_files "
            "WHERE deleted_at IS NULL ORDER BY path"
        ).fetchall()
        for file_id, path, kind, position, generation, tail in files:
            path = os.fsdecode(path) if isinstance(path, bytes) else path
            if not path.startswith(os.sep):
                result.elsewhere += 1  # "<host>:<path>", merged from another machine
                continue
            try:
                f = open(path, "rb", buffering=0, opener=nonblocking)  # noqa: SIM115
            except FileNotFoundError:
                result.gone += 1
                continue
            except OSError as e:
                result.unreadable.append(Difference(path, e.strerror or str(e)))
                continue
            with f:
                if kind == "meta":
                    reason = compare_meta(conn, file_id, f)
                    size = position
                else:
                    reason = compare_lines(conn, file_id, generation, position, tail, f)
                    size = position
            result.files += 1
            result.bytes += size
            if progress is not None:
                progress(size)
            if reason is None:
                result.identical += 1
            else:
                result.differences.append(Difference(path, reason))
    finally:
        conn.close()
    return result


def nonblocking(path: str, flags: int) -> int:
    """Open without blocking (a FIFO named like a transcript) and only regular files."""
    fd = os.open(path, flags | os.O_NONBLOCK)
    if not os.path.stat.S_ISREG(os.fstat(fd).st_mode):
        os.close(fd)
        raise OSError(0, "not a regular file")
    return fd


def compare_meta(conn: sqlite3.Connection, file_id: int, f) -> str | None:
    row = conn.execute(
        "SELECT CAST(content AS BLOB) FROM file_contents WHERE file_id = ? "
        "ORDER BY id DESC LIMIT 1",
        (file_id,),
    ).fetchone()
    content = f.read()
    if row is None or bytes(row[0]) == content:
        return None
    return "differs from its archived content (the next sync stores the new version)"


def compare_lines(
    conn: sqlite3.Connection, file_id: int, generation: int, position: int, tail: int, f
) -> str | None:
    """None when the file's first ``position`` bytes are the archived lines, else why not."""
    size = os.fstat(f.fileno()).st_size
    if size < position:
        return f"is shorter than archived ({size:,} < {position:,} bytes): truncated"
    rows = conn.execute(
        "SELECT byte_offset, raw FROM events WHERE file_id = ? AND generation = ? "
        "ORDER BY byte_offset",
        (file_id, generation),
    )
    expected_offset = 0
    last_end = 0
    for offset, raw in rows:
        raw = line_bytes(raw, conn) or b""
        if offset != expected_offset:
            return f"the archive has no line at byte {expected_offset:,}"
        terminated = offset + len(raw) < position or not tail
        want = raw + b"\n" if terminated else raw
        got = os.pread(f.fileno(), len(want), offset)
        if got != want:
            at = next(
                (i for i, (a, b) in enumerate(zip(got, want, strict=False)) if a != b), len(got)
            )
            return f"bytes differ from the archive at byte {offset + at:,}"
        expected_offset = offset + len(want)
        last_end = expected_offset
    if last_end != position:
        return f"the archive ends at byte {last_end:,}, its position is {position:,}"
    return None


def mark_for_rereading(conn: sqlite3.Connection, paths: list[str]) -> None:
    """Make the next pass read these files again from the start as a new generation:
    their head fingerprint no longer matches (the rewrite the engine checks for) and
    their stored mtime is forgotten, so the pass does not skip them as unchanged."""
    conn.executemany(
        "UPDATE sync_files SET head_hash = 'verify: changed in place', mtime = NULL "
        "WHERE path = ? AND head_len > 0",
        [(p,) for p in paths],
    )
    conn.executemany(
        "UPDATE sync_files SET mtime = NULL WHERE path = ? AND kind = 'meta'",
        [(p,) for p in paths],
    )


def roots_of(conn: sqlite3.Connection, paths: list[str]) -> list[Path]:
    marks = ", ".join("?" for _ in paths)
    return [
        Path(r[0])
        for r in conn.execute(
            f"SELECT DISTINCT root FROM sync_files WHERE path IN ({marks})", paths
        ).fetchall()
    ]
