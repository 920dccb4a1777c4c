"""Numbers for a transcript: a thread's totals (span, prompts, tool calls by name, models,
tokens and cost) and each assistant message's tokens and cost, from ``api_calls``
(deduplicated responses, see docs/usage-rules.md) and ``tool_calls``.

A thread is a session's main thread (``agent_id`` None) or one subagent.  Functions take
a plain ``sqlite3.Connection`` (they run inside ``Database.execute_fn``).
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from ingest import sidechains

_USAGE_SUMS = """
    count(*), coalesce(sum(input_tokens), 0), coalesce(sum(output_tokens), 0),
    coalesce(sum(cache_creation_5m_tokens + cache_creation_1h_tokens), 0),
    coalesce(sum(cache_read_tokens), 0), sum(cost_usd), coalesce(sum(priced = 0), 0)
"""
_USAGE_KEYS = ("calls", "input", "output", "cache_write", "cache_read", "cost", "unpriced")


def _table_exists(conn, name: str) -> bool:
    return bool(
        conn.execute(
            "select 1 from sqlite_master where type = 'table' and name = ?", (name,)
        ).fetchone()
    )


def human_duration(ms: Any) -> str:
    """850 ms, 1.2 s, 4m 49s, 2h 05m."""
    if not isinstance(ms, int | float) or isinstance(ms, bool) or ms < 0:
        return ""
    if ms < 1000:
        return f"{ms:.0f} ms"
    seconds = ms / 1000
    if seconds < 59.95:
        return f"{seconds:.1f} s"
    seconds = round(seconds)
    if seconds < 3600:
        return f"{seconds // 60}m {seconds % 60:02d}s"
    return f"{seconds // 3600}h {seconds % 3600 // 60:02d}m"


def short_tokens(n: Any) -> str:
    """1,234 -> 1.2k; 3,400,000 -> 3.4M."""
    if not isinstance(n, int | float) or isinstance(n, bool):
        return ""
    if n < 1000:
        return f"{n:.0f}"
    if n < 999_950:
        return f"{n / 1000:.1f}k".replace(".0k", "k")
    return f"{n / 1e6:.1f}M".replace(".0M", "M")


def money(cost: Any) -> str:
    if not isinstance(cost, int | float) or isinstance(cost, bool):
        return ""
    if cost == 0:
        return "$0"
    if cost < 0.01:
        return f"${cost:.4f}"
    return f"${cost:,.2f}"


def usage_line(usage: dict | None) -> str:
    """in 10 · out 200 · cache read 5k · cache write 300 · $0.02"""
    if not usage or not usage.get("calls"):
        return ""
    parts = [f"in {short_tokens(usage['input'])}", f"out {short_tokens(usage['output'])}"]
    if usage.get("cache_read"):
        parts.append(f"cache read {short_tokens(usage['cache_read'])}")
    if usage.get("cache_write"):
        parts.append(f"cache write {short_tokens(usage['cache_write'])}")
    if usage.get("cost") is not None:
        parts.append(money(usage["cost"]) + (" (partly unpriced)" if usage["unpriced"] else ""))
    elif usage.get("unpriced"):
        parts.append("no price for this model")
    return " · ".join(parts)


def _usage(conn, where: str, params: tuple) -> dict | None:
    if not _table_exists(conn, "api_calls"):
        return None
    row = conn.execute(f"select {_USAGE_SUMS} from api_calls where {where}", params).fetchone()
    usage = dict(zip(_USAGE_KEYS, row, strict=True))
    usage["line"] = usage_line(usage)
    return usage


def message_usage(conn, message_ids: list[str]) -> dict[str, dict]:
    """Tokens and cost of each assistant message (by message.id) that api_calls counts."""
    out: dict[str, dict] = {}
    ids = sorted({m for m in message_ids if m})
    if not ids or not _table_exists(conn, "api_calls"):
        return out
    for i in range(0, len(ids), 500):
        chunk = ids[i : i + 500]
        cursor = conn.execute(
            f"select message_id, {_USAGE_SUMS} from api_calls "
            f"where message_id in ({','.join('?' * len(chunk))}) group by message_id",
            chunk,
        )
        for message_id, *values in cursor:
            usage = dict(zip(_USAGE_KEYS, values, strict=True))
            usage["line"] = usage_line(usage)
            out[message_id] = usage
    return out


def _duration(first: str | None, last: str | None) -> str:
    try:
        start = datetime.fromisoformat((first or "").replace("Z", "+00:00"))
        end = datetime.fromisoformat((last or "").replace("Z", "+00:00"))
        seconds = (end - start).total_seconds()
    except (ValueError, TypeError):  # not ISO, or one with a time zone and one without
        return ""
    return human_duration(seconds * 1000)


def _tools(conn, where: str, params: tuple) -> dict:
    rows = conn.execute(
        "select coalesce(name, '?'), count(*), coalesce(sum(is_error), 0) from tool_calls "
        f"where {where} and event_id is not null group by 1 order by 2 desc, 1",
        params,
    ).fetchall()
    calls = sum(r[1] for r in rows)
    errors = sum(r[2] for r in rows)
    line = ", ".join(f"{name} ×{n}" if n > 1 else name for name, n, _ in rows)
    return {"calls": calls, "errors": errors, "by_name": rows, "line": line}


def thread_facts(conn, session_id: str, agent_id: str | None) -> dict:
    """Span, prompts, tool calls, models, tokens and cost of one thread.  For the main
    thread, ``usage`` covers the whole session (subagents included) and ``own_usage`` the
    main thread alone."""
    if agent_id is None:
        first, last, prompts = conn.execute(
            "select first_timestamp, last_timestamp, prompts from sessions where session_id = ?",
            (session_id,),
        ).fetchone() or (None, None, 0)
        tools = _tools(conn, "session_id = ?", (session_id,))
        usage = _usage(conn, "session_id = ?", (session_id,))
        own = _usage(conn, "session_id = ? and agent_id is null", (session_id,))
        where_models, params = "session_id = ?", (session_id,)
    elif agent_id.startswith(sidechains.PREFIX):
        # A 1.0.x subagent: a chain of sidechain lines in the session file.
        ids = sidechains.chains(conn, session_id).get(agent_id, {}).get("ids") or [0]
        marks = ",".join("?" * len(ids))
        first, last, prompts = conn.execute(
            "select min(timestamp), max(timestamp), "
            "coalesce(sum(kind = 'prompt' and coalesce(is_meta, 0) = 0), 0) "
            f"from events where id in ({marks})",
            ids,
        ).fetchone()
        tools = _tools(conn, f"event_id in ({marks})", tuple(ids))
        usage = own = _usage(conn, f"event_id in ({marks})", tuple(ids))
        where_models, params = f"event_id in ({marks})", tuple(ids)
    else:
        first, last, prompts = conn.execute(
            "select min(e.timestamp), max(e.timestamp), "
            "coalesce(sum(e.kind = 'prompt' and coalesce(e.is_meta, 0) = 0), 0) "
            "from events e join sync_files f on f.id = e.file_id "
            "where e.session_id = ? and coalesce(e.agent_id, f.agent_id) = ?",
            (session_id, agent_id),
        ).fetchone()
        tools = _tools(conn, "session_id = ? and agent_id = ?", (session_id, agent_id))
        usage = own = _usage(conn, "session_id = ? and agent_id = ?", (session_id, agent_id))
        where_models, params = "session_id = ? and agent_id = ?", (session_id, agent_id)
    models = []
    if _table_exists(conn, "api_calls"):
        models = [
            r[0]
            for r in conn.execute(
                f"select model from api_calls where {where_models} and model is not null "
                "group by model order by min(timestamp)",
                params,
            )
        ]
    return {
        "first_timestamp": first,
        "last_timestamp": last,
        "duration": _duration(first, last),
        "prompts": prompts or 0,
        "tools": tools,
        "usage": usage,
        "own_usage": own,
        "models": models,
    }
