"""`claude-sessions cost` for ccusage users: YYYYMMDD dates, --breakdown, --order,
--by agent, readable project names and --json-format ccusage (checked against the key
structure of ccusage's JSON and the reference totals ccusage computed on the samples)."""

from __future__ import annotations

import json
import re

import pytest

from ingest.lines import register as register_lines
from ingest.sync import run_pass

from .conftest import SAMPLES
from .test_cost import run
from .test_usage import SID, line, write_jsonl

ISO_MS = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$")
REFERENCE = json.loads((SAMPLES / "reference-usage.json").read_text())
TOKENS = ("inputTokens", "outputTokens", "cacheCreationTokens", "cacheReadTokens")
# ccusage's JSON (src/commands/{daily,monthly,weekly,session,blocks}.ts,
# src/calculate-cost.ts createTotalsObject, src/data-loader.ts modelBreakdownSchema).
PERIOD_KEYS = {*TOKENS, "totalTokens", "totalCost", "modelsUsed", "modelBreakdowns"}
BREAKDOWN_KEYS = {"modelName", *TOKENS, "cost"}
TOTALS_KEYS = {*TOKENS, "totalTokens", "totalCost"}
SESSION_KEYS = PERIOD_KEYS | {"sessionId", "lastActivity", "projectPath"}
BLOCK_KEYS = {
    "id",
    "startTime",
    "endTime",
    "actualEndTime",
    "isActive",
    "isGap",
    "entries",
    "tokenCounts",
    "totalTokens",
    "costUSD",
    "models",
    "burnRate",
    "projection",
}
BLOCK_TOKEN_KEYS = {
    "inputTokens",
    "outputTokens",
    "cacheCreationInputTokens",
    "cacheReadInputTokens",
}


def cost_json(db, *args):
    return json.loads(run("cost", "--db", db, *args).output)


@pytest.fixture
def synced(real_projects, db_path):
    run_pass(db_path, [real_projects])
    return db_path


def test_dates_as_yyyymmdd_or_iso(synced):
    iso = cost_json(synced, "--json", "--utc", "--since", "2025-07-01", "--until", "2025-07-31")
    compact = cost_json(synced, "--json", "--utc", "--since", "20250701", "--until", "20250731")
    assert iso == compact
    assert iso["rows"] and all(r["day"].startswith("2025-07") for r in iso["rows"])
    bad = run("cost", "--db", synced, "--since", "2025071", ok=False)
    assert "must be a date like 2025-01-31 or 20250131" in bad.output
    assert "Traceback" not in bad.output


@pytest.mark.parametrize("by", ["day", "month", "session", "project", "agent", "block"])
def test_breakdown_rows_add_up_to_their_row(synced, by):
    out = cost_json(synced, "--by", by, "--json", "--breakdown", "--utc")
    assert out["rows"]
    for row in out["rows"]:
        models = row["models"]
        assert models and len({m["model"] for m in models}) == len(models)
        for key in ("calls", "input_tokens", "output_tokens", "cache_read_tokens"):
            assert sum(m[key] for m in models) == row[key], key
        assert sum(m["cost_usd"] for m in models) == pytest.approx(row["cost_usd"])
        costs = [m["cost_usd"] for m in models]
        assert costs == sorted(costs, reverse=True)
    plain = cost_json(synced, "--by", by, "--json", "--utc")
    assert all("models" not in r for r in plain["rows"])


def test_breakdown_in_the_table(synced):
    text = run("cost", "--db", synced, "--by", "month", "--breakdown", "--utc").output
    lines = text.splitlines()
    nov = lines.index(next(x for x in lines if x.startswith("2025-11 ")))
    under = [x.split()[1] for x in lines[nov + 1 :] if x.startswith("  - ")][:3]
    assert under == [
        "claude-opus-4-5-20251101",
        "claude-haiku-4-5-20251001",
        "claude-sonnet-4-5-20250929",
    ]
    assert "  - " not in run("cost", "--db", synced, "--by", "month", "--utc").output


def test_order(synced):
    days = [r["day"] for r in cost_json(synced, "--json", "--utc")["rows"]]
    assert days == sorted(days)
    desc = [r["day"] for r in cost_json(synced, "--json", "--utc", "--order", "desc")["rows"]]
    assert desc == sorted(days, reverse=True)
    projects = cost_json(synced, "--by", "project", "--json")["rows"]
    costs = [r["cost_usd"] for r in projects]
    assert costs == sorted(costs, reverse=True)
    asc = cost_json(synced, "--by", "project", "--json", "--order", "asc")["rows"]
    assert [r["cost_usd"] for r in asc] == sorted(costs)
    blocks = cost_json(synced, "--by", "block", "--json", "--order", "desc")["rows"]
    starts = [b["block_start"] for b in blocks]
    assert starts == sorted(starts, reverse=True)


def test_project_rows_are_named_like_the_web_app(synced):
    import sqlite3

    rows = cost_json(synced, "--by", "project", "--json")["rows"]
    conn = sqlite3.connect(synced)
    register_lines(conn)
    names = dict(conn.execute("SELECT project_dir, name FROM projects"))
    assert {r["project_dir"] for r in rows} <= set(names)
    for r in rows:
        assert r["project"] == names[r["project_dir"]]
        assert not r["project"].startswith("-")  # not the encoded folder
    text = run("cost", "--db", synced, "--by", "project").output
    assert "claude-code-log" in text and "-Users-" not in text
    sessions = cost_json(synced, "--by", "session", "--json")["rows"]
    assert {s["project"] for s in sessions} <= set(names.values())


def test_by_agent_type(tmp_path, db_path):
    root = tmp_path / "projects"
    project = root / "-work-app"
    write_jsonl(
        project / f"{SID}.jsonl",
        [line("m1", "r1", out=100), line("m2", "r2", out=200, ts="2025-06-01T10:05:00.000Z")],
    )
    for agent, kind, out in (("a1", "Explore", 7), ("a2", "Explore", 11), ("a3", "Plan", 13)):
        sub = project / SID / "subagents"
        write_jsonl(
            sub / f"agent-{agent}.jsonl",
            [line(f"m-{agent}", f"r-{agent}", out=out, sidechain=True, agent=agent)],
        )
        (sub / f"agent-{agent}.meta.json").write_text(json.dumps({"agentType": kind}))
    run_pass(db_path, [root])
    out = cost_json(db_path, "--by", "agent", "--json")
    rows = {r["agent_type"]: r for r in out["rows"]}
    assert set(rows) == {"main", "Explore", "Plan"}
    assert (rows["main"]["output_tokens"], rows["main"]["calls"]) == (300, 2)
    assert (rows["Explore"]["output_tokens"], rows["Explore"]["agents"]) == (18, 2)
    assert (rows["Plan"]["output_tokens"], rows["Plan"]["agents"]) == (13, 1)
    assert out["totals"]["output_tokens"] == 331
    text = run("cost", "--db", db_path, "--by", "agent").output
    assert "Explore (2 agents)" in text and "Plan (1 agent)" in text


@pytest.mark.parametrize(
    "by,top,field",
    [("day", "daily", "date"), ("week", "weekly", "week"), ("month", "monthly", "month")],
)
def test_ccusage_shape_for_periods(synced, by, top, field):
    out = cost_json(synced, "--by", by, "--json-format", "ccusage", "--utc")
    assert set(out) == {top, "totals"}
    assert set(out["totals"]) == TOTALS_KEYS
    for row in out[top]:
        assert set(row) == PERIOD_KEYS | {field}
        assert row["totalTokens"] == sum(row[k] for k in TOKENS)
        assert row["modelsUsed"] == [b["modelName"] for b in row["modelBreakdowns"]]
        for b in row["modelBreakdowns"]:
            assert set(b) == BREAKDOWN_KEYS
    ref = REFERENCE["totals"]
    totals = out["totals"]
    assert totals["inputTokens"] == ref["input_tokens"]
    assert totals["outputTokens"] == ref["output_tokens"]
    assert totals["cacheCreationTokens"] == ref["cache_creation_tokens"]
    assert totals["cacheReadTokens"] == ref["cache_read_tokens"]
    assert totals["totalCost"] == pytest.approx(ref["cost_usd"], abs=0.01)


def test_ccusage_shape_for_sessions_matches_the_reference(synced):
    out = cost_json(synced, "--by", "session", "--json-format", "ccusage")
    assert set(out) == {"sessions", "totals"}
    sessions = {s["sessionId"]: s for s in out["sessions"]}
    for s in out["sessions"]:
        assert set(s) == SESSION_KEYS
        assert len(s["lastActivity"]) == 10 and s["projectPath"].startswith("-")
    assert set(REFERENCE["sessions"]) <= set(sessions)
    for sid, ref in REFERENCE["sessions"].items():
        mine = sessions[sid]
        assert mine["inputTokens"] == ref["input_tokens"], sid
        assert mine["outputTokens"] == ref["output_tokens"], sid
        assert mine["cacheCreationTokens"] == ref["cache_creation_tokens"], sid
        assert mine["cacheReadTokens"] == ref["cache_read_tokens"], sid
        assert mine["totalCost"] == pytest.approx(ref["cost_usd"], abs=0.01), sid
    assert out["totals"]["totalCost"] == pytest.approx(REFERENCE["totals"]["cost_usd"], abs=0.01)


def test_ccusage_shape_for_blocks(synced):
    out = cost_json(synced, "--by", "block", "--json-format", "ccusage")
    assert set(out) == {"blocks"}
    blocks = out["blocks"]
    ours = cost_json(synced, "--by", "block", "--json")["rows"]
    real = [b for b in blocks if not b["isGap"]]
    assert len(real) == len(ours)
    assert sum(b["entries"] for b in real) == 449
    assert sum(b["costUSD"] for b in real) == pytest.approx(
        REFERENCE["totals"]["cost_usd"], abs=0.01
    )
    for b in blocks:
        assert set(b) == BLOCK_KEYS
        assert set(b["tokenCounts"]) == BLOCK_TOKEN_KEYS
        assert b["totalTokens"] == sum(b["tokenCounts"].values())
        assert ISO_MS.match(b["startTime"]) and ISO_MS.match(b["endTime"])
        if not b["isGap"]:
            assert b["startTime"].endswith(":00:00.000Z") and b["id"] == b["startTime"]
    gaps = [b for b in blocks if b["isGap"]]
    assert gaps and all(g["id"] == f"gap-{g['startTime']}" and g["entries"] == 0 for g in gaps)
    # Blocks and gaps follow each other in time.
    starts = [b["startTime"] for b in blocks]
    assert starts == sorted(starts)


def test_ccusage_active_block_has_burn_rate_and_projection(tmp_path, db_path):
    from datetime import UTC, datetime, timedelta

    now = datetime.now(UTC)
    stamps = [(now - timedelta(minutes=m)).strftime("%Y-%m-%dT%H:%M:%S.000Z") for m in (20, 5)]
    root = tmp_path / "projects"
    write_jsonl(
        root / "-p" / f"{SID}.jsonl",
        [line("m1", "r1", ts=stamps[0], out=600), line("m2", "r2", ts=stamps[1], out=900)],
    )
    run_pass(db_path, [root])
    blocks = cost_json(db_path, "--by", "block", "--json-format", "ccusage")["blocks"]
    active = [b for b in blocks if b["isActive"]]
    assert len(active) == 1
    block = active[0]
    assert set(block["burnRate"]) == {
        "tokensPerMinute",
        "tokensPerMinuteForIndicator",
        "costPerHour",
    }
    assert set(block["projection"]) == {"totalTokens", "totalCost", "remainingMinutes"}
    # 2 calls, 15 minutes apart: tokens per minute is the block's tokens over 15 minutes.
    assert block["burnRate"]["tokensPerMinute"] == pytest.approx(
        block["totalTokens"] / 15, rel=0.01
    )
    assert 0 < block["projection"]["remainingMinutes"] <= 300
    assert block["projection"]["totalTokens"] >= block["totalTokens"]


def test_ccusage_format_refuses_groupings_it_has_no_shape_for(synced):
    result = run("cost", "--db", synced, "--by", "model", "--json-format", "ccusage", ok=False)
    assert result.exit_code == 1 and "no shape for --by model" in result.output


def test_ccusage_format_when_nothing_matches(synced):
    out = cost_json(synced, "--json-format", "ccusage", "--since", "20300101")
    assert out == []
    blocks = cost_json(synced, "--by", "block", "--json-format", "ccusage", "--since", "20300101")
    assert blocks == {"blocks": []}
