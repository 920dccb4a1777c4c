"""`claude-sessions statusline`: one line for Claude Code's status bar, from the archive.

Claude Code runs the status-line command after each message with a JSON object on
stdin (``session_id``, ``transcript_path``, ``model``, ``workspace``, ``cwd``, ...) and
shows the first line it prints.  This command

1. archives the session's new lines first: an incremental pass over that one file
   (skipped when the file has not changed since the archive last read it, or when
   another pass is writing: the sidecar is then archiving it anyway);
2. prints the session's cost, today's cost (local date), the running 5-hour block's
   cost, its time left and its burn rate, and the context the session's last call sent
   (tokens, and their share of a 200k window): the line `ccusage statusline` prints.

It runs on every message, so it starts fast: ``claude-sessions statusline`` is
recognised before click and the rest of the command line are imported
(``ingest.entry``), and the sync engine is imported only when the file has new bytes.
"""

from __future__ import annotations

import os
import sqlite3
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

from .clock import parse_ts

# The context window the percentage is of (ccusage uses the same 200k).
CONTEXT_WINDOW = 200_000


class StatuslineError(Exception):
    """Bad input: one sentence for the user."""


def parse_input(data: bytes | str) -> dict:
    import json

    try:
        info = json.loads(data) if data and data.strip() else None
    except ValueError:
        info = None
    if not isinstance(info, dict):
        raise StatuslineError(
            "statusline reads the JSON object Claude Code writes on stdin; got "
            + ("nothing." if not data or not data.strip() else "something else.")
        )
    return info


def _connect(db: Path) -> sqlite3.Connection | None:
    """The one read-only connection the command reads the archive with (None: none yet)."""
    try:
        return sqlite3.connect(f"file:{db}?mode=ro", uri=True)
    except sqlite3.Error:
        return None


def _stored_state(conn: sqlite3.Connection | None, path: str):
    """(size, mtime, inode) the archive last saw for ``path``, or None."""
    if conn is None:
        return None
    try:
        # (fetchall: the statement runs to its end, so no read transaction stays open and
        # the figures read after the pass see what it wrote)
        rows = conn.execute(
            "SELECT size, mtime, inode FROM sync_files WHERE path = ?", (path,)
        ).fetchall()
    except sqlite3.Error:
        return None
    return rows[0] if rows else None


def archive_transcript(
    db: Path, transcript: str, roots: list[Path], conn: sqlite3.Connection | None = None
) -> str:
    """Archive the transcript's new lines; returns what happened (``unchanged``,
    ``synced``, ``busy``, ``missing``).  ``conn``: a read-only connection to ``db``
    (None when there is no archive yet)."""
    path = Path(transcript).expanduser().absolute()
    try:
        st = path.stat()
    except OSError:
        return "missing"
    stored = _stored_state(conn, str(path))
    if stored is not None and tuple(stored) == (st.st_size, st.st_mtime, st.st_ino):
        return "unchanged"
    root = next((r for r in roots if path.is_relative_to(r)), None)
    if root is None:
        root = path.parent.parent  # <projects>/<project folder>/<session>.jsonl
    from .lock import LockBusy
    from .sync import run_pass

    db.parent.mkdir(parents=True, exist_ok=True)
    try:
        run_pass(db, [root], trigger="statusline", wait=0, paths=[path])
    except LockBusy:
        return "busy"
    return "synced"


def local_midnight_utc(now: datetime, tz=None) -> str:
    """Today's local midnight as a UTC timestamp prefix (``tz`` None: this machine's),
    by the one rule for days (ingest/localdays.py)."""
    from .localdays import SYSTEM, local_date, midnight_utc

    zone = tz or SYSTEM
    return midnight_utc(local_date(now, zone), zone)


def figures(conn: sqlite3.Connection, session_id: str | None, now: datetime, tz=None) -> dict:
    """Session cost, today's cost and the running 5-hour block (None when none runs)."""
    from .blocks import current_block

    session = None
    if session_id:
        session = conn.execute(
            "SELECT sum(cost_usd), count(*) FROM api_calls WHERE session_id = ?", (session_id,)
        ).fetchone()
    today = conn.execute(
        "SELECT sum(cost_usd), count(*) FROM api_calls WHERE timestamp >= ?",
        (local_midnight_utc(now, tz),),
    ).fetchone()
    context = None
    if session_id:
        # The context the session's last main-thread call sent (what ccusage shows).
        context = conn.execute(
            "SELECT input_tokens + cache_creation_5m_tokens + cache_creation_1h_tokens "
            "+ cache_read_tokens FROM api_calls WHERE session_id = ? AND is_sidechain = 0 "
            "ORDER BY timestamp DESC LIMIT 1",
            (session_id,),
        ).fetchone()
    return {
        "context_tokens": context[0] if context else None,
        "session_cost": session[0] if session else None,
        "session_calls": session[1] if session else 0,
        "today_cost": today[0],
        "today_calls": today[1],
        "block": current_block(conn, now),
    }


def money(value) -> str:
    return "n/a" if value is None else f"${value:,.2f}"


def left(delta: timedelta) -> str:
    minutes = max(int(delta.total_seconds() // 60), 0)
    return f"{minutes // 60}h {minutes % 60}m left"


def line(info: dict, fig: dict, now: datetime) -> str:
    model = info.get("model")
    name = None
    if isinstance(model, dict):
        name = model.get("display_name") or model.get("id")
    elif isinstance(model, str):
        name = model
    parts = []
    if name:
        parts.append(f"🤖 {name}")
    costs = [
        f"{money(fig['session_cost']) if fig['session_calls'] else '$0.00'} session",
        f"{money(fig['today_cost']) if fig['today_calls'] else '$0.00'} today",
    ]
    block = fig["block"]
    if block is not None:
        costs.append(
            f"{money(block['cost_usd'])} block ({left(parse_ts(block['block_end']) - now)})"
        )
    else:
        costs.append("no active block")
    parts.append("💰 " + " / ".join(costs))
    if block is not None and block.get("cost_per_hour") is not None:
        parts.append(f"🔥 {money(block['cost_per_hour'])}/hr")
    if fig.get("context_tokens"):
        tokens = fig["context_tokens"]
        parts.append(f"🧠 {tokens:,} ({round(tokens * 100 / CONTEXT_WINDOW)}%)")
    return " | ".join(parts)


def run(
    data: bytes | str,
    db: Path,
    roots: list[Path],
    *,
    sync: bool = True,
    now: datetime | None = None,
) -> str:
    """The status line for Claude Code's JSON ``data``."""
    info = parse_input(data)
    transcript = info.get("transcript_path")
    # One connection, opened before the pass (which writes through its own): it sees
    # what the pass commits, since it holds no transaction in between.
    conn = _connect(db) if db.exists() else None
    try:
        if sync and isinstance(transcript, str) and transcript:
            archive_transcript(db, transcript, roots, conn)
        now = now or datetime.now(UTC)
        if conn is None:
            if not db.exists():
                raise StatuslineError(f"No archive at {db} yet; run `claude-sessions sync` once.")
            conn = _connect(db)
            if conn is None:
                raise StatuslineError(f"Cannot open the archive {db}.")
        session_id = info.get("session_id")
        fig = figures(conn, session_id if isinstance(session_id, str) else None, now)
    except sqlite3.Error as e:
        raise StatuslineError(f"Cannot read the archive {db}: {e}.") from None
    finally:
        if conn is not None:
            conn.close()
    return line(info, fig, now)


def default_db() -> Path:
    env = os.environ.get("CLAUDE_SESSIONS_DB")
    if env:
        return Path(env).expanduser()
    from .paths import default_db_path

    return default_db_path()


def fast_main(argv: list[str]) -> int | None:
    """``claude-sessions statusline ARGS`` without click; None when ARGS need click
    (``--help``, anything unknown), which then parses them itself."""
    db = claude_dir = None
    projects: list[Path] = []
    sync = True
    args = list(argv)
    while args:
        arg = args.pop(0)
        name, eq, value = arg.partition("=")
        if name in ("--db", "--projects", "--claude-dir"):
            if not eq:
                if not args:
                    return None
                value = args.pop(0)
            if name == "--db":
                db = Path(value).expanduser()
            elif name == "--claude-dir":
                claude_dir = Path(value).expanduser().absolute()
            else:
                projects.append(Path(value).expanduser().absolute())
        elif arg == "--no-sync":
            sync = False
        else:
            return None
    if not projects and claude_dir is not None:
        projects = [claude_dir / "projects"]
    return main(db, projects, sync)


def main(db: Path | None, projects: list[Path], sync: bool = True) -> int:
    if not projects:
        from .paths import default_projects_dirs

        projects = [p.absolute() for p in default_projects_dirs()]
    try:
        text = run(sys.stdin.buffer.read(), db or default_db(), projects, sync=sync)
    except StatuslineError as e:
        print(f"Error: {e}", file=sys.stderr)
        return 1
    sys.stdout.write(text + "\n")
    sys.stdout.flush()
    return 0
