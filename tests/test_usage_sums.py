"""usage_sums, the sums of api_calls the engine keeps, and the views that add them up:
equal to the sums over api_calls on the samples, on random archives synced in several
passes (calls replaced by better lines of the same response, replays, timestamps that
are not times, models without a price), after a migration, a re-pricing, a share and a
merge; and local days in any zone."""

from __future__ import annotations

import json
import random
import re
import sqlite3
from collections import defaultdict
from datetime import datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from click.testing import CliRunner

from ingest import derive, schema, usage, usage_sums
from ingest.cli import cli
from ingest.db import open_db
from ingest.sync import run_pass

from .test_usage import line, write_jsonl

SOURCE = ", ".join(usage_sums.SOURCE)
_HEAD = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}")


def quarter_oracle(ts):
    """The quarter hour of a timestamp, written here independently of ingest.localdays."""
    if not isinstance(ts, str) or not _HEAD.fullmatch(ts[:16]):
        return None
    try:
        moment = datetime.strptime(ts[:16], "%Y-%m-%dT%H:%M")
    except ValueError:
        return None
    return moment.replace(minute=moment.minute // 15 * 15).strftime("%Y-%m-%dT%H:%M")


def expected_sums(conn) -> dict:
    """usage_sums as it must be: every api_calls row summed per key, in Python."""
    acc: dict = {}
    for sid, aid, ts, model, project, host, side, *tokens, cost in conn.execute(
        f"SELECT {SOURCE} FROM api_calls"
    ):
        key = (sid, aid, quarter_oracle(ts), model, project, host, side)
        row = acc.setdefault(key, {"calls": 0, "tokens": [0] * 6, "cost": None, "unpriced": 0})
        row["calls"] += 1
        row["tokens"] = [a + b for a, b in zip(row["tokens"], tokens, strict=True)]
        if cost is None:
            row["unpriced"] += 1
        else:
            row["cost"] = (row["cost"] or 0) + cost
        stamps = row.setdefault("stamps", [])
        if ts is not None:
            stamps.append(ts)
    return {
        key: (
            r["calls"],
            *r["tokens"],
            r["cost"],
            r["unpriced"],
            min(r["stamps"], default=None),
            max(r["stamps"], default=None),
        )
        for key, r in acc.items()
    }


def stored_sums(conn) -> dict:
    keys = ", ".join(usage_sums.KEY)
    sums = ", ".join(usage_sums.SUMS)
    rows = conn.execute(f"SELECT {keys}, {sums} FROM usage_sums").fetchall()
    stored = {tuple(r[:7]): tuple(r[7:]) for r in rows}
    assert len(stored) == len(rows), "a key has two rows"
    return stored


def assert_sums_exact(conn) -> int:
    want, got = expected_sums(conn), stored_sums(conn)
    assert set(got) == set(want)
    for key, row in want.items():
        mine = got[key]
        assert mine[:7] == row[:7], key
        if row[7] is None:
            assert mine[7] is None, key
        else:
            assert mine[7] == pytest.approx(row[7], rel=1e-9, abs=1e-12), key
        assert mine[8:] == row[8:], key
    return len(want)


def assert_views_agree(conn) -> None:
    """Every usage_by_* view (UTC days) equals the same sums over api_calls."""
    for name, (select, group) in usage._ROLLUPS.items():
        if name in usage.PERIODS:
            continue  # (m100's date() reads more than times; below)
        width = len(group.split(","))
        old = conn.execute(usage.rollup_sql(select, group)).fetchall()
        new = conn.execute(f"SELECT * FROM {name}").fetchall()
        assert [d[0] for d in conn.execute(f"SELECT * FROM {name} LIMIT 0").description] == [
            d[0] for d in conn.execute(usage.rollup_sql(select, group) + " LIMIT 0").description
        ]
        assert _rows(old, width) == _rows(new, width), name
    # the periods: per quarter hour, in UTC
    calls = conn.execute("SELECT timestamp, total_tokens, cost_usd FROM api_calls").fetchall()
    for name, label in (
        ("usage_by_day", lambda q: q[:10]),
        ("usage_by_month", lambda q: q[:7]),
    ):
        want: dict = defaultdict(lambda: [0, 0, 0.0])
        for ts, tokens, cost in calls:
            q = quarter_oracle(ts)
            key = None if q is None else label(q)
            want[key][0] += 1
            want[key][1] += tokens
            want[key][2] += cost or 0
        got = {
            r[0]: r[1:]
            for r in conn.execute(f"SELECT {name[9:]}, calls, total_tokens, cost_usd FROM {name}")
        }
        assert set(got) == set(want), name
        for key, (n, tokens, cost) in want.items():
            assert got[key][:2] == (n, tokens), (name, key)
            assert (got[key][2] or 0) == pytest.approx(cost, abs=2e-6), (name, key)
    grand = conn.execute("SELECT count(*), sum(total_tokens) FROM api_calls").fetchone()
    for name in usage.VIEWS:
        assert conn.execute(f"SELECT sum(calls), sum(total_tokens) FROM {name}").fetchone() == (
            grand if grand[0] else (None, None)
        ), name


def _rows(rows, width) -> dict:
    out = {}
    for r in rows:
        key = tuple(r[:width])
        out[key] = tuple(round(v, 6) if isinstance(v, float) else v for v in r[width:])
    return out


# ---------------------------------------------------------------------------


def test_samples_sums_and_views_equal_the_api_calls(real_projects, db_path):
    run_pass(db_path, [real_projects])
    conn = schema.connect(str(db_path))
    assert assert_sums_exact(conn) > 10
    assert_views_agree(conn)
    # The rows are far fewer than the calls they sum.
    calls = conn.execute("SELECT count(*) FROM api_calls").fetchone()[0]
    rows = conn.execute("SELECT count(*) FROM usage_sums").fetchone()[0]
    assert rows < calls / 5
    conn.close()


MODELS = ["claude-sonnet-4-20250514", "claude-opus-4-1-20250805", "no-such-model", None]
STAMPS = [
    None,
    "not a time",
    "2025-06-01T24:00:00Z",
    "2025-02-29T10:00:00Z",
    "2025-06-01T10:0",
    "２025-06-01T10:00:00Z",
]


def random_records(rng: random.Random, session: str, count: int, ids: list) -> list[dict]:
    records = []
    for _ in range(count):
        if ids and rng.random() < 0.35:
            msg, req = rng.choice(ids)  # another line of a response already written
        elif rng.random() < 0.08:
            msg, req = None, None
        else:
            msg, req = f"msg_{rng.randrange(10**9)}", f"req_{rng.randrange(10**9)}"
            if rng.random() < 0.1:
                req = None
            ids.append((msg, req))
        if rng.random() < 0.08:
            ts = rng.choice(STAMPS)
        else:
            minute = rng.randrange(0, 3 * 24 * 60)
            ts = f"2025-06-{1 + minute // 1440:02d}T{minute // 60 % 24:02d}:{minute % 60:02d}:{rng.randrange(60):02d}.000Z"
        record = line(
            msg,
            req,
            out=rng.randrange(1, 500),
            inp=rng.randrange(0, 50),
            write=rng.randrange(0, 2000),
            read=rng.randrange(0, 50000),
            ts=ts,
            sidechain=rng.random() < 0.15,
            model=rng.choice(MODELS),
            session=session,
        )
        if ts is None:
            del record["timestamp"]
        if record["message"]["model"] is None:
            del record["message"]["model"]
        records.append(record)
    return records


@pytest.mark.parametrize("seed", range(6))
def test_random_archives_synced_in_passes_keep_exact_sums(tmp_path, seed):
    """Lines appended between passes (a response's lines spread over passes, copies of
    calls in other sessions' files, subagent files) keep usage_sums equal to the sums
    over api_calls after every pass."""
    rng = random.Random(seed)
    projects = tmp_path / "projects"
    db = tmp_path / "a.db"
    sessions = [f"5e55{seed:04d}-0000-4000-8000-{i:012d}" for i in range(3)]
    ids: list = []
    files: dict[Path, list] = {}
    for _pass in range(5):
        for _ in range(rng.randrange(1, 4)):
            session = rng.choice(sessions)
            project = rng.choice(["-work-app", "-work-other"])
            if rng.random() < 0.3:
                path = (
                    projects / project / session / "subagents" / f"agent-a{rng.randrange(3)}.jsonl"
                )
            else:
                path = projects / project / f"{session}.jsonl"
            files.setdefault(path, [])
            files[path] += random_records(rng, session, rng.randrange(1, 25), ids)
        for path, records in files.items():
            write_jsonl(path, records)  # appends: what was there stays the same
        run_pass(db, [projects])
        conn = schema.connect(str(db))
        assert_sums_exact(conn)
        conn.close()
    conn = schema.connect(str(db))
    assert conn.execute("SELECT count(*) FROM api_calls").fetchone()[0] > 20
    assert_views_agree(conn)
    # a rebuild from the events gives the same sums, and so does a replay of every
    # archived line over what is there (calls already counted are not added twice)
    conn.execute("BEGIN")
    usage.rebuild(conn)
    conn.execute("COMMIT")
    assert_sums_exact(conn)
    before = stored_sums(conn)
    conn.execute("BEGIN")
    derive.rebuild_all(conn)
    conn.execute("COMMIT")
    assert_sums_exact(conn)
    assert stored_sums(conn).keys() == before.keys()
    conn.close()


def test_an_old_archive_gets_its_sums_from_a_migration(real_projects, db_path, capfd):
    run_pass(db_path, [real_projects])
    conn = sqlite3.connect(db_path)
    conn.executescript(
        """
        DROP TABLE usage_sums;
        DELETE FROM _sqlite_migrations WHERE name = 'm901_usage_sums';
        """
    )
    for name, (select, group) in usage._ROLLUPS.items():
        conn.execute(f"DROP VIEW {name}")
        conn.execute(f"CREATE VIEW {name} AS " + usage.rollup_sql(select, group))
    conn.commit()
    conn.close()
    capfd.readouterr()
    conn = open_db(db_path)
    assert "Summing the API calls per quarter hour" in capfd.readouterr().err
    assert assert_sums_exact(conn) > 10
    assert_views_agree(conn)
    conn.close()


def test_reprice_share_and_merge_keep_exact_sums(real_projects, db_path, tmp_path):
    run_pass(db_path, [real_projects])
    prices = tmp_path / "prices.json"
    prices.write_text(
        json.dumps({"models": {"claude-sonnet-4-20250514": {"input": 30, "output": 150}}})
    )
    result = CliRunner().invoke(cli, ["reprice", "--db", str(db_path), "--pricing", str(prices)])
    assert result.exit_code == 0, result.output
    conn = schema.connect(str(db_path))
    assert_sums_exact(conn)
    session = conn.execute("SELECT session_id FROM api_calls LIMIT 1").fetchone()[0]
    conn.close()
    copy = tmp_path / "share.db"
    result = CliRunner().invoke(
        cli, ["share", "--db", str(db_path), "--session", session, str(copy)]
    )
    assert result.exit_code == 0, result.output
    conn = schema.connect(str(copy))
    assert conn.execute("SELECT count(DISTINCT session_id) FROM usage_sums").fetchone() == (1,)
    assert_sums_exact(conn)
    conn.close()
    # another machine's archive of the same files merged in: each call counts once
    other = tmp_path / "other.db"
    sync = ["sync", "--projects", str(real_projects), "--db", str(other), "--machine", "b"]
    assert CliRunner().invoke(cli, sync).exit_code == 0
    result = CliRunner().invoke(cli, ["merge", str(db_path), "--db", str(other)])
    assert result.exit_code == 0, result.output
    conn = schema.connect(str(other))
    assert assert_sums_exact(conn) > 10
    assert_views_agree(conn)
    conn.close()


def test_local_days_are_exact_in_every_kind_of_zone(tmp_path):
    """Calls around local midnight in zones with whole-hour, half-hour, 45-minute and DST
    offsets: the web app's usage_by_day (local views) puts each on its local date."""
    from ingest import localdays

    projects = tmp_path / "projects"
    db = tmp_path / "a.db"
    stamps = []
    for day in ("2025-03-29", "2025-03-30", "2025-10-25", "2025-10-26"):
        for hour in range(24):
            for minute in (0, 14, 15, 29, 30, 44, 45, 59):
                stamps.append(f"{day}T{hour:02d}:{minute:02d}:30.000Z")
    records = [line(f"m{i}", f"r{i}", ts=ts) for i, ts in enumerate(stamps)]
    write_jsonl(projects / "-w" / "11111111-2222-3333-4444-555555555555.jsonl", records)
    run_pass(db, [projects])
    for zone in ("UTC", "Europe/Paris", "Asia/Kolkata", "Asia/Kathmandu", "America/St_Johns"):
        conn = schema.connect(str(db))
        localdays.register(conn, zone)
        usage.local_views(conn)
        tz = ZoneInfo(zone)
        want: dict = defaultdict(int)
        for ts in stamps:
            moment = datetime.fromisoformat(ts.replace("Z", "+00:00")).astimezone(tz)
            want[moment.date().isoformat()] += 1
        got = dict(conn.execute("SELECT day, calls FROM usage_by_day"))
        assert got == dict(want), zone
        conn.close()
    # (the connection's own views, without local_views, are UTC days)
    conn = schema.connect(str(db))
    assert dict(conn.execute("SELECT day, calls FROM usage_by_day")) == {
        d: 24 * 8 for d in ("2025-03-29", "2025-03-30", "2025-10-25", "2025-10-26")
    }
    conn.close()


@pytest.mark.parametrize("seed", range(3))
def test_cost_reads_the_sums_as_it_reads_every_call(tmp_path, seed):
    """`claude-sessions cost` reads usage_sums; with --pricing (a price file that changes
    nothing) it adds up every api_calls row instead: every grouping, zone and filter gives
    the same report."""
    rng = random.Random(100 + seed)
    projects = tmp_path / "projects"
    db = tmp_path / "a.db"
    ids: list = []
    for i in range(4):
        session = f"c0570000-0000-4000-8000-{seed:06d}{i:06d}"
        project = ["-work-app", "-work-other"][i % 2]
        write_jsonl(projects / project / f"{session}.jsonl", random_records(rng, session, 60, ids))
    run_pass(db, [projects])
    same = tmp_path / "same.json"
    same.write_text(json.dumps({"models": {"zz-unused-model": {"input": 1, "output": 1}}}))
    runner = CliRunner()
    options = [
        ["--utc"],
        ["--timezone", "Asia/Kathmandu"],
        ["--timezone", "America/St_Johns", "--since", "2025-06-02", "--until", "2025-06-02"],
        ["--timezone", "Europe/Paris", "--project", "-work-app"],
    ]
    compared = 0
    for by in ("day", "week", "month", "session", "project", "model", "agent", "block"):
        for extra in options:
            base = ["cost", "--db", str(db), "--by", by, "--json", "--breakdown", *extra]
            sums = runner.invoke(cli, base)
            calls = runner.invoke(cli, [*base, "--pricing", str(same)])
            assert sums.exit_code == 0 and calls.exit_code == 0, (sums.output, calls.output)
            a, b = json.loads(sums.output), json.loads(calls.output)
            assert _approx(a) == _approx(b), (by, extra)
            compared += len(a["rows"])
    assert compared > 100


def _approx(value):
    """Floats rounded (sums added in another order differ in the last bits)."""
    if isinstance(value, float):
        return round(value, 9)
    if isinstance(value, dict):
        return {k: _approx(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_approx(v) for v in value]
    return value
