"""`claude-sessions export --format parquet`: DuckDB reads the folder and reconciles it
with the archive, also after incremental exports."""

from __future__ import annotations

import json
import shutil
import sqlite3
import subprocess
import sys
from pathlib import Path

import orjson
import pytest
from click.testing import CliRunner

from ingest.cli import cli
from ingest.demo import generate
from ingest.export import as_bytes
from ingest.lines import register as register_lines
from ingest.parquet import STATE_FILE
from ingest.sync import run_pass

duckdb = pytest.importorskip("duckdb")
pytest.importorskip("pyarrow")

NOW = 1_790_000_000.0
TABLES = {
    "events": "id",
    "api_calls": "id",
    "tool_calls": "tool_use_id",
    "sessions": "session_id",
    "subagents": "agent_id",
}


def export(db: Path, out: Path, *extra: str) -> str:
    result = CliRunner().invoke(
        cli, ["export", "--format", "parquet", "-o", str(out), "--db", str(db), *extra]
    )
    assert result.exit_code == 0, result.output
    return result.output


def scan(out: Path, table: str) -> str:
    return f"read_parquet('{out}/{table}/**/*.parquet', hive_partitioning = true)"


def reconcile(db: Path, out: Path, *, pending_tool_calls: int = 0) -> dict[str, int]:
    """Each table's rows in the folder match the archive's, each key once; the total
    cost matches.  Returns the row counts."""
    archive = sqlite3.connect(db)
    register_lines(archive)
    con = duckdb.connect()
    counts = {}
    for table, key in TABLES.items():
        n, distinct = con.execute(
            f"SELECT count(*), count(DISTINCT {key}) FROM {scan(out, table)}"
        ).fetchone()
        expected = archive.execute(f"SELECT count(*) FROM {table}").fetchone()[0]
        if table == "tool_calls":
            expected -= pending_tool_calls
        assert n == distinct, f"{table}: a row written twice"
        assert n == expected, (table, n, expected)
        counts[table] = n
    exported_cost = con.execute(f"SELECT sum(cost_usd) FROM {scan(out, 'api_calls')}").fetchone()[0]
    archive_cost = archive.execute("SELECT sum(cost_usd) FROM api_calls").fetchone()[0]
    assert exported_cost == pytest.approx(archive_cost, rel=1e-9)
    assert archive_cost > 0
    # keys line up: the same ids, the same event of each API call
    ids = archive.execute(
        "SELECT group_concat(id) FROM (SELECT id FROM events ORDER BY id)"
    ).fetchone()[0]
    got = con.execute(
        f"SELECT string_agg(id::VARCHAR, ',' ORDER BY id) FROM {scan(out, 'events')}"
    ).fetchone()[0]
    assert got == ids
    archive.close()
    return counts


@pytest.fixture
def demo(tmp_path) -> Path:
    root = tmp_path / "projects"
    generate(root, mb=2, seed=6, now=NOW)
    return root


def test_export_reconciles_with_the_archive(demo, tmp_path):
    db = tmp_path / "a.db"
    run_pass(db, [demo], trigger="cli")
    out = tmp_path / "pq"
    output = export(db, out)
    assert output.startswith("Export 1 to ")
    counts = reconcile(db, out)
    assert counts["events"] > 300 and counts["tool_calls"] > 50 and counts["subagents"] > 0

    con = duckdb.connect()
    archive = sqlite3.connect(db)
    register_lines(archive)
    # raw is each line's text; partitions are host=…/day=… of the line's own time
    raw = dict(archive.execute("SELECT id, raw_bytes(raw) FROM events WHERE id % 37 = 0"))
    rows = con.execute(
        f"SELECT id, raw, host, day, timestamp FROM {scan(out, 'events')} WHERE id % 37 = 0"
    ).fetchall()
    assert len(rows) == len(raw)
    host = archive.execute("SELECT host FROM sync_files LIMIT 1").fetchone()[0]
    for event_id, text, row_host, day, timestamp in rows:
        assert text.encode() == as_bytes(raw[event_id])
        assert row_host == host
        if timestamp:
            assert str(day) == timestamp[:10]
    assert all(p.parts[-3].startswith("host=") for p in out.glob("events/*/*/*.parquet"))
    assert all(p.parts[-2].startswith("day=") for p in out.glob("events/*/*/*.parquet"))
    # the per-day cost agrees with the archive's usage_by_day
    by_day = dict(archive.execute("SELECT day, cost_usd FROM usage_by_day"))
    for day, cost in con.execute(
        f"SELECT day::VARCHAR, sum(cost_usd) FROM {scan(out, 'api_calls')} GROUP BY 1"
    ).fetchall():
        assert cost == pytest.approx(by_day[day], abs=2e-6)


def test_no_raw(demo, tmp_path):
    db = tmp_path / "a.db"
    run_pass(db, [demo], trigger="cli")
    out = tmp_path / "pq"
    export(db, out, "--no-raw")
    columns = [
        r[0]
        for r in duckdb.connect()
        .execute(f"DESCRIBE SELECT * FROM {scan(out, 'events')}")
        .fetchall()
    ]
    assert "raw" not in columns and "text" in columns and "id" in columns
    reconcile(db, out)
    # the choice sticks to the folder
    result = CliRunner().invoke(
        cli, ["export", "--format", "parquet", "-o", str(out), "--db", str(db)]
    )
    assert result.exit_code == 1
    assert "without raw" in result.output and "Traceback" not in result.output


def test_incremental_exports_add_only_new_rows(demo, tmp_path):
    """Half the files, export; the rest and more lines, export; nothing new, export."""
    part = tmp_path / "part"
    files = sorted(p for p in demo.rglob("*") if p.is_file())
    for p in files[: len(files) // 2]:
        target = part / p.relative_to(demo)
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(p, target)
    db = tmp_path / "a.db"
    run_pass(db, [part], trigger="cli")
    out = tmp_path / "pq"
    export(db, out)
    first = reconcile(db, out)
    w1 = json.loads((out / STATE_FILE).read_text())["exports"][0]["events_max_id"]

    for p in files[len(files) // 2 :]:
        target = part / p.relative_to(demo)
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(p, target)
    run_pass(db, [part], trigger="cli")
    assert export(db, out).startswith("Export 2 to ")
    second = reconcile(db, out)
    assert second["events"] > first["events"]
    con = duckdb.connect()
    # the second export's files hold only lines past the first watermark
    lo = con.execute(
        f"SELECT min(id), count(*) FROM read_parquet('{out}/events/*/*/part-2.parquet')"
    ).fetchone()
    assert lo[0] > w1 and lo[1] == second["events"] - first["events"]

    output = export(db, out)
    assert "0 events, 0 api_calls, 0 tool_calls" in output
    reconcile(db, out)
    state = json.loads((out / STATE_FILE).read_text())
    assert [e["seq"] for e in state["exports"]] == [1, 2, 3]


def _line(**rec) -> bytes:
    base = {
        "parentUuid": None,
        "isSidechain": False,
        "userType": "external",
        "cwd": "/w/p",
        "sessionId": "5e55e55e-0000-4000-8000-000000000001",
        "version": "2.1.42",
        "gitBranch": "main",
    }
    return orjson.dumps({**base, **rec}) + b"\n"


def test_tool_call_without_result_is_written_once(tmp_path):
    """An incomplete call waits one export, is written as it is, and its late result is
    not written again."""
    root = tmp_path / "projects"
    path = root / "-w-p" / "5e55e55e-0000-4000-8000-000000000001.jsonl"
    path.parent.mkdir(parents=True)
    usage = {"input_tokens": 10, "output_tokens": 5, "cache_read_input_tokens": 0}
    message = {
        "model": "claude-sonnet-4-5-20250929",
        "id": "msg_1",
        "role": "assistant",
        "usage": usage,
    }
    call = _line(
        type="assistant",
        uuid="u2",
        timestamp="2026-01-02T10:00:01.000Z",
        requestId="req_1",
        message={
            **message,
            "content": [
                {"type": "tool_use", "id": "toolu_1", "name": "Bash", "input": {"command": "ls"}}
            ],
        },
    )
    prompt = _line(
        type="user",
        uuid="u1",
        timestamp="2026-01-02T10:00:00.000Z",
        message={"role": "user", "content": "list the files"},
    )
    path.write_bytes(prompt + call)
    db = tmp_path / "a.db"
    out = tmp_path / "pq"
    run_pass(db, [root], trigger="cli")
    export(db, out)
    reconcile(db, out, pending_tool_calls=1)  # waits: its result may still come
    export(db, out)
    reconcile(db, out)  # written now, as it is
    result = _line(
        type="user",
        uuid="u3",
        parentUuid="u2",
        timestamp="2026-01-02T10:00:03.000Z",
        message={
            "role": "user",
            "content": [{"type": "tool_result", "tool_use_id": "toolu_1", "content": "a\nb"}],
        },
    )
    with open(path, "ab") as f:
        f.write(result)
    run_pass(db, [root], trigger="cli")
    export(db, out)
    reconcile(db, out)
    con = duckdb.connect()
    assert con.execute(f"SELECT count(*) FROM {scan(out, 'tool_calls')}").fetchone()[0] == 1


def test_complete_tool_call_is_written_in_the_first_export(tmp_path):
    root = tmp_path / "projects"
    generate(root, mb=0.4, seed=2, now=NOW)
    db = tmp_path / "a.db"
    run_pass(db, [root], trigger="cli")
    out = tmp_path / "pq"
    export(db, out)
    pending = (
        sqlite3.connect(db)
        .execute(
            "SELECT count(*) FROM tool_calls WHERE event_id IS NULL OR result_event_id IS NULL"
        )
        .fetchone()[0]
    )
    reconcile(db, out, pending_tool_calls=pending)


def test_bad_requests_are_one_sentence(demo, tmp_path):
    db = tmp_path / "a.db"
    run_pass(db, [demo], trigger="cli")
    runner = CliRunner()

    def fails(*args: str) -> str:
        result = runner.invoke(cli, ["export", *args, "--db", str(db)])
        assert result.exit_code != 0
        assert "Traceback" not in result.output
        return result.output

    out = tmp_path / "pq"
    assert "leave out SESSION_ID" in fails("abcdef12", "--format", "parquet", "-o", str(out))
    assert "--no-raw goes with --format parquet" in fails("--all", "--no-raw", "-o", str(out))
    busy = tmp_path / "busy"
    busy.mkdir()
    (busy / "notes.txt").write_text("mine")
    assert "not empty" in fails("--format", "parquet", "-o", str(busy))
    export(db, out)
    other = tmp_path / "other.db"
    run_pass(other, [tmp_path / "nothing"], trigger="cli")
    small = tmp_path / "small"
    generate(small, mb=0.2, seed=9, now=NOW)
    run_pass(other, [small], trigger="cli")
    result = runner.invoke(
        cli, ["export", "--format", "parquet", "-o", str(out), "--db", str(other)]
    )
    assert result.exit_code == 1 and "another archive" in result.output


def test_missing_pyarrow_says_how_to_install(demo, tmp_path):
    db = tmp_path / "a.db"
    run_pass(db, [demo], trigger="cli")
    code = (
        "import sys; sys.modules['pyarrow'] = None\n"
        "from ingest.cli import cli\n"
        f"cli(['export', '--format', 'parquet', '-o', {str(tmp_path / 'pq')!r}, '--db', {str(db)!r}])"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert proc.returncode == 1
    assert "pip install 'datasette-claude-sessions[parquet]'" in proc.stderr
    assert "Traceback" not in proc.stderr


def test_events_and_tool_calls_keep_one_file_open_at_a_time(demo, tmp_path, monkeypatch):
    """A partition's file is written whole before the next one opens (an open
    ParquetWriter keeps its buffers: with every day's file open at once a 1 GB export
    peaked at 290-340 MB), in several row groups when it is large, rows in id order."""
    import pyarrow.parquet as pq

    from ingest import parquet

    db = tmp_path / "a.db"
    run_pass(db, [demo], trigger="cli")
    monkeypatch.setattr(parquet, "BATCH_ROWS", 40)  # several row groups per file
    monkeypatch.setattr(parquet, "CHUNK_ROWS", 25)
    opened: list[str] = []
    most = {"open": 0, "now": 0}
    original = pq.ParquetWriter

    class Counting(original):
        def __init__(self, where, *args, **kwargs):
            super().__init__(where, *args, **kwargs)
            opened.append(str(where))
            most["now"] += 1
            most["open"] = max(most["open"], most["now"])

        def close(self):
            most["now"] -= 1
            super().close()

    monkeypatch.setattr(pq, "ParquetWriter", Counting)
    out = tmp_path / "pq"
    export(db, out)
    assert most == {"open": 1, "now": 0}
    days = {p for p in opened if "/events/" in p}
    assert len(days) > 5  # many partitions, each opened once
    reconcile(db, out)
    groups = [pq.ParquetFile(p).num_row_groups for p in days]
    assert max(groups) > 1
    for path in days:
        ids = pq.read_table(path, columns=["id"]).column("id").to_pylist()
        assert ids == sorted(ids)
