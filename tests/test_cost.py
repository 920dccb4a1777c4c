"""`claude-sessions cost` and `reprice` against real synced archives."""

from __future__ import annotations

import json
import sqlite3
import time

import pytest
from click.testing import CliRunner

from ingest.cli import cli
from ingest.lines import register as register_lines
from ingest.sync import run_pass

from .conftest import SAMPLES
from .test_usage import SID, line, write_jsonl

REFERENCE = json.loads((SAMPLES / "reference-usage.json").read_text())


def run(*args, ok=True):
    result = CliRunner().invoke(cli, [str(a) for a in args])
    if ok:
        assert result.exit_code == 0, result.output
    return result


@pytest.fixture
def synced(real_projects, db_path):
    run_pass(db_path, [real_projects])
    return db_path


@pytest.mark.parametrize("by", ["day", "week", "month", "session", "project", "model"])
def test_totals_match_reference_for_every_grouping(synced, by):
    out = json.loads(run("cost", "--db", synced, "--by", by, "--json", "--utc").output)
    ref = REFERENCE["totals"]
    totals = out["totals"]
    for key in ("input_tokens", "output_tokens", "cache_creation_tokens", "cache_read_tokens"):
        assert totals[key] == ref[key], key
    assert totals["cost_usd"] == pytest.approx(ref["cost_usd"], rel=0.005)
    assert sum(r["calls"] for r in out["rows"]) == totals["calls"] == 449
    assert out["unpriced_models"] == []


def test_session_rows_match_reference(synced):
    out = json.loads(run("cost", "--db", synced, "--by", "session", "--json").output)
    rows = {r["session"]: r for r in out["rows"]}
    for sid, ref in REFERENCE["sessions"].items():
        assert rows[sid]["cache_read_tokens"] == ref["cache_read_tokens"]
        assert rows[sid]["cost_usd"] == pytest.approx(ref["cost_usd"], rel=0.005)


def test_table_output_and_filters(synced):
    text = run("cost", "--db", synced, "--by", "month", "--utc").output
    assert "2025-07" in text and "Total" in text and "$18.28" in text
    assert "Dates in UTC." in text
    out = json.loads(
        run(
            "cost",
            "--db",
            synced,
            "--json",
            "--utc",
            "--since",
            "2025-11-29",
            "--until",
            "2025-11-29",
        ).output
    )
    assert [r["day"] for r in out["rows"]] == ["2025-11-29"]
    assert out["totals"]["calls"] == 109
    project = json.loads(
        run(
            "cost", "--db", synced, "--json", "--by", "model", "--project", "-src-deep-manifest"
        ).output
    )
    assert project["totals"]["calls"] == 109
    # Local days: in Tokyo some calls of 2025-07-19 (UTC) fall on the 20th.
    utc = json.loads(run("cost", "--db", synced, "--json", "--utc").output)
    tokyo = json.loads(run("cost", "--db", synced, "--json", "--timezone", "Asia/Tokyo").output)
    assert tokyo["totals"] == utc["totals"]
    assert [r["day"] for r in tokyo["rows"]] != [r["day"] for r in utc["rows"]]


def test_blocks(synced):
    out = json.loads(run("cost", "--db", synced, "--by", "block", "--json").output)
    starts = [r["block_start"] for r in out["rows"]]
    assert starts == sorted(starts) and all(s.endswith(":00Z") for s in starts)
    assert sum(r["calls"] for r in out["rows"]) == 449
    assert "block start" in run("cost", "--db", synced, "--by", "block").output


def test_pricing_override_and_unpriced_models(tmp_path, db_path):
    root = tmp_path / "projects"
    write_jsonl(
        root / "-p" / f"{SID}.jsonl",
        [
            line("m1", "r1", model="claude-imaginary-9", inp=1_000_000, out=0, write=0, read=0),
            line("m2", "r2", model="claude-haiku-4-5", inp=1_000_000, out=0, write=0, read=0),
        ],
    )
    run_pass(db_path, [root])
    out = json.loads(run("cost", "--db", db_path, "--json").output)
    assert out["totals"]["cost_usd"] == pytest.approx(1.0)
    assert out["totals"]["unpriced_calls"] == 1
    assert out["unpriced_models"] == [
        {"model": "claude-imaginary-9", "calls": 1, "total_tokens": 1_000_000}
    ]
    text = run("cost", "--db", db_path).output
    assert "$1.00 *" in text and "Not priced" in text and "claude-imaginary-9" in text
    prices = tmp_path / "prices.json"
    prices.write_text(json.dumps({"models": {"claude-imaginary-9": {"input": 4, "output": 8}}}))
    out = json.loads(run("cost", "--db", db_path, "--json", "--pricing", prices).output)
    assert out["totals"]["cost_usd"] == pytest.approx(5.0)
    assert out["unpriced_models"] == []
    # The report did not store anything; reprice does.
    assert (
        json.loads(run("cost", "--db", db_path, "--json").output)["totals"]["unpriced_calls"] == 1
    )
    assert "0 without a price" in run("reprice", "--db", db_path, "--pricing", prices).output
    assert json.loads(run("cost", "--db", db_path, "--json").output)["totals"]["cost_usd"] == (
        pytest.approx(5.0)
    )
    assert "1 without a price" in run("reprice", "--db", db_path, "--builtin").output


@pytest.mark.parametrize(
    "args,message",
    [
        (["--since", "2025-13-01"], "must be a date like 2025-01-31"),
        (["--until", "yesterday"], "must be a date like 2025-01-31"),
        (["--since", "2025-02-01", "--until", "2025-01-01"], "is after --until"),
        (["--timezone", "Mars/Olympus"], "Unknown time zone"),
    ],
)
def test_bad_options_give_one_sentence(synced, args, message):
    result = run("cost", "--db", synced, *args, ok=False)
    assert result.exit_code != 0 and message in result.output
    assert "Traceback" not in result.output


def test_missing_or_foreign_archive(tmp_path):
    result = run("cost", "--db", tmp_path / "none.db", ok=False)
    assert result.exit_code == 1 and "No archive at" in result.output
    junk = tmp_path / "junk.db"
    junk.write_text("not sqlite at all" * 100)
    result = run("cost", "--db", junk, ok=False)
    assert "not a SQLite database" in result.output
    bad_prices = tmp_path / "p.toml"
    bad_prices.write_text("models = 3")
    result = run("reprice", "--db", tmp_path / "none.db", "--pricing", bad_prices, ok=False)
    assert "has no 'models' table" in result.output


def test_half_hour_time_zone(synced):
    utc = json.loads(run("cost", "--db", synced, "--json", "--utc").output)
    india = json.loads(run("cost", "--db", synced, "--json", "--timezone", "Asia/Kolkata").output)
    assert india["totals"] == utc["totals"]
    assert india["timezone"] == "Asia/Kolkata"
    assert [r["day"] for r in india["rows"]] == sorted(r["day"] for r in india["rows"])


@pytest.mark.parametrize("by", ["day", "week", "month", "session", "project", "model", "block"])
def test_every_grouping_filters_by_host(synced, by):
    """sessions has a host column too: the session report must not find it ambiguous."""
    everything = json.loads(run("cost", "--db", synced, "--by", by, "--json").output)
    host = json.loads(run("cost", "--db", synced, "--by", "model", "--json").output)
    conn = sqlite3.connect(synced)
    register_lines(conn)
    (name,) = conn.execute("SELECT DISTINCT host FROM api_calls").fetchone()
    conn.close()
    mine = json.loads(run("cost", "--db", synced, "--by", by, "--host", name, "--json").output)
    for totals in (mine["totals"], everything["totals"]):
        assert totals == {**host["totals"], "cost_usd": pytest.approx(host["totals"]["cost_usd"])}
    other = run("cost", "--db", synced, "--by", by, "--host", "elsewhere")
    assert other.output == "No API calls in the archive for these filters.\n"
    assert run("cost", "--db", synced, "--by", by, "--host", name).output.count("Total") == 1


def test_block_table_and_json_follow_the_view(synced):
    out = json.loads(run("cost", "--db", synced, "--by", "block", "--json").output)
    conn = sqlite3.connect(synced)
    register_lines(conn)
    view = conn.execute("SELECT block_start, block_end, calls, cost_usd FROM usage_blocks")
    assert [(r["block_start"], r["block_end"], r["calls"]) for r in out["rows"]] == [
        row[:3] for row in view.fetchall()
    ]
    conn.close()
    text = run("cost", "--db", synced, "--by", "block").output
    total = [line for line in text.splitlines() if line.startswith("Total")]
    assert len(total) == 1 and "449" in total[0] and "$" in total[0]


def test_session_table_ids_work_with_export(synced, tmp_path):
    text = run("cost", "--db", synced, "--by", "session").output
    rows = text.splitlines()[2:-1]  # between the header rule and the Total row
    assert len(rows) == 22
    for row in rows:
        short, title = row.split(" ", 1)
        assert len(short) == 8 and title.strip()  # id and title (or "(untitled)") on each
    out = json.loads(run("cost", "--db", synced, "--by", "session", "--json").output)
    assert all(len(r["session"]) == 36 for r in out["rows"])
    short = rows[0].split(" ", 1)[0]
    exported = run("export", short, "-o", tmp_path / "one", "--db", synced).output
    assert exported.startswith("Wrote ")


def test_dates_name_the_local_zone(synced, monkeypatch):
    """Not the abbreviation of today's offset: June dates in Los Angeles are not in PST."""
    with monkeypatch.context() as patch:
        patch.setenv("TZ", "America/Los_Angeles")
        time.tzset()
        text = run("cost", "--db", synced, "--by", "month").output
        out = json.loads(run("cost", "--db", synced, "--json").output)
    time.tzset()
    assert text.rstrip().endswith("Dates in local time (America/Los_Angeles).")
    assert out["timezone"] == "America/Los_Angeles"


def test_singular_call(tmp_path, db_path):
    root = tmp_path / "projects"
    write_jsonl(root / "-p" / f"{SID}.jsonl", [line("m1", "r1", model="claude-imaginary-9")])
    run_pass(db_path, [root])
    text = run("cost", "--db", db_path).output
    assert "claude-imaginary-9 (1 call)" in text
    assert "Re-priced 1 call;" in run("reprice", "--db", db_path).output
