"""5-hour billing blocks: the one implementation behind the ``usage_blocks`` view,
``claude-sessions cost --by block``, the status page, ``status`` and ``statusline``.

The rule: a block starts at the hour (floored, UTC) of the first call after the previous
block ended, and lasts 5 hours.  Blocks end on whole hours, so hourly sums are exact.
It is written once, in SQL (BLOCKS_SQL); the view is that SQL over every call, and
``blocks()`` runs it over the calls a report picks, with the cost expression it prices
by and the time the running block is judged at.  ``project()`` adds, for the running
block, the cost at its end if calls go on at its burn rate.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from .clock import parse_ts

BLOCK_HOURS = 5
# A burn rate ($/hour, tokens/hour) needs calls spread over at least this many minutes:
# four calls a few seconds apart would otherwise read as dollars per hour.
MIN_RATE_MINUTES = 10
# The calls blocks are made of: those whose timestamp is a time by the one rule of
# ingest/localdays.py (its first 16 characters a real UTC date and minute).  A line's
# timestamp is whatever text it holds, and one that is not a time (hostile or damaged
# lines) belongs to no block, as a call without a timestamp does (it still counts in
# every other total).  usage_sums holds it under slot NULL; over api_calls the SQL
# function claude_sessions_quarter() (registered by ``blocks``) applies the same rule.
QUARTER = "claude_sessions_quarter(timestamp)"

# The rule in SQL: per UTC hour sums,
# then a recursive walk over the hours in order that starts a block at the first hour at
# or after the previous block's end.  ``{where}`` filters api_calls, ``{cost}`` is the
# cost expression (cost_usd, or a --pricing function), ``{now}`` the time the running
# block is judged at (``'now'`` in the view, a timestamp literal otherwise).
# ``{hours}``: the per-hour sums, HOURS_OF_SUMS (usage_sums, the sums the engine keeps
# per quarter hour, whose slot is a time by the one rule of ingest/localdays.py) or
# HOURS_OF_CALLS (every call: for another cost expression, or a window of recent hours
# that the api_calls timestamp index reads at once).
HOURS_OF_SUMS = """
    SELECT row_number() OVER (ORDER BY substr(slot, 1, 13)) AS n,
        substr(slot, 1, 13) AS hour, sum(calls) AS calls,
        sum(input_tokens) AS input_tokens, sum(output_tokens) AS output_tokens,
        sum(cache_creation_5m_tokens + cache_creation_1h_tokens) AS cache_creation_tokens,
        sum(cache_read_tokens) AS cache_read_tokens, sum(total_tokens) AS total_tokens,
        sum(cost_usd) AS cost_usd, sum(unpriced_calls) AS unpriced_calls,
        min(first_call) AS first_call, max(last_call) AS last_call
    FROM usage_sums WHERE slot IS NOT NULL AND ({where})
    GROUP BY hour"""
HOURS_OF_CALLS = """
    SELECT row_number() OVER (ORDER BY substr(claude_sessions_quarter(timestamp), 1, 13)) AS n,
        substr(claude_sessions_quarter(timestamp), 1, 13) AS hour, count(*) AS calls,
        sum(input_tokens) AS input_tokens, sum(output_tokens) AS output_tokens,
        sum(cache_creation_5m_tokens + cache_creation_1h_tokens) AS cache_creation_tokens,
        sum(cache_read_tokens) AS cache_read_tokens, sum(total_tokens) AS total_tokens,
        sum({cost}) AS cost_usd, sum({cost} IS NULL) AS unpriced_calls,
        min(timestamp) AS first_call, max(timestamp) AS last_call
    FROM api_calls WHERE claude_sessions_quarter(timestamp) IS NOT NULL AND ({where})
    GROUP BY hour"""
BLOCKS_SQL = """
WITH RECURSIVE
hours AS MATERIALIZED ({hours}
),
starts (n, block_start) AS (
    SELECT 1, hour FROM hours WHERE n = 1
    UNION ALL
    SELECT h.n, CASE WHEN h.hour >= strftime('%Y-%m-%dT%H', s.block_start || ':00', '+5 hours')
        THEN h.hour ELSE s.block_start END
    FROM starts s JOIN hours h ON h.n = s.n + 1
),
blocks AS (
    SELECT s.block_start || ':00:00Z' AS block_start,
        strftime('%Y-%m-%dT%H:00:00Z', s.block_start || ':00', '+5 hours') AS block_end,
        sum(h.calls) AS calls, sum(h.input_tokens) AS input_tokens,
        sum(h.output_tokens) AS output_tokens,
        sum(h.cache_creation_tokens) AS cache_creation_tokens,
        sum(h.cache_read_tokens) AS cache_read_tokens, sum(h.total_tokens) AS total_tokens,
        sum(h.cost_usd) AS cost_usd, sum(h.unpriced_calls) AS unpriced_calls,
        min(h.first_call) AS first_call, max(h.last_call) AS last_call
    FROM starts s JOIN hours h ON h.n = s.n
    GROUP BY s.block_start
)
SELECT block_start, block_end, calls, input_tokens, output_tokens, cache_creation_tokens,
    cache_read_tokens, total_tokens, cost_usd, unpriced_calls, first_call, last_call,
    CASE WHEN (julianday(last_call) - julianday(first_call)) * 1440 >= {min_rate_minutes}
        THEN total_tokens / ((julianday(last_call) - julianday(first_call)) * 24) END
        AS tokens_per_hour,
    CASE WHEN (julianday(last_call) - julianday(first_call)) * 1440 >= {min_rate_minutes}
        THEN cost_usd / ((julianday(last_call) - julianday(first_call)) * 24) END
        AS cost_per_hour,
    strftime('%Y-%m-%dT%H:%M:%SZ', {now}) >= block_start
        AND strftime('%Y-%m-%dT%H:%M:%SZ', {now}) < block_end AS is_active
FROM blocks ORDER BY block_start"""

# The columns of a usage_blocks row: the span, the figures every usage_by_* view adds up
# (ingest.usage.ROLLUP_COLUMNS), the burn rate and whether the block runs now.
BLOCK_COLUMNS = (
    "block_start",
    "block_end",
    "calls",
    "input_tokens",
    "output_tokens",
    "cache_creation_tokens",
    "cache_read_tokens",
    "total_tokens",
    "cost_usd",
    "unpriced_calls",
    "first_call",
    "last_call",
    "tokens_per_hour",
    "cost_per_hour",
    "is_active",
)


def register_quarter(conn) -> None:
    """claude_sessions_quarter(timestamp): the UTC quarter hour of a time, NULL for what
    is not a time (ingest.localdays.quarter)."""
    from .localdays import quarter

    conn.create_function("claude_sessions_quarter", 1, quarter, deterministic=True)


def view_sql(hours: str = HOURS_OF_SUMS) -> str:
    """The SELECT of the usage_blocks view (every call, stored costs, judged at 'now'):
    over usage_sums since m901 (``HOURS_OF_CALLS`` gives the view as m102-m601 made it)."""
    return BLOCKS_SQL.format(
        hours=hours.format(where="1", cost="cost_usd"),
        min_rate_minutes=MIN_RATE_MINUTES,
        now="'now'",
    )


def _stamp(now: datetime) -> str:
    return "'" + now.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ") + "'"


def blocks(
    conn,
    where: str = "1",
    params: tuple = (),
    cost: str = "cost_usd",
    now: datetime | None = None,
    calls: bool = False,
) -> list[dict]:
    """The blocks of the calls matching ``where``, oldest first: dicts of BLOCK_COLUMNS,
    with ``active`` and ``projected_cost_usd`` (see project) judged at ``now`` (default:
    the current time).  ``where`` filters usage_sums (its time column: slot), or
    api_calls (timestamp) when ``cost`` is not the stored cost_usd or ``calls``."""
    now = now or datetime.now(UTC)
    hours = HOURS_OF_SUMS if cost == "cost_usd" and not calls else HOURS_OF_CALLS
    register_quarter(conn)
    sql = BLOCKS_SQL.format(
        hours=hours.format(where=where, cost=cost),
        min_rate_minutes=MIN_RATE_MINUTES,
        now=_stamp(now),
    )
    rows = [dict(zip(BLOCK_COLUMNS, row, strict=True)) for row in conn.execute(sql, params)]
    for row in rows:
        project(row, now)
    return rows


def project(block: dict, now: datetime) -> dict:
    """Set ``active`` and ``projected_cost_usd`` on a usage_blocks row: for the running
    block, its cost at the block's end if calls go on at its burn rate (its cost so far
    when it has no rate); None for the others."""
    block["active"] = bool(block["is_active"])
    block["projected_cost_usd"] = None
    if block["active"]:
        remaining = max((parse_ts(block["block_end"]) - now).total_seconds(), 0) / 3600
        block["projected_cost_usd"] = block["cost_usd"]
        if block["cost_per_hour"] is not None:
            block["projected_cost_usd"] += block["cost_per_hour"] * remaining
    return block


def current_block(conn, now: datetime | None = None) -> dict | None:
    """The block running at ``now`` (default: the current time), or None: a blocks() row.

    Only the calls of the last hours are read: the window grows until the block it ends
    with is exact, which it is once it starts after a gap of 5 hours (or nothing at all),
    since an hour after such a gap starts a block whatever came before."""
    now = now or datetime.now(UTC)
    until = now.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.999Z")
    window = 2 * BLOCK_HOURS
    gap = timedelta(hours=BLOCK_HOURS)
    while True:
        since = (now - timedelta(hours=window)).astimezone(UTC).strftime("%Y-%m-%dT%H")
        found = blocks(
            conn, "timestamp >= ? AND timestamp <= ?", (since, until), now=now, calls=True
        )
        if not found:
            return None
        # a block that starts 5 hours or more after the previous block's last call hour
        if any(
            parse_ts(b["block_start"]) - _hour(a["last_call"]) >= gap
            for a, b in zip(found, found[1:], strict=False)
        ):
            break
        first = found[0]["block_start"][:13]
        before = (parse_ts(found[0]["block_start"]) - gap).strftime("%Y-%m-%dT%H")
        earlier = conn.execute(
            f"SELECT 1 FROM api_calls WHERE timestamp >= ? AND timestamp < ? AND {QUARTER} "
            "IS NOT NULL "
            "LIMIT 1",
            (before, first),
        ).fetchone()
        if earlier is None:
            break
        window *= 2
    last = found[-1]
    return last if last["active"] else None


def _hour(timestamp: str) -> datetime:
    return parse_ts(timestamp[:13] + ":00:00Z")
