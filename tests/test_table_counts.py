"""Table pages of the archive count their rows for at most TABLE_COUNT_MS: past that the
page shows its rows without the total (issue 12: every table page <= 500 ms at 1 GB),
while custom SQL, canned queries and other databases keep Datasette's own limits."""

from __future__ import annotations

import sqlite3

import pytest
from datasette.app import Datasette

import datasette_claude_sessions
from datasette_claude_sessions.metadata import load_metadata
from ingest.lines import register as register_lines

from .pages_helpers import build_archive

# Cheap for the page's few rows, about a second for a count of every row (well past
# TABLE_COUNT_MS, well within sql_time_limit_ms): 500 KB of random bytes per row looked at.
HEAVY = "length(randomblob(500000)) > 0"


@pytest.fixture(scope="module")
def archive(tmp_path_factory):
    return build_archive(tmp_path_factory.mktemp("counts"))


def serve_like(*paths, limit_ms: int = 20_000) -> Datasette:
    return Datasette(
        [str(p) for p in paths],
        metadata=load_metadata(),
        settings={"sql_time_limit_ms": limit_ms, "suggest_facets": False},
    )


@pytest.mark.asyncio
async def test_a_long_count_stops_and_the_rows_still_come(archive):
    ds = serve_like(archive)
    response = await ds.client.get(
        "/claude-sessions/events.json", params={"_where": HEAVY, "_size": "3"}
    )
    assert response.status_code == 200
    data = response.json()
    assert len(data["rows"]) == 3
    assert data["filtered_table_rows_count"] is None  # stopped after TABLE_COUNT_MS
    # (the same count, left to run, finishes: it is the cap that stopped it)
    conn = sqlite3.connect(archive)
    register_lines(conn)
    assert conn.execute(f"select count(*) from events where {HEAVY}").fetchone()[0] > 3
    conn.close()
    page = await ds.client.get("/claude-sessions/events", params={"_where": HEAVY, "_size": "3"})
    assert page.status_code == 200 and "↗ transcript" in page.text


@pytest.mark.asyncio
async def test_short_counts_are_exact(archive):
    ds = serve_like(archive)
    conn = sqlite3.connect(archive)
    register_lines(conn)
    total = conn.execute("select count(*) from events").fetchone()[0]
    prompts = conn.execute("select count(*) from events where kind = 'prompt'").fetchone()[0]
    conn.close()
    data = (await ds.client.get("/claude-sessions/events.json?_size=1")).json()
    assert data["filtered_table_rows_count"] == total > 0
    data = (await ds.client.get("/claude-sessions/events.json?kind=prompt&_size=1")).json()
    assert data["filtered_table_rows_count"] == prompts > 0


@pytest.mark.asyncio
async def test_custom_sql_and_other_databases_keep_datasettes_limit(archive, tmp_path, monkeypatch):
    # A very short cap makes any count of the archive's table pages stop ...
    monkeypatch.setattr(datasette_claude_sessions, "TABLE_COUNT_MS", 1)
    other = tmp_path / "other.db"
    conn = sqlite3.connect(other)
    register_lines(conn)
    conn.execute("create table t (id integer primary key, v text)")
    conn.executemany("insert into t (v) values (?)", [(str(i),) for i in range(40)])
    conn.commit()
    conn.close()
    ds = serve_like(archive, other)
    light = "length(randomblob(20000)) > 0"
    data = (await ds.client.get("/claude-sessions/events.json", params={"_where": light})).json()
    assert data["filtered_table_rows_count"] is None
    # ... but not a query of one's own over the same rows,
    sql = f"select count(*) as n from events where {light}"
    rows = (
        await ds.client.get("/claude-sessions.json", params={"sql": sql, "_shape": "array"})
    ).json()
    conn = sqlite3.connect(archive)
    register_lines(conn)
    assert rows == [{"n": conn.execute("select count(*) from events").fetchone()[0]}]
    conn.close()
    # ... nor a database that is not an archive.
    data = (await ds.client.get("/other/t.json", params={"_where": light})).json()
    assert data["filtered_table_rows_count"] == 40


@pytest.mark.asyncio
async def test_a_views_count_gets_its_own_shorter_limit(archive, monkeypatch):
    """A view's count computes the view again: it stops after VIEW_COUNT_MS, a table's
    after TABLE_COUNT_MS."""
    monkeypatch.setattr(datasette_claude_sessions, "VIEW_COUNT_MS", 1)
    monkeypatch.setattr(datasette_claude_sessions, "TABLE_COUNT_MS", 100_000)
    ds = serve_like(archive)
    where = {"_where": "length(randomblob(200000)) > 0", "_size": "2"}
    view = (await ds.client.get("/claude-sessions/usage_by_agent.json", params=where)).json()
    assert len(view["rows"]) == 2 and view["filtered_table_rows_count"] is None
    table = (await ds.client.get("/claude-sessions/events.json", params=where)).json()
    conn = sqlite3.connect(archive)
    register_lines(conn)
    assert (
        table["filtered_table_rows_count"]
        == conn.execute("select count(*) from events").fetchone()[0]
    )
    conn.close()
