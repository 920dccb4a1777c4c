"""The sync status page, status.json, Sync now and the live (SSE) stream.

Everything runs against real archives synced from a copy of the samples; the SSE tests
and the sidecar test use real processes (Datasette, `claude-sessions watch`).
"""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import os
import re
import shutil
import signal
import socket
import sqlite3
import subprocess
import sys
import threading
import time
import urllib.request
import uuid
from pathlib import Path

import httpx
import orjson
import pytest
from datasette.app import Datasette

from datasette_claude_sessions import live, status
from ingest.lines import register as register_lines
from ingest.lock import WriterLock
from ingest.sync import run_pass

from .browser_helpers import free_port

PLUGIN = "datasette-claude-sessions"


def make_datasette(db_path: Path, projects: Path | None = None, **config) -> Datasette:
    plugin = dict(config)
    if projects is not None:
        plugin["projects"] = [str(projects)]
    return Datasette([str(db_path)], metadata={"plugins": {PLUGIN: plugin}})


def session_file(projects: Path) -> tuple[Path, str]:
    """The largest top-level session transcript of the copied samples, and its id."""
    candidates = [
        p
        for p in projects.glob("*/*.jsonl")
        if not p.name.startswith("agent-") and p.stat().st_size
    ]
    path = max(candidates, key=lambda p: p.stat().st_size)
    return path, path.stem


def append_prompts(path: Path, session_id: str, texts: list[str]) -> int:
    """Append user prompts as Claude Code writes them; returns the bytes written."""
    stamp = dt.datetime.now(dt.UTC).strftime("%Y-%m-%dT%H:%M:%S.000Z")
    data = b"".join(
        orjson.dumps(
            {
                "type": "user",
                "sessionId": session_id,
                "uuid": str(uuid.uuid4()),
                "parentUuid": None,
                "timestamp": stamp,
                "message": {"role": "user", "content": text},
            }
        )
        + b"\n"
        for text in texts
    )
    with open(path, "ab") as f:
        f.write(data)
    return len(data)


def scalar(db_path: Path, sql: str, params=()):
    conn = sqlite3.connect(db_path)
    register_lines(conn)
    try:
        return conn.execute(sql, params).fetchone()[0]
    finally:
        conn.close()


@pytest.fixture
def archive(real_projects, db_path) -> Path:
    run_pass(db_path, [real_projects], trigger="cli")
    status.forget_cached_figures()
    return db_path


# --- status page and status.json ------------------------------------------------------------


@pytest.mark.asyncio
async def test_status_json_reports_the_archive(archive, real_projects):
    ds = make_datasette(archive, real_projects)
    response = await ds.client.get("/-/claude-sessions/status.json")
    assert response.status_code == 200
    data = response.json()
    events = scalar(archive, "select count(*) from events")
    assert data["ok"] is True
    assert data["database"] == archive.stem
    assert data["last_finished_run"]["trigger"] == "cli"
    assert data["last_finished_run"]["lines_added"] == events
    assert data["running"] is False
    assert data["files"]["files"] == scalar(archive, "select count(*) from sync_files")
    assert data["files"]["lines"] == events
    assert data["sessions"] == scalar(archive, "select count(*) from sessions")
    assert data["pending"] == {"bytes": 0, "complete": True}
    assert data["database_bytes"] >= archive.stat().st_size
    assert data["sidecar"]["alive"] is False
    assert [run["id"] for run in data["recent_runs"]] == [1]

    path, session_id = session_file(real_projects)
    written = append_prompts(path, session_id, ["not synced yet"])
    status.forget_cached_figures()
    data = (await ds.client.get("/-/claude-sessions/status.json")).json()
    assert data["pending"]["bytes"] == written


@pytest.mark.asyncio
async def test_slow_figures_are_refreshed_in_the_background(archive, real_projects):
    ds = make_datasette(archive, real_projects)
    first = (await ds.client.get("/-/claude-sessions/status.json")).json()
    assert first["pending"]["bytes"] == 0
    path, session_id = session_file(real_projects)
    written = append_prompts(path, session_id, ["seen by the next refresh"])
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        data = (await ds.client.get("/-/claude-sessions/status.json")).json()
        if data["pending"]["bytes"]:
            break
        await asyncio.sleep(0.1)
    assert data["pending"]["bytes"] == written


@pytest.mark.asyncio
async def test_status_page_shows_figures_button_and_live_script(archive, real_projects):
    ds = make_datasette(archive, real_projects, allow_sync=True)
    response = await ds.client.get("/-/claude-sessions/status")
    assert response.status_code == 200
    html = response.text
    assert "Sync status" in html
    assert re.search(r'<input type="hidden" name="csrftoken" value="[^"]+">', html)
    assert "Sync now</button>" in html
    assert 'id="recent-runs"' in html
    assert f'href="/{archive.stem}/sync_runs/1"' in html
    assert "No watch sidecar has run on this archive yet" in html
    script = "/-/static-plugins/datasette-claude-sessions/live.js"
    assert script in html
    js = await ds.client.get(script)
    assert js.status_code == 200
    assert "EventSource" in js.text
    links = (await ds.client.get("/")).text
    assert 'href="/-/claude-sessions/status">Sync status' in links


@pytest.mark.asyncio
async def test_status_page_without_an_archive(tmp_path):
    other = tmp_path / "other.db"
    sqlite3.connect(other).execute("create table t (id integer)").connection.close()
    ds = Datasette([str(other)])
    page = await ds.client.get("/-/claude-sessions/status")
    assert page.status_code == 200
    assert "No claude-sessions archive is attached" in page.text
    data = await ds.client.get("/-/claude-sessions/status.json")
    assert data.status_code == 404
    assert data.json()["ok"] is False


@pytest.mark.asyncio
async def test_retention_warning_follows_settings_json(real_projects, isolated_home, tmp_path):
    # Only Claude Code's own projects folder is cleaned up: archive a copy there.
    claude_projects = isolated_home / ".claude" / "projects"
    shutil.copytree(real_projects, claude_projects)
    archive = tmp_path / "claude.db"
    run_pass(archive, [claude_projects], trigger="cli")
    status.forget_cached_figures()
    settings = isolated_home / ".claude" / "settings.json"
    ds = make_datasette(archive, claude_projects)

    # No settings.json: the default applies, and the page says so.
    status.forget_cached_figures()
    data = (await ds.client.get("/-/claude-sessions/status.json")).json()["retention"]
    assert data["settings_found"] is False
    assert data["cleanup_period_days"] == 30
    html = (await ds.client.get("/-/claude-sessions/status")).text
    assert "not found: Claude Code's default of 30 days applies" in html

    settings.write_text(json.dumps({"cleanupPeriodDays": 100000}))
    status.forget_cached_figures()
    data = (await ds.client.get("/-/claude-sessions/status.json")).json()["retention"]
    assert data["cleanup_period_days"] == 100000
    assert data["settings_path"] == str(settings)
    assert data["sessions_past_cutoff"] == 0

    # The samples are months old: with a 1-day period they are all due.
    settings.write_text(json.dumps({"cleanupPeriodDays": 1}))
    status.forget_cached_figures()
    data = (await ds.client.get("/-/claude-sessions/status.json")).json()["retention"]
    due = scalar(
        archive,
        "select count(*) from sessions where sources_exist = 1 and last_timestamp < ?",
        (data["cutoff"],),
    )
    assert due > 0
    assert data["sessions_past_cutoff"] == due
    assert data["sessions_archived_only"] == 0
    html = (await ds.client.get("/-/claude-sessions/status")).text
    noun = "session there is" if due == 1 else "sessions there are"
    assert f"{due} {noun} older than that and will be deleted" in html

    # A session whose files are gone exists only in the archive.
    path, session_id = session_file(claude_projects)
    for source in claude_projects.rglob(f"*{session_id}*"):
        if source.is_file():
            source.unlink()
    run_pass(archive, [claude_projects], trigger="cli")
    status.forget_cached_figures()
    response = await ds.client.get("/-/claude-sessions/status")
    assert "only in this archive" in response.text
    data = (await ds.client.get("/-/claude-sessions/status.json")).json()["retention"]
    gone = scalar(archive, "select count(*) from sessions where sources_exist = 0")
    assert gone >= 1
    assert data["sessions_archived_only"] == gone

    settings.write_text("{not json")
    status.forget_cached_figures()
    data = (await ds.client.get("/-/claude-sessions/status.json")).json()["retention"]
    assert data["cleanup_period_days"] == 30
    assert data["problem"].startswith(f"Could not read {settings}")


@pytest.mark.asyncio
async def test_no_deletion_warning_for_other_projects_folders(
    archive, real_projects, isolated_home
):
    """A --projects folder outside Claude Code's config dir (a demo corpus, a copy) is
    never cleaned up by Claude Code: no deletion warning, but archive-only sessions count."""
    settings = isolated_home / ".claude" / "settings.json"
    settings.parent.mkdir(parents=True, exist_ok=True)
    settings.write_text(json.dumps({"cleanupPeriodDays": 1}))
    path, session_id = session_file(real_projects)
    path.unlink()
    run_pass(archive, [real_projects], trigger="cli")
    status.forget_cached_figures()
    ds = make_datasette(archive, real_projects)
    data = (await ds.client.get("/-/claude-sessions/status.json")).json()["retention"]
    assert data["sessions_past_cutoff"] == 0
    assert data["sessions_due_within_week"] == 0
    assert data["sessions_archived_only"] >= 1
    html = (await ds.client.get("/-/claude-sessions/status")).text
    assert 'id="cs-retention"' not in html
    assert "will be deleted" not in html
    assert "only in this archive" in html


@pytest.mark.asyncio
async def test_recent_passes_show_the_last_and_those_that_changed_something(archive, real_projects):
    run_pass(archive, [real_projects], trigger="cli")  # nothing new
    run_pass(archive, [real_projects], trigger="cli")  # nothing new
    path, session_id = session_file(real_projects)
    append_prompts(path, session_id, ["news"])
    changed = run_pass(archive, [real_projects], trigger="rescan").run_id
    last = run_pass(archive, [real_projects], trigger="cli").run_id  # nothing new, last
    status.forget_cached_figures()
    ds = make_datasette(archive, real_projects)
    data = (await ds.client.get("/-/claude-sessions/status.json")).json()
    assert [run["id"] for run in data["recent_runs"]] == [last, changed, 1]
    assert data["quiet_runs"] == 2
    html = (await ds.client.get("/-/claude-sessions/status")).text
    assert "2 other passes found nothing new" in html
    assert html.count('<tr data-run-id="') == 3


@pytest.mark.asyncio
async def test_status_page_numbers_have_thousands_separators(archive, real_projects):
    ds = make_datasette(archive, real_projects)
    data = (await ds.client.get("/-/claude-sessions/status.json")).json()
    lines = data["recent_runs"][0]["lines_added"]
    assert lines >= 1000
    html = (await ds.client.get("/-/claude-sessions/status")).text
    table = html.split('id="recent-runs"')[1].split("</table>")[0]
    assert f'<td class="cs-num">{lines:,}</td>' in table
    assert f">{lines}<" not in table
    assert f"{lines:,} new lines from" in html
    # Six figures in a grid of six, three or two columns: none left alone on a row.
    assert html.count("<div><strong>") == 6
    assert "repeat(6, minmax(0, 1fr))" in html


@pytest.mark.asyncio
async def test_status_page_shows_readable_times(archive, real_projects):
    ds = make_datasette(archive, real_projects)
    data = (await ds.client.get("/-/claude-sessions/status.json")).json()
    started = data["recent_runs"][0]["started_at"]
    assert "T" in started  # JSON keeps ISO
    html = (await ds.client.get("/-/claude-sessions/status")).text
    readable = started[:19].replace("T", " ") + " UTC"
    assert f'<time datetime="{started}" title="{started}">{readable}</time>' in html
    # No ISO timestamp is shown as text outside an attribute.
    assert not re.search(r">[^<]*\d{4}-\d\d-\d\dT\d\d:\d\d", html)


@pytest.mark.asyncio
async def test_ingest_errors_are_listed_with_file_and_offset(archive, real_projects):
    path, _ = session_file(real_projects)
    offset = path.stat().st_size
    with open(path, "ab") as f:
        f.write(b"this line is not JSON\n")
    run_pass(archive, [real_projects], trigger="cli")
    status.forget_cached_figures()
    ds = make_datasette(archive, real_projects)
    data = (await ds.client.get("/-/claude-sessions/status.json")).json()
    error = data["ingest_errors"][0]
    assert error["path"] == str(path)
    assert error["byte_offset"] == offset
    assert "JSON" in error["error"]
    assert data["files"]["errors"] == 1
    html = (await ds.client.get("/-/claude-sessions/status")).text
    assert str(path) in html
    if error["event_id"]:
        assert f'href="/{archive.stem}/events/{error["event_id"]}"' in html


def write_heartbeat(db_path: Path, *, age: float, state: str, pid: int | None = None):
    beat = dt.datetime.now(dt.UTC) - dt.timedelta(seconds=age)
    conn = sqlite3.connect(db_path)
    register_lines(conn)
    with conn:
        conn.execute(
            "insert or replace into sync_heartbeat (id, pid, host, started_at, beat_at, state) "
            "values (1, ?, ?, ?, ?, ?)",
            (
                pid or os.getpid(),
                socket.gethostname(),
                status.iso_z(beat),
                status.iso_z(beat),
                state,
            ),
        )
    conn.close()


@pytest.mark.parametrize(
    "age, state, alive",
    [(1, "idle", True), (1, "syncing", True), (60, "idle", False), (1, "stopped", False)],
)
def test_sidecar_is_alive_only_with_a_fresh_heartbeat(archive, age, state, alive):
    write_heartbeat(archive, age=age, state=state)
    conn = sqlite3.connect(archive)
    register_lines(conn)
    try:
        sidecar = status.sidecar_status(conn)
    finally:
        conn.close()
    assert sidecar["alive"] is alive
    assert sidecar["state"] == state
    assert sidecar["same_host"] is True


def test_sidecar_with_a_dead_pid_is_not_alive(archive):
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    child.wait()
    write_heartbeat(archive, age=1, state="idle", pid=child.pid)
    conn = sqlite3.connect(archive)
    register_lines(conn)
    try:
        assert status.sidecar_status(conn)["alive"] is False
    finally:
        conn.close()


# --- Sync now ---------------------------------------------------------------------------------


@pytest.mark.asyncio
async def test_sync_now_runs_a_pass_and_answers_json(archive, real_projects):
    path, session_id = session_file(real_projects)
    append_prompts(path, session_id, ["first new prompt", "second new prompt"])
    ds = make_datasette(archive, real_projects, allow_sync=True)
    response = await ds.client.post("/-/claude-sessions/sync.json")
    assert response.status_code == 200
    data = response.json()
    assert data["ok"] is True
    assert data["via"] == "server"
    assert data["joined"] is False
    assert data["lines_added"] == 2
    assert data["files_changed"] == 1
    assert data["message"].startswith("Synced: 2 new lines from 1 file in ")
    assert scalar(archive, "select trigger from sync_runs where id = ?", (data["run_id"],)) == (
        "manual"
    )
    # Accept: application/json on the plain URL answers JSON too.
    again = await ds.client.post("/-/claude-sessions/sync", headers={"accept": "application/json"})
    assert again.json()["lines_added"] == 0


def csrf_cookie_and_token(response) -> tuple[str, str]:
    token = re.search(r'name="csrftoken" value="([^"]+)"', response.text).group(1)
    cookie = response.cookies["ds_csrftoken"]
    return cookie, token


@pytest.mark.asyncio
async def test_sync_now_form_redirects_with_a_message(archive, real_projects):
    path, session_id = session_file(real_projects)
    append_prompts(path, session_id, ["a", "b"])
    ds = make_datasette(archive, real_projects, allow_sync=True)
    page = await ds.client.get("/-/claude-sessions/status")
    cookie, token = csrf_cookie_and_token(page)
    response = await ds.client.post(
        "/-/claude-sessions/sync",
        data={"csrftoken": token},
        headers={"cookie": f"ds_csrftoken={cookie}"},
    )
    assert response.status_code == 302
    assert response.headers["location"] == "/-/claude-sessions/status"
    messages = response.cookies["ds_messages"]
    after = await ds.client.get(
        "/-/claude-sessions/status",
        headers={"cookie": f"ds_csrftoken={cookie}; ds_messages={messages}"},
    )
    assert "Synced: 2 new lines from 1 file in " in after.text


@pytest.mark.asyncio
async def test_sync_now_post_without_csrf_token_is_refused(archive, real_projects):
    ds = make_datasette(archive, real_projects, allow_sync=True)
    cookie, _ = csrf_cookie_and_token(await ds.client.get("/-/claude-sessions/status"))
    before = scalar(archive, "select count(*) from sync_runs")
    response = await ds.client.post(
        "/-/claude-sessions/sync",
        data={"other": "field"},
        headers={"cookie": f"ds_csrftoken={cookie}"},
    )
    assert response.status_code == 403
    assert scalar(archive, "select count(*) from sync_runs") == before


@pytest.mark.asyncio
@pytest.mark.parametrize(
    "headers",
    [
        {"origin": "https://evil.example"},
        {"origin": "null"},
        {"referer": "http://evil.example/page.html"},
        {"origin": "http://localhost:9999"},
    ],
)
async def test_sync_now_refuses_cross_site_posts(archive, real_projects, headers):
    ds = make_datasette(archive, real_projects, allow_sync=True)
    before = scalar(archive, "select count(*) from sync_runs")
    response = await ds.client.post("/-/claude-sessions/sync.json", headers=headers)
    assert response.status_code == 403
    assert "another site" in response.json()["error"]
    form = await ds.client.post("/-/claude-sessions/sync", headers=headers)
    assert form.status_code == 403
    assert scalar(archive, "select count(*) from sync_runs") == before


@pytest.mark.asyncio
async def test_sync_now_accepts_same_origin_posts(archive, real_projects):
    ds = make_datasette(archive, real_projects, allow_sync=True)
    for headers in ({"origin": "http://localhost"}, {"referer": "http://localhost/-/x"}):
        response = await ds.client.post("/-/claude-sessions/sync.json", headers=headers)
        assert response.status_code == 200


@pytest.mark.asyncio
async def test_sync_now_get_is_not_allowed(archive, real_projects):
    ds = make_datasette(archive, real_projects, allow_sync=True)
    response = await ds.client.get("/-/claude-sessions/sync")
    assert response.status_code == 405


@pytest.mark.asyncio
async def test_concurrent_clicks_join_one_pass(archive, real_projects):
    path, session_id = session_file(real_projects)
    append_prompts(path, session_id, ["joined"])
    ds = make_datasette(archive, real_projects, allow_sync=True)
    await ds.invoke_startup()
    before = scalar(archive, "select count(*) from sync_runs")
    lock = WriterLock(archive)
    lock.acquire()  # the pass waits for it, so both clicks arrive during the pass
    try:
        clicks = [
            asyncio.ensure_future(ds.client.post("/-/claude-sessions/sync.json")) for _ in range(2)
        ]
        while status._running.get(ds) is None:
            await asyncio.sleep(0.01)
        await asyncio.sleep(1.0)  # the second click reaches request_sync meanwhile
    finally:
        lock.release()
    first, second = [r.json() for r in await asyncio.gather(*clicks)]
    assert first["ok"] and second["ok"]
    assert first["run_id"] == second["run_id"]
    assert sorted([first["joined"], second["joined"]]) == [False, True]
    assert first["lines_added"] == second["lines_added"] == 1
    assert scalar(archive, "select count(*) from sync_runs") == before + 1


@pytest.mark.asyncio
async def test_sync_now_reports_a_busy_writer(archive, real_projects, monkeypatch):
    monkeypatch.setattr(status, "LOCK_WAIT_SECONDS", 0.2)
    ds = make_datasette(archive, real_projects, allow_sync=True)
    with WriterLock(archive):
        response = await ds.client.post("/-/claude-sessions/sync.json")
    assert response.status_code == 409
    data = response.json()
    assert data["ok"] is False
    assert f"Another sync (pid {os.getpid()}) is writing to {archive}" in data["message"]


@pytest.mark.asyncio
async def test_sync_now_refuses_an_immutable_archive(archive, real_projects):
    ds = Datasette(
        immutables=[str(archive)],
        metadata={"plugins": {PLUGIN: {"projects": [str(real_projects)], "allow_sync": True}}},
    )
    before = scalar(archive, "select count(*) from sync_runs")
    response = await ds.client.post("/-/claude-sessions/sync.json")
    assert response.status_code == 409
    assert "is opened immutable (-i)" in response.json()["message"]
    assert scalar(archive, "select count(*) from sync_runs") == before


def cli_command(*args: str) -> list[str]:
    return [sys.executable, "-c", "from ingest.cli import cli; cli()", *args]


def wait_for(predicate, timeout: float, what: str):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.1)
    pytest.fail(f"timed out waiting for {what}")


@pytest.mark.asyncio
async def test_sync_now_signals_a_live_watch_sidecar(archive, real_projects, tmp_path):
    log = open(tmp_path / "watch.log", "wb")  # noqa: SIM115
    watch = subprocess.Popen(
        cli_command("watch", "--db", str(archive), "--projects", str(real_projects)),
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    try:

        def alive():
            conn = sqlite3.connect(archive)
            register_lines(conn)
            try:
                return status.sidecar_status(conn)["alive"]
            finally:
                conn.close()

        wait_for(alive, 30, "the watch heartbeat")
        path, session_id = session_file(real_projects)
        append_prompts(path, session_id, ["via the sidecar 1", "via the sidecar 2"])
        ds = make_datasette(archive, real_projects, allow_sync=True)
        response = await ds.client.post("/-/claude-sessions/sync.json")
        data = response.json()
        assert data["ok"] is True, data
        assert data["via"] == "sidecar"
        run = scalar(archive, "select pid from sync_runs where id = ?", (data["run_id"],))
        assert run == watch.pid
        assert scalar(archive, "select trigger from sync_runs where id = ?", (data["run_id"],)) == (
            "manual"
        )
        texts = scalar(
            archive,
            "select count(*) from events where text in ('via the sidecar 1', 'via the sidecar 2')",
        )
        assert texts == 2
    finally:
        watch.send_signal(signal.SIGTERM)
        watch.wait(timeout=30)
        log.close()
    conn = sqlite3.connect(archive)
    register_lines(conn)
    try:
        sidecar = status.sidecar_status(conn)
    finally:
        conn.close()
    assert sidecar["state"] == "stopped"
    assert sidecar["alive"] is False


# --- live (SSE) ---------------------------------------------------------------------------------


class DatasetteServer:
    """`python -m datasette serve` on a free loopback port, for streaming tests."""

    def __init__(self, db_path: Path, tmp_path: Path, config: dict):
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        metadata = tmp_path / "metadata.json"
        metadata.write_text(json.dumps({"plugins": {PLUGIN: config}}))
        self.log = open(tmp_path / "datasette.log", "wb")  # noqa: SIM115
        self.process = subprocess.Popen(
            [sys.executable, "-m", "datasette", "serve", str(db_path), "-m", str(metadata)]
            + ["--host", "127.0.0.1", "--port", str(self.port)],
            stdout=self.log,
            stderr=subprocess.STDOUT,
        )

        def up():
            try:
                with urllib.request.urlopen(self.url + "/-/versions.json", timeout=2):
                    return True
            except OSError:
                assert self.process.poll() is None, "datasette exited"
                return False

        wait_for(up, 30, "datasette to answer")

    def stop(self):
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGINT)
            try:
                self.process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self.log.close()


@pytest.fixture
def live_server(archive, real_projects, tmp_path):
    server = DatasetteServer(archive, tmp_path, {"projects": [str(real_projects)]})
    yield server
    server.stop()


def read_sse(lines, wanted: set[str]) -> dict[str, list]:
    """Read messages from a line iterator until every event name in ``wanted`` arrived."""
    seen: dict[str, list] = {}
    event, data = None, []
    for line in lines:
        if line.startswith("event: "):
            event = line[len("event: ") :]
        elif line.startswith("data: "):
            data.append(line[len("data: ") :])
        elif line == "" and event:
            seen.setdefault(event, []).append(json.loads("\n".join(data)))
            event, data = None, []
            if wanted <= seen.keys():
                return seen
    pytest.fail(f"stream ended before {wanted - seen.keys()} arrived: {seen}")


def test_live_stream_pushes_new_passes_and_session_events(live_server, archive, real_projects):
    path, session_id = session_file(real_projects)
    last_run = scalar(archive, "select max(id) from sync_runs")
    last_event = scalar(archive, "select max(id) from events")
    url = (
        f"{live_server.url}/-/claude-sessions/live?runs_after={last_run}"
        f"&session={session_id}&after={last_event}"
    )
    with httpx.stream("GET", url, timeout=httpx.Timeout(20.0)) as response:
        assert response.status_code == 200
        assert response.headers["content-type"].startswith("text/event-stream")
        lines = response.iter_lines()
        first = read_sse(lines, {"sidecar"})
        assert first["sidecar"][0]["alive"] is False

        append_prompts(path, session_id, ["live one", "live two " + "x" * 3000])
        result = run_pass(archive, [real_projects], trigger="cli")
        seen = read_sse(lines, {"run", "events"})

    runs = seen["run"]
    assert [run["id"] for run in runs] == [result.run_id]
    assert runs[0]["lines_added"] == 2
    events = [e for batch in seen["events"] for e in batch]
    assert [e["text"][:9] for e in events] == ["live one", "live two "]
    assert len(events[1]["text"]) == 2000
    assert {e["session_id"] for e in events} == {session_id}
    assert all(e["id"] > last_event for e in events)
    assert events[0]["kind"] == "prompt"


def test_live_stream_resumes_from_last_event_id(live_server, archive, real_projects):
    path, session_id = session_file(real_projects)
    append_prompts(path, session_id, ["missed while away"])
    result = run_pass(archive, [real_projects], trigger="cli")
    previous_run = result.run_id - 1
    first_new = scalar(archive, "select min(id) from events where text = 'missed while away'", ())
    url = f"{live_server.url}/-/claude-sessions/live?session={session_id}"
    headers = {"last-event-id": f"{previous_run}.{first_new - 1}"}
    with httpx.stream("GET", url, headers=headers, timeout=httpx.Timeout(20.0)) as response:
        seen = read_sse(response.iter_lines(), {"run", "events"})
    assert seen["run"][0]["id"] == result.run_id
    assert seen["events"][0][0]["text"] == "missed while away"


def test_open_live_stream_does_not_hold_up_shutdown(live_server):
    """uvicorn waits for open responses on Ctrl-C; the stream notices and ends."""
    opened = threading.Event()
    ended = threading.Event()

    def listen():
        with httpx.stream(
            "GET", live_server.url + "/-/claude-sessions/live", timeout=httpx.Timeout(60.0)
        ) as response:
            for _ in response.iter_lines():
                opened.set()
        ended.set()

    reader = threading.Thread(target=listen, daemon=True)
    reader.start()
    assert opened.wait(20)
    live_server.process.send_signal(signal.SIGINT)
    # Without the shutdown check uvicorn would wait MAX_SECONDS (300 s) for the stream.
    assert live_server.process.wait(timeout=30) == 0
    assert ended.wait(10)


def test_live_session_events_filter_by_thread(archive, real_projects):
    path, session_id = session_file(real_projects)
    last = scalar(archive, "select max(id) from events")
    append_prompts(path, session_id, ["main thread line"])
    run_pass(archive, [real_projects], trigger="cli")
    conn = sqlite3.connect(archive)
    register_lines(conn)
    try:
        every = live._session_events(conn, session_id, last, None)
        main = live._session_events(conn, session_id, last, "")
        agent = live._session_events(conn, session_id, last, "a0123456789")
        other = live._session_events(conn, "no-such-session", last, None)
    finally:
        conn.close()
    assert [e["text"] for e in every] == ["main thread line"]
    assert main == every
    assert agent == other == []


def test_status_page_updates_live_in_a_browser(tmp_path, real_projects):
    """live.js: a new pass appears without a reload; the Sync now button answers in place."""
    sync_api = pytest.importorskip("playwright.sync_api")
    from .browser_helpers import CHROMIUM, CHROMIUM_ARGS, Server, require_chromium

    require_chromium()
    db = tmp_path / "live.db"
    server = Server(
        ["--db", str(db), "--projects", str(real_projects), "--no-watch"],
        env=dict(os.environ, PYTHONUNBUFFERED="1"),
        log_path=tmp_path / "serve.log",
        port=free_port(),
    )
    try:
        server.wait_until_up()
        with sync_api.sync_playwright() as p:
            browser = p.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
            try:
                page = browser.new_page()
                page.goto(server.url + "/-/claude-sessions/status")
                rows = "document.querySelectorAll('#recent-runs tbody tr').length"
                assert page.evaluate(rows) == 1
                path, session_id = session_file(real_projects)
                append_prompts(path, session_id, ["from the terminal"])
                run_pass(db, [real_projects], trigger="cli")
                page.wait_for_function(f"() => {rows} === 2", timeout=15000)
                # The figures come in an SSE event of their own, after the run's row.
                page.wait_for_function(
                    "() => ((document.getElementById('cs-last-pass') || {}).textContent || '')"
                    ".includes('1 new line from')",
                    timeout=15000,
                )
                assert "1 new line from" in page.inner_text("#cs-last-pass")

                page.click("form.cs-sync button")
                page.wait_for_function(
                    "() => document.getElementById('cs-sync-result').textContent.startsWith('Synced')",
                    timeout=15000,
                )
                assert page.url.endswith("/-/claude-sessions/status")  # no reload
                page.wait_for_function(f"() => {rows} === 3", timeout=15000)
                first_trigger = page.inner_text("#recent-runs tbody tr:first-child td:nth-child(2)")
                assert first_trigger == "manual"
            finally:
                browser.close()
    finally:
        server.stop()


@pytest.mark.asyncio
async def test_status_command_and_page_count_the_same(archive, real_projects):
    """`claude-sessions status --json` and status.json read ingest.figures: the same files,
    lines, unreadable lines, sessions, bytes not archived yet, sidecar and 5-hour block."""
    from click.testing import CliRunner

    from ingest.cli import cli

    path, session_id = session_file(real_projects)
    written = append_prompts(path, session_id, ["not synced yet"])
    status.forget_cached_figures()
    ds = make_datasette(archive, real_projects)
    page = (await ds.client.get("/-/claude-sessions/status.json")).json()
    result = CliRunner().invoke(cli, ["status", "--db", str(archive), "--json"])
    assert result.exit_code == 0, result.output
    cli_info = json.loads(result.output)
    assert cli_info["files"] == page["files"]["files"]
    assert cli_info["deleted_files"] == page["files"]["files_deleted"]
    assert cli_info["lines"] == page["files"]["lines"]
    assert cli_info["errors"] == page["files"]["errors"]
    assert cli_info["sessions"] == page["sessions"]
    assert cli_info["lag_bytes"] == page["pending"]["bytes"] == written
    assert cli_info["sidecar"] is None and page["sidecar"]["alive"] is False
    assert cli_info["usage"] == page["usage"]
    assert [u["path"] for u in cli_info["unreadable"]] == [
        u["path"] for u in reversed(page["unreadable"])
    ]
