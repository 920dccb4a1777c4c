"""`claude-sessions statusline`: Claude Code's status-line JSON on stdin, one line out,
the session's new lines archived first.  Run as real processes with real stdin."""

from __future__ import annotations

import json
import os
import re
import sqlite3
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from ingest.lines import register as register_lines
from ingest.lock import WriterLock
from ingest.sync import run_pass

from .test_usage import SID, line, write_jsonl

ROOT = Path(__file__).resolve().parent.parent
# The console script's own code path (ingest.entry), so the fast path is what runs.
ENTRY = [sys.executable, "-c", "from ingest.entry import main; main()"]


def stamp(minutes_ago: float) -> str:
    ts = datetime.now(UTC) - timedelta(minutes=minutes_ago)
    return ts.strftime("%Y-%m-%dT%H:%M:%S.") + f"{ts.microsecond // 1000:03d}Z"


def statusline(payload, db, projects, *extra, code=None):
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    data = payload if isinstance(payload, str) else json.dumps(payload)
    prefix = [sys.executable, "-c", code] if code else ENTRY
    return subprocess.run(
        [*prefix, "statusline", "--db", str(db), "--projects", str(projects), *extra],
        input=data.encode(),
        capture_output=True,
        env=env,
        timeout=120,
    )


def payload(transcript: Path, session=SID) -> dict:
    return {
        "hook_event_name": "Status",
        "session_id": session,
        "transcript_path": str(transcript),
        "cwd": "/work/app",
        "model": {"id": "claude-opus-4-1", "display_name": "Opus"},
        "workspace": {"current_dir": "/work/app", "project_dir": "/work/app"},
        "version": "1.0.80",
        "cost": {"total_cost_usd": 0.5},
    }


@pytest.fixture
def session(tmp_path):
    root = tmp_path / "projects"
    transcript = write_jsonl(
        root / "-work-app" / f"{SID}.jsonl",
        [
            line("m1", "r1", ts=stamp(50), out=100_000),
            line("m2", "r2", ts=stamp(20), out=200_000),
        ],
    )
    # Another session today, and one call two days ago that counts for neither.
    write_jsonl(
        root / "-work-app" / "22222222-2222-3333-4444-555555555555.jsonl",
        [
            line(
                "o1",
                "q1",
                ts=stamp(30),
                out=300_000,
                session="22222222-2222-3333-4444-555555555555",
            ),
            line(
                "o2",
                "q2",
                ts=stamp(60 * 48),
                out=700,
                session="22222222-2222-3333-4444-555555555555",
            ),
        ],
    )
    return root, transcript


def costs(db, where, params=()) -> float:
    conn = sqlite3.connect(db)
    register_lines(conn)
    value = conn.execute(f"SELECT sum(cost_usd) FROM api_calls WHERE {where}", params).fetchone()
    conn.close()
    return value[0]


def dollars(text: str, label: str) -> str:
    m = re.search(r"\$([\d,.]+) " + label, text)
    assert m, text
    return m.group(1)


def test_prints_session_today_and_block(session, db_path):
    root, transcript = session
    run_pass(db_path, [root])
    result = statusline(payload(transcript), db_path, root)
    assert result.returncode == 0, result.stderr
    text = result.stdout.decode()
    assert text.count("\n") == 1
    assert text.startswith("🤖 Opus | 💰 ")
    assert dollars(text, "session") == f"{costs(db_path, 'session_id = ?', (SID,)):,.2f}"
    midnight = datetime.combine(datetime.now().date(), datetime.min.time()).astimezone(UTC)
    today = costs(db_path, "timestamp >= ?", (midnight.strftime("%Y-%m-%dT%H:%M:%S"),))
    # (None in the first hour after midnight: the calls 20-50 minutes ago were yesterday)
    assert dollars(text, "today") == f"{today or 0:,.2f}"
    if datetime.now().hour >= 1:  # the calls of the last hour all fall on today
        assert float(dollars(text, "today")) > float(dollars(text, "session"))
    assert re.search(r"\$[\d.]+ block \((\d)h (\d+)m left\)", text)
    assert re.search(r"🔥 \$[\d.]+/hr", text)
    # The context of the session's last main-thread call: 3 + 100 + 1,000 tokens.
    assert text.rstrip().endswith("| 🧠 1,103 (1%)")


def imports_probe(*modules: str) -> str:
    """Code that runs the CLI and, at exit, writes to stderr which of ``modules`` it
    imported (a sorted list)."""
    return (
        "import atexit, sys\n"
        "atexit.register(lambda: sys.stderr.write(repr(sorted(m for m in "
        f"{modules!r} if m in sys.modules))))\n"
        "from ingest.entry import main; main()"
    )


def test_archives_the_new_lines_first(session, db_path):
    root, transcript = session
    run_pass(db_path, [root])
    before = costs(db_path, "session_id = ?", (SID,))
    with open(transcript, "a") as f:
        f.write(json.dumps(line("m3", "r3", ts=stamp(1), out=50_000)) + "\n")
    result = statusline(payload(transcript), db_path, root)
    assert result.returncode == 0, result.stderr
    after = costs(db_path, "session_id = ?", (SID,))
    assert after > before
    assert dollars(result.stdout.decode(), "session") == f"{after:,.2f}"
    conn = sqlite3.connect(db_path)
    register_lines(conn)
    runs = conn.execute("SELECT trigger, files_changed FROM sync_runs ORDER BY id").fetchall()
    assert runs[-1] == ("statusline", 1)
    # Nothing new: no pass at all, and the sync engine is not even imported.
    probe = imports_probe("click", "ingest.sync", "ingest.cli")
    again = statusline(payload(transcript), db_path, root, code=probe)
    assert again.returncode == 0, again.stderr
    assert again.stderr.decode().endswith("[]")
    assert conn.execute("SELECT count(*) FROM sync_runs").fetchone()[0] == len(runs)
    conn.close()


def test_a_new_line_costs_no_more_than_its_pass(session, db_path):
    """With a new line the command runs the engine's one-file pass and nothing the pass
    does not need: no ctypes (the sidecar's heap tricks), no sqlite-utils, no click; its
    one read-only connection sees what the pass wrote (the line's cost is in the
    figures, read after the pass through the connection opened before it)."""
    root, transcript = session
    run_pass(db_path, [root])
    with open(transcript, "a") as f:
        f.write(json.dumps(line("m4", "r4", ts=stamp(1), out=80_000)) + "\n")
    probe = imports_probe("click", "ctypes", "sqlite_utils", "ingest.sync", "ingest.cli")
    result = statusline(payload(transcript), db_path, root, code=probe)
    assert result.returncode == 0, result.stderr
    assert result.stderr.decode().endswith("['ingest.sync']")
    after = costs(db_path, "session_id = ?", (SID,))
    assert dollars(result.stdout.decode(), "session") == f"{after:,.2f}"


def test_price_objects_print_as_the_dataclasses_did():
    """Rates and Price are plain classes (cheaper to define than dataclasses) whose
    repr is the dataclasses': PriceTable.fingerprint() hashes it, and a changed
    fingerprint would re-price every call of every archive on its next pass."""
    from ingest.digest import sha1
    from ingest.pricing import Price, PriceTable, Rates

    rates = Rates(input=1.0, output=2.0, cache_write_5m=1.25, cache_write_1h=2.0, cache_read=0.1)
    assert repr(rates) == (
        "Rates(input=1.0, output=2.0, cache_write_5m=1.25, cache_write_1h=2.0, cache_read=0.1)"
    )
    price = Price(rates=rates)
    assert repr(price) == f"Price(rates={rates!r}, above_200k=None, fast_multiplier=1.0)"
    assert price == Price(rates, None, 1.0) and hash(price) == hash(Price(rates, None, 1.0))
    assert price != Price(rates, rates)
    with pytest.raises(AttributeError):
        rates.input = 3.0
    table = PriceTable.load({"models": {"m": {"input": 1, "output": 2}}})
    assert (
        table.fingerprint()
        == sha1(repr((table.threshold, sorted(table.models.items()))).encode()).hexdigest()
    )


def test_first_run_creates_the_archive_from_that_one_file(session, tmp_path):
    root, transcript = session
    db = tmp_path / "new" / "archive.db"
    result = statusline(payload(transcript), db, root)
    assert result.returncode == 0, result.stderr
    conn = sqlite3.connect(db)
    register_lines(conn)
    assert conn.execute("SELECT count(*) FROM sync_files").fetchone()[0] == 1
    conn.close()
    assert (
        dollars(result.stdout.decode(), "session") == f"{costs(db, 'session_id = ?', (SID,)):,.2f}"
    )


def test_another_writer_does_not_block_it(session, db_path):
    root, transcript = session
    run_pass(db_path, [root])
    with open(transcript, "a") as f:
        f.write(json.dumps(line("m3", "r3", ts=stamp(1), out=50_000)) + "\n")
    lock = WriterLock(db_path)
    lock.acquire(5)
    try:
        result = statusline(payload(transcript), db_path, root)
    finally:
        lock.release()
    assert result.returncode == 0, result.stderr
    # The line shows what is archived; the running pass will add the rest.
    before = costs(db_path, "session_id = ?", (SID,))
    assert dollars(result.stdout.decode(), "session") == f"{before:,.2f}"


def test_no_active_block_and_unknown_session(tmp_path, db_path):
    root = tmp_path / "projects"
    old = write_jsonl(root / "-p" / f"{SID}.jsonl", [line("m1", "r1", ts=stamp(60 * 30))])
    run_pass(db_path, [root])
    result = statusline(payload(old, session="not-archived"), db_path, root, "--no-sync")
    assert result.returncode == 0, result.stderr
    text = result.stdout.decode()
    assert "$0.00 session" in text and "no active block" in text and "🔥" not in text


@pytest.mark.parametrize("stdin", ["", "not json", "[1, 2]"])
def test_bad_input_is_one_sentence(session, db_path, stdin):
    root, _ = session
    result = statusline(stdin, db_path, root)
    assert result.returncode == 1
    err = result.stderr.decode()
    assert err.startswith("Error: statusline reads the JSON object") and "Traceback" not in err


def test_help_goes_through_click(session, db_path):
    result = subprocess.run(
        [*ENTRY, "statusline", "--help"],
        capture_output=True,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
        timeout=60,
    )
    assert result.returncode == 0
    assert b'"statusLine"' in result.stdout and b"--no-sync" in result.stdout


def test_one_file_pass_reads_only_the_rows_it_needs(real_projects, db_path):
    """known_files_query gives exactly the tracked files looked_at accepts: a pass over
    one file reads its own sync_files row, a folder's pass the rows under it."""
    from ingest.sync import known_files_query

    run_pass(db_path, [real_projects])
    conn = sqlite3.connect(db_path)
    register_lines(conn)
    everything = [r[0] for r in conn.execute("SELECT path FROM sync_files")]
    one = Path(everything[0])
    folder = one.parent
    for paths in ([one], [folder], [folder, Path(everything[-1])], [real_projects / "none"]):
        sql, args = known_files_query(paths)
        got = sorted(r[0] for r in conn.execute(sql.replace("*", "path"), args))
        places = [str(p.absolute()) for p in paths]
        expected = sorted(
            p for p in everything if p in places or p.startswith(tuple(x + "/" for x in places))
        )
        assert got == expected, paths
        plan = " ".join(str(r) for r in conn.execute("EXPLAIN QUERY PLAN " + sql, args))
        assert "SCAN sync_files" not in plan  # through the path index
    assert known_files_query(None)[1] == []
    conn.close()


def test_one_block_everywhere(session, db_path):
    """The running 5-hour block is the same in the usage_blocks view, `cost --by block`,
    the status page's figures and the status line: one implementation (ingest.blocks)."""
    from click.testing import CliRunner

    from ingest import figures
    from ingest.cli import cli

    root, transcript = session
    run_pass(db_path, [root])
    conn = sqlite3.connect(db_path)
    register_lines(conn)
    view = conn.execute(
        "SELECT block_start, block_end, calls, cost_usd FROM usage_blocks WHERE is_active"
    ).fetchall()
    page = figures.usage(conn)["current_block"]
    conn.close()
    assert len(view) == 1
    start, end, calls, cost = view[0]
    assert (page["start"], page["end"], page["calls"]) == (start, end, calls)
    assert page["cost_usd"] == pytest.approx(cost)
    out = CliRunner().invoke(cli, ["cost", "--db", str(db_path), "--by", "block", "--json"])
    active = [r for r in json.loads(out.output)["rows"] if r["active"]]
    assert [(r["block_start"], r["block_end"], r["calls"]) for r in active] == [view[0][:3]]
    assert active[0]["cost_usd"] == pytest.approx(cost)
    assert active[0]["projected_cost_usd"] == pytest.approx(page["projected_cost_usd"], rel=1e-3)
    text = statusline(payload(transcript), db_path, root).stdout.decode()
    assert dollars(text, "block") == f"{cost:,.2f}"
    hours, minutes = map(int, re.search(r"block \((\d)h (\d+)m left\)", text).groups())
    left = datetime.fromisoformat(end.replace("Z", "+00:00")) - datetime.now(UTC)
    assert abs(hours * 60 + minutes - left.total_seconds() / 60) <= 2
