"""Issue 8, point 4: the watch sidecar heals.  After a full disk, a deleted or replaced
archive, a projects folder deleted and made again, or a FIFO named like a transcript, it
archives again within 10 s of the next appended line; SIGTERM stops it within 5 s in
every state; the status page shows a sidecar that died."""

from __future__ import annotations

import json
import os
import shutil
import signal
import sqlite3
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
from click.testing import CliRunner

from ingest.cli import cli
from ingest.lines import register as register_lines
from ingest.lock import WriterLock
from ingest.sync import run_pass
from ingest.watch import run_watch

from .test_watch import SESSION, line, query, rows_of, wait_for

HEAL_SECONDS = 10  # the bound: archived again within 10 s of the next line
STOP_SECONDS = 5  # SIGTERM stops the sidecar within 5 s in every state


@pytest.fixture
def root(tmp_path) -> Path:
    path = tmp_path / "projects"
    (path / "-work-demo").mkdir(parents=True)
    return path


def transcript(root: Path) -> Path:
    return root / "-work-demo" / f"{SESSION}.jsonl"


def append(path: Path, *numbers: int) -> None:
    with open(path, "ab") as f:
        f.write(b"".join(line(i) + b"\n" for i in numbers))


class Watcher:
    """run_watch in a thread, with its messages."""

    def __init__(self, db: Path, root: Path, rescan: float = 3600):
        self.stop = threading.Event()
        self.messages: list[str] = []
        self.thread = threading.Thread(
            target=run_watch,
            args=(db, [root]),
            kwargs=dict(
                debounce=0.05,
                rescan_interval=rescan,
                heartbeat_interval=0.2,
                stop_event=self.stop,
                on_error=self.messages.append,
            ),
        )

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self.stop.set()
        self.thread.join(20)
        assert not self.thread.is_alive()


def mount_tmpfs(path: Path, size: str) -> bool:
    path.mkdir()
    if os.geteuid() != 0 or shutil.which("mount") is None:
        return False
    done = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(path)], capture_output=True
    )
    return done.returncode == 0


@pytest.fixture
def small_disk(tmp_path):
    """A 16 MB tmpfs (root only): a disk that really fills up."""
    disk = tmp_path / "disk"
    if not mount_tmpfs(disk, "16m"):
        pytest.skip("cannot mount a tmpfs here (needs root)")
    yield disk
    subprocess.run(["umount", "-l", str(disk)], check=False)


def fill(disk: Path) -> Path:
    filler = disk / "filler"
    with open(filler, "wb") as f:
        try:
            while True:
                f.write(b"\0" * 65536)
                f.flush()
        except OSError:
            pass
    return filler


def test_disk_full_then_space_returns(root, small_disk):
    db = small_disk / "archive.db"
    path = transcript(root)
    append(path, 0)
    with Watcher(db, root) as w:
        wait_for(lambda: rows_of(db) == 1)
        filler = fill(small_disk)
        # lines big enough that their pages cannot fit in what is left
        with open(path, "ab") as f:
            for i in range(1, 40):
                f.write(line(i, SESSION)[:-2] + b', "pad": "' + b"x" * 20000 + b'"}}\n')
        time.sleep(4)  # several failed passes, backing off
        failures = [m for m in w.messages if "failed" in m]
        assert len(failures) == 1, w.messages  # said once a minute, not once per pass
        assert "full" in failures[0]
        assert w.thread.is_alive()
        filler.unlink()
        append(path, 99)
        try:
            took = wait_for(lambda: rows_of(db) == 41, timeout=HEAL_SECONDS)
        except AssertionError:
            raise AssertionError(w.messages) from None
        print(f"archived again {took:.1f} s after space returned")
    assert any("Archiving again" in m for m in w.messages), w.messages
    # nothing lost, nothing twice
    got = query(db, "SELECT raw_bytes(raw) FROM events ORDER BY byte_offset")
    assert [r[0] for r in got] == path.read_bytes().splitlines()


@pytest.mark.parametrize("how", ["deleted", "replaced"])
def test_archive_deleted_or_replaced(root, db_path, tmp_path, how):
    path = transcript(root)
    append(path, 0, 1)
    with Watcher(db_path, root) as w:
        wait_for(lambda: rows_of(db_path) == 2)
        if how == "deleted":
            for suffix in ("", "-wal", "-shm"):
                Path(f"{db_path}{suffix}").unlink(missing_ok=True)
        else:
            other = tmp_path / "other.db"
            run_pass(other, [tmp_path / "empty"])
            os.replace(other, db_path)
        append(path, 2)
        took = wait_for(lambda: rows_of(db_path) == 3, timeout=HEAL_SECONDS)
        print(f"{how}: archiving again after {took:.1f} s")
        wait_for(lambda: query(db_path, "SELECT state FROM sync_heartbeat") == [("idle",)])
    assert any(how in m and "archive" in m for m in w.messages), w.messages
    assert [r[0] for r in query(db_path, "SELECT raw_bytes(raw) FROM events")] == [
        line(0),
        line(1),
        line(2),
    ]


def test_projects_folder_deleted_and_made_again(root, db_path):
    path = transcript(root)
    append(path, 0)
    with Watcher(db_path, root) as w:
        wait_for(lambda: rows_of(db_path) == 1)
        shutil.rmtree(root)
        time.sleep(1)
        (root / "-work-demo").mkdir(parents=True)
        append(path, 1)
        wait_for(lambda: rows_of(db_path) == 2, timeout=HEAL_SECONDS)
        # followed by file events again, not by the (hour-long) rescan
        runs = len(query(db_path, "SELECT 1 FROM sync_runs WHERE trigger = 'watch'"))
        append(path, 2)
        wait_for(lambda: rows_of(db_path) == 3, timeout=HEAL_SECONDS)
        assert len(query(db_path, "SELECT 1 FROM sync_runs WHERE trigger = 'watch'")) > runs
    assert any("deleted or replaced" in m for m in w.messages), w.messages


def test_a_fifo_named_like_a_transcript(root, db_path):
    path = transcript(root)
    append(path, 0)
    with Watcher(db_path, root) as w:
        wait_for(lambda: rows_of(db_path) == 1)
        os.mkfifo(root / "-work-demo" / "pipe.jsonl")
        time.sleep(0.5)
        append(path, 1)
        wait_for(lambda: rows_of(db_path) == 2, timeout=HEAL_SECONDS)
    assert w.thread is not None


# -- SIGTERM, in every state -------------------------------------------------------------


def start_watch(db: Path, root: Path) -> subprocess.Popen:
    command = [
        sys.executable,
        "-c",
        "from ingest.cli import cli; cli(prog_name='claude-sessions')",
        "watch",
        "--db",
        str(db),
        "--projects",
        str(root),
        "--debounce",
        "0.05",
    ]
    return subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE)


def stop_within(proc: subprocess.Popen, seconds: float = STOP_SECONDS) -> float:
    started = time.monotonic()
    proc.send_signal(signal.SIGTERM)
    try:
        proc.communicate(timeout=seconds)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.communicate()
        pytest.fail(f"watch did not stop within {seconds} s of SIGTERM")
    return time.monotonic() - started


def big_tree(root: Path, files: int = 40, lines: int = 3000) -> None:
    for k in range(files):
        session = f"{k:08x}-0000-4000-8000-000000000000"
        with open(root / "-work-demo" / f"{session}.jsonl", "wb") as f:
            for i in range(lines):
                f.write(line(i, session)[:-2] + b', "pad": "' + b"y" * 400 + b'"}}\n')


@pytest.mark.parametrize("state", ["idle", "mid-pass", "lock-held", "database-busy"])
def test_sigterm_stops_within_5_s(root, db_path, state):
    append(transcript(root), 0)
    holder = None
    lock = None
    if state == "mid-pass":
        big_tree(root)  # an initial pass of some 60 MB
    proc = start_watch(db_path, root)
    try:
        if state == "mid-pass":
            wait_for(lambda: query(db_path, "SELECT 1 FROM sync_heartbeat WHERE state = 'syncing'"))
            wait_for(lambda: rows_of(db_path, "00000000-0000-4000-8000-000000000000") > 0, 30)
            assert not query(db_path, "SELECT 1 FROM sync_runs WHERE ended_at IS NOT NULL")
        else:
            wait_for(lambda: query(db_path, "SELECT state FROM sync_heartbeat") == [("idle",)])
        if state == "lock-held":
            lock = WriterLock(db_path)
            lock.acquire(False)
            append(transcript(root), 1)
            time.sleep(1)
        if state == "database-busy":
            holder = sqlite3.connect(db_path, isolation_level=None)
            register_lines(holder)
            holder.execute("BEGIN IMMEDIATE")
            append(transcript(root), 1)
            time.sleep(1)
        took = stop_within(proc)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
        if holder is not None:
            holder.execute("ROLLBACK")
            holder.close()
        if lock is not None:
            lock.release()
    print(f"{state}: stopped {took:.2f} s after SIGTERM")
    assert proc.returncode == 0
    if state != "database-busy":  # (there, the last heartbeat could not be written)
        assert query(db_path, "SELECT state FROM sync_heartbeat") == [("stopped",)]
    status = CliRunner().invoke(cli, ["status", "--db", str(db_path), "--json"])
    assert json.loads(status.output)["sidecar"]["alive"] is False
    # whatever was rolled back is read again by the next pass
    run_pass(db_path, [root])
    total = sum(len(p.read_bytes().splitlines()) for p in root.rglob("*.jsonl"))
    assert query(db_path, "SELECT count(*) FROM events") == [(total,)]


def status_page(db: Path) -> str:
    from .test_status import make_datasette

    async def get():
        ds = make_datasette(db)
        response = await ds.client.get("/-/claude-sessions/status")
        assert response.status_code == 200
        return response.text

    import asyncio

    return asyncio.run(get())


def test_the_status_page_shows_a_dead_sidecar_and_unreadable_files(root, db_path):
    append(transcript(root), 0)
    os.mkfifo(root / "-work-demo" / "pipe.jsonl")
    proc = start_watch(db_path, root)
    try:
        wait_for(lambda: query(db_path, "SELECT state FROM sync_heartbeat") == [("idle",)])
        assert 'data-alive="true"' in status_page(db_path)
    finally:
        proc.kill()  # SIGKILL: no chance to say "stopped"
        proc.communicate()
    html = status_page(db_path)
    assert 'data-alive="false"' in html
    assert f"The watch sidecar died: pid {proc.pid}" in html
    assert "Files that could not be read" in html
    assert "pipe.jsonl" in html and "a FIFO" in html
    status = CliRunner().invoke(cli, ["status", "--db", str(db_path)])
    assert "Sidecar:   died" in status.output
    assert "pipe.jsonl: not a regular file (a FIFO)" in status.output
