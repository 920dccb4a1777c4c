"""Deduplicated API calls (``api_calls``), their cost and rollup views (5-hour blocks:
ingest/blocks.py).

One ``api_calls`` row per billed API response.  Claude Code writes one response over
several assistant lines (and resumes, ``--continue`` and sidechains copy lines into other
files), so rows are keyed by ``(message.id, requestId)`` across all files; the rules,
and where they differ from ccusage, are in docs/usage-rules.md:

- per key, the main-thread line beats a sidechain line, then the line with the most
  tokens, then one that has ``usage.speed``, then the earliest timestamp, the smaller
  session id and the smaller event id;
- when a message id has a main-thread line, sidechain lines of that message id are
  not counted, whatever their request id; a message id with only sidechain lines is
  counted once;
- ``<synthetic>`` records are skipped; lines without ``message.id`` are all counted.

The result depends only on the set of lines archived, never on the order they arrive
in: ``on_batch`` merges each batch with the rows already stored for the same message ids
and applies the same rule.
"""

from __future__ import annotations

import json
from collections import defaultdict
from operator import itemgetter
from typing import TYPE_CHECKING

from . import usage_sums
from .lines import line_bytes
from .parse import EVENT_COLUMNS, SESSION_ID_INDEX, NewEvent, load_record

if TYPE_CHECKING:
    from .pricing import PriceTable

_AGENT_ID_INDEX = EVENT_COLUMNS.index("agent_id")

API_CALL_COLUMNS = (
    "event_id",
    "dedup_key",
    "message_id",
    "request_id",
    "session_id",
    "agent_id",
    "host",
    "project",
    "is_sidechain",
    "model",
    "timestamp",
    "input_tokens",
    "output_tokens",
    "cache_creation_5m_tokens",
    "cache_creation_1h_tokens",
    "cache_read_tokens",
    "total_tokens",
    "web_search_requests",
    "speed",
    "cost_usd",
    "priced",
)
_COL = {name: i for i, name in enumerate(API_CALL_COLUMNS)}
_COST_ARGS = (
    "model",
    "input_tokens",
    "output_tokens",
    "cache_creation_5m_tokens",
    "cache_creation_1h_tokens",
    "cache_read_tokens",
    "speed",
)
# A row's values as usage_sums sums them (usage_sums.SOURCE).
_SOURCE = itemgetter(*(_COL[c] for c in usage_sums.SOURCE))
_INSERT = (
    f"INSERT OR IGNORE INTO api_calls ({', '.join(API_CALL_COLUMNS)}) "
    f"VALUES ({', '.join('?' for _ in API_CALL_COLUMNS)})"
)
# The rollup views as migration m100 made them: sums over every api_calls row on each
# read.  Kept for m100 (migrations replay on new archives); m901 replaces them by VIEWS.
_SUMS = """
    count(*) AS calls,
    sum(input_tokens) AS input_tokens,
    sum(output_tokens) AS output_tokens,
    sum(cache_creation_5m_tokens + cache_creation_1h_tokens) AS cache_creation_tokens,
    sum(cache_read_tokens) AS cache_read_tokens,
    sum(total_tokens) AS total_tokens,
    round(sum(cost_usd), 6) AS cost_usd,
    sum(priced = 0) AS unpriced_calls"""
_ROLLUPS = {
    "usage_by_session": ("session_id, min(project) AS project, min(host) AS host", "session_id"),
    "usage_by_project": ("project", "project"),
    "usage_by_day": ("date(timestamp) AS day", "date(timestamp)"),
    "usage_by_week": (
        "date(timestamp, 'weekday 0', '-6 days') AS week",
        "date(timestamp, 'weekday 0', '-6 days')",
    ),
    "usage_by_month": ("substr(timestamp, 1, 7) AS month", "substr(timestamp, 1, 7)"),
    "usage_by_model": ("model", "model"),
    "usage_by_agent": (
        "session_id, agent_id, max(is_sidechain) AS is_sidechain",
        "session_id, agent_id",
    ),
}


def rollup_sql(select: str, group: str) -> str:
    """The SELECT of a usage_by_* view as m100 made it (over api_calls)."""
    return (
        f"SELECT {select},{_SUMS},\n"
        f"    min(timestamp) AS first_call, max(timestamp) AS last_call\n"
        f"FROM api_calls GROUP BY {group}"
    )


# The rollup views since m901: the sums the engine keeps (usage_sums, one row per UTC
# quarter hour, session, agent, model, project and host) added up per view.
_SUMS_OF_SUMS = """
    sum(calls) AS calls,
    sum(input_tokens) AS input_tokens,
    sum(output_tokens) AS output_tokens,
    sum(cache_creation_5m_tokens + cache_creation_1h_tokens) AS cache_creation_tokens,
    sum(cache_read_tokens) AS cache_read_tokens,
    sum(total_tokens) AS total_tokens,
    round(sum(cost_usd), 6) AS cost_usd,
    sum(unpriced_calls) AS unpriced_calls"""
# view: (its own columns, GROUP BY); {day} is the day of a quarter hour.  The session
# and agent views group as the key index of usage_sums is ordered (NULL as an empty
# BLOB, which no text equals), so their pages stream from it without sorting.
VIEWS = {
    "usage_by_session": (
        "session_id, min(project) AS project, min(host) AS host",
        "ifnull(session_id, x'')",
    ),
    "usage_by_project": ("project", "project"),
    "usage_by_day": ("{day} AS day", "day"),
    "usage_by_week": ("date({day}, 'weekday 0', '-6 days') AS week", "week"),
    "usage_by_month": ("substr({day}, 1, 7) AS month", "month"),
    "usage_by_model": ("model", "model"),
    "usage_by_agent": (
        "session_id, agent_id, max(is_sidechain) AS is_sidechain",
        "ifnull(session_id, x''), ifnull(agent_id, x'')",
    ),
}
PERIODS = ("usage_by_day", "usage_by_week", "usage_by_month")
# The day of a quarter hour (a validated UTC YYYY-MM-DDTHH:MM, ingest/localdays.py).  The
# archive's views count UTC days, in plain SQL that any SQLite reads; the web app, in
# its setting timezone, reads the same views made with LOCAL_DAY (local_views).
UTC_DAY = "substr(slot, 1, 10)"
LOCAL_DAY = "claude_sessions_day(slot)"
# The periods add up per quarter hour first, so the local day of each quarter hour is
# worked out once, not once per usage_sums row.  Calls whose timestamp is not a time
# (slot NULL) count under no day (day NULL), as they count in every other total.
_PER_SLOT = (
    "(SELECT slot, "
    + ", ".join(f"sum({c}) AS {c}" for c in usage_sums.SUMS[:-2])
    + ",\n    min(first_call) AS first_call, max(last_call) AS last_call"
    + "\n    FROM usage_sums GROUP BY slot)"
)


def view_sql(name: str, day: str = UTC_DAY) -> str:
    """The SELECT of a usage_by_* view (m901 and later); ``day``: the day of ``slot``."""
    select, group = VIEWS[name]
    source = _PER_SLOT if name in PERIODS else "usage_sums"
    return (
        f"SELECT {select.format(day=day)},{_SUMS_OF_SUMS},\n"
        f"    min(first_call) AS first_call, max(last_call) AS last_call\n"
        f"FROM {source} GROUP BY {group}"
    )


def local_views(conn) -> bool:
    """Shadow the archive's usage_by_day/week/month views on this connection with the
    same views in local days (TEMP views, which a query's unqualified names find
    first): claude_sessions_day() must be registered, in the zone wanted.  Nothing
    happens on an archive without usage_sums (not migrated yet); returns whether the
    views were made."""
    if not conn.execute(
        "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'usage_sums'"
    ).fetchone():
        return False
    for name in PERIODS:
        conn.execute(f"DROP VIEW IF EXISTS temp.{name}")
        conn.execute(f"CREATE TEMP VIEW {name} AS " + view_sql(name, LOCAL_DAY))
    return True


# The figures every usage_by_* view (and `claude-sessions cost`) adds up, then the span of
# the calls they cover: the columns all those views share.
METRICS = (
    "calls",
    "input_tokens",
    "output_tokens",
    "cache_creation_tokens",
    "cache_read_tokens",
    "total_tokens",
    "cost_usd",
    "unpriced_calls",
)
ROLLUP_COLUMNS = (*METRICS, "first_call", "last_call")
# ---------------------------------------------------------------------------
# Rows from transcript lines


def _int(value) -> int:
    return value if isinstance(value, int) and not isinstance(value, bool) else 0


def _call_row(ev: NewEvent, file_info: tuple) -> tuple | None:
    """The api_calls row for an assistant line with usage (not priced yet), or None."""
    obj = ev.obj
    message = obj.get("message")
    if not isinstance(message, dict):
        return None
    usage = message.get("usage")
    model = message.get("model")
    if not isinstance(usage, dict) or model == "<synthetic>":
        return None
    model = model if isinstance(model, str) else None
    input_tokens = _int(usage.get("input_tokens"))
    output_tokens = _int(usage.get("output_tokens"))
    cache_write = _int(usage.get("cache_creation_input_tokens"))
    cache_read = _int(usage.get("cache_read_input_tokens"))
    split = usage.get("cache_creation")
    write_1h = _int(split.get("ephemeral_1h_input_tokens")) if isinstance(split, dict) else 0
    write_1h = min(write_1h, cache_write)
    write_5m = cache_write - write_1h
    server = usage.get("server_tool_use")
    searches = _int(server.get("web_search_requests")) if isinstance(server, dict) else 0
    speed = usage.get("speed") if isinstance(usage.get("speed"), str) else None
    message_id = message.get("id") if isinstance(message.get("id"), str) else None
    request_id = obj.get("requestId") if isinstance(obj.get("requestId"), str) else None
    dedup_key = f"{message_id} {request_id or ''}" if message_id else None
    is_sidechain = 1 if obj.get("isSidechain") is True else 0
    agent_id = ev.cols[_AGENT_ID_INDEX] or file_info[1]
    timestamp = obj.get("timestamp") if isinstance(obj.get("timestamp"), str) else None
    return (
        ev.event_id,
        dedup_key,
        message_id,
        request_id,
        ev.cols[SESSION_ID_INDEX],
        agent_id,
        ev.host,
        file_info[0],
        is_sidechain,
        model,
        timestamp,
        input_tokens,
        output_tokens,
        write_5m,
        write_1h,
        cache_read,
        input_tokens + output_tokens + cache_write + cache_read,
        searches,
        speed,
        None,
        0,
    )


def _priced(row: tuple, table: PriceTable) -> tuple:
    """The row with cost_usd and priced filled in."""
    cost = table.cost(*(row[_COL[c]] for c in _COST_ARGS))
    return (*row[: _COL["cost_usd"]], cost, 0 if cost is None else 1)


def _rank(row: tuple) -> tuple:
    """Sort key: the best line for a key sorts first (a total order, so order-independent)."""
    return (
        -row[_COL["total_tokens"]],
        row[_COL["speed"]] is None,
        row[_COL["timestamp"]] or "\uffff",
        row[_COL["session_id"]] or "\uffff",
        row[_COL["event_id"]],
    )


def _winners(rows: list[tuple]) -> list[tuple]:
    """The rows counted among all lines (stored and new) of one message id."""
    main = [r for r in rows if not r[_COL["is_sidechain"]]]
    if not main:
        return [min(rows, key=_rank)]
    best: dict[str, tuple] = {}
    for row in main:
        key = row[_COL["dedup_key"]]
        if key not in best or _rank(row) < _rank(best[key]):
            best[key] = row
    return list(best.values())


def on_batch(conn, batch) -> None:
    """Called by the sync engine in the batch's transaction with the new events."""
    candidates = [ev for ev in batch if ev.obj.get("type") == "assistant"]
    if not candidates:
        return
    table = current_table(conn)
    files: dict[int, tuple] = {}
    by_message: dict[str, list[tuple]] = defaultdict(list)
    without_id: list[tuple] = []
    for ev in candidates:
        if ev.file_id not in files:
            files[ev.file_id] = conn.execute(
                "SELECT project_dir, agent_id FROM sync_files WHERE id = ?", (ev.file_id,)
            ).fetchone() or (None, None)
        row = _call_row(ev, files[ev.file_id])
        if row is None:
            continue
        if row[_COL["message_id"]] is None:
            without_id.append(row)
        else:
            by_message[row[_COL["message_id"]]].append(row)
    added = [_priced(row, table) for row in without_id]
    removed: list[tuple] = []
    if by_message:
        removed = _merge(conn, by_message, table, added)
    _write(conn, added, removed)


def _write(conn, added: list[tuple], removed: list[tuple]) -> None:
    """Insert ``added`` (priced rows) and bring usage_sums up to date with both lists."""
    if added:
        before = conn.total_changes
        conn.executemany(_INSERT, added)
        if conn.total_changes - before != len(added):
            # Some rows were there already (a replay of archived lines): count their
            # sums again from api_calls rather than add them twice.
            removed = removed + added
            added = []
    if added or removed:
        usage_sums.changed(conn, [_SOURCE(r) for r in added], [_SOURCE(r) for r in removed])


def _merge(conn, by_message: dict, table: PriceTable, added: list[tuple]) -> list[tuple]:
    """Merge the new rows of each message id with the stored ones: delete the stored
    rows that no longer count, append the new winners (priced) to ``added``; returns
    the deleted rows."""
    stored: dict[str, list[tuple]] = defaultdict(list)
    ids = list(by_message)
    cols = ", ".join(API_CALL_COLUMNS)
    for start in range(0, len(ids), 500):
        chunk = ids[start : start + 500]
        sql = (
            f"SELECT id, {cols} FROM api_calls WHERE message_id IN ({', '.join('?' * len(chunk))})"
        )
        for rowid, *row in conn.execute(sql, chunk):
            stored[row[_COL["message_id"]]].append((rowid, tuple(row)))
    deletes, removed = [], []
    for message_id, new_rows in by_message.items():
        old = stored.get(message_id, [])
        old_rows = {row: rowid for rowid, row in old}
        winners = set(_winners([*old_rows, *new_rows]))
        for row, rowid in old_rows.items():
            if row not in winners:
                deletes.append((rowid,))
                removed.append(row)
        added.extend(_priced(row, table) for row in winners if row not in old_rows)
    if deletes:
        conn.executemany("DELETE FROM api_calls WHERE id = ?", deletes)
    return removed


# ---------------------------------------------------------------------------
# Prices stored with the archive


def _setting(conn, key: str) -> str | None:
    row = conn.execute("SELECT value FROM usage_settings WHERE key = ?", (key,)).fetchone()
    return row[0] if row else None


def _set_setting(conn, key: str, value: str | None) -> None:
    conn.execute(
        "INSERT INTO usage_settings (key, value) VALUES (?, ?) "
        "ON CONFLICT(key) DO UPDATE SET value = excluded.value",
        (key, value),
    )


def current_table(conn) -> PriceTable:
    """The built-in prices with the archive's stored overrides; re-prices stored calls
    when that table changed since they were priced (a new package version, new overrides)."""
    from .pricing import table_for

    table = table_for(_setting(conn, "price_overrides"))
    fingerprint = table.fingerprint()
    if _setting(conn, "prices_fingerprint") != fingerprint:
        reprice(conn, table)
        _set_setting(conn, "prices_fingerprint", fingerprint)
    return table


def set_price_overrides(conn, overrides: dict | None) -> PriceTable:
    """Store an override file's data (None clears it) and re-price every call."""
    _set_setting(conn, "price_overrides", json.dumps(overrides) if overrides else None)
    return current_table(conn)


def register_cost_function(conn, table: PriceTable, name: str = "call_cost") -> None:
    """``call_cost(model, input, output, write_5m, write_1h, read, speed)`` in SQL."""
    conn.create_function(name, 7, table.cost, deterministic=True)


def reprice(conn, table: PriceTable) -> int:
    """Recompute cost_usd and priced of every stored call with ``table``."""
    register_cost_function(conn, table, "_reprice_cost")
    cur = conn.execute(
        "UPDATE api_calls SET cost_usd = _reprice_cost(model, input_tokens, output_tokens, "
        "cache_creation_5m_tokens, cache_creation_1h_tokens, cache_read_tokens, speed)"
    )
    conn.execute("UPDATE api_calls SET priced = cost_usd IS NOT NULL")
    usage_sums.rebuild(conn)
    return cur.rowcount


# ---------------------------------------------------------------------------
# Rebuilding from events (after a merge, or to repair)


def events_as_new(conn, where: str = "1", params: tuple = ()):
    """Archived assistant lines as NewEvent objects, like the sync engine hands them over."""
    sql = (
        "SELECT e.id, e.file_id, e.raw, f.session_id, f.host FROM events e "
        f"JOIN sync_files f ON f.id = e.file_id WHERE e.type = 'assistant' AND ({where}) "
        "ORDER BY e.id"
    )
    for event_id, file_id, raw, file_session, host in conn.execute(sql, params):
        try:
            obj = load_record(
                line_bytes(raw, conn)
            )  # the engine's own parse (lone surrogates included)
        except (ValueError, RecursionError):
            continue
        cols = [None] * len(EVENT_COLUMNS)
        session_id = obj.get("sessionId")
        cols[SESSION_ID_INDEX] = session_id if isinstance(session_id, str) else file_session
        yield NewEvent(event_id, file_id, obj, tuple(cols), host)


def rebuild(conn, *, batch_size: int = 5000) -> int:
    """Empty api_calls and fill it again from the archived lines; returns the row count."""
    conn.execute("DELETE FROM api_calls")
    conn.execute("DELETE FROM usage_sums")
    batch: list[NewEvent] = []
    for ev in events_as_new(conn):
        batch.append(ev)
        if len(batch) >= batch_size:
            on_batch(conn, batch)
            batch = []
    if batch:
        on_batch(conn, batch)
    return conn.execute("SELECT count(*) FROM api_calls").fetchone()[0]


def unpriced_models(conn) -> list[dict]:
    """Models of stored calls without a price: model, calls, total_tokens, last_call."""
    rows = conn.execute(
        "SELECT model, count(*), sum(total_tokens), max(timestamp) FROM api_calls "
        "WHERE priced = 0 GROUP BY model ORDER BY count(*) DESC"
    ).fetchall()
    return [
        {"model": model, "calls": calls, "total_tokens": tokens, "last_call": last}
        for model, calls, tokens, last in rows
    ]
