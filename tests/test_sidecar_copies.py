"""A backup or copy of an archive carries the sidecar's heartbeat row along, but no
sidecar writes into the copy: `status` and the status page must not call it alive."""

from __future__ import annotations

import json
import shutil
import sqlite3
import subprocess
import time

import pytest
from click.testing import CliRunner

from ingest.cli import cli
from ingest.lines import register as register_lines

from .browser_helpers import claude_sessions_command, isolated_env
from .pages_helpers import datasette_for, synthetic_session, write_jsonl


def _status(db, *, ready: bool = True) -> dict:
    result = CliRunner().invoke(cli, ["status", "--db", str(db), "--json"])
    if not ready and result.exit_code != 0:
        return {}  # the sidecar has not created the archive yet
    assert result.exit_code == 0, result.output
    return json.loads(result.output)


@pytest.mark.asyncio
async def test_copies_do_not_claim_the_live_sidecar(tmp_path):
    projects = tmp_path / "projects"
    write_jsonl(projects / "-w" / "s1.jsonl", synthetic_session("s1", 20))
    db = tmp_path / "a.db"
    watch = subprocess.Popen(
        [*claude_sessions_command(), "watch", "--db", str(db), "--projects", str(projects), "-q"],
        env=isolated_env(tmp_path / "home"),
    )
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if db.exists() and (_status(db, ready=False).get("sidecar") or {}).get("alive"):
                break
            time.sleep(0.3)
        original = _status(db)["sidecar"]
        assert original["alive"] is True and original["pid"] == watch.pid
        backup = tmp_path / "backup.db"
        assert CliRunner().invoke(cli, ["backup", str(backup), "--db", str(db)]).exit_code == 0
        copied = tmp_path / "copied.db"
        shutil.copy(backup, copied)
        for copy in (backup, copied):
            conn = sqlite3.connect(copy)
            register_lines(conn)
            row = conn.execute("select pid, archive from sync_heartbeat").fetchone()
            conn.close()
            assert row[0] == watch.pid and row[1]  # the row came along, pid alive here
            sidecar = _status(copy)["sidecar"]
            assert sidecar["alive"] is False, copy
            assert "copied from another archive file" in sidecar["why"]
            text = CliRunner().invoke(cli, ["status", "--db", str(copy)]).output
            assert "Sidecar:   not running" in text and "alive" not in text
            page = (await datasette_for(copy).client.get("/-/claude-sessions/status")).text
            assert 'data-alive="false"' in page and "copied from another archive" in page
        assert _status(db)["sidecar"]["alive"] is True  # the original still is
    finally:
        watch.terminate()
        watch.wait(timeout=30)


def test_block_burn_rate_needs_calls_spread_out(tmp_path):
    # Eight API calls within 15 seconds, and the same eight 5 minutes apart two days
    # later: only the second block has a rate.
    from .test_transcript_render import review_session

    projects = tmp_path / "projects"
    short = review_session()
    spread = review_session()
    for i, record in enumerate(spread):
        record["sessionId"] = "spread"
        record["timestamp"] = f"2025-09-03T10:{i * 5 // 2:02d}:{i % 2 * 30:02d}.000Z"
        if record["type"] == "assistant":
            record["message"]["id"] += "-spread"
    write_jsonl(projects / "-w" / "short.jsonl", short)
    write_jsonl(projects / "-w" / "spread.jsonl", spread)
    db = tmp_path / "a.db"
    synced = CliRunner().invoke(cli, ["sync", "--db", str(db), "--projects", str(projects)])
    assert synced.exit_code == 0, synced.output
    out = CliRunner().invoke(cli, ["cost", "--db", str(db), "--by", "block"]).output
    rows = {line.split()[0]: line for line in out.splitlines() if line.startswith("2025-09-0")}
    short_row, spread_row = rows["2025-09-01T10:00:00Z"], rows["2025-09-03T10:00:00Z"]
    assert short_row.count("$") == 1  # its cost, no $/hour
    assert spread_row.count("$") == 2  # its cost and $/hour
    assert "less than 10 minutes apart" in out and "projected: for the active block" in out
    conn = sqlite3.connect(db)
    register_lines(conn)
    rates = conn.execute("select cost_per_hour from usage_blocks order by block_start").fetchall()
    conn.close()
    assert rates[0][0] is None and rates[1][0] > 0
