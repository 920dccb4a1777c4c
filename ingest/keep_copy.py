"""Kept files out of the archive (export) and in from another archive (merge)."""

from __future__ import annotations

import os
import sqlite3

from .keep_blobs import blob_bytes
from .keep_history import write_history
from .keep_walk import printable
from .sources import os_name


def export_kept(
    conn: sqlite3.Connection,
    out: os.PathLike | str,
    session_id: str | None,
    taken: set[str],
    apart: bool = False,
) -> list[str]:
    """Write the kept files (every one, or one session's) under ``out`` at their rel_path,
    byte for byte: files of the session folders beside the transcripts, the Claude
    directory's files (history.jsonl, file-history/, plans/, todos/) at the top.
    ``taken``: relative paths export writes already (the transcripts).  ``apart``: the
    transcripts were written under <host>/<projects folder>/ (ingest.export) because
    several share a path; the kept files then are too (a Claude directory's under
    <host>/<its folder>/), as they are when two of them share a path.  A kept file that
    would still land on another file's path is an ExportError naming them."""
    from .archive import ExportError, root_folder, safe_name

    columns = "id, rel_path, area, hash, generation, tail_unterminated, host, root"
    if session_id is None:
        rows = conn.execute(
            f"SELECT {columns} FROM kept_files ORDER BY base DESC, rel_path"
        ).fetchall()
    else:
        rows = conn.execute(
            f"SELECT {columns} FROM kept_files WHERE session_id = ? AND area != 'history' "
            "ORDER BY rel_path",
            (session_id,),
        ).fetchall()
    plain = [os_name(row[1]) for row in rows]
    if not apart and (len(set(plain)) < len(plain) or taken.intersection(plain)):
        apart = True
    names = plain
    if apart:
        names = [
            f"{safe_name(row[6])}/{root_folder(os_name(row[7]))}/{rel_path}"
            for row, rel_path in zip(rows, plain, strict=True)
        ]
    seen: set[str] = set()
    clashes = []
    for name in names:
        if name in taken or name in seen:
            clashes.append(name)
        seen.add(name)
    if clashes:
        shown = ", ".join(printable(c) for c in clashes[:3])
        more = f" and {len(clashes) - 3} more" if len(clashes) > 3 else ""
        raise ExportError(
            f"Several archived files would be written to the same place: {shown}{more}; "
            "nothing was written."
        )
    rows = [(row[0], name, *row[2:6]) for row, name in zip(rows, names, strict=True)]
    out = os.path.abspath(out)
    written = []
    for file_id, rel_path, area, digest, generation, tail in rows:
        target = os.path.join(out, *rel_path.split("/"))
        if not os.path.realpath(target).startswith(os.path.realpath(out) + os.sep):
            raise ExportError(f"Refusing to write {printable(rel_path)} outside {printable(out)}.")
        if area == "history":
            os.makedirs(os.path.dirname(target), exist_ok=True)
            with open(target, "wb") as f:
                write_history(conn, file_id, generation, tail, f)
        else:
            data = blob_bytes(conn, digest) if digest else None
            if data is None:
                continue
            os.makedirs(os.path.dirname(target), exist_ok=True)
            with open(target, "wb") as f:
                f.write(data)
        written.append(target)
    return written


# -- merge ----------------------------------------------------------------------------------

KEPT_FILE_STATE = (
    "size",
    "mtime",
    "hash",
    "position",
    "generation",
    "head_hash",
    "tail_unterminated",
    "last_synced",
    "deleted_at",
)


def merge_kept(conn: sqlite3.Connection) -> int:
    """Copy the kept files of the archive attached as ``other`` (ingest.merge, inside its
    transaction): contents by hash, files matched by host and path (another machine's
    new ones stored under ``<host>:<path>``, as sync_files does), versions and history
    lines not present yet.  Returns how many kept files were added."""
    has = conn.execute(
        "SELECT 1 FROM other.sqlite_master WHERE type = 'table' AND name = 'kept_files'"
    ).fetchone()
    if not has:
        return 0
    conn.execute("INSERT OR IGNORE INTO kept_blobs SELECT * FROM other.kept_blobs")
    conn.execute("CREATE TEMP TABLE IF NOT EXISTS kept_map (other_id INTEGER PRIMARY KEY, id INT)")
    conn.execute("DELETE FROM temp.kept_map")
    conn.row_factory = sqlite3.Row
    try:
        rows = conn.execute("SELECT * FROM other.kept_files").fetchall()
    finally:
        conn.row_factory = None
    added = 0
    for row in rows:
        host, path = row["host"] or "unknown", row["path"]
        prefix = f"{host}:"
        if isinstance(path, bytes):
            foreign = path if path.startswith(prefix.encode()) else prefix.encode() + path
        else:
            foreign = path if path.startswith(prefix) else prefix + path
        found = conn.execute(
            "SELECT id, last_synced FROM kept_files WHERE host = ? AND path IN (?, ?)",
            (host, path, foreign),
        ).fetchone()
        if found:
            file_id = found[0]
            if (row["last_synced"] or "") > (found[1] or ""):
                sets = ", ".join(f"{c} = ?" for c in KEPT_FILE_STATE)
                conn.execute(
                    f"UPDATE kept_files SET {sets} WHERE id = ?",
                    (*(row[c] for c in KEPT_FILE_STATE), file_id),
                )
        else:
            names = [k for k in row.keys() if k != "id"]  # noqa: SIM118 (sqlite3.Row)
            values = [foreign if k == "path" else row[k] for k in names]
            values[names.index("host")] = host
            file_id = conn.execute(
                f"INSERT INTO kept_files ({', '.join(names)}) "
                f"VALUES ({', '.join('?' for _ in names)})",
                values,
            ).lastrowid
            added += 1
        conn.execute("INSERT INTO temp.kept_map VALUES (?, ?)", (row["id"], file_id))
    conn.execute(
        "INSERT INTO kept_versions (file_id, hash, size, mtime, seen_at) "
        "SELECT m.id, v.hash, v.size, v.mtime, v.seen_at FROM other.kept_versions v "
        "JOIN temp.kept_map m ON m.other_id = v.file_id WHERE NOT EXISTS ("
        "SELECT 1 FROM kept_versions k WHERE k.file_id = m.id AND k.hash = v.hash "
        "AND k.seen_at = v.seen_at) ORDER BY v.id"
    )
    last = conn.execute("SELECT coalesce(max(id), 0) FROM history").fetchone()[0]
    conn.execute(
        "INSERT OR IGNORE INTO history (file_id, generation, byte_offset, timestamp, project, "
        "session_id, display, raw) SELECT m.id, h.generation, h.byte_offset, h.timestamp, "
        "h.project, h.session_id, h.display, h.raw FROM other.history h "
        "JOIN temp.kept_map m ON m.other_id = h.file_id ORDER BY h.id"
    )
    conn.execute(
        "INSERT INTO history_fts (rowid, display) SELECT id, display FROM history "
        "WHERE id > ? AND display IS NOT NULL",
        (last,),
    )
    return added
