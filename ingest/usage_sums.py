"""``usage_sums``: api_calls summed per UTC quarter hour, session, subagent, model,
project and machine, kept by the engine.

The usage_by_* views, the usage_blocks view, the dashboard and `claude-sessions cost`
read these sums instead of adding up every API call on each request (210,000 calls on
a 1 GB archive cost 200-360 ms per view; their sums are 32,000 rows).  A quarter hour
lies in one local day in every zone in use (ingest/localdays.py), so local days, weeks
and months are exact in any time zone, and 5-hour blocks (whole UTC hours) too.

Kept exact, in the same transaction as the api_calls rows they sum:
- calls added to api_calls are added to their row here (``changed``);
- a row whose calls changed otherwise (a better line of the same call replaced one) is
  counted again from api_calls;
- anything that rewrites api_calls wholesale (re-pricing, a rebuild, `share`) counts
  them all again (``rebuild``), as migration m901 does for older archives.
The sums over usage_sums equal the sums over api_calls (tests/test_usage_sums.py).
"""

from __future__ import annotations

import sqlite3

from .localdays import next_quarter, quarter

# The row's key: a call's key columns, with its timestamp's quarter hour as slot.
KEY = ("session_id", "agent_id", "slot", "model", "project", "host", "is_sidechain")
# What each call adds to its row, as api_calls holds it.
_TOTALS = (
    "input_tokens",
    "output_tokens",
    "cache_creation_5m_tokens",
    "cache_creation_1h_tokens",
    "cache_read_tokens",
    "total_tokens",
    "cost_usd",
)
SUMS = ("calls", *_TOTALS, "unpriced_calls", "first_call", "last_call")
# The api_calls columns a call is summed from, in the order ``changed`` takes them: the
# key's (the timestamp for its quarter hour), then the totals.
SOURCE = (*("timestamp" if c == "slot" else c for c in KEY), *_TOTALS)
# NULL is a value of its own in the key (the main thread has no agent_id): each nullable
# key column is indexed as itself or, for NULL, an empty BLOB, which equals no text.
_KEY_SQL = ", ".join(c if c == "is_sidechain" else f"ifnull({c}, x'')" for c in KEY)
_KEY_MATCH = " AND ".join(
    f"{c} = ?" if c == "is_sidechain" else f"ifnull({c}, x'') = ifnull(?, x'')" for c in KEY
)

DDL = f"""
-- api_calls summed per UTC quarter hour x session x subagent x model x project x host
-- (ingest/usage_sums.py); kept by the engine with the api_calls rows.
CREATE TABLE IF NOT EXISTS usage_sums (
    session_id TEXT,                 -- the calls' session
    agent_id TEXT,                   -- NULL on the main thread
    slot TEXT,                       -- UTC quarter hour YYYY-MM-DDTHH:MM; NULL: not a time
    model TEXT,
    project TEXT,                    -- encoded project folder (sync_files.project_dir)
    host TEXT,                       -- machine the transcripts were archived from
    is_sidechain INTEGER NOT NULL,
    calls INTEGER NOT NULL,          -- api_calls rows summed
    input_tokens INTEGER NOT NULL,
    output_tokens INTEGER NOT NULL,
    cache_creation_5m_tokens INTEGER NOT NULL,
    cache_creation_1h_tokens INTEGER NOT NULL,
    cache_read_tokens INTEGER NOT NULL,
    total_tokens INTEGER NOT NULL,
    cost_usd REAL,                   -- of the priced calls; NULL when none is priced
    unpriced_calls INTEGER NOT NULL, -- calls of models without a price
    first_call TEXT,                 -- min(timestamp) of the calls
    last_call TEXT                   -- max(timestamp) of the calls
);
CREATE UNIQUE INDEX IF NOT EXISTS idx_usage_sums_key ON usage_sums ({_KEY_SQL});
"""

_COLUMNS = (*KEY, *SUMS)
_ADD = f"""
INSERT INTO usage_sums ({", ".join(_COLUMNS)}) VALUES ({", ".join("?" for _ in _COLUMNS)})
ON CONFLICT ({_KEY_SQL}) DO UPDATE SET
    calls = calls + excluded.calls,
    input_tokens = input_tokens + excluded.input_tokens,
    output_tokens = output_tokens + excluded.output_tokens,
    cache_creation_5m_tokens = cache_creation_5m_tokens + excluded.cache_creation_5m_tokens,
    cache_creation_1h_tokens = cache_creation_1h_tokens + excluded.cache_creation_1h_tokens,
    cache_read_tokens = cache_read_tokens + excluded.cache_read_tokens,
    total_tokens = total_tokens + excluded.total_tokens,
    cost_usd = CASE WHEN excluded.cost_usd IS NULL THEN cost_usd
        WHEN cost_usd IS NULL THEN excluded.cost_usd ELSE cost_usd + excluded.cost_usd END,
    unpriced_calls = unpriced_calls + excluded.unpriced_calls,
    first_call = CASE WHEN first_call IS NULL OR excluded.first_call < first_call
        THEN coalesce(excluded.first_call, first_call) ELSE first_call END,
    last_call = CASE WHEN last_call IS NULL OR excluded.last_call > last_call
        THEN coalesce(excluded.last_call, last_call) ELSE last_call END
"""


def key_of(call: tuple) -> tuple:
    """The usage_sums key of a call given as SOURCE values."""
    sid, aid, ts, model, project, host, side = call[:7]
    return (sid, aid, quarter(ts), model, project, host, side)


def fold(calls, into: dict | None = None) -> dict:
    """Calls (SOURCE tuples) summed per key: {key: [SUMS values]}."""
    acc = {} if into is None else into
    for call in calls:
        ts = call[2]
        key = (call[0], call[1], quarter(ts), call[3], call[4], call[5], call[6])
        cost = call[13]
        sums = acc.get(key)
        if sums is None:
            acc[key] = [1, *call[7:13], cost, 1 if cost is None else 0, ts, ts]
            continue
        sums[0] += 1
        sums[1] += call[7]
        sums[2] += call[8]
        sums[3] += call[9]
        sums[4] += call[10]
        sums[5] += call[11]
        sums[6] += call[12]
        if cost is None:
            sums[8] += 1
        elif sums[7] is None:
            sums[7] = cost
        else:
            sums[7] += cost
        if ts is not None:
            if sums[9] is None or ts < sums[9]:
                sums[9] = ts
            if sums[10] is None or ts > sums[10]:
                sums[10] = ts
    return acc


def _write(conn: sqlite3.Connection, acc: dict) -> None:
    if acc:
        conn.executemany(_ADD, [(*key, *sums) for key, sums in acc.items()])


def changed(conn: sqlite3.Connection, added: list[tuple], removed: list[tuple]) -> None:
    """Bring the sums up to date after api_calls gained ``added`` and lost ``removed``
    (SOURCE tuples), in the caller's transaction (called once the rows are written)."""
    touched = {key_of(call) for call in removed}
    acc = fold(added)
    for key in touched:
        acc.pop(key, None)
    _write(conn, acc)
    for key in touched:
        recount(conn, key)


def recount(conn: sqlite3.Connection, key: tuple) -> None:
    """Count one row of usage_sums again from api_calls."""
    session_id, agent_id, slot = key[:3]
    sql = f"SELECT {', '.join(SOURCE)} FROM api_calls WHERE session_id IS ? AND agent_id IS ?"
    params: list = [session_id, agent_id]
    if slot is not None:
        sql += " AND timestamp >= ? AND timestamp < ?"
        params += [slot, next_quarter(slot)]
    calls = [call for call in conn.execute(sql, params) if key_of(call) == key]
    conn.execute(f"DELETE FROM usage_sums WHERE {_KEY_MATCH}", key)
    _write(conn, fold(calls))


def rebuild(conn: sqlite3.Connection, progress=None) -> int:
    """Count every row of usage_sums again from api_calls; returns the number of rows.
    ``progress(n)`` is called as calls are read."""
    conn.execute("DELETE FROM usage_sums")
    # In (session_id, agent_id) order, from the index: every key of one session and
    # agent is complete once the next pair starts, so the sums in memory stay small.
    cursor = conn.execute(
        f"SELECT {', '.join(SOURCE)} FROM api_calls ORDER BY session_id, agent_id"
    )
    acc: dict = {}
    pair = None
    while True:
        calls = cursor.fetchmany(2000)
        if not calls:
            break
        for call in calls:
            if call[:2] != pair:
                if len(acc) > 5000:
                    _write(conn, acc)
                    acc = {}
                pair = call[:2]
            fold((call,), acc)
        if progress is not None:
            progress(len(calls))
    _write(conn, acc)
    return conn.execute("SELECT count(*) FROM usage_sums").fetchone()[0]
