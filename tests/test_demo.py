"""The demo corpus generator (ingest/demo.py) and `claude-sessions demo`."""

from __future__ import annotations

import os
import re
import shlex
import sqlite3
import subprocess
import sys
from collections import Counter, defaultdict
from datetime import datetime
from pathlib import Path

import orjson
import pytest
from click.testing import CliRunner

from ingest.cli import cli
from ingest.demo import encode_project_dir, generate, iso
from ingest.lines import register as register_lines
from ingest.paths import default_db_path
from ingest.sync import run_pass

NOW = 1_790_000_000.0  # 2026-09-21T14:13:20Z
TIMESTAMP = re.compile(rb"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z")
ENVELOPE = ("parentUuid", "isSidechain", "userType", "cwd", "sessionId", "version", "gitBranch")
CONVERSATION = {"user", "assistant", "system", "progress", "attachment"}


def tree(root: Path) -> dict[str, bytes]:
    return {p.relative_to(root).as_posix(): p.read_bytes() for p in root.rglob("*") if p.is_file()}


def records(path: Path) -> list[dict]:
    return [orjson.loads(line) for line in path.read_bytes().splitlines()]


@pytest.fixture(scope="module")
def corpus(tmp_path_factory) -> tuple[Path, dict]:
    root = tmp_path_factory.mktemp("demo") / "projects"
    return root, generate(root, mb=6, seed=3, now=NOW)


def test_same_seed_same_bytes(tmp_path):
    a = generate(tmp_path / "a", mb=1.5, seed=11, now=NOW)
    b = generate(tmp_path / "b", mb=1.5, seed=11, now=NOW)
    assert tree(tmp_path / "a") == tree(tmp_path / "b")
    assert {k: v for k, v in a.items() if k not in ("dir", "seconds")} == {
        k: v for k, v in b.items() if k not in ("dir", "seconds")
    }
    mtimes = {p.name: p.stat().st_mtime for p in (tmp_path / "a").rglob("*.jsonl")}
    assert mtimes == {p.name: p.stat().st_mtime for p in (tmp_path / "b").rglob("*.jsonl")}


def test_only_timestamps_follow_now(tmp_path):
    generate(tmp_path / "a", mb=1.5, seed=11, now=NOW)
    generate(tmp_path / "b", mb=1.5, seed=11, now=NOW + 12_345.678)
    a, b = tree(tmp_path / "a"), tree(tmp_path / "b")
    assert a.keys() == b.keys()
    assert a != b
    for name in a:
        assert len(a[name]) == len(b[name])
        assert TIMESTAMP.sub(b"T", a[name]) == TIMESTAMP.sub(b"T", b[name])


def test_other_seed_other_corpus(tmp_path):
    generate(tmp_path / "a", mb=1, seed=1, now=NOW)
    generate(tmp_path / "b", mb=1, seed=2, now=NOW)
    assert tree(tmp_path / "a").keys().isdisjoint(tree(tmp_path / "b").keys())


def test_size_near_target_and_summary(corpus):
    root, summary = corpus
    files = [p for p in root.rglob("*") if p.is_file()]
    total = sum(p.stat().st_size for p in files)
    assert total == summary["bytes"]
    assert 6_000_000 <= total <= 6_000_000 * 1.03
    assert summary["files"] == len(files)
    assert summary["lines"] == sum(
        p.read_bytes().count(b"\n") for p in files if p.suffix == ".jsonl"
    )
    sessions = [
        p for p in root.glob("*/*.jsonl") if not p.name.startswith("agent-") and p.stat().st_size
    ]
    # every non-empty top-level file is a session, except summary- or snapshot-only files
    odd = [p for p in sessions if not {r["type"] for r in records(p)} & CONVERSATION]
    assert {r["type"] for p in odd for r in records(p)} == {"summary", "file-history-snapshot"}
    assert summary["sessions"] == len(sessions) - len(odd)
    assert summary["projects"] == len([p for p in root.iterdir() if p.is_dir()]) >= 3
    sizes = sorted(p.stat().st_size for p in sessions)
    assert sizes[-1] > 5 * sizes[len(sizes) // 2]  # a long tail, as with lognormal sizes


def test_project_folders_are_encoded_cwds(corpus):
    root, _ = corpus
    assert encode_project_dir("/Users/foo/.config/my_app") == "-Users-foo--config-my-app"
    assert encode_project_dir("/a/café b") == "-a-caf--b"
    checked = 0
    for session in root.glob("*/*.jsonl"):
        cwds = {r["cwd"] for r in records(session) if "cwd" in r}  # none in empty files
        assert all(encode_project_dir(c) == session.parent.name for c in cwds)
        checked += bool(cwds)
    assert checked >= 10


def test_every_line_is_a_record_with_the_envelope(corpus):
    root, _ = corpus
    types = Counter()
    for path in root.rglob("*.jsonl"):
        raw = path.read_bytes()
        assert raw == b"" or raw.endswith(b"\n")
        for rec in records(path):
            assert isinstance(rec, dict)
            types[rec["type"]] += 1
            if rec["type"] in CONVERSATION:
                assert all(k in rec for k in ENVELOPE), rec
                assert TIMESTAMP.fullmatch(rec["timestamp"].encode())
                assert rec["timestamp"] <= iso(NOW)
                assert re.fullmatch(r"[0-9a-f-]{36}", rec["uuid"])
    for rtype in (
        "user", "assistant", "system", "progress", "attachment", "summary", "custom-title",
        "ai-title", "file-history-snapshot", "queue-operation",
    ):  # fmt: skip
        assert types[rtype], rtype


def test_conversation_is_a_dag_with_paired_tools(corpus):
    root, _ = corpus
    for path in root.rglob("*.jsonl"):
        recs = records(path)
        uuids = {r["uuid"] for r in recs if "uuid" in r}
        tool_uses, tool_results = set(), set()
        for r in recs:
            if r["type"] in CONVERSATION:
                assert r["parentUuid"] is None or r["parentUuid"] in uuids
            if "logicalParentUuid" in r:
                assert r["parentUuid"] is None and r["logicalParentUuid"] in uuids
            if "sourceToolAssistantUUID" in r:
                assert r["sourceToolAssistantUUID"] in uuids
            if r["type"] == "assistant":
                tool_uses |= {b["id"] for b in r["message"]["content"] if b["type"] == "tool_use"}
            if r["type"] == "user" and isinstance(r["message"]["content"], list):
                tool_results |= {
                    b["tool_use_id"] for b in r["message"]["content"] if b["type"] == "tool_result"
                }
        assert tool_uses == tool_results, path


def test_assistant_messages_span_lines_sharing_ids(corpus):
    root, _ = corpus
    groups = defaultdict(list)
    for path in root.rglob("*.jsonl"):
        for r in records(path):
            if r["type"] == "assistant" and r["message"]["model"] != "<synthetic>":
                groups[(path, r["message"]["id"])].append(r)
    multi = [g for g in groups.values() if len(g) > 1]
    assert len(multi) > len(groups) / 4
    grown = 0
    for lines in multi:
        assert len({r["requestId"] for r in lines}) == 1
        usages = [r["message"]["usage"] for r in lines]
        for key in ("input_tokens", "cache_read_input_tokens", "cache_creation_input_tokens"):
            assert len({u[key] for u in usages}) == 1
        outputs = [u["output_tokens"] for u in usages]
        assert outputs[-1] == max(outputs)
        grown += outputs[0] < outputs[-1]
        assert all(len(r["message"]["content"]) == 1 for r in lines)
        assert [r["message"]["stop_reason"] for r in lines[:-1]] == [None] * (len(lines) - 1)
    assert grown  # some streams carry small early output_tokens
    models = {r[0]["message"]["model"] for r in groups.values()}
    assert {"claude-opus-4-5-20251101", "claude-haiku-4-5-20251001"} <= models
    assert "<synthetic>" not in models


def test_cache_write_split_follows_version(corpus):
    root, _ = corpus
    for path in root.rglob("*.jsonl"):
        for r in records(path):
            if r["type"] != "assistant" or r["message"]["model"] == "<synthetic>":
                continue
            u = r["message"]["usage"]
            split = u["cache_creation"]
            assert (
                split["ephemeral_5m_input_tokens"] + split["ephemeral_1h_input_tokens"]
                == (u["cache_creation_input_tokens"])
            )
            if r["version"].startswith("2.1") and not r["isSidechain"]:
                assert split["ephemeral_5m_input_tokens"] == 0
            else:
                assert split["ephemeral_1h_input_tokens"] == 0


def test_both_subagent_layouts_linked_from_the_parent(corpus):
    root, summary = corpus
    flat = list(root.glob("*/agent-*.jsonl"))
    nested = list(root.glob("*/*/subagents/agent-*.jsonl"))
    assert flat and nested
    assert summary["subagents"] == len(flat) + len(nested)
    for agent in nested:
        meta = orjson.loads(
            agent.with_name(agent.name[: -len(".jsonl")] + ".meta.json").read_bytes()
        )
        assert meta["agentType"] and meta["description"]
    copies = Counter(r["uuid"] for p in root.rglob("*.jsonl") for r in records(p) if "uuid" in r)
    linked = set()
    for session in root.glob("*/*.jsonl"):
        for r in records(session):
            result = r.get("toolUseResult")
            if not (isinstance(result, dict) and "agentId" in result):
                continue
            # a resumed session replays the call; the agent file stays with the first session
            replayed = copies[r["uuid"]] > 1
            agent_id = result["agentId"]
            if r["version"].startswith("2.0"):
                path = session.parent / f"agent-{agent_id}.jsonl"
                assert re.fullmatch(r"[0-9a-f]{8}", agent_id)
            else:
                path = session.parent / session.stem / "subagents" / f"agent-{agent_id}.jsonl"
                text = r["message"]["content"][0]["content"][-1]["text"]
                assert text.startswith(f"agentId: {agent_id} ")
            if replayed and not path.exists():
                continue
            assert path.exists()
            linked.add(path)
            if replayed:
                continue
            for rec in records(path):
                assert rec["isSidechain"] is True
                assert rec["agentId"] == agent_id
                assert rec["sessionId"] == session.stem
            assert records(path)[0]["parentUuid"] is None
    assert set(nested) <= linked
    assert linked & set(flat)


def test_special_records_present(corpus):
    root, _ = corpus
    seen = Counter()
    uuid_files = defaultdict(set)
    for path in root.rglob("*.jsonl"):
        if path.stat().st_size == 0:
            seen["empty file"] += 1
        for r in records(path):
            if "uuid" in r:
                uuid_files[r["uuid"]].add(path)
            if r.get("subtype") == "compact_boundary":
                seen["compact_boundary"] += 1
            if r.get("isCompactSummary"):
                seen["compact summary"] += 1
            if r["type"] == "assistant" and r["message"]["model"] == "<synthetic>":
                seen["synthetic"] += 1
            content = r.get("message", {}).get("content")
            if r["type"] == "user" and isinstance(content, str):
                seen["command"] += content.startswith("<command-name>/")
                seen["meta"] += bool(r.get("isMeta"))
            if r["type"] == "user" and isinstance(content, list):
                seen["image"] += any(b["type"] == "image" for b in content)
                seen["tool error"] += any(b.get("is_error") is True for b in content)
    seen["resume replay"] = sum(len(files) > 1 for files in uuid_files.values())
    for name in (
        "empty file", "compact_boundary", "compact summary", "synthetic", "command", "meta",
        "image", "tool error", "resume replay",
    ):  # fmt: skip
        assert seen[name], name


def test_mtime_is_last_record_time(corpus):
    root, _ = corpus
    for path in root.rglob("*.jsonl"):
        stamps = [r["timestamp"] for r in records(path) if "timestamp" in r]
        if stamps:
            last = datetime.fromisoformat(max(stamps)).timestamp()
            mtime = path.stat().st_mtime
            assert NOW - 61 * 86_400 < mtime < NOW
            assert abs(mtime - last) < 3


def test_sessions_option_and_progress(tmp_path):
    seen = []
    summary = generate(tmp_path / "p", mb=0.5, seed=0, now=NOW, sessions=12, progress=seen.append)
    assert summary["sessions"] == 12
    assert sum(seen) == summary["bytes"]


def test_demo_tree_syncs_cleanly(corpus, tmp_path):
    root, summary = corpus
    db = tmp_path / "demo.db"
    result = run_pass(db, [root], trigger="cli")
    assert result.errors == 0
    assert result.lines_added == summary["lines"]
    conn = sqlite3.connect(db)
    register_lines(conn)
    count = lambda sql: conn.execute(sql).fetchone()[0]  # noqa: E731
    assert count("select count(*) from ingest_errors") == 0
    assert count("select count(*) from sessions") == summary["sessions"]
    assert count("select count(*) from tool_calls") > 100
    assert count("select count(*) from tool_calls where result_event_id is null") == 0
    assert count("select count(*) from subagents") == summary["subagents"]
    assert count("select count(*) from subagents where tool_use_id is not null") > 0


# -- the command -------------------------------------------------------------------------


def test_cli_writes_and_summarizes(tmp_path):
    out = tmp_path / "demo"
    result = CliRunner().invoke(cli, ["demo", str(out), "--mb", "1", "--now", "2026-09-21"])
    assert result.exit_code == 0, result.output
    assert re.search(
        r"Wrote 1(\.0)? MB to .*: \d+ sessions and \d+ subagents in \d projects", result.output
    )
    again = tmp_path / "again"
    CliRunner().invoke(cli, ["demo", str(again), "--mb", "1", "--now", "2026-09-21"])
    assert tree(out) == tree(again)


def test_cli_hint_names_its_own_database(tmp_path):
    # Followed as written, the hint must not sync the fake sessions into the real archive.
    out = tmp_path / "demo dir"
    result = CliRunner().invoke(cli, ["demo", str(out), "--mb", "0.3"])
    assert result.exit_code == 0, result.output
    hint = next(line for line in result.output.splitlines() if "claude-sessions sync" in line)
    args = shlex.split(hint.strip())
    assert args[:2] == ["claude-sessions", "sync"]
    db = Path(args[args.index("--db") + 1])
    assert db == tmp_path / "demo dir.db" and db != default_db_path()
    synced = CliRunner().invoke(cli, args[1:])
    assert synced.exit_code == 0, synced.output
    assert db.exists() and not default_db_path().exists()


def test_cli_refuses_non_empty_directory(tmp_path):
    (tmp_path / "notes.txt").write_text("mine")
    result = CliRunner().invoke(cli, ["demo", str(tmp_path), "--mb", "0.2"])
    assert result.exit_code == 1
    assert "is not empty" in result.output and "--force" in result.output
    assert [p.name for p in tmp_path.iterdir()] == ["notes.txt"]
    result = CliRunner().invoke(cli, ["demo", str(tmp_path), "--mb", "0.2", "--force"])
    assert result.exit_code == 0, result.output
    assert (tmp_path / "notes.txt").read_text() == "mine"
    assert len(list(tmp_path.iterdir())) > 1


@pytest.mark.parametrize(
    "args, message",
    [
        (["--mb", "0"], "Invalid value for '--mb'"),
        (["--mb", "-3"], "Invalid value for '--mb'"),
        (["--sessions", "0"], "Invalid value for '--sessions'"),
        (["--now", "yesterday"], "Invalid value for '--now'"),
        (["--mb", "1e12"], "Not enough free disk space"),
    ],
)
def test_cli_bad_options(tmp_path, args, message):
    result = CliRunner().invoke(cli, ["demo", str(tmp_path / "d"), *args])
    assert result.exit_code != 0
    assert message in result.output
    assert "Traceback" not in result.output
    assert not (tmp_path / "d").exists()


def test_cli_directory_is_a_file_or_under_one(tmp_path):
    a_file = tmp_path / "file"
    a_file.write_text("x")
    result = CliRunner().invoke(cli, ["demo", str(a_file)])
    assert result.exit_code == 2 and "is a file" in result.output
    result = CliRunner().invoke(cli, ["demo", str(a_file / "sub"), "--mb", "0.1"])
    assert result.exit_code == 1
    assert result.output.startswith("Error: Cannot write the demo corpus to")
    assert a_file.read_text() == "x"


def test_cli_subprocess_stays_in_directory(tmp_path):
    out = tmp_path / "projects"
    env = {**os.environ, "HOME": str(tmp_path / "home")}
    proc = subprocess.run(
        [
            sys.executable,
            "-c",
            "from ingest.cli import cli; cli()",
            "demo",
            str(out),
            "--mb",
            "0.3",
        ],
        capture_output=True,
        text=True,
        env=env,
        cwd=tmp_path,
    )
    assert proc.returncode == 0, proc.stderr
    assert "claude-sessions sync --projects" in proc.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == ["projects"]


def _mix_profile(root: Path) -> dict:
    """Lines, and the share of bytes in thinking blocks and in Read/Bash results."""
    lines = thinking = tool_output = total = 0
    for path in root.rglob("*.jsonl"):
        for line in path.read_bytes().splitlines():
            lines += 1
            total += len(line)
            rec = orjson.loads(line)
            content = (rec.get("message") or {}).get("content")
            if not isinstance(content, list):
                continue
            for block in content:
                if not isinstance(block, dict):
                    continue
                if block.get("type") == "thinking":
                    thinking += len(line)
                elif block.get("type") == "tool_result":
                    tool_output += len(line)
    return {"lines": lines, "thinking": thinking / total, "tool_output": tool_output / total}


def test_mixes_differ_as_named(tmp_path):
    from ingest.demo import MIXES

    profiles = {}
    for mix in MIXES:
        summary = generate(tmp_path / mix, mb=3, seed=4, now=NOW, mix=mix)
        assert summary["mix"] == mix
        assert abs(summary["bytes"] - 3_000_000) < 300_000, (mix, summary["bytes"])
        profiles[mix] = _mix_profile(tmp_path / mix)
        # every mix syncs without a line that cannot be parsed
        db = tmp_path / f"{mix}.db"
        run_pass(db, [tmp_path / mix], trigger="cli")
        conn = sqlite3.connect(db)
        register_lines(conn)
        assert conn.execute("select count(*) from events").fetchone()[0] == profiles[mix]["lines"]
        conn.close()
    default = profiles["default"]
    assert profiles["small"]["lines"] > 2 * default["lines"]
    assert profiles["tool-heavy"]["lines"] < default["lines"]
    assert profiles["tool-heavy"]["tool_output"] > default["tool_output"]
    assert profiles["thinking-heavy"]["thinking"] > 3 * default["thinking"]


def test_mix_same_seed_same_bytes_and_default_unchanged(tmp_path):
    generate(tmp_path / "a", mb=1, seed=7, now=NOW, mix="tool-heavy")
    generate(tmp_path / "b", mb=1, seed=7, now=NOW, mix="tool-heavy")
    assert tree(tmp_path / "a") == tree(tmp_path / "b")
    generate(tmp_path / "c", mb=1, seed=7, now=NOW)
    generate(tmp_path / "d", mb=1, seed=7, now=NOW, mix="default")
    assert tree(tmp_path / "c") == tree(tmp_path / "d")
    assert tree(tmp_path / "a") != tree(tmp_path / "c")


def test_cli_demo_mix(tmp_path):
    from ingest.demo import MIXES

    result = CliRunner().invoke(cli, ["demo", "--help"])
    for mix in MIXES:
        assert mix in result.output
    out = tmp_path / "p"
    result = CliRunner().invoke(
        cli, ["demo", str(out), "--mb", "0.5", "--mix", "thinking-heavy", "--now", "2026-01-02"]
    )
    assert result.exit_code == 0, result.output
    assert _mix_profile(out)["thinking"] > 0.1
    result = CliRunner().invoke(cli, ["demo", str(tmp_path / "q"), "--mix", "huge"])
    assert result.exit_code == 2
    assert "huge" in result.output and "tool-heavy" in result.output
