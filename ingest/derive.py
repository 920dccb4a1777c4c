"""Derived tables (tool_calls, subagents, sessions, projects), kept up to date from events.

The sync engine calls ``on_batch`` with the rows it just inserted and then
``refresh_sessions`` for the sessions they touched, in the batch's transaction.
Everything here can be rebuilt from ``events`` with ``rebuild_all``.

Rules:
- one tool_calls row per tool_use id; a result may be read before its call (another
  file, a later batch), so both sides upsert.  When a replayed session repeats a call,
  the earliest copy wins.  ``result`` is NULL when it is the text of its result line
  (``events.text`` of ``result_event_id``, which holds it already); the
  ``tool_calls_with_result`` view fills it in.  A line with several results keeps each.
- a subagent is known from its agent file, its meta.json, or the parent's tool_result
  (``toolUseResult.agentId`` or an ``agentId: <id>`` line in the result text).
- a sessions row exists for a session id that a record itself carries (summary-only and
  snapshot-only files, whose records have no sessionId, are not sessions), or that a
  subagent or tool call names.
"""

from __future__ import annotations

import re
import sqlite3
from collections.abc import Iterable

import orjson

from . import sidechains, usage
from .clock import now_iso
from .lines import line_bytes
from .parse import (
    EVENT_COLUMNS,
    LineError,
    NewEvent,
    content_text,
    parse,
    tool_results,
    tool_uses,
)
from .prompts import typed_text

AGENT_ID_IN_TEXT = re.compile(r"agentId: ([A-Za-z0-9_-]+)")
TITLE_CHARS = 120
FIRST_PROMPT_CHARS = 2000
FIRST_PROMPT_SCAN = 200_000
_IMAGE_PLACEHOLDER = re.compile(r"\[image: [\w.+/-]*\]")
# Prompts that Claude Code writes on the user's behalf: not a title.
NOT_A_PROMPT = ("<local-command-", "<command-", "Caveat: ", "[Request interrupted")

UPSERT_TOOL_USE = """
INSERT INTO tool_calls (tool_use_id, session_id, agent_id, name, input, event_id, started_at)
VALUES (?, ?, ?, ?, ?, ?, ?)
ON CONFLICT (tool_use_id) DO UPDATE SET
    session_id = excluded.session_id, agent_id = excluded.agent_id, name = excluded.name,
    input = excluded.input, event_id = excluded.event_id, started_at = excluded.started_at,
    duration_ms = CAST(round((julianday(tool_calls.finished_at)
        - julianday(excluded.started_at)) * 86400000) AS INTEGER)
WHERE tool_calls.event_id IS NULL
    OR coalesce(excluded.started_at, '') < coalesce(tool_calls.started_at, '')
"""
UPSERT_TOOL_RESULT = """
INSERT INTO tool_calls (tool_use_id, session_id, agent_id, result_event_id, result, is_error,
    finished_at)
VALUES (?, ?, ?, ?, ?, ?, ?)
ON CONFLICT (tool_use_id) DO UPDATE SET
    session_id = coalesce(tool_calls.session_id, excluded.session_id),
    agent_id = coalesce(tool_calls.agent_id, excluded.agent_id),
    result_event_id = excluded.result_event_id, result = excluded.result,
    is_error = excluded.is_error, finished_at = excluded.finished_at,
    duration_ms = CAST(round((julianday(excluded.finished_at)
        - julianday(tool_calls.started_at)) * 86400000) AS INTEGER)
WHERE tool_calls.result_event_id IS NULL
    OR coalesce(excluded.finished_at, '') < coalesce(tool_calls.finished_at, '')
"""
LINK_SUBAGENT = """
INSERT INTO subagents (agent_id, session_id, tool_use_id) VALUES (?, ?, ?)
ON CONFLICT (agent_id) DO UPDATE SET tool_use_id = excluded.tool_use_id,
    session_id = coalesce(subagents.session_id, excluded.session_id)
WHERE subagents.tool_use_id IS NULL
"""

SESSION_ID = EVENT_COLUMNS.index("session_id")
AGENT_ID = EVENT_COLUMNS.index("agent_id")
TIMESTAMP = EVENT_COLUMNS.index("timestamp")
TEXT = EVENT_COLUMNS.index("text")


def on_batch(conn: sqlite3.Connection, batch: list[NewEvent]) -> set[str]:
    """Update tool_calls and subagents for newly inserted events, then usage.

    Returns the session ids whose sessions rows need a refresh: the events' own sessions
    plus those titled by a summary in the batch and those of linked subagents.
    """
    touched = {ev.cols[SESSION_ID] for ev in batch}
    uses, results, links = [], [], []
    for ev in batch:
        obj = ev.obj
        rtype = obj.get("type")
        cols = ev.cols
        if rtype == "assistant":
            for block in tool_uses(obj):
                uses.append(
                    (
                        str(block["id"]),
                        cols[SESSION_ID],
                        cols[AGENT_ID],
                        block.get("name"),
                        orjson.dumps(block.get("input")).decode(),
                        ev.event_id,
                        cols[TIMESTAMP],
                    )
                )
        elif rtype == "user":
            blocks = tool_results(obj)
            spawned = obj.get("toolUseResult")
            spawned = spawned.get("agentId") if isinstance(spawned, dict) else None
            for block in blocks:
                tool_use_id = str(block["tool_use_id"])
                text = content_text(block.get("content"))
                results.append(
                    (
                        tool_use_id,
                        cols[SESSION_ID],
                        cols[AGENT_ID],
                        ev.event_id,
                        # Not stored twice: NULL when the result line's text is this
                        # result (one tool_result in the line); tool_calls_with_result
                        # reads it from there.
                        None if text == cols[TEXT] else text,
                        1 if block.get("is_error") else 0,
                        cols[TIMESTAMP],
                    )
                )
                agent_id = spawned if len(blocks) == 1 else None
                if not agent_id and "agentId: " in text:
                    match = AGENT_ID_IN_TEXT.search(text)
                    agent_id = match.group(1) if match else None
                if agent_id:
                    links.append((str(agent_id), cols[SESSION_ID], tool_use_id))
    if uses:
        conn.executemany(UPSERT_TOOL_USE, uses)
    if results:
        conn.executemany(UPSERT_TOOL_RESULT, results)
    if links:
        conn.executemany(LINK_SUBAGENT, links)
        touched |= refresh_subagents(conn, {link[0] for link in links})
    touched |= sessions_of_summaries(conn, batch)
    usage.on_batch(conn, batch)
    touched.discard(None)
    return touched


def refresh_subagents(conn: sqlite3.Connection, agent_ids: Iterable[str]) -> set[str]:
    """Recompute subagents rows from their agent files, meta.json and events; returns
    their session ids (whose sessions rows count them)."""
    sessions = set()
    for agent_id in agent_ids:
        files = conn.execute(
            "SELECT id, kind, session_id FROM sync_files WHERE agent_id = ? AND kind IN "
            "('agent', 'meta') ORDER BY id",
            (agent_id,),
        ).fetchall()
        existing = conn.execute(
            "SELECT session_id, tool_use_id FROM subagents WHERE agent_id = ?", (agent_id,)
        ).fetchone()
        if not files and existing is None:
            continue
        agent_files = [f[0] for f in files if f[1] == "agent"]
        meta = {}
        meta_file = next((f[0] for f in reversed(files) if f[1] == "meta"), None)
        if meta_file is not None:
            content = conn.execute(
                "SELECT content FROM file_contents WHERE file_id = ? ORDER BY id DESC LIMIT 1",
                (meta_file,),
            ).fetchone()
            try:
                meta = orjson.loads(content[0]) if content else {}
            except orjson.JSONDecodeError:
                meta = {}
            if not isinstance(meta, dict):
                meta = {}
        first = last = None
        count = 0
        event_session = None
        if agent_files:
            marks = ", ".join("?" * len(agent_files))
            first, last, count, event_session = conn.execute(
                f"SELECT min(timestamp), max(timestamp), count(*), max(session_id) FROM events "
                f"WHERE file_id IN ({marks})",
                agent_files,
            ).fetchone()
        session_id = (
            next((f[2] for f in files if f[2]), None)
            or (existing[0] if existing else None)
            or event_session
        )
        tool_use_id = existing[1] if existing else None
        if tool_use_id is None and isinstance(meta.get("toolUseId"), str):
            tool_use_id = meta["toolUseId"]
            conn.execute(
                "INSERT OR IGNORE INTO tool_calls (tool_use_id, session_id) VALUES (?, ?)",
                (tool_use_id, session_id),
            )
        conn.execute(
            """
            INSERT INTO subagents (agent_id, session_id, file_id, tool_use_id, agent_type,
                description, first_timestamp, last_timestamp, events)
            VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)
            ON CONFLICT (agent_id) DO UPDATE SET session_id = excluded.session_id,
                file_id = excluded.file_id, tool_use_id = excluded.tool_use_id,
                agent_type = excluded.agent_type, description = excluded.description,
                first_timestamp = excluded.first_timestamp,
                last_timestamp = excluded.last_timestamp, events = excluded.events
            """,
            (
                agent_id,
                session_id,
                agent_files[-1] if agent_files else None,
                tool_use_id,
                _str(meta.get("agentType")),
                _str(meta.get("description")),
                first,
                last,
                count or 0,
            ),
        )
        sessions.add(session_id)
    sessions.discard(None)
    return sessions


def _str(value) -> str | None:
    return value if isinstance(value, str) else None


def one_line(text: str, limit: int) -> str:
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 1].rstrip() + "…"


def refresh_sessions(conn: sqlite3.Connection, session_ids: Iterable[str]) -> None:
    """Recompute the sessions rows (and their projects rows) for these session ids."""
    projects = set()
    for session_id in session_ids:
        if session_id is None:
            continue
        old = conn.execute(
            "SELECT project_path FROM sessions WHERE session_id = ?", (session_id,)
        ).fetchone()
        if old and old[0]:
            projects.add(old[0])
        path = _refresh_session(conn, session_id)
        if path:
            projects.add(path)
    refresh_projects(conn, projects)


def _scalar(conn: sqlite3.Connection, sql: str, *params):
    row = conn.execute(sql, params).fetchone()
    return row[0] if row else None


def _refresh_session(conn: sqlite3.Connection, sid: str) -> str | None:
    sidechains.refresh(conn, sid)  # 1.0.x subagents, inline in the session file
    tool_calls = _scalar(
        conn,
        "SELECT count(*) FROM tool_calls WHERE session_id = ? AND event_id IS NOT NULL",
        sid,
    )
    subagents = _scalar(conn, "SELECT count(*) FROM subagents WHERE session_id = ?", sid)
    referenced = _scalar(
        conn, "SELECT 1 FROM tool_calls WHERE session_id = ? LIMIT 1", sid
    ) or _scalar(conn, "SELECT 1 FROM subagents WHERE session_id = ? LIMIT 1", sid)
    if not referenced and not _named_by_a_record(conn, sid):
        return None
    # The queries below walk this session's lines through idx_events_session.
    events, first_ts, last_ts, prompts, messages = conn.execute(
        """
        SELECT count(*), min(timestamp), max(timestamp),
            coalesce(sum(kind = 'prompt' AND coalesce(is_meta, 0) = 0
                AND coalesce(is_sidechain, 0) = 0), 0),
            count(DISTINCT CASE WHEN type = 'assistant' THEN message_id END)
        FROM events WHERE session_id = ?
        """,
        (sid,),
    ).fetchone()
    models = [
        r[0]
        for r in conn.execute(
            "SELECT model FROM events WHERE session_id = ? AND model IS NOT NULL "
            "AND model != '<synthetic>' GROUP BY model ORDER BY min(id)",
            (sid,),
        )
    ]
    last_of = (
        "SELECT {col} FROM events WHERE session_id = ? AND {col} IS NOT NULL AND {col} != '' "
        "ORDER BY timestamp DESC, id DESC LIMIT 1"
    )
    git_branch = _scalar(conn, last_of.format(col="git_branch"), sid)
    version = _scalar(conn, last_of.format(col="version"), sid)
    # The first cwd of the main thread: walked in idx_events_session's order (timestamp,
    # id), which stops at the first line that has one; the full order only when no
    # timed main-thread line has a cwd.
    cwd = _scalar(
        conn,
        "SELECT cwd FROM events WHERE session_id = ? AND timestamp IS NOT NULL "
        "AND coalesce(is_sidechain, 0) = 0 AND cwd IS NOT NULL AND cwd != '' "
        "ORDER BY timestamp, id LIMIT 1",
        sid,
    ) or _scalar(
        conn,
        "SELECT cwd FROM events WHERE session_id = ? AND cwd IS NOT NULL AND cwd != '' "
        "ORDER BY coalesce(is_sidechain, 0), timestamp IS NULL, timestamp, id LIMIT 1",
        sid,
    )
    file_row = conn.execute(
        "SELECT project_dir, host FROM sync_files WHERE session_id = ? "
        "ORDER BY kind != 'session', id LIMIT 1",
        (sid,),
    ).fetchone()
    project_dir, host = file_row if file_row else (None, None)
    sources_exist = (
        1
        if _scalar(
            conn,
            "SELECT 1 FROM sync_files WHERE session_id = ? AND deleted_at IS NULL LIMIT 1",
            sid,
        )
        else 0
    )
    first_prompt = _first_prompt(conn, sid)
    title, title_source = _title(conn, sid, first_prompt, events)
    conn.execute(
        """
        INSERT INTO sessions (session_id, project_path, project_dir, host, title, title_source,
            first_prompt, first_timestamp, last_timestamp, events, prompts,
            assistant_messages, tool_calls, subagents, models, git_branch, version,
            sources_exist, updated_at)
        VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
        ON CONFLICT (session_id) DO UPDATE SET project_path = excluded.project_path,
            project_dir = excluded.project_dir, host = excluded.host, title = excluded.title,
            title_source = excluded.title_source, first_prompt = excluded.first_prompt,
            first_timestamp = excluded.first_timestamp,
            last_timestamp = excluded.last_timestamp, events = excluded.events,
            prompts = excluded.prompts, assistant_messages = excluded.assistant_messages,
            tool_calls = excluded.tool_calls, subagents = excluded.subagents,
            models = excluded.models, git_branch = excluded.git_branch,
            version = excluded.version, sources_exist = excluded.sources_exist,
            updated_at = excluded.updated_at
        """,
        (
            sid,
            cwd,
            project_dir,
            host,
            title,
            title_source,
            first_prompt,
            first_ts,
            last_ts,
            events,
            prompts,
            messages,
            tool_calls,
            subagents,
            orjson.dumps(models).decode(),
            git_branch,
            version,
            sources_exist,
            now_iso(),
        ),
    )
    return cwd


def _named_by_a_record(conn: sqlite3.Connection, sid: str) -> bool:
    """Whether a record itself carries this sessionId.  Summary-only and snapshot-only
    files have none: their rows get the file's session id, but they are no session."""
    return bool(
        _scalar(
            conn,
            "SELECT 1 FROM events WHERE session_id = ? AND CASE WHEN type IS NOT NULL "
            "THEN json_extract(raw_json(raw), '$.sessionId') END IS NOT NULL LIMIT 1",
            sid,
        )
    )


def _first_prompt(conn: sqlite3.Connection, sid: str) -> str | None:
    """The first thing the user typed in the main thread: IDE context, reminders and
    slash commands taken out (see ingest.prompts)."""
    rows = conn.execute(
        # IDE context may be long (a selection): read well past it, not just the start.
        f"SELECT substr(text, 1, {FIRST_PROMPT_SCAN}) FROM events WHERE session_id = ? "
        "AND +kind = 'prompt' "  # + : walk this session's events, not every prompt
        "AND coalesce(is_meta, 0) = 0 AND coalesce(is_sidechain, 0) = 0 AND text IS NOT NULL "
        "ORDER BY timestamp",  # index order: no sort, stops early
        (sid,),
    )
    for (text,) in rows:
        typed = typed_text(text)
        if typed and not typed.startswith(NOT_A_PROMPT):
            return typed[:FIRST_PROMPT_CHARS]
    return None


def _title(conn: sqlite3.Connection, sid: str, first_prompt: str | None, events: int = 0):
    # The newest custom title, else the newest AI title (a blank newest one gives way to
    # the next kind): title lines are few, read through their own partial index.
    newest: dict[str, str] = {}
    for rtype, text in conn.execute(
        "SELECT type, text FROM events WHERE session_id = ? "
        "AND type IN ('custom-title', 'ai-title') ORDER BY id DESC",
        (sid,),
    ):
        if text is not None:
            newest.setdefault(rtype, text)
    for rtype in ("custom-title", "ai-title"):
        text = newest.get(rtype)
        if text and text.strip():
            return one_line(text, TITLE_CHARS), rtype
    summary = _summary_title(conn, sid, events)
    if summary and summary.strip():
        return one_line(summary, TITLE_CHARS), "summary"
    if first_prompt:
        # "[image: image/png]" placeholders of pasted images say nothing as a title.
        text = _IMAGE_PLACEHOLDER.sub(" ", first_prompt).strip() or first_prompt
        return one_line(text, TITLE_CHARS), "first-prompt"
    return None, None


def _summary_title(conn: sqlite3.Connection, sid: str, events: int) -> str | None:
    """The text of the newest summary whose leaf is a line of this session.  Whichever
    costs less is walked: the session's lines (each looked up among the summaries'
    leaves) or the archive's summaries (each leaf looked up by uuid, then its row)."""
    summaries = _scalar(
        conn,
        "SELECT count(*) FROM (SELECT 1 FROM events WHERE type = 'summary' "
        "AND leaf_uuid IS NOT NULL LIMIT ?)",
        events // 8 + 1,
    )
    if not summaries:
        return None
    if summaries <= events // 8:  # (a summary costs several lines: two lookups, its row)
        for (summary_id,) in conn.execute(
            "SELECT s.id FROM events s WHERE s.type = 'summary' AND s.leaf_uuid IS NOT NULL "
            "AND EXISTS (SELECT 1 FROM events leaf WHERE leaf.uuid = s.leaf_uuid "
            "AND +leaf.session_id = ?) ORDER BY +s.id DESC",  # (+: the summaries index)
            (sid,),
        ):
            text = _scalar(conn, "SELECT text FROM events WHERE id = ?", summary_id)
            if text is not None:
                return text
        return None
    return _scalar(
        conn,
        """
        SELECT s.text FROM events leaf, events s
        WHERE leaf.session_id = ? AND leaf.uuid IS NOT NULL AND s.type = 'summary'
            AND s.leaf_uuid = +leaf.uuid AND s.text IS NOT NULL
        ORDER BY s.id DESC LIMIT 1
        """,
        sid,
    )


def sessions_of_summaries(conn: sqlite3.Connection, batch: list[NewEvent]) -> set[str]:
    """Sessions titled by the summary records in batch (their leaf may be anywhere)."""
    leaves = [
        ev.obj["leafUuid"]
        for ev in batch
        if ev.obj.get("type") == "summary" and isinstance(ev.obj.get("leafUuid"), str)
    ]
    found = set()
    for leaf in leaves:
        for (sid,) in conn.execute(
            "SELECT DISTINCT session_id FROM events WHERE uuid = ? AND session_id IS NOT NULL",
            (leaf,),
        ):
            found.add(sid)
    return found


def refresh_projects(conn: sqlite3.Connection, paths: Iterable[str]) -> None:
    for path in paths:
        count, first_ts, last_ts = conn.execute(
            "SELECT count(*), min(first_timestamp), max(last_timestamp) FROM sessions "
            "WHERE project_path = ?",
            (path,),
        ).fetchone()
        if not count:
            conn.execute("DELETE FROM projects WHERE path = ?", (path,))
            continue
        project_dir = _scalar(
            conn,
            "SELECT project_dir FROM sessions WHERE project_path = ? AND project_dir IS NOT NULL "
            "GROUP BY project_dir ORDER BY count(*) DESC, project_dir LIMIT 1",
            path,
        )
        name = path.rstrip("/\\").replace("\\", "/").rsplit("/", 1)[-1] or path
        conn.execute(
            """
            INSERT INTO projects (path, name, project_dir, sessions, first_timestamp,
                last_timestamp) VALUES (?, ?, ?, ?, ?, ?)
            ON CONFLICT (path) DO UPDATE SET name = excluded.name,
                project_dir = excluded.project_dir, sessions = excluded.sessions,
                first_timestamp = excluded.first_timestamp,
                last_timestamp = excluded.last_timestamp
            """,
            (path, name, project_dir, count, first_ts, last_ts),
        )


def replay(conn: sqlite3.Connection, after_id: int = 0, chunk: int = 2000) -> tuple[set, set]:
    """Run on_batch over the archived events after ``after_id`` (rebuilds and merges).

    Returns the session ids touched and the agent ids of the agent/meta files met."""
    cols = ", ".join(f"e.{c}" for c in EVENT_COLUMNS)
    touched: set = set()
    agents: set = set()
    last_id = after_id
    while True:
        rows = conn.execute(
            f"SELECT e.id, e.file_id, f.host, f.kind, f.agent_id, e.raw, {cols} FROM events e "
            "JOIN sync_files f ON f.id = e.file_id "
            "WHERE e.id > ? AND f.kind != 'journal' AND e.type IS NOT NULL "
            "ORDER BY e.id LIMIT ?",
            (last_id, chunk),
        ).fetchall()
        if not rows:
            break
        last_id = rows[-1][0]
        batch = []
        for event_id, file_id, host, kind, agent_id, raw, *values in rows:
            if kind in ("agent", "meta") and agent_id:
                agents.add(agent_id)
            try:
                # same objects as sync (lone surrogates mended)
                obj, _ = parse(line_bytes(raw, conn))
            except LineError:
                continue
            batch.append(NewEvent(event_id, file_id, obj, tuple(values), host))
        touched |= on_batch(conn, batch)
    return touched, agents


def rebuild_all(conn: sqlite3.Connection, chunk: int = 2000) -> None:
    """Recompute every derived table from events (call inside a transaction)."""
    conn.execute("PRAGMA defer_foreign_keys=ON")
    for table in ("subagents", "tool_calls", "sessions", "projects"):
        conn.execute(f"DELETE FROM {table}")
    replay(conn, chunk=chunk)
    agents = [
        r[0]
        for r in conn.execute(
            "SELECT DISTINCT agent_id FROM sync_files "
            "WHERE agent_id IS NOT NULL AND kind IN ('agent', 'meta')"
        )
    ]
    refresh_subagents(conn, agents)
    sessions = conn.execute(
        "SELECT DISTINCT session_id FROM events WHERE session_id IS NOT NULL"
    ).fetchall()
    refresh_sessions(conn, [r[0] for r in sessions])
