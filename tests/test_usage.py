"""api_calls: deduplication, reconciliation with ccusage, prices, rollups, 5-hour blocks."""

from __future__ import annotations

import itertools
import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from ingest import blocks, figures, schema, usage
from ingest.pricing import PriceTable, PricingError, read_price_file
from ingest.sync import run_pass

from .conftest import SAMPLES

REFERENCE = SAMPLES / "reference-usage.json"
HAIKU = "claude-haiku-4-5-20251001"
SID = "11111111-2222-3333-4444-555555555555"


def line(
    msg_id,
    req_id,
    *,
    out=10,
    inp=3,
    write=100,
    read=1000,
    ts="2025-06-01T10:00:00.000Z",
    sidechain=False,
    model="claude-sonnet-4-20250514",
    split=None,
    speed=None,
    session=SID,
    agent=None,
):
    usage_obj = {
        "input_tokens": inp,
        "cache_creation_input_tokens": write,
        "cache_read_input_tokens": read,
        "output_tokens": out,
    }
    if split is not None:
        usage_obj["cache_creation"] = {
            "ephemeral_5m_input_tokens": split[0],
            "ephemeral_1h_input_tokens": split[1],
        }
    if speed:
        usage_obj["speed"] = speed
    message = {"role": "assistant", "model": model, "content": [], "usage": usage_obj}
    if msg_id:
        message["id"] = msg_id
    record = {
        "type": "assistant",
        "sessionId": session,
        "isSidechain": sidechain,
        "timestamp": ts,
        "uuid": f"u-{msg_id}-{req_id}-{out}-{sidechain}",
        "message": message,
    }
    if req_id:
        record["requestId"] = req_id
    if agent:
        record["agentId"] = agent
    return record


def write_jsonl(path: Path, records) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(json.dumps(r) + "\n" for r in records))
    return path


def calls(db_path) -> list[tuple]:
    conn = schema.connect(str(db_path))
    rows = conn.execute(
        "SELECT dedup_key, session_id, is_sidechain, input_tokens, output_tokens, "
        "cache_creation_5m_tokens, cache_creation_1h_tokens, cache_read_tokens, cost_usd, "
        "priced FROM api_calls ORDER BY dedup_key, output_tokens"
    ).fetchall()
    conn.close()
    return rows


def test_reconciles_with_ccusage_reference(real_projects, db_path):
    run_pass(db_path, [real_projects])
    reference = json.loads(REFERENCE.read_text())
    conn = schema.connect(str(db_path))
    got = {
        row[0]: row[1:]
        for row in conn.execute(
            "SELECT session_id, input_tokens, output_tokens, cache_creation_tokens, "
            "cache_read_tokens, cost_usd FROM usage_by_session"
        )
    }
    assert set(got) == set(reference["sessions"])
    for session_id, ref in reference["sessions"].items():
        tokens = got[session_id][:4]
        assert tokens == (
            ref["input_tokens"],
            ref["output_tokens"],
            ref["cache_creation_tokens"],
            ref["cache_read_tokens"],
        ), session_id
        assert got[session_id][4] == pytest.approx(ref["cost_usd"], rel=0.005), session_id
    total = conn.execute("SELECT sum(cost_usd) FROM api_calls").fetchone()[0]
    assert total == pytest.approx(reference["totals"]["cost_usd"], rel=0.005)


def test_rollups_agree(real_projects, db_path):
    run_pass(db_path, [real_projects])
    conn = schema.connect(str(db_path))
    cols = "sum(calls), sum(input_tokens), sum(output_tokens), sum(cache_creation_tokens), sum(cache_read_tokens), round(sum(cost_usd), 4)"
    grand = conn.execute(
        "SELECT count(*), sum(input_tokens), sum(output_tokens), "
        "sum(cache_creation_5m_tokens + cache_creation_1h_tokens), sum(cache_read_tokens), "
        "round(sum(cost_usd), 4) FROM api_calls"
    ).fetchone()
    assert grand[0] > 0
    for view in usage._ROLLUPS:
        assert conn.execute(f"SELECT {cols} FROM {view}").fetchone() == grand, view
    # Agents and projects split sessions further, never differently.
    agents = conn.execute("SELECT count(DISTINCT agent_id) FROM api_calls").fetchone()[0]
    assert agents > 1


def test_rebuild_gives_the_same_rows(real_projects, db_path):
    run_pass(db_path, [real_projects])
    before = calls(db_path)
    conn = schema.connect(str(db_path))
    conn.execute("BEGIN")
    assert usage.rebuild(conn) == len(before)
    conn.execute("COMMIT")
    conn.close()
    assert calls(db_path) == before


def dedup_tree(root: Path) -> list[Path]:
    """Files exercising every dedup rule; the expected rows are in test_dedup_rules."""
    proj = root / "-home-me-proj"
    main = write_jsonl(
        proj / f"{SID}.jsonl",
        [
            # One response over three lines: the last has the final output count.
            line("msg_a", "req_a", out=1),
            line("msg_a", "req_a", out=1),
            line("msg_a", "req_a", out=40),
            # Main thread line of msg_b; a sidechain replay uses another request id.
            line("msg_b", "req_b", out=5),
            # Without message.id: every line counts.
            line(None, None, out=7),
            line(None, None, out=7),
            # Synthetic: no usage counted.
            line("msg_syn", "req_syn", model="<synthetic>"),
            # 1-hour writes and an unknown model.
            line("msg_c", "req_c", write=300, split=(100, 200), model="claude-imaginary-9"),
        ],
    )
    agent = write_jsonl(
        proj / SID / "subagents" / "agent-abc1234.jsonl",
        [
            # A sidechain copy of msg_b with more tokens and another request id.
            line("msg_b", "req_side", out=500, sidechain=True, agent="abc1234"),
            # The same key as the main line, sidechain: the main line wins anyway.
            line("msg_b", "req_b", out=900, sidechain=True, agent="abc1234"),
            # Sidechain-only message, two request ids: counted once, the larger.
            line("msg_d", "req_d1", out=3, sidechain=True, agent="abc1234"),
            line("msg_d", "req_d2", out=30, sidechain=True, agent="abc1234"),
        ],
    )
    resumed = write_jsonl(
        proj / "99999999-2222-3333-4444-555555555555.jsonl",
        [
            # A resume replay of msg_a in another session file, same tokens.
            line("msg_a", "req_a", out=40, session="99999999-2222-3333-4444-555555555555"),
        ],
    )
    return [main, agent, resumed]


def test_dedup_rules(tmp_path, db_path):
    root = tmp_path / "projects"
    dedup_tree(root)
    run_pass(db_path, [root])
    rows = {r[0]: r for r in calls(db_path) if r[0]}
    assert set(rows) == {"msg_a req_a", "msg_b req_b", "msg_c req_c", "msg_d req_d2"}
    assert rows["msg_a req_a"][4] == 40 and rows["msg_a req_a"][1] == SID
    assert rows["msg_b req_b"][2] == 0 and rows["msg_b req_b"][4] == 5
    assert rows["msg_d req_d2"][4] == 30
    assert rows["msg_c req_c"][5:7] == (100, 200)
    assert rows["msg_c req_c"][8:] == (None, 0)
    assert rows["msg_a req_a"][5:7] == (100, 0)  # no split: 5-minute writes
    without_id = [r for r in calls(db_path) if r[0] is None]
    assert [r[4] for r in without_id] == [7, 7]
    conn = schema.connect(str(db_path))
    assert usage.unpriced_models(conn)[0]["model"] == "claude-imaginary-9"
    assert conn.execute(
        "SELECT count(*) FROM api_calls WHERE model = '<synthetic>'"
    ).fetchone() == (0,)


@pytest.mark.parametrize("order", list(itertools.permutations(range(3))))
def test_result_does_not_depend_on_file_order(tmp_path, order):
    root = tmp_path / "projects"
    files = dedup_tree(root)
    expected_db = tmp_path / "all.db"
    run_pass(expected_db, [root])
    db = tmp_path / "ordered.db"
    for i in order:
        run_pass(db, [root], paths=[files[i]])
    assert calls(db) == calls(expected_db)


def test_lines_arriving_one_by_one(tmp_path, db_path):
    """A file appended line by line (each line its own pass) ends like one read."""
    root = tmp_path / "projects"
    files = dedup_tree(root)
    expected = tmp_path / "all.db"
    run_pass(expected, [root])
    lines = files[0].read_bytes().splitlines(keepends=True)
    files[0].write_bytes(b"")
    run_pass(db_path, [root])
    for raw in lines:
        with open(files[0], "ab") as f:
            f.write(raw)
        run_pass(db_path, [root], paths=[files[0]])
    assert calls(db_path) == calls(expected)


def test_fast_mode_and_long_context_prices():
    table = PriceTable.load()
    base = table.cost("claude-opus-4-6", 1000, 1000, 0, 0, 0)
    assert base == pytest.approx((1000 * 5 + 1000 * 25) / 1e6)
    assert table.cost("claude-opus-4-6", 1000, 1000, 0, 0, 0, "fast") == pytest.approx(6 * base)
    # ccusage's rule: the 200k tier applies per bucket of one call.
    cost = table.cost("claude-sonnet-4-20250514", 0, 0, 0, 0, 300_000)
    assert cost == pytest.approx((200_000 * 0.3 + 100_000 * 0.6) / 1e6)
    assert table.cost("claude-sonnet-4-20250514", 0, 0, 0, 1000, 0) == pytest.approx(0.006)


@pytest.mark.parametrize(
    "name,expected",
    [
        ("claude-opus-4-5-20251101", "claude-opus-4-5"),
        ("claude-opus-4-1@20250805", "claude-opus-4-1"),
        ("anthropic/claude-sonnet-4-5", "claude-sonnet-4-5"),
        ("us.anthropic.claude-3-5-haiku-20241022-v1:0", "claude-3-5-haiku"),
        ("claude-3.5-haiku", "claude-3-5-haiku"),
        ("claude-opus-4-6[1m]", "claude-opus-4-6"),
        ("claude-opus-4-9", None),
        ("gpt-5", None),
        (None, None),
    ],
)
def test_model_name_matching(name, expected):
    table = PriceTable.load()
    price = table.lookup(name)
    assert price == (table.models[expected] if expected else None)


def test_override_files(tmp_path):
    toml = tmp_path / "p.toml"
    toml.write_text("[models.claude-imaginary-9]\ninput = 2\noutput = 10\n")
    table = PriceTable.load(read_price_file(toml))
    assert table.cost("claude-imaginary-9", 1_000_000, 0, 1_000_000, 1_000_000, 1_000_000) == (
        pytest.approx(2 + 2.5 + 4 + 0.2)
    )
    bad = tmp_path / "bad.json"
    bad.write_text('{"models": {"x": {"input": "cheap"}}}')
    with pytest.raises(PricingError, match="x.input must be a number"):
        read_price_file(bad)
    bad.write_text("{not json")
    with pytest.raises(PricingError, match="not valid JSON"):
        read_price_file(bad)
    with pytest.raises(PricingError, match="does not exist"):
        read_price_file(tmp_path / "missing.json")


def test_stored_overrides_reprice(tmp_path, db_path):
    root = tmp_path / "projects"
    dedup_tree(root)
    run_pass(db_path, [root])
    conn = schema.connect(str(db_path))
    conn.execute("BEGIN")
    usage.set_price_overrides(conn, {"models": {"claude-imaginary-9": {"input": 1, "output": 1}}})
    conn.execute("COMMIT")
    assert usage.unpriced_models(conn) == []
    # Calls synced later use the stored overrides too.
    write_jsonl(
        root / "-home-me-proj" / "new.jsonl", [line("msg_z", "r", model="claude-imaginary-9")]
    )
    run_pass(db_path, [root])
    assert conn.execute("SELECT count(*) FROM api_calls WHERE priced = 0").fetchone() == (0,)


def test_blocks_and_current_block(tmp_path, db_path):
    root = tmp_path / "projects"
    stamps = [
        "2025-06-01T10:15:00.000Z",  # block 10:00-15:00
        "2025-06-01T14:59:00.000Z",
        "2025-06-01T15:01:00.000Z",  # block 15:00-20:00
        "2025-06-02T08:30:00.000Z",  # block 08:00-13:00
        "2025-06-02T09:30:00.000Z",
    ]
    write_jsonl(
        root / "-p" / f"{SID}.jsonl",
        [
            line(f"m{i}", f"r{i}", ts=ts, read=0, write=0, inp=1_000_000, out=0, model=HAIKU)
            for i, ts in enumerate(stamps)
        ],
    )
    run_pass(db_path, [root])
    conn = schema.connect(str(db_path))
    now = datetime(2025, 6, 2, 10, 30, tzinfo=UTC)
    found = blocks.blocks(conn, now=now)
    assert [(b["block_start"][11:13], b["calls"]) for b in found] == [
        ("10", 2),
        ("15", 1),
        ("08", 2),
    ]
    assert [b["active"] for b in found] == [False, False, True]
    block = blocks.current_block(conn, now=now)
    assert block == found[-1]
    assert block["block_start"] == "2025-06-02T08:00:00Z"
    assert block["cost_usd"] == pytest.approx(2.0)  # 2M input tokens of Haiku 4.5
    assert block["cost_per_hour"] == pytest.approx(2.0)  # $2 from 08:30 to 09:30
    assert block["projected_cost_usd"] == pytest.approx(2.0 + 2.0 * 2.5)
    assert blocks.current_block(conn, now=datetime(2025, 6, 2, 13, 0, tzinfo=UTC)) is None


def test_current_block_reads_back_past_a_long_run_of_hours(tmp_path, db_path):
    """Calls every 2 hours for two days: no gap of 5 hours, so current_block must widen
    its window until it reaches the first call, and find the block the whole history
    gives (blocks at 00, 06, 12, 18 ... not at the window's first hour)."""
    start = datetime(2025, 6, 1, 0, 10, tzinfo=UTC)
    stamps = [start + timedelta(hours=2 * i) for i in range(25)]
    write_jsonl(
        tmp_path / "projects" / "-p" / f"{SID}.jsonl",
        [
            line(f"m{i}", f"r{i}", ts=ts.strftime("%Y-%m-%dT%H:%M:%S.000Z"), model=HAIKU)
            for i, ts in enumerate(stamps)
        ],
    )
    run_pass(db_path, [tmp_path / "projects"])
    conn = schema.connect(str(db_path))
    now = stamps[-1] + timedelta(minutes=20)
    everything = blocks.blocks(conn, now=now)
    assert [b["block_start"][11:13] for b in everything[:4]] == ["00", "06", "12", "18"]
    block = blocks.current_block(conn, now=now)
    assert block == everything[-1] and block["active"]
    assert block["block_start"] == "2025-06-03T00:00:00Z"


def test_status_figures_are_json(tmp_path, db_path):
    root = tmp_path / "projects"
    write_jsonl(
        root / "-p" / f"{SID}.jsonl",
        [
            line("m1", "r1", ts="2025-06-02T08:30:00.000Z", model="claude-imaginary-9"),
            line("m2", "r2", ts="2025-06-02T09:30:00.000Z", model=HAIKU),
        ],
    )
    run_pass(db_path, [root])
    conn = schema.connect(str(db_path))
    found = figures.usage(conn, now=datetime(2025, 6, 2, 10, 0, tzinfo=UTC))
    again = json.loads(json.dumps(found))
    assert again["current_block"]["start"] == "2025-06-02T08:00:00Z"
    assert again["current_block"]["end"] == "2025-06-02T13:00:00Z"
    assert again["current_block"]["calls"] == 2
    assert again["unpriced_models"][0]["model"] == "claude-imaginary-9"


def rule_blocks(conn, now=None) -> list[tuple]:
    """The 5-hour rule written out plainly, as the test's own oracle: a block starts at
    the hour (floored, UTC) of the first call at or after the previous block's end and
    lasts 5 hours."""
    calls = conn.execute(
        "SELECT timestamp, total_tokens, cost_usd IS NULL FROM api_calls "
        "WHERE timestamp IS NOT NULL ORDER BY timestamp"
    ).fetchall()
    found: list[dict] = []
    for ts, tokens, unpriced in calls:
        hour = datetime.fromisoformat(ts[:13] + ":00:00+00:00")
        if not found or hour >= found[-1]["end"]:
            found.append(
                {
                    "start": hour,
                    "end": hour + timedelta(hours=5),
                    "calls": 0,
                    "tokens": 0,
                    "unpriced": 0,
                    "first": ts,
                }
            )
        block = found[-1]
        block["calls"] += 1
        block["tokens"] += tokens
        block["unpriced"] += unpriced
        block["last"] = ts
    stamp = "%Y-%m-%dT%H:%M:%SZ"
    return [
        (
            b["start"].strftime(stamp),
            b["end"].strftime(stamp),
            b["calls"],
            b["tokens"],
            b["unpriced"],
            b["first"],
            b["last"],
        )
        for b in found
    ]


def view_blocks(conn) -> list[tuple]:
    return conn.execute(
        "SELECT block_start, block_end, calls, total_tokens, unpriced_calls, first_call, "
        "last_call FROM usage_blocks"
    ).fetchall()


def test_usage_blocks_view_follows_the_rule(tmp_path, db_path, real_projects):
    run_pass(db_path, [real_projects])
    conn = schema.connect(str(db_path))
    in_sql = view_blocks(conn)
    assert len(in_sql) > 5 and in_sql == rule_blocks(conn)
    assert sum(r[2] for r in in_sql) == 449
    assert conn.execute("SELECT sum(is_active) FROM usage_blocks").fetchone() == (0,)
    # blocks() is the view's SQL: the same rows, burn rates included
    names = [d[0] for d in conn.execute("SELECT * FROM usage_blocks LIMIT 0").description]
    view = [dict(zip(names, r, strict=True)) for r in conn.execute("SELECT * FROM usage_blocks")]
    assert [{k: b[k] for k in names} for b in blocks.blocks(conn)] == view


def test_usage_blocks_view_marks_the_running_block(tmp_path, db_path):
    """Calls in the last hours: the view's active block is current_block's."""
    now = datetime.now(UTC).replace(microsecond=0)
    stamps = [now - timedelta(hours=h) for h in (30, 27, 7, 5.5, 0.6, 0.1)]
    root = tmp_path / "projects"
    write_jsonl(
        root / "-p" / f"{SID}.jsonl",
        [
            line(f"m{i}", f"r{i}", ts=ts.strftime("%Y-%m-%dT%H:%M:%S.000Z"), model=HAIKU)
            for i, ts in enumerate(stamps)
        ],
    )
    run_pass(db_path, [root])
    conn = schema.connect(str(db_path))
    assert view_blocks(conn) == rule_blocks(conn)
    active = conn.execute(
        "SELECT block_start, calls, cost_usd, cost_per_hour FROM usage_blocks WHERE is_active"
    ).fetchall()
    block = blocks.current_block(conn, now=now)
    assert len(active) == 1 and block is not None
    start, calls, cost, rate = active[0]
    assert start == block["block_start"]
    assert calls == block["calls"] >= 1
    assert cost == pytest.approx(block["cost_usd"])
    assert (rate is None and block["cost_per_hour"] is None) or rate == pytest.approx(
        block["cost_per_hour"]
    )


def test_current_block_passes_over_timestamps_that_are_not_times(tmp_path, db_path):
    """A line's timestamp is whatever text it holds: one that sorts among the last hours
    but is not a time does not stop the running block (status page, statusline)."""
    now = datetime(2025, 6, 2, 10, 30, tzinfo=UTC)
    write_jsonl(
        tmp_path / "projects" / "-p" / f"{SID}.jsonl",
        [
            line("m1", "r1", ts="2025-06-02T08:30:00.000Z", model=HAIKU),
            line("m2", "r2", ts="2025-06-02T0Z", model=HAIKU),  # not a time
            line("m3", "r3", ts="2025-06-02T09:30:00.000Z", model=HAIKU),
        ],
    )
    run_pass(db_path, [tmp_path / "projects"])
    conn = schema.connect(str(db_path))
    block = blocks.current_block(conn, now=now)
    assert block["block_start"] == "2025-06-02T08:00:00Z" and block["calls"] == 2
    assert figures.usage(conn, now=now)["current_block"]["calls"] == 2
    # the view too: such a call belongs to no block, as a call without a timestamp
    assert view_blocks(conn) == [
        (
            "2025-06-02T08:00:00Z",
            "2025-06-02T13:00:00Z",
            2,
            block["total_tokens"],
            0,
            "2025-06-02T08:30:00.000Z",
            "2025-06-02T09:30:00.000Z",
        )
    ]


@pytest.mark.parametrize("by", ["day", "week", "month", "session", "block", "model"])
def test_cost_reports_timestamps_that_are_not_times(tmp_path, db_path, by):
    """Every `cost` grouping and output runs over calls whose timestamp is any text (the
    table and --json put them under no period; ccusage's shape leaves them out, as
    ccusage does), never a traceback."""
    from click.testing import CliRunner

    from ingest.cli import cli

    write_jsonl(
        tmp_path / "projects" / "-p" / f"{SID}.jsonl",
        [
            line("m1", "r1", ts="2025-06-02T08:30:00.000Z", model=HAIKU),
            line("m2", "r2", ts="2025-06-02T0Z", model=HAIKU),
            line("m3", "r3", ts="yesterday", model=HAIKU),
            line("m4", "r4", ts="2025-13-45T99:00:00Z", model=HAIKU),
        ],
    )
    run_pass(db_path, [tmp_path / "projects"])
    base = ["cost", "--db", str(db_path), "--by", by, "--utc"]
    for extra in ([], ["--json"], ["--json-format", "ccusage"]):
        if extra == ["--json-format", "ccusage"] and by == "model":
            continue  # not a report ccusage has
        result = CliRunner().invoke(cli, base + extra)
        assert result.exit_code == 0, (extra, result.output)
        if extra == ["--json"]:
            rows = json.loads(result.output)["rows"]
            assert sum(r["calls"] for r in rows) == (1 if by == "block" else 4)
