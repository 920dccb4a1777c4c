"""Settings in one place (issue 11.9): one name per setting for the flag and the plugin
setting, the status page showing what is in effect and where it came from,
~/.config/claude read too, a comma-separated CLAUDE_CONFIG_DIR honoured."""

from __future__ import annotations

import json
import shutil

import pytest
from click.testing import CliRunner
from datasette.app import Datasette

from ingest import settings
from ingest.cli import cli
from ingest.lines import register as register_lines
from ingest.sync import run_pass

from .test_usage import SID, line, write_jsonl


def test_every_setting_is_a_flag_of_its_commands():
    """Each setting's flag exists, under that name, on the commands it lists."""
    from ingest.cli import cli as group

    ctx = group.make_context("claude-sessions", ["--help"], resilient_parsing=True)
    for setting in settings.SETTINGS:
        for name in setting.commands:
            command = group.get_command(ctx, name)
            flags = {opt for p in command.params for opt in getattr(p, "opts", [])}
            assert setting.flag in flags, (setting.name, name)


def test_config_claude_is_read_when_it_exists(tmp_path, isolated_home, monkeypatch, db_path):
    monkeypatch.delenv("CLAUDE_CONFIG_DIR")
    monkeypatch.delenv("XDG_CONFIG_HOME", raising=False)
    write_jsonl(isolated_home / ".claude" / "projects" / "-a" / f"{SID}.jsonl", [line("m1", "r1")])
    other = "22222222-2222-3333-4444-555555555555"
    write_jsonl(
        isolated_home / ".config" / "claude" / "projects" / "-b" / f"{other}.jsonl",
        [line("m2", "r2", session=other)],
    )
    dirs, source = settings.claude_dirs()
    assert dirs == [isolated_home / ".claude", isolated_home / ".config" / "claude"]
    assert source == "default"
    result = CliRunner().invoke(cli, ["sync", "--db", str(db_path)])
    assert result.exit_code == 0, result.output
    import sqlite3

    conn = sqlite3.connect(db_path)

    register_lines(conn)
    sessions = {r[0] for r in conn.execute("SELECT session_id FROM sessions")}
    assert sessions == {SID, other}
    # Without ~/.config/claude only ~/.claude.
    shutil.rmtree(isolated_home / ".config" / "claude")
    assert settings.claude_dirs()[0] == [isolated_home / ".claude"]


def test_comma_separated_claude_config_dir(tmp_path, monkeypatch, db_path):
    one, two = tmp_path / "one", tmp_path / "two"
    write_jsonl(one / "projects" / "-a" / f"{SID}.jsonl", [line("m1", "r1")])
    other = "22222222-2222-3333-4444-555555555555"
    write_jsonl(two / "projects" / "-b" / f"{other}.jsonl", [line("m2", "r2", session=other)])
    monkeypatch.setenv("CLAUDE_CONFIG_DIR", f"{one}, {two}")
    values = {s["name"]: s for s in settings.effective({})}
    assert values["projects"]["value"] == [str(one / "projects"), str(two / "projects")]
    assert values["projects"]["source"] == "environment ($CLAUDE_CONFIG_DIR)"
    result = CliRunner().invoke(cli, ["sync", "--db", str(db_path)])
    assert result.exit_code == 0, result.output
    status = json.loads(CliRunner().invoke(cli, ["status", "--db", str(db_path), "--json"]).output)
    assert status["sessions"] == 2


@pytest.mark.asyncio
async def test_status_page_shows_settings_and_their_sources(tmp_path, db_path):
    root = tmp_path / "projects"
    write_jsonl(root / "-a" / f"{SID}.jsonl", [line("m1", "r1")])
    run_pass(db_path, [root])
    config = {
        "projects": [str(root)],
        "timezone": "Europe/Paris",
        "allow_sync": True,
        "debounce": 0.5,
        settings.SOURCES_KEY: {"projects": "--projects", "allow_sync": "serve on 127.0.0.1"},
    }
    ds = Datasette([str(db_path)], metadata={"plugins": {settings.PLUGIN: config}})
    data = (await ds.client.get("/-/claude-sessions/status.json")).json()
    shown = {s["name"]: s for s in data["settings"]}
    assert set(shown) == {s.name for s in settings.SETTINGS}
    assert (shown["projects"]["value"], shown["projects"]["source"]) == ([str(root)], "--projects")
    assert shown["timezone"]["value"] == "Europe/Paris"
    assert shown["timezone"]["source"] == "plugin setting"
    assert shown["debounce"]["value"] == 0.5
    assert shown["allow_sync"]["source"] == "serve on 127.0.0.1"
    assert (shown["rescan"]["value"], shown["rescan"]["source"]) == (30.0, "default")
    assert shown["db"]["value"] == str(db_path)
    page = (await ds.client.get("/-/claude-sessions/status")).text
    assert "Settings in effect" in page and "Europe/Paris" in page and "--projects" in page


def _chart_sql(metadata: dict, chart: str) -> str:
    import re

    sql = metadata["plugins"]["datasette-dashboards"]["claude-usage"]["charts"][chart]["query"]
    return re.sub(r"\[\[.*?\]\]", "", sql, flags=re.S)


@pytest.mark.asyncio
@pytest.mark.parametrize("zone,cli_zone", [(None, "UTC"), ("Asia/Tokyo", "Asia/Tokyo")])
async def test_dashboard_days_follow_the_timezone_setting(real_projects, db_path, zone, cli_zone):
    """The dashboard's days are local dates in the plugin setting timezone (UTC by
    default): the same days, with the same costs, as `claude-sessions cost --timezone`."""
    run_pass(db_path, [real_projects])
    config = {"timezone": zone} if zone else {}
    ds = Datasette([str(db_path)], metadata={"plugins": {settings.PLUGIN: config}})
    await ds.invoke_startup()
    metadata = (await ds.client.get("/-/metadata.json")).json()
    sql = (
        "SELECT claude_sessions_day(timestamp) AS day, sum(cost_usd) AS cost FROM api_calls "
        "GROUP BY day ORDER BY day"
    )
    name = db_path.stem
    rows = (await ds.client.get(f"/{name}.json", params={"sql": sql, "_shape": "array"})).json()
    report = json.loads(
        CliRunner()
        .invoke(cli, ["cost", "--db", str(db_path), "--json", "--timezone", cli_zone])
        .output
    )
    assert [r["day"] for r in rows] == [r["day"] for r in report["rows"]]
    for mine, theirs in zip(rows, report["rows"], strict=True):
        assert mine["cost"] == pytest.approx(theirs["cost_usd"])
    # The dashboard's own chart query runs, and a date filter starts at local midnight.
    chart = _chart_sql(metadata, "total-cost")
    result = await ds.client.get(f"/{name}.json", params={"sql": chart, "_shape": "array"})
    assert result.status_code == 200, result.text
    midnight = (
        await ds.client.get(
            f"/{name}.json",
            params={"sql": "SELECT claude_sessions_midnight('2025-07-15') AS m", "_shape": "array"},
        )
    ).json()[0]["m"]
    assert midnight == ("2025-07-14T15:00" if zone else "2025-07-15T00:00")


@pytest.mark.asyncio
async def test_bad_timezone_setting_is_one_sentence(db_path, real_projects):
    from datasette.utils import StartupError

    run_pass(db_path, [real_projects])
    ds = Datasette(
        [str(db_path)], metadata={"plugins": {settings.PLUGIN: {"timezone": "Mars/Base"}}}
    )
    with pytest.raises(StartupError, match="timezone must be an IANA name"):
        await ds.invoke_startup()


@pytest.mark.asyncio
async def test_functions_only_on_the_archive(tmp_path, db_path, real_projects):
    import sqlite3

    run_pass(db_path, [real_projects])
    other = tmp_path / "other.db"
    sqlite3.connect(other).execute("create table t (x)").connection.close()
    ds = Datasette([str(db_path), str(other)])
    sql = {"sql": "select claude_sessions_day('2025-01-01T00:00:00Z') as d", "_shape": "array"}
    assert (await ds.client.get(f"/{db_path.stem}.json", params=sql)).json() == [
        {"d": "2025-01-01"}
    ]
    assert (await ds.client.get("/other.json", params=sql)).status_code == 400


@pytest.mark.asyncio
@pytest.mark.parametrize(
    "zone,cli_zone",
    [(None, "UTC"), ("Asia/Tokyo", "Asia/Tokyo"), ("Asia/Kathmandu", "Asia/Kathmandu")],
)
async def test_usage_views_follow_the_timezone_setting(real_projects, db_path, zone, cli_zone):
    """The usage_by_day/week/month views count days from local midnight in the plugin
    setting timezone (UTC by default; Kathmandu is 5:45 ahead): the same periods, calls
    and costs as `claude-sessions cost --timezone`.  The canned queries
    usage_by_local_day/week/month are the views, newest first.  The CLI's connections
    read UTC days."""
    from ingest import schema

    run_pass(db_path, [real_projects])
    config = {"timezone": zone} if zone else {}
    ds = Datasette([str(db_path)], metadata={"plugins": {settings.PLUGIN: config}})
    await ds.invoke_startup()
    name = db_path.stem
    conn = schema.connect(str(db_path))
    shifted = False
    for period in ("day", "week", "month"):
        url = f"/{name}/usage_by_{period}.json"
        rows = (await ds.client.get(url, params={"_shape": "array", "_size": "max"})).json()
        report = json.loads(
            CliRunner()
            .invoke(
                cli,
                ["cost", "--db", str(db_path), "--json", "--by", period, "--timezone", cli_zone],
            )
            .output
        )
        theirs = sorted(report["rows"], key=lambda r: r[period])
        assert [r[period] for r in rows] == [r[period] for r in theirs], period
        for mine, other in zip(rows, theirs, strict=True):
            assert mine["cost_usd"] == pytest.approx(other["cost_usd"], abs=1e-6)  # rounded
            assert mine["calls"] == other["calls"]
            assert mine["total_tokens"] == other["total_tokens"]
        canned = f"/{name}/usage_by_local_{period}.json"
        newest_first = (await ds.client.get(canned, params={"_shape": "array"})).json()
        assert newest_first == rows[::-1]
        utc = conn.execute(f"SELECT {period}, calls FROM usage_by_{period}").fetchall()
        if zone is None:
            assert utc == [(r[period], r["calls"]) for r in rows]
        else:
            shifted = shifted or utc != [(r[period], r["calls"]) for r in rows]
    # some calls fall on another day in Tokyo and Kathmandu than in UTC
    assert shifted == (zone is not None)
    conn.close()


@pytest.mark.asyncio
async def test_the_plugin_acts_on_claude_dir(tmp_path, db_path):
    """The plugin setting claude_dir: Sync now reads its projects/ and keeps its own files
    (history.jsonl), the retention warning reads its settings.json, and the status page
    shows both settings with where they came from."""
    import sqlite3

    claude = tmp_path / "claude"
    write_jsonl(claude / "projects" / "-work-app" / f"{SID}.jsonl", [line("m1", "r1")])
    history = {"display": "typed in claude_dir", "timestamp": 1750000000000, "project": "/w"}
    (claude / "history.jsonl").write_text(json.dumps(history) + "\n")
    (claude / "settings.json").write_text(json.dumps({"cleanupPeriodDays": 12345}))
    empty = tmp_path / "empty"
    empty.mkdir()
    run_pass(db_path, [empty])  # an archive with nothing in it yet
    config = {"claude_dir": [str(claude)], "allow_sync": True}
    ds = Datasette([str(db_path)], metadata={"plugins": {settings.PLUGIN: config}})
    result = (await ds.client.post("/-/claude-sessions/sync.json")).json()
    assert result["ok"] is True and result["lines_added"] == 1, result
    conn = sqlite3.connect(db_path)
    assert conn.execute("SELECT session_id FROM sessions").fetchall() == [(SID,)]
    assert conn.execute("SELECT display FROM history").fetchall() == [("typed in claude_dir",)]
    conn.close()
    data = (await ds.client.get("/-/claude-sessions/status.json")).json()
    assert data["retention"]["settings_path"] == str(claude / "settings.json")
    assert data["retention"]["cleanup_period_days"] == 12345
    assert data["retention"]["claude_projects"] == [str(claude / "projects") + "/"]
    shown = {s["name"]: s for s in data["settings"]}
    assert shown["claude_dir"]["value"] == [str(claude)]
    assert shown["claude_dir"]["source"] == "plugin setting"
    assert shown["projects"]["value"] == [str(claude / "projects")]


@pytest.mark.asyncio
async def test_database_is_the_older_name_of_db(real_projects, tmp_path):
    """One name for the archive setting: db.  A metadata file that still says database
    works (the plugin serves that database as the archive) and the status page says to
    rename it; db wins when both are given."""
    import shutil as sh

    archive = tmp_path / "arch.db"
    run_pass(archive, [real_projects])
    other = tmp_path / "other.db"
    sh.copy(archive, other)
    for config, name, note in [
        ({"database": "other"}, "other", "the older name of db: rename it db"),
        ({"db": "arch", "database": "other"}, "arch", "the plugin setting database is ignored"),
        ({"db": str(other)}, "other", None),
    ]:
        ds = Datasette([str(archive), str(other)], metadata={"plugins": {settings.PLUGIN: config}})
        data = (await ds.client.get("/-/claude-sessions/status.json")).json()
        assert data["database"] == name, config
        source = {s["name"]: s for s in data["settings"]}["db"]["source"]
        assert (note in source) if note else ("database" not in source), (config, source)
