"""A real `claude-sessions sync` killed with SIGKILL at random points, then completed,
leaves exactly the archive of one clean sync: nothing lost, nothing twice."""

from __future__ import annotations

import os
import random
import shutil
import signal
import sqlite3
import subprocess
import time
from pathlib import Path

import pytest

from ingest.lines import register as register_lines
from ingest.sync import run_pass

from .conftest import REAL

KILLS = 20
BATCH_BYTES = "16384"


def build_corpus(root: Path, copies: int) -> None:
    """Several copies of the real samples under new project names (about 6 MB each)."""
    for k in range(copies):
        for project in REAL.iterdir():
            shutil.copytree(project, root / f"{project.name}-copy{k}")


def append_lines(path: Path, n: int) -> None:
    """Append n of the file's own lines again (new offsets, same content)."""
    lines = path.read_bytes().splitlines(keepends=True)[:n]
    with open(path, "ab") as f:
        f.writelines(lines)


def snapshot(db: Path) -> dict:
    conn = sqlite3.connect(db)
    register_lines(conn)
    try:
        rows = conn.execute(
            "SELECT f.rel_path, e.generation, e.byte_offset, e.line_number, raw_bytes(e.raw) "
            "FROM events e JOIN sync_files f ON f.id = e.file_id"
        ).fetchall()

        def all_of(sql):
            return sorted(conn.execute(sql).fetchall(), key=repr)

        return {
            "rows": sorted(rows),
            "files": all_of("SELECT rel_path, position, size, lines, errors FROM sync_files"),
            "sessions": all_of(
                "SELECT session_id, project_path, title, title_source, first_timestamp, "
                "last_timestamp, events, prompts, assistant_messages, tool_calls, subagents, "
                "models, git_branch, version, sources_exist FROM sessions"
            ),
            "projects": all_of("SELECT * FROM projects"),
            "tool_calls": all_of(
                "SELECT tool_use_id, name, is_error, started_at, finished_at, duration_ms "
                "FROM tool_calls"
            ),
            "subagents": all_of("SELECT agent_id, session_id, tool_use_id, events FROM subagents"),
            # the sums the engine keeps with api_calls, in the same transactions
            "usage_sums": all_of(
                "SELECT session_id, agent_id, slot, model, project, host, is_sidechain, calls, "
                "input_tokens, output_tokens, cache_creation_5m_tokens, "
                "cache_creation_1h_tokens, cache_read_tokens, total_tokens, round(cost_usd, 9), "
                "unpriced_calls, first_call, last_call FROM usage_sums"
            ),
            "fts_docs": conn.execute("SELECT count(*) FROM events_fts_docsize").fetchone(),
            "fts_hits": conn.execute(
                "SELECT count(*) FROM events_fts WHERE events_fts MATCH 'cache'"
            ).fetchone(),
        }
    finally:
        conn.close()


def count_rows(db: Path) -> int:
    if not db.exists():
        return 0
    conn = sqlite3.connect(db)
    register_lines(conn)
    try:
        return conn.execute("SELECT count(*) FROM events").fetchone()[0]
    except sqlite3.OperationalError:
        return 0
    finally:
        conn.close()


def test_sigkill_at_random_points_loses_and_duplicates_nothing(tmp_path, monkeypatch):
    if not REAL.exists():
        pytest.skip("samples not found")
    root = tmp_path / "projects"
    build_corpus(root, copies=2)
    monkeypatch.setenv("CLAUDE_SESSIONS_BATCH_BYTES", BATCH_BYTES)
    env = dict(os.environ)
    program = shutil.which("claude-sessions")
    if program is None:
        pytest.skip("claude-sessions is not installed")
    command = [program, "sync", "--projects", str(root), "-q"]

    # How long the program takes to start and to do a whole pass here, to aim the kills.
    started = time.monotonic()
    subprocess.run([program, "--version"], env=env, check=True, capture_output=True)
    startup = time.monotonic() - started
    probe = tmp_path / "probe.db"
    started = time.monotonic()
    run_pass(probe, [root])
    pass_time = time.monotonic() - started

    rng = random.Random(1234)
    db = tmp_path / "crash.db"
    mid_pass = 0
    files = sorted(root.rglob("*.jsonl"))
    for i in range(KILLS):
        if i % 5 == 4:
            append_lines(rng.choice(files), 5)
        before = count_rows(db)
        proc = subprocess.Popen([*command, "--db", str(db)], env=env)
        time.sleep(startup + rng.uniform(0, pass_time / 3))
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        if proc.returncode == -signal.SIGKILL and count_rows(db) > before:
            mid_pass += 1  # killed after committing some batches, before the end
    finished = subprocess.run([*command, "--db", str(db)], env=env)
    assert finished.returncode == 0

    clean = tmp_path / "clean.db"
    run_pass(clean, [root])
    crashed, expected = snapshot(db), snapshot(clean)
    print(f"{mid_pass} of {KILLS} kills landed mid-pass")
    assert mid_pass >= 1
    assert len(expected["rows"]) == len(set(expected["rows"])) > 3000
    for key in expected:
        assert crashed[key] == expected[key], key
