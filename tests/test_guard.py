"""The request guard (datasette_claude_sessions/guard.py), in process through
datasette.client and an httpx ASGI transport: Host check (DNS rebinding), the
Content-Security-Policy header, the one rule beyond loopback (Sync now, hidden home
directory), Sync now errors, and archives whose path holds # or ?."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

import httpx
import pytest
from click.testing import CliRunner
from datasette.app import Datasette
from itsdangerous import URLSafeSerializer

from datasette_claude_sessions.metadata import load_metadata
from ingest.cli import cli
from ingest.cli_serve import listen_host, write_metadata
from ingest.lines import Packer
from ingest.lines import register as register_lines

from .pages_helpers import build_archive

PLUGIN = "datasette-claude-sessions"
SECRET = "sk-ant-api03-" + "Q" * 40


def with_config(db: Path, **config) -> Datasette:
    metadata = load_metadata(db.stem)
    metadata["plugins"][PLUGIN] = {**(metadata["plugins"].get(PLUGIN) or {}), **config}
    return Datasette([str(db)], metadata=metadata)


@pytest.fixture(scope="module")
def archive(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("guard")
    db = build_archive(tmp)
    conn = sqlite3.connect(db)
    register_lines(conn)
    # A planted secret, as the DNS rebinding attack read it back: in a prompt's line (its
    # text, events.text, is worked out from the line: ingest.lines).
    event_id, line = conn.execute(
        "select id, raw_json(raw) from events where id = "
        "(select min(id) from events where kind = 'prompt')"
    ).fetchone()
    record = json.loads(line)
    record["message"]["content"] = f"my key is {SECRET}"
    packed = Packer(conn).pack(json.dumps(record).encode())
    conn.execute("update events set raw = ? where id = ?", (packed, event_id))
    assert SECRET in conn.execute("select text from events where id = ?", (event_id,)).fetchone()[0]
    conn.commit()
    conn.close()
    return db


FOREIGN = ["evil.example", "evil.example:8001", "127.0.0.1.evil.example", "localhost.evil", ""]
PATHS = [
    ("GET", "/"),
    ("GET", "/claude-sessions/events.json?text__contains=sk-ant"),
    ("GET", "/-/claude-sessions/live?runs_after=0"),
    ("GET", "/-/claude-sessions/status.json"),
    ("POST", "/-/claude-sessions/sync.json"),
    ("GET", "/-/metadata.json"),
]


@pytest.mark.asyncio
@pytest.mark.parametrize("host", FOREIGN)
async def test_foreign_host_gets_421_and_no_data(archive, host):
    ds = with_config(archive, allow_sync=True)
    for method, path in PATHS:
        response = await ds.client.request(method, path, headers={"host": host})
        assert response.status_code == 421, (host, path)
        assert "does not answer to the host name" in response.text
        assert SECRET not in response.text and "claude-sessions.db" not in response.text
        assert "sessions" not in response.text.replace("claude-sessions serve", "")
    # Nothing ran: no manual pass was recorded.
    conn = sqlite3.connect(archive)
    assert conn.execute("select count(*) from sync_runs where trigger = 'manual'").fetchone() == (
        0,
    )
    conn.close()


@pytest.mark.asyncio
@pytest.mark.parametrize(
    "host", ["localhost", "localhost:8001", "127.0.0.1:8001", "127.0.0.2", "[::1]:8001"]
)
async def test_loopback_names_are_answered(archive, host):
    ds = with_config(archive)
    response = await ds.client.get(
        "/claude-sessions/events.json?text__contains=sk-ant", headers={"host": host}
    )
    assert response.status_code == 200
    assert SECRET in response.text


@pytest.mark.asyncio
async def test_allowed_names_and_the_bound_address(archive):
    ds = with_config(archive, allow_hosts=["Archive.LAN"])
    assert (await ds.client.get("/", headers={"host": "archive.lan:8001"})).status_code == 200
    assert (await ds.client.get("/", headers={"host": "other.lan"})).status_code == 421
    # A request that arrived on 192.0.2.10 may name that address (uvicorn's scope server).
    transport = httpx.ASGITransport(app=ds.app())
    async with httpx.AsyncClient(transport=transport, base_url="http://192.0.2.10") as client:
        assert (await client.get("/-/versions.json")).status_code == 200
        wrong = await client.get("/-/versions.json", headers={"host": "192.0.2.11"})
        assert wrong.status_code == 421


@pytest.mark.asyncio
async def test_every_answer_has_the_policy(archive):
    ds = with_config(archive)
    for path in ("/", "/-/claude-sessions", "/claude-sessions/events.json", "/-/dashboards"):
        response = await ds.client.get(path)
        policy = response.headers["content-security-policy"]
        assert (
            "script-src 'self' 'sha256-" in policy and "'unsafe-inline'" not in policy.split(";")[1]
        ), path
        assert "unsafe-eval" not in policy
        assert response.headers["x-content-type-options"] == "nosniff"


def test_serve_listen_rule_reads_datasette_args():
    assert listen_host("127.0.0.1", ()) == "127.0.0.1"
    assert listen_host("127.0.0.1", ("--", "--host", "0.0.0.0")) == "0.0.0.0"
    assert listen_host("127.0.0.1", ("-h", "192.0.2.5", "--root")) == "192.0.2.5"
    assert listen_host("::1", ("--host=::",)) == "::"
    assert listen_host("0.0.0.0", ("--setting", "x", "1")) == "0.0.0.0"


@pytest.mark.parametrize(
    "args, exposed",
    [((), False), (("--host", "0.0.0.0"), True), (("--", "-h", "0.0.0.0"), True)],
)
def test_serve_metadata_beyond_loopback(tmp_path, args, exposed):
    host = listen_host("127.0.0.1", args)
    path = write_metadata(
        tmp_path / "m.json", tmp_path / "a.db", [tmp_path / "p"], host, ("box.lan",)
    )
    config = json.loads(path.read_text())["plugins"][PLUGIN]
    assert config["allow_hosts"] == ["box.lan"]
    assert config["listen_host"] == host
    # Beyond loopback the metadata.yml default stays: only root may Sync now.
    assert config["allow_sync"] == ({"id": "root"} if exposed else True)


def test_serve_warns_when_datasette_args_listen_beyond_loopback(tmp_path):
    # The warning comes before any work; a port that is taken stops serve right after it.
    import socket

    with socket.socket() as taken:
        taken.bind(("0.0.0.0", 0))
        taken.listen()
        port = taken.getsockname()[1]
        result = CliRunner().invoke(
            cli,
            ["serve", "--db", str(tmp_path / "a.db"), "--port", str(port), "--", "-h", "0.0.0.0"],
        )
    assert result.exit_code == 1
    assert f"Port {port} on 0.0.0.0 is already in use" in result.output
    assert "Listening on 0.0.0.0: whoever can reach it can read your transcripts" in result.output


@pytest.mark.asyncio
async def test_beyond_loopback_sync_now_needs_a_named_actor(archive):
    ds = with_config(archive, allow_sync=True, listen_host="0.0.0.0")
    response = await ds.client.post("/-/claude-sessions/sync.json")
    assert response.status_code == 403
    assert "permission" in response.json()["error"]
    named = with_config(archive, allow_sync={"id": "root"}, listen_host="0.0.0.0")
    assert (await named.client.post("/-/claude-sessions/sync.json")).status_code == 403
    token = URLSafeSerializer(named._secret).dumps("token", "csrftoken")
    cookie = f"ds_csrftoken={token}; ds_actor=" + named.sign({"a": {"id": "root"}}, "actor")
    ok = await named.client.post(
        "/-/claude-sessions/sync.json", data={"csrftoken": token}, headers={"cookie": cookie}
    )
    assert ok.status_code == 200 and ok.json()["ok"] is True
    # The same request arriving on a non-loopback address, serve's setting aside.
    transport = httpx.ASGITransport(app=with_config(archive, allow_sync=True).app())
    async with httpx.AsyncClient(transport=transport, base_url="http://192.0.2.10") as client:
        assert (await client.post("/-/claude-sessions/sync.json")).status_code == 403


@pytest.mark.asyncio
async def test_beyond_loopback_anonymous_visitors_see_no_home(tmp_path, monkeypatch):
    home = tmp_path / "home" / "alice"
    projects = home / ".claude" / "projects"
    db = build_archive(home / "data")
    monkeypatch.setenv("HOME", str(home))
    conn = sqlite3.connect(db)
    conn.execute(
        "update sync_files set path = replace(path, ?, ?)", (str(home / "data"), str(home))
    )
    conn.commit()
    conn.close()
    ds = with_config(db, listen_host="0.0.0.0", projects=[str(projects)])
    checks = [
        "/-/claude-sessions",
        "/-/claude-sessions/status",
        "/-/claude-sessions/status.json",
        "/claude-sessions/sync_files",
        "/claude-sessions/sync_files.json",
        "/claude-sessions/sync_files.csv",
        "/claude-sessions/events.json?_shape=objects&_size=200",
        "/-/metadata.json",
        "/-/metadata",
        "/-/databases.json",
        "/-/databases",
    ]
    for path in checks:
        response = await ds.client.get(path)
        assert response.status_code == 200, path
        assert str(home) not in response.text, path
        assert str(home).replace("/", "%2F") not in response.text, path
    files = (await ds.client.get("/claude-sessions/sync_files.json?_shape=objects")).json()
    assert all(row["path"].startswith("~/") for row in files["rows"])
    databases = (await ds.client.get("/-/databases.json")).json()
    assert [d["path"] for d in databases] == ["claude-sessions.db"]
    metadata = (await ds.client.get("/-/metadata.json")).json()
    assert metadata["plugins"][PLUGIN]["projects"] == ["~/.claude/projects"]
    # Loopback, or an actor who signed in: the real paths.
    local = with_config(db, projects=[str(projects)])
    assert str(home) in (await local.client.get("/claude-sessions/sync_files.json")).text
    cookies = {"ds_actor": ds.sign({"a": {"id": "root"}}, "actor")}
    signed = await ds.client.get("/claude-sessions/sync_files.json", cookies=cookies)
    assert str(home) in signed.text


@pytest.mark.asyncio
async def test_sync_now_errors_are_sentences_not_500(archive, tmp_path):
    ds = with_config(archive, allow_sync=True)
    immutable = Datasette([], immutables=[str(archive)], metadata=load_metadata(archive.stem))
    immutable.plugin_config = lambda name, **kw: {"allow_sync": True} if name == PLUGIN else None
    response = await immutable.client.post("/-/claude-sessions/sync.json")
    assert response.status_code == 409 and "immutable" in response.json()["message"]
    # An archive the pass cannot use (a table missing): 503 and a sentence.
    broken = tmp_path / "claude-sessions.db"
    broken.write_bytes(archive.read_bytes())
    conn = sqlite3.connect(broken)
    conn.execute("drop table sync_heartbeat")
    conn.close()
    ds = with_config(broken, allow_sync=True, projects=[str(tmp_path / "none")])
    response = await ds.client.post("/-/claude-sessions/sync.json")
    assert response.status_code == 503
    message = response.json()["message"]
    assert message.startswith("Sync now could not run a pass: ") and message.endswith(".")
    assert "Traceback" not in message
    form = await ds.client.post("/-/claude-sessions/sync")
    assert form.status_code == 503 and form.text.startswith("Sync now could not run a pass")


@pytest.mark.asyncio
async def test_paths_with_hash_and_question_mark(tmp_path):
    folder = tmp_path / "a#b?c%41"
    db = build_archive(folder)
    ds = with_config(db, allow_sync=True, projects=[str(folder / "projects")])
    status = (await ds.client.get("/-/claude-sessions/status.json")).json()
    assert status["ok"] and status["sessions"] > 0
    assert (await ds.client.get("/-/claude-sessions/status")).status_code == 200
    events = await ds.client.get("/claude-sessions/events.json?_size=1")
    assert events.status_code == 200
    synced = await ds.client.post("/-/claude-sessions/sync.json")
    assert synced.status_code == 200 and synced.json()["ok"] is True
    result = CliRunner().invoke(cli, ["status", "--db", str(db)])
    assert result.exit_code == 0, result.output
    # SQLite did not open (and create) a file at the path cut at # or ?.
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a#b?c%41"]
