"""`claude-sessions merge`: another machine's archive into this one."""

from __future__ import annotations

import shutil
import sqlite3

import pytest
from click.testing import CliRunner

from ingest import schema
from ingest.cli import cli
from ingest.sync import run_pass

COUNTS = {
    "sync_files": "SELECT count(*) FROM sync_files",
    "events": "SELECT count(*) FROM events",
    "fts": "SELECT count(*) FROM events_fts",
    "sessions": "SELECT count(*) FROM sessions",
    "tool_calls": "SELECT count(*) FROM tool_calls",
    "api_calls": "SELECT count(*) FROM api_calls",
    "tokens": "SELECT sum(total_tokens) FROM api_calls",
    "cost": "SELECT round(sum(cost_usd), 6) FROM api_calls",
}


def counts(db) -> dict:
    conn = schema.connect(str(db))
    out = {name: conn.execute(sql).fetchone()[0] for name, sql in COUNTS.items()}
    conn.close()
    return out


def merge(other, db, ok=True):
    result = CliRunner().invoke(cli, ["merge", str(other), "--db", str(db)])
    if ok:
        assert result.exit_code == 0, result.output
    return result


@pytest.fixture
def two_machines(real_projects, tmp_path):
    """Archives of two machines with disjoint projects (A: one project, B: the rest)."""
    a_root, b_root = tmp_path / "a" / "projects", tmp_path / "b" / "projects"
    a_root.mkdir(parents=True)
    b_root.mkdir(parents=True)
    for i, project in enumerate(sorted(real_projects.iterdir())):
        shutil.copytree(project, (a_root if i == 0 else b_root) / project.name)
    a_db, b_db = tmp_path / "a.db", tmp_path / "b.db"
    run_pass(a_db, [a_root], host="laptop")
    run_pass(b_db, [b_root], host="desktop")
    return a_db, b_db


def test_merge_disjoint_adds_up_and_is_idempotent(two_machines, real_projects, tmp_path):
    a_db, b_db = two_machines
    a, b = counts(a_db), counts(b_db)
    result = merge(a_db, b_db)
    assert "new files" in result.output
    merged = counts(b_db)
    # the sessions reported are sessions rows (a line may name an id that makes none)
    assert result.output.rstrip().endswith(f", {a['sessions']:,} sessions updated.")
    for key in ("sync_files", "events", "fts", "sessions", "api_calls", "tokens"):
        assert merged[key] == a[key] + b[key], key
    assert merged["cost"] == pytest.approx(a["cost"] + b["cost"])
    merge(a_db, b_db)
    assert counts(b_db) == merged
    # The same as one machine reading everything.
    whole = tmp_path / "whole.db"
    run_pass(whole, [real_projects])
    one = counts(whole)
    for key in ("events", "sessions", "tool_calls", "api_calls", "tokens"):
        assert merged[key] == one[key], key
    conn = schema.connect(str(b_db))
    hosts = dict(conn.execute("SELECT host, count(*) FROM sync_files GROUP BY host"))
    assert set(hosts) == {"laptop", "desktop"}
    assert conn.execute(
        "SELECT count(*) FROM sync_files WHERE host = 'laptop' AND path NOT LIKE 'laptop:/%'"
    ).fetchone() == (0,)
    assert conn.execute("SELECT count(DISTINCT host) FROM api_calls").fetchone() == (2,)


def test_same_calls_in_both_count_once(two_machines, real_projects, tmp_path):
    """A machine that read everything merged into one that read a part: nothing doubles."""
    _, b_db = two_machines
    whole = tmp_path / "whole.db"
    run_pass(whole, [real_projects], host="server")
    expected = counts(whole)
    merge(whole, b_db)
    merged = counts(b_db)
    assert merged["api_calls"] == expected["api_calls"]
    assert merged["tokens"] == expected["tokens"]
    assert merged["cost"] == pytest.approx(expected["cost"])
    assert merged["events"] > expected["events"]  # both machines' lines are kept


def test_merge_errors(two_machines, tmp_path):
    a_db, b_db = two_machines
    result = merge(tmp_path / "nope.db", b_db, ok=False)
    assert result.exit_code == 1 and "does not exist" in result.output
    result = merge(b_db, b_db, ok=False)
    assert "is the archive itself" in result.output
    junk = tmp_path / "junk.db"
    junk.write_bytes(b"x" * 5000)
    assert "not a SQLite database" in merge(junk, b_db, ok=False).output
    other = tmp_path / "other.db"
    sqlite3.connect(other).execute("CREATE TABLE t (x)").connection.commit()
    assert "not a claude-sessions archive" in merge(other, b_db, ok=False).output
    assert "is a directory" in merge(tmp_path, b_db, ok=False).output


def test_merge_into_a_file_that_is_not_an_archive(two_machines, tmp_path):
    a_db, _ = two_machines
    text = tmp_path / "notsqlite.db"
    text.write_text("just text\n")
    result = merge(a_db, text, ok=False)
    assert result.exit_code == 1
    assert result.output == f"Error: {text} is not a SQLite database.\n"
    assert sorted(p.name for p in tmp_path.glob("notsqlite*")) == ["notsqlite.db"]


def test_merge_reports_real_sessions(real_projects, tmp_path):
    whole = tmp_path / "whole.db"
    run_pass(whole, [real_projects], host="server")
    result = merge(whole, tmp_path / "empty.db")
    assert result.output.rstrip().endswith(", 22 sessions updated.")
    assert counts(tmp_path / "empty.db")["sessions"] == 22
