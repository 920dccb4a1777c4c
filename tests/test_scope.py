"""The plugin minds its own business (issue 11.4): a Datasette without an archive looks
exactly as it does without the plugin installed; a plain `datasette archive.db` (no
--metadata) gets the archive's home page, menu, canned queries, column descriptions and
usage dashboard from the plugin's hooks."""

from __future__ import annotations

import re
import sqlite3
from contextlib import contextmanager

import pytest
from datasette.app import Datasette
from datasette.plugins import pm

import datasette_claude_sessions as plugin
from ingest.lines import register as register_lines
from ingest.sync import run_pass


@contextmanager
def plugin_uninstalled():
    """Datasette as it is without this plugin (the other installed plugins stay)."""
    name = pm.get_name(plugin)
    pm.unregister(plugin)
    try:
        yield
    finally:
        pm.register(plugin, name)


@pytest.fixture
def other_db(tmp_path):
    """Someone else's database whose tables happen to be called events and sessions."""
    path = tmp_path / "other.db"
    conn = sqlite3.connect(path)
    register_lines(conn)
    conn.executescript(
        """
        CREATE TABLE sessions (session_id TEXT PRIMARY KEY, title TEXT);
        CREATE TABLE events (id INTEGER PRIMARY KEY, session_id TEXT, kind TEXT);
        INSERT INTO sessions VALUES ('s-1', 'A title'), ('s-2', 'Another');
        INSERT INTO events VALUES (1, 's-1', 'login'), (2, 's-2', 'logout');
        """
    )
    conn.commit()
    conn.close()
    return path


@pytest.fixture
def archive(real_projects, tmp_path):
    path = tmp_path / "mine.db"
    run_pass(path, [real_projects])
    return path


PAGES = [
    "/",
    "/other",
    "/other/events",
    "/other/sessions",
    "/other/events.json?_shape=array",
    "/-/metadata.json",
    "/-/databases.json",
]


def normalise(text: str) -> str:
    # Timings vary from one request to the next.
    return re.sub(r"[\d.]+ ?ms", "N ms", text)


async def fetch_all(paths, files, **kwargs) -> dict:
    ds = Datasette([str(f) for f in files], **kwargs)
    out = {}
    for path in paths:
        response = await ds.client.get(path)
        headers = sorted((k, v) for k, v in response.headers.items() if k != "date")
        out[path] = (response.status_code, headers, normalise(response.text))
    return out


@pytest.mark.asyncio
async def test_another_datasette_looks_as_without_the_plugin(other_db):
    with_plugin = await fetch_all(PAGES, [other_db])
    with plugin_uninstalled():
        without = await fetch_all(PAGES, [other_db])
    for path in PAGES:
        assert with_plugin[path] == without[path], path
    # What the plugin used to change: its home page, the menu item, transcript links.
    assert "No archive attached" not in with_plugin["/"][2]
    assert "Sync status" not in with_plugin["/"][2]
    assert "transcript" not in with_plugin["/other/events"][2]
    # Headers too: no Content-Security-Policy of ours on someone else's pages.
    assert "content-security-policy" not in dict(with_plugin["/"][1])
    # A Host name the archive's guard would refuse is none of our business here.
    ds = Datasette([str(other_db)])
    response = await ds.client.get("/", headers={"host": "example.com"})
    assert response.status_code == 200


@pytest.mark.asyncio
async def test_render_cell_only_in_the_archive(other_db, archive):
    ds = Datasette([str(other_db), str(archive)])
    mine = (await ds.client.get("/mine/events?_size=5")).text
    assert "↗ transcript" in mine
    other = (await ds.client.get("/other/events")).text
    assert "↗ transcript" not in other and "/-/claude-sessions/session/" not in other
    titles = (await ds.client.get("/other/sessions")).text
    assert "/-/claude-sessions/session/" not in titles
    # Home and menu are the archive's, since one is served.
    home = (await ds.client.get("/")).text
    assert "Sync status" in home and "/-/claude-sessions/search" in home
    # The table script (column descriptions folded) only on the archive's tables.
    assert "columns.js" in mine and "columns.js" not in other


@pytest.mark.asyncio
async def test_plain_datasette_archive_gets_queries_descriptions_and_dashboard(archive):
    ds = Datasette([str(archive)])  # no --metadata, no plugin settings
    home = await ds.client.get("/")
    assert home.status_code == 200 and "/-/claude-sessions/session/" in home.text
    assert "Sync status" in home.text
    queries = {q["name"] for q in (await ds.client.get("/mine.json")).json()["queries"]}
    assert {"recent_sessions", "tool_usage", "search"} <= queries
    metadata = (await ds.client.get("/-/metadata.json")).json()
    columns = metadata["databases"]["mine"]["tables"]["events"]["columns"]
    assert columns["raw"] and columns["session_id"]
    table = (await ds.client.get("/mine/api_calls")).text
    assert metadata["databases"]["mine"]["tables"]["api_calls"]["columns"]["cost_usd"] in table
    dashboards = metadata["plugins"]["datasette-dashboards"]
    charts = dashboards["claude-usage"]["charts"]
    assert {chart["db"] for chart in charts.values() if "db" in chart} == {"mine"}
    page = await ds.client.get("/-/dashboards/claude-usage")
    assert page.status_code == 200
    # A chart's query runs against the archive as the dashboard would run it.
    sql = charts["total-cost"]["query"]
    sql = re.sub(r"\[\[.*?\]\]", "", sql, flags=re.S)
    result = await ds.client.get("/mine.json", params={"sql": sql, "_shape": "array"})
    assert result.status_code == 200 and result.json()


@pytest.mark.asyncio
async def test_metadata_given_by_the_user_wins(archive, tmp_path):
    ds = Datasette(
        [str(archive)],
        metadata={
            "title": "My own title",
            "databases": {"mine": {"tables": {"events": {"description": "Mine"}}}},
        },
    )
    metadata = (await ds.client.get("/-/metadata.json")).json()
    assert metadata["title"] == "My own title"
    assert metadata["databases"]["mine"]["tables"]["events"]["description"] == "Mine"
    # The rest still comes from the plugin.
    assert metadata["databases"]["mine"]["tables"]["events"]["columns"]["raw"]
    # Asking again gives the same (the hook's answer is not changed by the merge).
    again = (await ds.client.get("/-/metadata.json")).json()
    assert again == metadata


@pytest.mark.asyncio
async def test_serve_setting_names_the_archive(archive, other_db):
    """The `database` setting `claude-sessions serve` writes decides, whatever the
    tables: here it names `other`, so `mine` is left alone."""
    ds = Datasette(
        [str(other_db), str(archive)],
        metadata={"plugins": {"datasette-claude-sessions": {"database": "other"}}},
    )
    mine = (await ds.client.get("/mine/events?_size=5")).text
    assert "↗ transcript" not in mine
    other = (await ds.client.get("/other/events")).text
    assert "↗ transcript" in other
