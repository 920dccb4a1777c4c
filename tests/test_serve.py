"""`claude-sessions serve`: a real process with its watch sidecar and Datasette children."""

from __future__ import annotations

import json
import os
import signal
import socket
import sqlite3
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest
import yaml
from click.testing import CliRunner

from ingest import cli_serve
from ingest.cli import cli
from ingest.lines import register as register_lines

from .browser_helpers import Server, child_pids, free_port
from .test_status import append_prompts, session_file, wait_for


def get_json(url: str, method: str = "GET") -> dict:
    request = urllib.request.Request(url, method=method, headers={"accept": "application/json"})
    with urllib.request.urlopen(request, timeout=30) as response:
        return json.loads(response.read())


def descendants(pid: int) -> set[int]:
    found = set()
    todo = [pid]
    while todo:
        for child in child_pids(todo.pop()):
            if child not in found:
                found.add(child)
                todo.append(child)
    return found


def running(pid: int) -> bool:
    """Whether pid exists and is not a zombie."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


def start_serve(tmp_path: Path, args: list[str]) -> Server:
    """serve with its temporary files under tmp_path/tmp, to check they are removed."""
    (tmp_path / "tmp").mkdir()
    env = dict(os.environ, PYTHONUNBUFFERED="1", TMPDIR=str(tmp_path / "tmp"))
    return Server(args, env=env, log_path=tmp_path / "serve.log", port=free_port())


def interrupt(server: Server) -> int:
    """Ctrl-C: SIGINT to serve alone (its children run in their own sessions)."""
    server.process.send_signal(signal.SIGINT)
    return server.process.wait(timeout=30)


def test_serve_syncs_watches_serves_and_stops_on_ctrl_c(tmp_path, real_projects):
    db = tmp_path / "serve.db"
    server = start_serve(
        tmp_path,
        ["--db", str(db), "--projects", str(real_projects), "--machine", "served-box"]
        + ["--setting", "max_returned_rows", "7"],
    )
    try:
        server.wait_until_up()
        children = descendants(server.process.pid)
        assert len(children) >= 2  # the watch sidecar and Datasette
        # --machine names the machine for the first pass and the sidecar
        assert f"Synced 31 files into {db} (31 changed): 1,540 new lines" in server.log()
        commands = [Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0") for pid in children]
        watch = [c for c in commands if b"watch" in c]
        assert watch and watch[0][watch[0].index(b"--host") + 1] == b"served-box"
        with sqlite3.connect(db) as conn:
            assert conn.execute("SELECT DISTINCT host FROM sync_files").fetchall() == [
                ("served-box",)
            ]

        status = get_json(server.url + "/-/claude-sessions/status.json")
        assert status["ok"] is True
        assert status["database"] == "serve"
        assert status["recent_runs"][-1]["trigger"] == "serve"
        assert status["files"]["lines"] > 0
        # The further option reached Datasette.
        settings = get_json(server.url + "/-/settings.json")
        assert settings["max_returned_rows"] == 7
        assert settings["sql_time_limit_ms"] == 5000

        def sidecar_alive():
            return get_json(server.url + "/-/claude-sessions/status.json")["sidecar"]["alive"]

        wait_for(sidecar_alive, 30, "the watch sidecar's heartbeat")
        path, session_id = session_file(real_projects)
        append_prompts(path, session_id, ["served"])
        # Loopback: an anonymous click may sync, through the sidecar.
        result = get_json(server.url + "/-/claude-sessions/sync.json", method="POST")
        assert result["ok"] is True
        assert result["via"] == "sidecar"
        conn = sqlite3.connect(db)
        register_lines(conn)
        assert conn.execute("select count(*) from events where text = 'served'").fetchone() == (1,)
        conn.close()

        assert interrupt(server) == 0
        assert not [pid for pid in children if running(pid)]
        log = server.log()
        assert f"Serving {server.url}/" in log
        assert "Stopping" in log
        assert not list((tmp_path / "tmp").iterdir())
    finally:
        server.stop()


def test_serve_stops_on_sigterm_too(tmp_path, real_projects):
    server = start_serve(
        tmp_path, ["--db", str(tmp_path / "a.db"), "--projects", str(real_projects), "--no-watch"]
    )
    try:
        server.wait_until_up()
        children = descendants(server.process.pid)
        assert len(children) == 1  # --no-watch: Datasette only
        server.process.send_signal(signal.SIGTERM)
        assert server.process.wait(timeout=30) == 0
        assert not [pid for pid in children if running(pid)]
    finally:
        server.stop()


def test_children_stop_when_serve_is_killed(tmp_path, real_projects):
    """SIGKILL leaves serve no chance to clean up: its children get SIGTERM (Linux)."""
    if sys.platform != "linux":
        pytest.skip("PR_SET_PDEATHSIG is Linux only")
    server = start_serve(
        tmp_path, ["--db", str(tmp_path / "a.db"), "--projects", str(real_projects)]
    )
    try:
        server.wait_until_up()
        children = descendants(server.process.pid)
        assert len(children) >= 2
        server.process.send_signal(signal.SIGKILL)
        server.process.wait(timeout=30)
        wait_for(lambda: not [pid for pid in children if running(pid)], 30, "the children to stop")
    finally:
        server.stop()


def test_serve_starts_on_a_machine_without_transcripts(tmp_path, isolated_home):
    server = start_serve(tmp_path, ["--db", str(tmp_path / "empty.db")])
    try:
        server.wait_until_up()
        with urllib.request.urlopen(server.url + "/", timeout=30) as response:
            assert response.status == 200
        status = get_json(server.url + "/-/claude-sessions/status.json")
        assert status["files"]["files"] == 0
        assert "Nothing to sync yet" in server.log()
        assert interrupt(server) == 0
    finally:
        server.stop()


def test_serve_says_when_the_port_is_taken(tmp_path):
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        result = CliRunner().invoke(
            cli, ["serve", "--db", str(tmp_path / "a.db"), "--port", str(port)]
        )
    assert result.exit_code == 1
    assert result.output == (
        f"Error: Port {port} on 127.0.0.1 is already in use; stop the other server or pick "
        "another port with --port.\n"
    )
    assert not (tmp_path / "a.db").exists()


def test_serve_refuses_a_missing_projects_folder(tmp_path):
    missing = tmp_path / "nowhere"
    result = CliRunner().invoke(
        cli,
        ["serve", "--db", str(tmp_path / "a.db"), "--projects", str(missing)]
        + ["--port", str(free_port())],
    )
    assert result.exit_code == 1
    assert result.output == f"Error: --projects {missing} does not exist.\n"


def test_serve_refuses_demo_with_projects(tmp_path):
    result = CliRunner().invoke(cli, ["serve", "--demo", "--projects", str(tmp_path)])
    assert result.exit_code == 1
    assert result.output == "Error: Use either --demo or --projects, not both.\n"


@pytest.mark.parametrize(
    "host, allow_sync", [("127.0.0.1", True), ("::1", True), ("0.0.0.0", {"id": "root"})]
)
def test_metadata_grants_sync_on_loopback_only(tmp_path, host, allow_sync):
    path = cli_serve.write_metadata(
        tmp_path / "m.json", tmp_path / "arch.db", [tmp_path / "p1", tmp_path / "p2"], host
    )
    metadata = json.loads(path.read_text())
    shipped = yaml.safe_load(cli_serve.plugin_file("metadata.yml").read_text())
    assert metadata["title"] == shipped["title"]
    # The archive's section follows the file name (Datasette names databases by stem).
    assert metadata["databases"]["arch"] == shipped["databases"]["claude-sessions"]
    assert "claude-sessions" not in metadata["databases"]
    assert '"db": "claude-sessions"' not in path.read_text()
    config = metadata["plugins"][cli_serve.PLUGIN]
    assert config["allow_sync"] == allow_sync
    assert config["projects"] == [str(tmp_path / "p1"), str(tmp_path / "p2")]
    # One name for the archive setting: db (its file); `database` is not written.
    assert config["db"] == str(tmp_path / "arch.db") and "database" not in config


def test_plugin_files_are_found_without_importing_datasette():
    code = (
        "import sys; from ingest import cli_serve; "
        "print(cli_serve.plugin_file('metadata.yml'), cli_serve.plugin_file('templates')); "
        "cli_serve.load_metadata('other'); "
        "assert 'datasette' not in sys.modules"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    ).stdout
    metadata, templates = out.split()
    assert Path(metadata).is_file()
    assert (Path(templates) / "claude_sessions_status.html").is_file()


def test_demo_corpus_is_written_once(monkeypatch):
    monkeypatch.setattr(cli_serve, "DEMO_MB", 1)
    db, roots = cli_serve.prepare_demo(None)
    assert db == cli_serve.data_dir() / "demo" / "demo.db"
    assert roots == [cli_serve.data_dir() / "demo" / "projects"]
    files = sorted(roots[0].rglob("*.jsonl"))
    assert files
    stamp = files[0].stat().st_mtime_ns
    time.sleep(0.01)
    assert cli_serve.prepare_demo(None) == (db, roots)
    assert files[0].stat().st_mtime_ns == stamp
    assert not (cli_serve.data_dir() / "demo" / "projects.partial").exists()


def test_serve_reports_a_datasette_option_it_rejects(tmp_path, real_projects):
    result = CliRunner().invoke(
        cli,
        ["serve", "--db", str(tmp_path / "a.db"), "--projects", str(real_projects), "--no-watch"]
        + ["--port", str(free_port()), "--no-such-datasette-option"],
    )
    assert result.exit_code == 1
    assert result.output.endswith("Error: Datasette exited with code 2; its message is above.\n")


def test_serve_on_a_file_that_is_not_an_archive(tmp_path):
    text = tmp_path / "notsqlite.db"
    text.write_text("hello\n")
    result = CliRunner().invoke(
        cli,
        ["serve", "--db", str(text), "--no-watch", "--projects", str(tmp_path)]
        + ["--port", str(free_port())],
    )
    assert result.exit_code == 1
    assert result.output == f"Error: {text} is not a SQLite database.\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["notsqlite.db"]


def test_serve_is_not_shadowed_by_packages_in_its_folder(tmp_path, real_projects):
    """Started from a folder that holds broken ``ingest`` and ``datasette`` packages of
    its own, serve's children (``python -P -m``) still import the installed ones."""
    folder = tmp_path / "work"
    for name in ("ingest", "datasette"):
        (folder / name).mkdir(parents=True)
        (folder / name / "__init__.py").write_text(f"raise ImportError('the wrong {name}')\n")
        (folder / name / "__main__.py").write_text(f"raise SystemExit('the wrong {name}')\n")
    (tmp_path / "tmp").mkdir()
    env = dict(os.environ, PYTHONUNBUFFERED="1", TMPDIR=str(tmp_path / "tmp"))
    db = tmp_path / "serve.db"
    server = Server(
        ["--db", str(db), "--projects", str(real_projects)],
        env=env,
        log_path=tmp_path / "serve.log",
        port=free_port(),
        cwd=folder,
    )
    try:
        server.wait_until_up()
        assert get_json(server.url + "/-/claude-sessions/status.json")["ok"] is True

        def sidecar_alive():
            return get_json(server.url + "/-/claude-sessions/status.json")["sidecar"]["alive"]

        wait_for(sidecar_alive, 30, "the watch sidecar's heartbeat")
        assert "the wrong" not in server.log()
    finally:
        server.stop()
