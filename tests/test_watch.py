"""The watch sidecar with a real watchdog observer on real folders."""

from __future__ import annotations

import json
import os
import shutil
import signal
import sqlite3
import subprocess
import threading
import time
from pathlib import Path

import orjson
import pytest
from click.testing import CliRunner

from ingest.cli import cli
from ingest.lines import register as register_lines
from ingest.lock import LockBusy
from ingest.sync import run_pass
from ingest.watch import run_watch

SESSION = "cccccccc-0000-4000-8000-000000000003"


def line(i: int, session: str = SESSION) -> bytes:
    return orjson.dumps(
        {
            "type": "user",
            "uuid": f"w-{session[:4]}-{i}",
            "sessionId": session,
            "timestamp": f"2026-01-01T00:00:{i:02d}.000Z",
            "message": {"role": "user", "content": f"watched line {i}"},
        }
    )


def query(db: Path, sql: str, *params):
    if not db.exists():
        return []
    conn = sqlite3.connect(db, timeout=5)
    register_lines(conn)
    try:
        return conn.execute(sql, params).fetchall()
    except sqlite3.OperationalError:
        return []  # schema not created yet
    finally:
        conn.close()


def wait_for(predicate, timeout: float = 10.0) -> float:
    """Poll until predicate() is true; return the seconds it took."""
    started = time.monotonic()
    while time.monotonic() - started < timeout:
        if predicate():
            return time.monotonic() - started
        time.sleep(0.02)
    raise AssertionError(f"condition not met within {timeout} s")


def rows_of(db: Path, session: str = SESSION) -> int:
    result = query(db, "SELECT count(*) FROM events WHERE session_id = ?", session)
    return result[0][0] if result else 0


@pytest.fixture
def root(tmp_path) -> Path:
    path = tmp_path / "projects"
    (path / "-work-demo").mkdir(parents=True)
    return path


@pytest.fixture
def watcher(root, db_path):
    """run_watch in a thread; yields the stop event."""
    stop = threading.Event()
    errors = []
    thread = threading.Thread(
        target=lambda: run_watch(
            db_path,
            [root],
            debounce=0.05,
            rescan_interval=60,
            heartbeat_interval=0.2,
            stop_event=stop,
            on_error=errors.append,
        )
    )
    thread.start()
    wait_for(lambda: query(db_path, "SELECT 1 FROM sync_runs WHERE trigger = 'initial'"))
    yield stop
    stop.set()
    thread.join(10)
    assert not thread.is_alive()
    assert errors == []


def test_new_file_rename_and_append_arrive(root, db_path, watcher):
    path = root / "-work-demo" / f"{SESSION}.jsonl"
    path.write_bytes(line(0) + b"\n")
    latency_new = wait_for(lambda: rows_of(db_path) == 1)

    with open(path, "ab") as f:
        f.write(line(1) + b"\n" + line(2) + b"\n")
    latency_append = wait_for(lambda: rows_of(db_path) == 3)

    other = "dddddddd-0000-4000-8000-000000000004"
    temp = root / "-work-demo" / "incoming.tmp"
    temp.write_bytes(line(0, other) + b"\n")
    temp.rename(root / "-work-demo" / f"{other}.jsonl")  # arrives only as a move event
    latency_rename = wait_for(lambda: rows_of(db_path, other) == 1)

    new_dir = root / "-work-new"
    new_dir.mkdir()
    (new_dir / f"{SESSION[:-1]}9.jsonl").write_bytes(line(5) + b"\n")
    wait_for(lambda: query(db_path, "SELECT 1 FROM sync_files WHERE project_dir = '-work-new'"))
    print(
        f"latency: new file {latency_new * 1000:.0f} ms, append {latency_append * 1000:.0f} ms, "
        f"rename {latency_rename * 1000:.0f} ms"
    )
    assert query(db_path, "SELECT count(*) FROM sync_runs WHERE trigger = 'watch'")[0][0] >= 3


def test_deleted_file_is_marked(root, db_path, watcher):
    path = root / "-work-demo" / f"{SESSION}.jsonl"
    path.write_bytes(line(0) + b"\n")
    wait_for(lambda: rows_of(db_path) == 1)
    path.unlink()
    wait_for(lambda: query(db_path, "SELECT 1 FROM sync_files WHERE deleted_at IS NOT NULL"))
    assert rows_of(db_path) == 1


def test_heartbeat_and_second_watch_refused(root, db_path, watcher):
    wait_for(lambda: query(db_path, "SELECT state FROM sync_heartbeat") == [("idle",)])
    (pid, beat) = query(db_path, "SELECT pid, beat_at FROM sync_heartbeat")[0]
    assert pid == os.getpid()
    wait_for(lambda: query(db_path, "SELECT beat_at FROM sync_heartbeat")[0][0] != beat)
    with pytest.raises(LockBusy, match="already running"):
        run_watch(db_path, [root], stop_event=threading.Event())
    status = CliRunner().invoke(cli, ["status", "--db", str(db_path), "--json"])
    sidecar = json.loads(status.output)["sidecar"]
    assert sidecar["alive"] is True and sidecar["pid"] == os.getpid()
    # a plain sync still runs next to the sidecar (the writer lock is per pass)
    assert run_pass(db_path, [root], wait=5).run_id > 0


def test_stop_event_leaves_heartbeat_stopped(root, db_path):
    stop = threading.Event()
    thread = threading.Thread(target=run_watch, args=(db_path, [root]), kwargs={"stop_event": stop})
    thread.start()
    wait_for(lambda: query(db_path, "SELECT 1 FROM sync_runs WHERE trigger = 'initial'"))
    stop.set()
    thread.join(10)
    assert query(db_path, "SELECT state FROM sync_heartbeat") == [("stopped",)]
    assert not Path(f"{db_path}.watch.lock").read_text()


def test_watch_process_sigusr1_and_sigterm(root, db_path):
    program = shutil.which("claude-sessions")
    if program is None:
        pytest.skip("claude-sessions is not installed")
    command = [
        program,
        "watch",
        "--db",
        str(db_path),
        "--projects",
        str(root),
        "--debounce",
        "0.05",
    ]
    proc = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        wait_for(lambda: query(db_path, "SELECT state FROM sync_heartbeat") == [("idle",)])
        assert query(db_path, "SELECT pid FROM sync_heartbeat") == [(proc.pid,)]

        second = subprocess.run(command, capture_output=True, text=True, timeout=30)
        assert second.returncode == 1
        assert f"`claude-sessions watch` (pid {proc.pid}) is already running" in second.stderr
        assert second.stdout == ""  # no "Watching …" before the refusal

        path = root / "-work-demo" / f"{SESSION}.jsonl"
        path.write_bytes(line(0) + b"\n")
        wait_for(lambda: rows_of(db_path) == 1)

        proc.send_signal(signal.SIGUSR1)
        wait_for(lambda: query(db_path, "SELECT 1 FROM sync_runs WHERE trigger = 'manual'"))
    finally:
        proc.send_signal(signal.SIGTERM)
        out, err = proc.communicate(timeout=15)
    assert proc.returncode == 0, err
    assert "Stopped." in out.decode()
    assert query(db_path, "SELECT state FROM sync_heartbeat") == [("stopped",)]


def test_projects_folder_created_after_start_is_followed_at_once(tmp_path, db_path):
    """A fresh machine: the projects folder (and its parent) appear after watch started;
    the first transcript arrives long before the rescan (an hour here)."""
    root = tmp_path / "claude" / "projects"
    stop = threading.Event()
    errors = []
    thread = threading.Thread(
        target=lambda: run_watch(
            db_path,
            [root],
            debounce=0.05,
            rescan_interval=3600,
            stop_event=stop,
            on_error=errors.append,
        )
    )
    thread.start()
    try:
        wait_for(lambda: query(db_path, "SELECT 1 FROM sync_runs WHERE trigger = 'initial'"))
        (root / "-work-demo").mkdir(parents=True)
        path = root / "-work-demo" / f"{SESSION}.jsonl"
        path.write_bytes(line(0) + b"\n")
        wait_for(lambda: rows_of(db_path) == 1, timeout=20)
        # followed by file events from then on, not only by passes
        with open(path, "ab") as f:
            f.write(line(1) + b"\n")
        wait_for(lambda: rows_of(db_path) == 2, timeout=20)
        triggers = {t for (t,) in query(db_path, "SELECT trigger FROM sync_runs")}
        assert "watch" in triggers
    finally:
        stop.set()
        thread.join(10)
    assert not thread.is_alive()
    assert errors == []


def test_rescans_that_find_nothing_leave_no_run_row(root, db_path):
    path = root / "-work-demo" / f"{SESSION}.jsonl"
    path.write_bytes(line(0) + b"\n")
    stop = threading.Event()
    passes = []
    thread = threading.Thread(
        target=run_watch,
        args=(db_path, [root]),
        kwargs={"stop_event": stop, "rescan_interval": 0.05, "on_pass": passes.append},
    )
    thread.start()
    try:
        wait_for(lambda: len(passes) >= 4)  # the initial pass and three rescans
        assert query(db_path, "SELECT trigger, lines_added FROM sync_runs") == [("initial", 1)]
        with open(path, "ab") as f:
            f.write(line(1) + b"\n")
        wait_for(lambda: rows_of(db_path) == 2)
        wait_for(
            lambda: len(query(db_path, "SELECT 1 FROM sync_runs WHERE ended_at IS NOT NULL")) == 2
        )
        seen = len(passes)
        wait_for(lambda: len(passes) >= seen + 3)
    finally:
        stop.set()
        thread.join(10)
    runs = query(db_path, "SELECT trigger, lines_added FROM sync_runs ORDER BY id")
    assert runs[0] == ("initial", 1)
    assert runs[1][0] in ("watch", "rescan") and runs[1][1] == 1
    assert len(runs) == 2
