"""Subagents of Claude Code 1.0.x: sidechains written inline in the session file.

1.0.x wrote a Task subagent's lines into the main session file, marked
``isSidechain: true``, without an ``agentId``.  Each subagent is a chain: a root line
(``parentUuid`` null) holding the Task's prompt, and the lines that descend from it.
Parallel Task calls interleave their chains by time; the parent links keep them apart.
A chain is matched to the Task call whose ``input.prompt`` is the root's text (as
claude-code-log does), the earliest unmatched call first when several are equal.

Each chain gets the agent id ``sidechain-<root uuid>``; derive writes it a ``subagents``
row with its ``tool_use_id``, and the transcript nests it under that call.
"""

from __future__ import annotations

import sqlite3

import orjson

from .lines import line_bytes
from .parse import LineError, load_record

PREFIX = "sidechain-"

_SIDECHAIN_EVENTS = """
SELECT e.id, e.uuid, e.parent_uuid, e.timestamp, e.type, e.kind, e.raw
FROM events e JOIN sync_files f ON f.id = e.file_id
WHERE e.session_id = ? AND e.is_sidechain = 1 AND e.agent_id IS NULL AND f.agent_id IS NULL
ORDER BY e.id
"""


def _prompt_of(raw, conn) -> str | None:
    try:
        record = load_record(line_bytes(raw, conn))  # the engine's own parse
    except (LineError, RecursionError, TypeError):
        return None
    message = record.get("message") if isinstance(record, dict) else None
    content = message.get("content") if isinstance(message, dict) else None
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        texts = [b.get("text") for b in content if isinstance(b, dict) and b.get("type") == "text"]
        return "\n".join(t for t in texts if isinstance(t, str)) or None
    return None


def chains(conn: sqlite3.Connection, session_id: str) -> dict[str, dict]:
    """The session's inline sidechains: agent id -> {root (uuid), prompt, ids (event ids
    in file order), first_timestamp, last_timestamp}."""
    rows = conn.execute(_SIDECHAIN_EVENTS, (session_id,)).fetchall()
    if not rows:
        return {}
    by_uuid = {r[1]: r for r in rows if r[1]}
    owner: dict[str, str] = {}  # uuid -> agent id
    found: dict[str, dict] = {}
    latest: str | None = None  # the chain a line without a known parent joins
    for event_id, uuid, parent, timestamp, rtype, _kind, raw in rows:
        agent = owner.get(parent) if parent else None
        if agent is None and (parent is None or parent not in by_uuid):
            if rtype == "user" and parent is None and uuid:
                agent = PREFIX + uuid
                found[agent] = {"root": uuid, "prompt": _prompt_of(raw, conn), "ids": []}
            else:
                agent = latest  # its parent was never written: the chain running then
        if agent is None or agent not in found:
            continue
        found[agent]["ids"].append(event_id)
        chain = found[agent]
        if timestamp:
            chain.setdefault("first_timestamp", timestamp)
            chain["last_timestamp"] = timestamp
        if uuid:
            owner[uuid] = agent
        latest = agent
    return found


def match_calls(conn: sqlite3.Connection, session_id: str, found: dict[str, dict]) -> None:
    """Set each chain's ``tool_use_id``: the Task (or Agent) call of this session whose
    input prompt is the chain's first prompt, earliest unmatched call first."""
    calls = conn.execute(
        "SELECT tool_use_id, input FROM tool_calls WHERE session_id = ? "
        "AND name IN ('Task', 'Agent') AND event_id IS NOT NULL ORDER BY started_at, event_id",
        (session_id,),
    ).fetchall()
    prompts: list[tuple[str, str | None]] = []
    for tool_use_id, data in calls:
        try:
            prompt = orjson.loads(data).get("prompt") if data else None
        except (orjson.JSONDecodeError, AttributeError):
            prompt = None
        prompts.append((tool_use_id, prompt if isinstance(prompt, str) else None))
    taken: set[str] = set()
    ordered = sorted(found.items(), key=lambda kv: kv[1].get("first_timestamp") or "")
    for _agent, chain in ordered:
        chain["tool_use_id"] = None
        text = (chain.get("prompt") or "").strip()
        for tool_use_id, prompt in prompts:
            if tool_use_id not in taken and prompt is not None and prompt.strip() == text:
                chain["tool_use_id"] = tool_use_id
                taken.add(tool_use_id)
                break


def refresh(conn: sqlite3.Connection, session_id: str) -> None:
    """Write (or drop) the subagents rows of the session's inline sidechains."""
    found = chains(conn, session_id)
    stale = {
        r[0]
        for r in conn.execute(
            "SELECT agent_id FROM subagents WHERE session_id = ? AND agent_id LIKE ?",
            (session_id, PREFIX + "%"),
        )
    } - set(found)
    for agent in stale:
        conn.execute("DELETE FROM subagents WHERE agent_id = ?", (agent,))
    if not found:
        return
    match_calls(conn, session_id, found)
    for agent, chain in found.items():
        description = None
        if chain["tool_use_id"]:
            row = conn.execute(
                "SELECT json_extract(input, '$.description'), "
                "json_extract(input, '$.subagent_type') FROM tool_calls WHERE tool_use_id = ?",
                (chain["tool_use_id"],),
            ).fetchone()
            description, agent_type = row if row else (None, None)
        else:
            agent_type = None
        conn.execute(
            """
            INSERT INTO subagents (agent_id, session_id, file_id, tool_use_id, agent_type,
                description, first_timestamp, last_timestamp, events)
            VALUES (?, ?, (SELECT file_id FROM events WHERE id = ?), ?, ?, ?, ?, ?, ?)
            ON CONFLICT (agent_id) DO UPDATE SET session_id = excluded.session_id,
                file_id = excluded.file_id, tool_use_id = excluded.tool_use_id,
                agent_type = excluded.agent_type, description = excluded.description,
                first_timestamp = excluded.first_timestamp,
                last_timestamp = excluded.last_timestamp, events = excluded.events
            """,
            (
                agent,
                session_id,
                chain["ids"][0],
                chain["tool_use_id"],
                agent_type if isinstance(agent_type, str) else None,
                description if isinstance(description, str) else None,
                chain.get("first_timestamp"),
                chain.get("last_timestamp"),
                len(chain["ids"]),
            ),
        )
