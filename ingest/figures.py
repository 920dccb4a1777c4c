"""The figures ``claude-sessions status`` prints and the status page shows, counted once.

Both read the archive through these functions (plain sqlite3, no click, no Datasette),
so a figure means the same in the terminal, on the page and in their JSON: the
sidecar's liveness, the bytes not archived yet, the files and lines, the unreadable
paths, the kept files, the running 5-hour block (ingest.blocks), the retention warning.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import socket
import sqlite3
from pathlib import Path

from . import heartbeat
from .blocks import current_block
from .paths import default_projects_dirs
from .usage import unpriced_models

SOON_DAYS = 7
DEFAULT_CLEANUP_DAYS = 30


def rows(conn: sqlite3.Connection, sql: str, params=()) -> list[dict]:
    cursor = conn.execute(sql, params)
    names = [d[0] for d in cursor.description]
    return [dict(zip(names, row, strict=True)) for row in cursor]


def has_table(conn: sqlite3.Connection, name: str) -> bool:
    return bool(
        conn.execute(
            "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = ?", (name,)
        ).fetchone()
    )


def iso_z(moment: dt.datetime) -> str:
    """The timestamp spelling Claude Code uses, so string comparisons work."""
    return moment.astimezone(dt.UTC).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"


def sidecar(conn: sqlite3.Connection, now: dt.datetime | None = None) -> dict | None:
    """The watch sidecar as seen from its heartbeat row: alive only when the row was
    written on this machine by a live process into this very file (not a copy), see
    ingest/heartbeat.py.  None when no sidecar has ever run on this archive."""
    now = now or dt.datetime.now(dt.UTC)
    found = rows(conn, "select * from sync_heartbeat where id = 1")
    if not found:
        return None
    beat = found[0]
    verdict = heartbeat.judge(beat, heartbeat.database_file(conn), now)
    age = verdict["age_seconds"]
    return {
        "alive": verdict["alive"],
        "why": verdict["why"],
        "died": heartbeat.died(verdict["why"]),  # killed or crashed, not someone else's row
        "state": beat.get("state"),
        "age_seconds": round(age, 1) if age is not None else None,
        "pid": beat.get("pid"),
        "host": beat.get("host"),
        "same_host": beat.get("host") == socket.gethostname(),
        "started_at": beat.get("started_at"),
        "beat_at": beat.get("beat_at"),
        "projects": json.loads(beat["projects"]) if beat.get("projects") else None,
    }


def pending(
    conn: sqlite3.Connection, roots: list[Path] | None = None, limit: int | None = None
) -> dict:
    """Bytes written to the tracked transcripts and not archived yet (one stat each):
    ``bytes``, and ``complete`` (False when only the ``limit`` most recently synced files
    were looked at).  With ``roots`` (projects directories), the *.jsonl files under them
    no pass has read count too, and ``unseen_files`` says how many.

    Every host name counts (sync --host / serve --machine label local files too); files
    merged from another machine are stored as ``HOST:/path`` and simply fail to stat;
    deleted files and .meta.json files (read whole) are not pending."""
    sql = (
        "SELECT path, position FROM sync_files WHERE deleted_at IS NULL AND kind != 'meta' "
        "ORDER BY last_synced DESC"
    )
    files = conn.execute(sql + (" LIMIT ?" if limit else ""), (limit + 1,) if limit else ())
    files = files.fetchall()
    total = 0
    for path, position in files[:limit] if limit else files:
        try:
            size = os.stat(path).st_size
        except (OSError, TypeError, ValueError):
            continue
        total += max(size - position, 0)
    out = {"bytes": total, "complete": not limit or len(files) <= limit}
    if roots is not None:
        known = {p for (p,) in conn.execute("SELECT path FROM sync_files")}
        count, size = unseen(roots, known)
        out["bytes"] += size
        out["unseen_files"] = count
    return out


def unseen(roots: list[Path], known: set) -> tuple[int, int]:
    """Count and total size of the *.jsonl files under ``roots`` not in the archive yet."""
    count = size = 0
    for root in roots:
        for folder, _dirs, names in os.walk(root):
            for name in names:
                path = os.path.join(folder, name)
                if name.endswith(".jsonl") and path not in known:
                    try:
                        size += os.stat(path).st_size
                    except OSError:
                        continue
                    count += 1
    return count, size


def files(conn: sqlite3.Connection) -> dict:
    """Files tracked (and deleted at the source), lines archived, lines that could not be
    read (kept in ingest_errors), source bytes archived."""
    found = rows(
        conn,
        """
        SELECT count(*) AS files, coalesce(sum(deleted_at IS NOT NULL), 0) AS files_deleted,
          coalesce(sum(lines), 0) AS lines, coalesce(sum(size), 0) AS bytes_archived
        FROM sync_files
        """,
    )[0]
    found["errors"] = conn.execute("SELECT count(*) FROM ingest_errors").fetchone()[0]
    return found


def sessions(conn: sqlite3.Connection) -> int:
    return conn.execute("SELECT count(*) FROM sessions").fetchone()[0]


def unreadable(conn: sqlite3.Connection, limit: int | None = None) -> list[dict]:
    """Files and folders a pass could not read, newest first: path (text), reason,
    first_seen."""
    if not has_table(conn, "sync_unreadable"):
        return []
    found = rows(
        conn,
        "SELECT path, reason, first_seen FROM sync_unreadable ORDER BY first_seen DESC, path"
        + (" LIMIT ?" if limit else ""),
        (limit,) if limit else (),
    )
    for row in found:
        if isinstance(row["path"], bytes):
            row["path"] = row["path"].decode("utf-8", "replace")
    return found


def last_pass(conn: sqlite3.Connection) -> dict | None:
    found = rows(conn, "SELECT * FROM sync_runs ORDER BY id DESC LIMIT 1")
    return found[0] if found else None


def kept(conn: sqlite3.Connection) -> dict | None:
    """What ingest.keep holds: files beside the transcripts and history lines (None on an
    archive from before it)."""
    if not has_table(conn, "kept_files"):
        return None
    count, deleted = conn.execute(
        "SELECT count(*), count(deleted_at) FROM kept_files WHERE area != 'history'"
    ).fetchone()
    contents, size, stored = conn.execute(
        "SELECT count(*), coalesce(sum(size), 0), coalesce(sum(length(data)), 0) FROM kept_blobs"
    ).fetchone()
    history = conn.execute("SELECT count(*) FROM history").fetchone()[0]
    return {
        "files": count,
        "deleted_files": deleted,
        "contents": contents,
        "content_bytes": size,
        "stored_bytes": stored,
        "history_lines": history,
    }


def usage(conn: sqlite3.Connection, now: dt.datetime | None = None) -> dict:
    """JSON-ready usage figures: the running 5-hour block (ingest.blocks) and the models
    without a price (empty when the archive has no api_calls table yet).  The block's
    ``start``/``end`` are its block_start/block_end and ``tokens`` its total_tokens."""
    if not has_table(conn, "api_calls"):
        return {"current_block": None, "unpriced_models": []}
    block = current_block(conn, now)
    if block is not None:
        block = {
            "start": block["block_start"],
            "end": block["block_end"],
            "calls": block["calls"],
            "tokens": block["total_tokens"],
            "cost_usd": block["cost_usd"],
            "unpriced_calls": block["unpriced_calls"],
            "first_call": block["first_call"],
            "last_call": block["last_call"],
            "tokens_per_hour": block["tokens_per_hour"],
            "cost_per_hour": block["cost_per_hour"],
            "active": block["active"],
            "projected_cost_usd": block["projected_cost_usd"],
        }
    return {"current_block": block, "unpriced_models": unpriced_models(conn)}


def cleanup_period_days(path: Path) -> tuple[int, bool, str | None]:
    """Claude Code's cleanupPeriodDays, whether settings.json exists, and a problem
    sentence when it is unreadable."""
    try:
        settings = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return DEFAULT_CLEANUP_DAYS, False, None
    except (OSError, ValueError) as e:
        return DEFAULT_CLEANUP_DAYS, True, f"Could not read {path}: {e}"
    days = settings.get("cleanupPeriodDays") if isinstance(settings, dict) else None
    if days is None:
        return DEFAULT_CLEANUP_DAYS, True, None
    if not isinstance(days, int | float) or isinstance(days, bool) or days < 0:
        return DEFAULT_CLEANUP_DAYS, True, f"{path}: cleanupPeriodDays is not a number of days"
    return int(days), True, None


def _prefixes(roots: list[Path]) -> list[str]:
    """Path prefixes (with a trailing separator) of roots, as given and resolved."""
    found = []
    for root in roots:
        for form in (root.expanduser().absolute(), root.expanduser().resolve()):
            prefix = str(form).rstrip(os.sep) + os.sep
            if prefix not in found:
                found.append(prefix)
    return found


def retention(
    conn: sqlite3.Connection,
    now: dt.datetime,
    settings_file: Path,
    claude_roots: list[Path] | None = None,
) -> dict:
    """Sessions Claude Code's cleanup will delete.  Only files under Claude Code's own
    projects folders (``claude_roots``, default: $CLAUDE_CONFIG_DIR/projects or
    ~/.claude/projects) are ever deleted by it; other --projects folders are not."""
    days, found, problem = cleanup_period_days(settings_file)
    cutoff = now - dt.timedelta(days=days)
    soon = cutoff + dt.timedelta(days=SOON_DAYS)
    prefixes = _prefixes(default_projects_dirs() if claude_roots is None else claude_roots)
    under_claude = " or ".join(["substr(f.path, 1, ?) = ?"] * len(prefixes)) or "0"
    claude_params = [value for p in prefixes for value in (len(p), p)]
    archived_only, due, due_soon = conn.execute(
        f"""
        with claude_sessions as (
          select distinct f.session_id from sync_files f
          where f.deleted_at is null and f.session_id is not null and ({under_claude})
        )
        select
          coalesce(sum(sources_exist = 0), 0),
          coalesce(sum(sources_exist != 0 and c.session_id is not null
                       and last_timestamp < ?), 0),
          coalesce(sum(sources_exist != 0 and c.session_id is not null
                       and last_timestamp >= ? and last_timestamp < ?), 0)
        from sessions s left join claude_sessions c on c.session_id = s.session_id
        """,
        [*claude_params, iso_z(cutoff), iso_z(cutoff), iso_z(soon)],
    ).fetchone()
    return {
        "settings_path": str(settings_file),
        "settings_found": found,
        "cleanup_period_days": days,
        "cutoff": iso_z(cutoff),
        "problem": problem,
        "claude_projects": prefixes,
        "sessions_archived_only": archived_only,
        "sessions_past_cutoff": due,
        "sessions_due_within_week": due_soon,
    }


def database_bytes(db_path: str) -> int:
    """The archive's bytes on disk, its write-ahead log included."""
    total = 0
    for suffix in ("", "-wal"):
        try:
            total += os.stat(db_path + suffix).st_size
        except OSError:
            pass
    return total
