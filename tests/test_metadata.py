"""metadata.yml: descriptions for the whole schema, valid table settings, canned queries
that run read-only and return rows on the real samples."""

from __future__ import annotations

import sqlite3

import pytest
import yaml
from datasette.app import Datasette

from datasette_claude_sessions import metadata_path
from datasette_claude_sessions.metadata import load_metadata
from ingest.lines import register as register_lines

from .pages_helpers import build_archive, datasette_for, fixture

QUERY_ARGS = {
    "search": "?q=claude",
    "project_sessions": "?project=claude",
    "sessions_touching_file": "?path=.py",
}


@pytest.fixture(scope="module")
def archive(tmp_path_factory):
    # The real samples plus a file with unreadable lines, so ingest_errors has rows.
    tmp = tmp_path_factory.mktemp("meta")
    return build_archive(tmp, extra={"-tmp-edge/edge.jsonl": fixture("edge_cases.jsonl")})


@pytest.fixture(scope="module")
def archive_meta():
    return load_metadata()["databases"]["claude-sessions"]


def schema(db_path) -> dict[str, tuple[str, list[str]]]:
    conn = sqlite3.connect(db_path)
    register_lines(conn)  # the events_json view's raw_json()
    objects = {}
    for name, kind in conn.execute(
        "select name, type from sqlite_master where type in ('table', 'view') "
        "and name not like '%\\_fts\\_%' escape '\\' and name != 'sqlite_stat1'"
    ):
        columns = [row[1] for row in conn.execute(f"pragma table_xinfo([{name}])") if row[6] != 1]
        objects[name] = (kind, columns)
    conn.close()
    return objects


def test_every_table_and_column_is_described(archive, archive_meta):
    tables = archive_meta["tables"]
    for name, (kind, columns) in schema(archive).items():
        assert tables.get(name, {}).get("description"), f"{name} ({kind}) has no description"
        described = tables[name].get("columns") or {}
        missing = [c for c in columns if not described.get(c)]
        assert not missing, f"{name} ({kind}): no description for {missing}"


def test_table_settings_name_real_columns(archive, archive_meta):
    objects = schema(archive)
    for name, settings in archive_meta["tables"].items():
        assert name in objects, f"metadata.yml describes {name}, which does not exist"
        columns = objects[name][1]
        for key in ("label_column", "sort", "sort_desc"):
            if key in settings:
                assert settings[key] in columns, (name, key)
        for column in settings.get("columns") or {}:
            assert column in columns, (name, column)
        for facet in settings.get("facets") or []:
            column = facet if isinstance(facet, str) else next(iter(facet.values()))
            assert column in columns, (name, facet)
    assert archive_meta["tables"]["sessions"]["label_column"] == "title"
    assert archive_meta["tables"]["projects"]["label_column"] == "name"
    assert archive_meta["tables"]["sync_files"]["label_column"] == "rel_path"
    assert archive_meta["tables"]["events"]["fts_table"] == "events_fts"


def test_canned_queries_are_read_only(archive, archive_meta):
    from ingest.localdays import register

    conn = sqlite3.connect(archive)
    conn.execute("pragma query_only = 1")
    register(conn, None)  # the local-day functions the plugin adds to archive connections
    register_lines(conn)  # and the lines functions (events.text is worked out from raw)
    for name, query in archive_meta["queries"].items():
        assert not query.get("write"), name
        assert query["sql"].lstrip().lower().startswith(("select", "with")), name
        params = {p: "x" for p in ("q", "project", "path")}
        conn.execute(query["sql"], {k: v for k, v in params.items() if f":{k}" in query["sql"]})
    conn.close()


@pytest.mark.asyncio
async def test_canned_queries_return_rows(archive, archive_meta):
    ds = datasette_for(archive)
    for name in archive_meta["queries"]:
        response = await ds.client.get(f"/claude-sessions/{name}.json{QUERY_ARGS.get(name, '')}")
        assert response.status_code == 200, (name, response.text[:300])
        data = response.json()
        assert data["ok"], name
        assert data["rows"], f"{name} returned no rows"
        html = await ds.client.get(f"/claude-sessions/{name}{QUERY_ARGS.get(name, '')}")
        assert html.status_code == 200, name


@pytest.mark.asyncio
async def test_table_pages_use_the_settings(archive):
    ds = datasette_for(archive)
    sessions = (await ds.client.get("/claude-sessions/sessions.json?_shape=objects")).json()
    stamps = [r["last_timestamp"] or "" for r in sessions["rows"]]
    assert stamps == sorted(stamps, reverse=True)
    assert {"project_path", "models", "git_branch", "first_timestamp"} <= set(
        sessions["facet_results"]
    )
    search = (await ds.client.get("/claude-sessions/events.json?_search=renderer")).json()
    assert search["rows"]
    page = await ds.client.get("/claude-sessions/tool_calls")
    assert "One row per tool call" in page.text


def test_metadata_for_another_database_name():
    data = load_metadata("work")
    assert "work" in data["databases"] and "claude-sessions" not in data["databases"]
    assert "queries" in data["databases"]["work"]
    dumped = yaml.safe_dump(data.get("plugins", {}).get("datasette-dashboards", {}))
    assert "db: claude-sessions" not in dumped
    original = yaml.safe_load(metadata_path().read_text(encoding="utf-8"))
    assert "claude-sessions" in original["databases"]


@pytest.mark.asyncio
async def test_canned_queries_without_metadata(archive, archive_meta, tmp_path):
    """Plain `datasette claude-sessions.db` (no --metadata) has the canned queries, under
    whatever name the archive is served; other databases get none; the usage dashboard
    is there too (the get_metadata hook configures datasette-dashboards, issue 11.4)."""
    other = tmp_path / "other.db"
    sqlite3.connect(other).execute("create table t (id integer)").connection.close()
    ds = Datasette([str(archive), str(other)])
    names = set(archive_meta["queries"])
    listed = (await ds.client.get("/claude-sessions.json")).json()["queries"]
    assert {q["name"] for q in listed} == names
    rows = (await ds.client.get("/claude-sessions/recent_sessions.json?_shape=array")).json()
    assert rows and "session_id" in rows[0]
    assert (await ds.client.get("/other.json")).json()["queries"] == []
    home = await ds.client.get("/")
    assert "Tables and queries" in home.text
    assert '<a href="/-/dashboards">Dashboards</a> ·' in home.text  # our link


@pytest.mark.asyncio
async def test_canned_queries_are_not_duplicated_with_metadata(archive, archive_meta):
    ds = datasette_for(archive)
    listed = [q["name"] for q in (await ds.client.get("/claude-sessions.json")).json()["queries"]]
    assert sorted(listed) == sorted(archive_meta["queries"])
    assert '<a href="/-/dashboards">Dashboards</a> ·' in (await ds.client.get("/")).text


@pytest.mark.asyncio
async def test_configured_queries_win_over_the_defaults(archive):
    custom = {"recent_sessions": {"sql": "select 42 as answer", "title": "Mine"}}
    ds = Datasette([str(archive)], metadata={"databases": {"claude-sessions": {"queries": custom}}})
    rows = (await ds.client.get("/claude-sessions/recent_sessions.json?_shape=array")).json()
    assert rows == [{"answer": 42}]
    listed = (await ds.client.get("/claude-sessions.json")).json()["queries"]
    assert len(listed) == len(load_metadata()["databases"]["claude-sessions"]["queries"])


# sessions_touching_file as it first was: every tool input parsed, then joined back.
TOUCHING_REFERENCE = """
select s.session_id, s.title, t.name as tool, f.path, count(*) as calls,
  min(t.started_at) as first_call, max(t.started_at) as last_call
from (
  select tool_use_id, coalesce(
    json_extract(input, '$.file_path'), json_extract(input, '$.path'),
    json_extract(input, '$.notebook_path')) as path
  from tool_calls where json_valid(input)
) f
  join tool_calls t on t.tool_use_id = f.tool_use_id
  left join sessions s on s.session_id = t.session_id
where f.path like '%' || :path || '%'
group by t.session_id, t.name, f.path
"""


def test_sessions_touching_file_finds_what_parsing_every_input_finds(tmp_path, archive_meta):
    """The saved query skips parsing inputs that cannot hold the text; on inputs built to
    trip that (Windows paths, quotes, newlines, non-ASCII, \\u escapes, LIKE's _ over an
    escaped character, invalid JSON, a path only in other fields) it returns the same
    rows as parsing every input."""
    import orjson

    db = build_archive(tmp_path)
    conn = sqlite3.connect(db)
    session = conn.execute("select session_id from sessions limit 1").fetchone()[0]
    inputs = [
        orjson.dumps({"file_path": "C:\\Users\\ann\\src\\app.py"}),
        orjson.dumps({"file_path": '/tmp/say "hi".txt', "content": "a\nb"}),
        orjson.dumps({"file_path": "/tmp/new\nline.md"}),
        orjson.dumps({"path": "/srv/café/menu.py"}),
        b'{"file_path": "/srv/caf\\u00e9/escaped.py"}',
        orjson.dumps({"notebook_path": "/nb/Analysis.ipynb"}),
        orjson.dumps({"command": "cat /tmp/app.py", "description": "no path key"}),
        orjson.dumps({"file_path": None, "path": "/second/key.rs"}),
        orjson.dumps({"file_path": 12345}),
        b'{"file_path": "/broken.py"',
    ]
    conn.executemany(
        "insert into tool_calls (tool_use_id, session_id, name, input, started_at) "
        "values (?, ?, 'Read', ?, ?)",
        [
            (f"toolu_trip{i}", session, text.decode(), f"2030-01-01T00:00:{i:02d}Z")
            for i, text in enumerate(inputs)
        ],
    )
    conn.commit()
    sql = archive_meta["queries"]["sessions_touching_file"]["sql"]
    for text in [
        "src\\app",
        "ann_src",
        "users\\ANN",
        '"hi"',
        "say _hi",
        "new\nline",
        "new_line",
        "café",
        "caf_",
        "escaped",
        "ANALYSIS",
        "/tmp/app.py",
        "key.rs",
        "234",
        "broken",
        ".py",
        "",
    ]:
        got = conn.execute(sql, {"path": text}).fetchall()
        expected = conn.execute(TOUCHING_REFERENCE, {"path": text}).fetchall()
        assert sorted(got, key=repr) == sorted(expected, key=repr), text
    some = conn.execute(sql, {"path": "src\\app"}).fetchall()
    assert [r[3] for r in some] == ["C:\\Users\\ann\\src\\app.py"]
    conn.close()


def _spaced(sql: str) -> str:
    return " ".join(sql.lower().split())


def test_sessions_touching_file_reads_only_its_index(archive, archive_meta):
    """Each call's file comes from idx_tool_calls_file (m505), scanned in the query's GROUP
    BY order: no tool input is parsed per request and no tool_calls row is read, so the
    page costs a scan of a small index (it parsed every input: 466 ms at 1 GB)."""
    from ingest.migrations import TOOL_CALL_FILE

    sql = archive_meta["queries"]["sessions_touching_file"]["sql"]
    conn = sqlite3.connect(archive)
    index_sql = conn.execute(
        "select sql from sqlite_master where name = 'idx_tool_calls_file'"
    ).fetchone()[0]
    # One spelling of the expression: the index's and the query's.
    assert _spaced(TOOL_CALL_FILE) in _spaced(index_sql)
    assert _spaced(TOOL_CALL_FILE) in _spaced(sql)
    plan = " | ".join(r[3] for r in conn.execute("explain query plan " + sql, {"path": ".py"}))
    assert "SCAN tool_calls USING INDEX idx_tool_calls_file" in plan, plan
    assert "GROUP BY" not in plan, plan
    table_root = conn.execute(
        "select rootpage from sqlite_master where type = 'table' and name = 'tool_calls'"
    ).fetchone()[0]
    program = conn.execute("explain " + sql, {"path": ".py"}).fetchall()
    table_cursors = {r[2] for r in program if r[1] == "OpenRead" and r[3] == table_root}
    index_cursors = {r[2] for r in program if r[1] == "OpenRead" and r[3] != table_root}
    assert not [r for r in program if r[1] == "Column" and r[2] in table_cursors]
    assert [r for r in program if r[1] == "Column" and r[2] in index_cursors]
    assert not [r for r in program if r[1] in ("Function", "PureFunc") and "json" in str(r[4])]
    assert conn.execute(sql, {"path": ".py"}).fetchall()
    conn.close()


def test_an_old_archive_gets_the_file_index_with_a_progress_bar(tmp_path, archive_meta, capfd):
    from ingest.db import open_db

    db = build_archive(tmp_path)
    sql = archive_meta["queries"]["sessions_touching_file"]["sql"]
    conn = sqlite3.connect(db)
    expected = {
        text: conn.execute(TOUCHING_REFERENCE, {"path": text}).fetchall() for text in (".py", "")
    }
    assert expected[".py"]
    conn.executescript(
        """
        DROP INDEX idx_tool_calls_file;
        DELETE FROM _sqlite_migrations WHERE name = 'm505_tool_call_files';
        """
    )
    conn.close()
    capfd.readouterr()
    conn = open_db(db)
    assert "Indexing the files tool calls touched" in capfd.readouterr().err
    plan = " | ".join(r[3] for r in conn.execute("explain query plan " + sql, {"path": ".py"}))
    assert "idx_tool_calls_file" in plan
    for text, rows in expected.items():
        got = conn.execute(sql, {"path": text}).fetchall()
        assert sorted(got, key=repr) == sorted(rows, key=repr)
    conn.close()


@pytest.mark.asyncio
async def test_metadata_given_whole_is_not_merged_again_per_cell(archive):
    """`claude-sessions serve` passes all of metadata.yml with --metadata: the hook then
    adds nothing, so Datasette's metadata() (asked once per cell by
    datasette-render-markdown) no longer merges the dashboards' settings twice; the page
    keeps every description, query and the dashboard."""
    ds = datasette_for(archive)
    merges = 0
    original = ds._metadata_recursive_update

    def counting(orig, updated):
        nonlocal merges
        merges += 1
        return original(orig, updated)

    ds._metadata_recursive_update = counting
    calls = 0
    metadata = ds.metadata

    def counting_metadata(*args, **kwargs):
        nonlocal calls
        calls += 1
        return metadata(*args, **kwargs)

    ds.metadata = counting_metadata
    page = await ds.client.get("/claude-sessions/events")
    assert page.status_code == 200 and "One row per line ever read" in page.text
    assert calls > 100  # asked per cell
    assert merges <= 2 * calls  # one flat merge of the local metadata per call (was ~35)
    charts = ds.plugin_config("datasette-dashboards")["claude-usage"]["charts"]
    assert "total-cost" in charts
    assert (await ds.client.get("/-/dashboards/claude-usage")).status_code == 200


@pytest.mark.asyncio
async def test_metadata_given_in_part_still_gets_the_rest(archive):
    """A --metadata that changes one chart is not the whole of metadata.yml: the hook
    still adds what it lacks (the column descriptions, the other charts)."""
    meta = load_metadata()
    charts = meta["plugins"]["datasette-dashboards"]["claude-usage"]["charts"]
    charts["total-cost"]["title"] = "My cost"
    del meta["databases"]["claude-sessions"]["tables"]["events"]["columns"]
    ds = Datasette([str(archive)], metadata=meta)
    data = (await ds.client.get("/-/metadata.json")).json()
    assert data["databases"]["claude-sessions"]["tables"]["events"]["columns"]["raw"]
    charts = data["plugins"]["datasette-dashboards"]["claude-usage"]["charts"]
    assert charts["total-cost"]["title"] == "My cost"


@pytest.mark.asyncio
async def test_metadata_of_one_datasette_does_not_leak_into_the_next(archive):
    """Datasette merges its --metadata into the hook's answer in place; that once changed
    the plugin's cached metadata, so a later Datasette without --metadata showed the
    first one's query SQL."""
    custom = {"recent_sessions": {"sql": "select 42 as answer", "title": "Mine"}}
    first = Datasette(
        [str(archive)], metadata={"databases": {"claude-sessions": {"queries": custom}}}
    )
    data = (await first.client.get("/-/metadata.json")).json()
    assert data["databases"]["claude-sessions"]["queries"]["recent_sessions"]["title"] == "Mine"
    plain = Datasette([str(archive)])
    data = (await plain.client.get("/-/metadata.json")).json()
    query = data["databases"]["claude-sessions"]["queries"]["recent_sessions"]
    assert query["title"] == "Recent sessions" and "42" not in query["sql"]
