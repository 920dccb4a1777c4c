"""The sync engine on real files: every line archived once, byte-exact, whatever the
files do between passes."""

from __future__ import annotations

import os
import sqlite3
import threading
import time
from pathlib import Path

import orjson
import pytest

from ingest.export import export_files
from ingest.lines import register as register_lines
from ingest.lock import LockBusy, WriterLock
from ingest.sync import run_pass

SESSION = "aaaaaaaa-0000-4000-8000-000000000001"
OTHER = "bbbbbbbb-0000-4000-8000-000000000002"


def count_lines(data: bytes) -> int:
    return data.count(b"\n") + (1 if data and not data.endswith(b"\n") else 0)


def query(db: Path, sql: str, *params):
    conn = sqlite3.connect(db)
    register_lines(conn)
    try:
        return conn.execute(sql, params).fetchall()
    finally:
        conn.close()


def current_rows(db: Path) -> list[tuple[str, int, bytes]]:
    rows = query(
        db,
        "SELECT f.rel_path, e.byte_offset, raw_bytes(e.raw) FROM events e JOIN sync_files f "
        "ON f.id = e.file_id AND e.generation = f.generation ORDER BY 1, 2",
    )
    return [(r, o, raw.encode() if isinstance(raw, str) else raw) for r, o, raw in rows]


def record(i: int, session: str = SESSION, **extra) -> bytes:
    obj = {
        "type": "user",
        "uuid": f"{session[:8]}-u{i}",
        "sessionId": session,
        "timestamp": f"2026-01-01T00:00:{i:02d}.000Z",
        "cwd": "/work/demo",
        "message": {"role": "user", "content": f"prompt number {i}"},
    }
    obj.update(extra)
    return orjson.dumps(obj)


@pytest.fixture
def root(tmp_path) -> Path:
    path = tmp_path / "projects"
    (path / "-work-demo").mkdir(parents=True)
    return path


def session_file(root: Path, session: str = SESSION) -> Path:
    return root / "-work-demo" / f"{session}.jsonl"


def assert_export_matches(db: Path, root: Path, tmp_path: Path) -> None:
    out = tmp_path / f"export-{time.monotonic_ns()}"
    export_files(db, out)
    for path in root.rglob("*"):
        if path.is_file():
            assert (out / path.relative_to(root)).read_bytes() == path.read_bytes(), path


# -- the real samples ------------------------------------------------------------------


def test_real_samples_every_line_once(real_projects, db_path, tmp_path):
    files = sorted(p for p in real_projects.rglob("*.jsonl"))
    expected = {str(p.relative_to(real_projects)): count_lines(p.read_bytes()) for p in files}
    mtimes = {p: os.stat(p).st_mtime_ns for p in files}

    result = run_pass(db_path, [real_projects])

    assert result.files_scanned == len(files) == 31
    assert result.lines_added == sum(expected.values())
    assert result.errors == 0
    per_file = dict(
        query(
            db_path,
            "SELECT f.rel_path, count(e.id) FROM sync_files f "
            "LEFT JOIN events e ON e.file_id = f.id GROUP BY f.id",
        )
    )
    assert per_file == expected
    # one events row per line, at the line's byte offset, holding the line's bytes
    for rel_path, offset, raw in current_rows(db_path)[:300]:
        data = (real_projects / rel_path).read_bytes()
        assert data[offset : offset + len(raw)] == raw
        assert data[offset + len(raw) : offset + len(raw) + 1] in (b"\n", b"")
    assert {p: os.stat(p).st_mtime_ns for p in files} == mtimes
    assert_export_matches(db_path, real_projects, tmp_path)

    again = run_pass(db_path, [real_projects])
    assert (again.files_changed, again.lines_added, again.bytes_read) == (0, 0, 0)
    assert query(db_path, "SELECT count(*) FROM events")[0][0] == sum(expected.values())
    runs = query(db_path, "SELECT trigger, lines_added, ended_at IS NOT NULL FROM sync_runs")
    assert runs == [("cli", sum(expected.values()), 1), ("cli", 0, 1)]


def test_real_samples_derived_tables(real_projects, db_path):
    run_pass(db_path, [real_projects])
    # 22 sessions, as in reference-usage.json: the summary-only file 4e27c414 and the
    # snapshot-only file a95fea4a are none (their records carry no sessionId)
    assert query(db_path, "SELECT count(*) FROM sessions")[0][0] == 22
    assert not query(db_path, "SELECT 1 FROM sessions WHERE session_id LIKE '4e27c414%'")
    assert not query(db_path, "SELECT 1 FROM sessions WHERE session_id LIKE 'a95fea4a%'")
    assert query(db_path, "SELECT count(*) FROM projects")[0][0] == 4
    (title,) = query(
        db_path,
        "SELECT title_source, title FROM sessions WHERE session_id LIKE 'aa5c5ada%'",
    )
    assert title == ("summary", "Cache Version Compatibility Tests Added")
    subagents = dict(query(db_path, "SELECT agent_id, tool_use_id FROM subagents"))
    assert len(subagents) == 6
    assert subagents["a2271d1"] == "toolu_01SXaWzD5YZ73zGwchbcxeWi"
    assert subagents["c8d9b115"] is not None
    (row,) = query(
        db_path,
        "SELECT models, subagents, tool_calls, prompts FROM sessions "
        "WHERE session_id = '29ccd257-68b1-427f-ae5f-6524b7cb6f20'",
    )
    assert orjson.loads(row[0]) == ["claude-opus-4-5-20251101", "claude-haiku-4-5-20251001"]
    assert row[1] == 1 and row[2] > 0 and row[3] == 1
    # every tool call has its result and a duration
    (missing,) = query(
        db_path,
        "SELECT count(*) FROM tool_calls WHERE event_id IS NULL OR result_event_id IS NULL "
        "OR duration_ms IS NULL",
    )[0]
    assert missing == 0
    assert (
        query(db_path, "SELECT count(*) FROM events_fts WHERE events_fts MATCH 'pytest'")[0][0] > 0
    )


# -- appends, partial lines, tails -----------------------------------------------------


def test_append_reads_only_new_lines(root, db_path, tmp_path):
    path = session_file(root)
    path.write_bytes(b"".join(record(i) + b"\n" for i in range(5)))
    assert run_pass(db_path, [root]).lines_added == 5
    with open(path, "ab") as f:
        f.write(b"".join(record(i) + b"\n" for i in range(5, 15)))
    result = run_pass(db_path, [root])
    assert (result.files_changed, result.lines_added) == (1, 10)
    assert result.bytes_read == sum(len(record(i)) + 1 for i in range(5, 15))
    lines = query(db_path, "SELECT line_number FROM events ORDER BY byte_offset")
    assert [n for (n,) in lines] == list(range(1, 16))
    (prompts,) = query(db_path, "SELECT prompts FROM sessions WHERE session_id = ?", SESSION)[0]
    assert prompts == 15
    assert_export_matches(db_path, root, tmp_path)


def test_append_during_a_pass(root, db_path, tmp_path, monkeypatch):
    monkeypatch.setenv("CLAUDE_SESSIONS_BATCH_BYTES", "2000")
    path = session_file(root)
    path.write_bytes(b"".join(record(i) + b"\n" for i in range(30)))
    appended = []

    def progress(done, total):
        if not appended:
            with open(path, "ab") as f:
                f.write(b"".join(record(i) + b"\n" for i in range(30, 40)))
            appended.append(done)

    first = run_pass(db_path, [root], progress=progress)
    assert appended and first.lines_added == 30  # the pass reads up to the size it saw
    second = run_pass(db_path, [root])
    assert second.lines_added == 10
    assert len(current_rows(db_path)) == 40
    assert_export_matches(db_path, root, tmp_path)


def test_partial_last_line_waits_for_its_newline(root, db_path, tmp_path):
    path = session_file(root)
    line = record(2)
    path.write_bytes(record(0) + b"\n" + record(1) + b"\n" + line[:20])
    assert run_pass(db_path, [root]).lines_added == 2
    assert query(db_path, "SELECT position FROM sync_files")[0][0] == path.stat().st_size - 20
    with open(path, "ab") as f:
        f.write(line[20:] + b"\n")
    assert run_pass(db_path, [root]).lines_added == 1
    assert [raw for _, _, raw in current_rows(db_path)] == [record(0), record(1), line]
    assert query(db_path, "SELECT count(*) FROM ingest_errors")[0][0] == 0
    assert_export_matches(db_path, root, tmp_path)


def test_unterminated_json_tail_then_newline(root, db_path, tmp_path):
    path = session_file(root)
    path.write_bytes(record(0) + b"\n" + record(1))
    assert run_pass(db_path, [root]).lines_added == 2
    assert query(db_path, "SELECT tail_unterminated FROM sync_files")[0][0] == 1
    assert_export_matches(db_path, root, tmp_path)  # no newline added on export

    with open(path, "ab") as f:
        f.write(b"\n")
    assert run_pass(db_path, [root]).lines_added == 0
    assert query(db_path, "SELECT tail_unterminated, position FROM sync_files")[0] == (
        0,
        path.stat().st_size,
    )
    assert_export_matches(db_path, root, tmp_path)

    with open(path, "ab") as f:
        f.write(record(2) + b"\n")
    assert run_pass(db_path, [root]).lines_added == 1
    rows = query(db_path, "SELECT line_number, generation FROM events ORDER BY byte_offset")
    assert rows == [(1, 0), (2, 0), (3, 0)]
    assert_export_matches(db_path, root, tmp_path)


def test_unterminated_tail_newline_and_more_in_one_go(root, db_path, tmp_path):
    path = session_file(root)
    path.write_bytes(record(0))
    run_pass(db_path, [root])
    with open(path, "ab") as f:
        f.write(b"\n" + record(1) + b"\n")
    assert run_pass(db_path, [root]).lines_added == 1
    assert len(current_rows(db_path)) == 2
    assert_export_matches(db_path, root, tmp_path)


def test_stale_invalid_tail_is_archived_as_error(root, db_path, tmp_path):
    path = session_file(root)
    path.write_bytes(record(0) + b"\n" + b'{"type": "user", "mess')
    assert run_pass(db_path, [root]).lines_added == 1
    old = time.time() - 2 * 3600
    os.utime(path, (old, old))
    result = run_pass(db_path, [root])
    assert (result.lines_added, result.errors) == (1, 1)
    (error,) = query(db_path, "SELECT line_number, error, excerpt FROM ingest_errors")
    assert error[0] == 2 and "unterminated" in error[1] and error[2] == '{"type": "user", "mess'
    assert_export_matches(db_path, root, tmp_path)


# -- malformed lines -------------------------------------------------------------------


def test_malformed_lines_archived_byte_exact(root, db_path, tmp_path):
    path = session_file(root)
    bad = [b"not json at all", b'"a string"', b"[1, 2]", b'{"type": "user", "x": "\xff\xfe"}']
    lone = (
        b'{"type": "assistant", "sessionId": "%s", "message": {"content": [{"type": "tool_use",'
        b' "id": "toolu_S", "name": "Bash", "input": {"command": "echo \\ud83d"}}]}}'
        % SESSION.encode()
    )
    path.write_bytes(
        record(0) + b"\n" + b"\n".join(bad) + b"\n\n   \n" + lone + b"\n" + record(1) + b"\n"
    )
    result = run_pass(db_path, [root])
    assert (result.lines_added, result.errors) == (9, 4)
    errors = query(db_path, "SELECT line_number, error, excerpt FROM ingest_errors ORDER BY 1")
    assert [e[0] for e in errors] == [2, 3, 4, 5]
    assert "invalid JSON" in errors[0][1] and "invalid UTF-8" in errors[3][1]
    assert errors[0][2] == "not json at all"
    kinds = query(db_path, "SELECT kind, typeof(raw) FROM events ORDER BY byte_offset")
    # every line is stored as a zstd frame (ingest.lines), errors and blank lines too
    assert kinds[1:5] == [("error", "blob")] * 4
    assert kinds[5:7] == [(None, "blob"), (None, "blob")]  # empty lines are rows too
    assert kinds[7] == ("tool_use", "blob")  # a lone surrogate escape is valid JSON
    stored = query(db_path, "SELECT raw_bytes(raw) FROM events ORDER BY byte_offset")
    assert [r[0] for r in stored] == path.read_bytes().split(b"\n")[:-1]  # byte-exact
    assert query(db_path, "SELECT name FROM tool_calls") == [("Bash",)]
    (files,) = query(db_path, "SELECT lines, errors FROM sync_files")
    assert files == (9, 4)
    assert_export_matches(db_path, root, tmp_path)


def test_fixture_edge_cases(tmp_path, db_path):
    from .conftest import FIXTURES

    source = FIXTURES / "edge_cases.jsonl"
    if not source.exists():
        pytest.skip("fixtures not found")
    root = tmp_path / "projects"
    (root / "-tmp").mkdir(parents=True)
    (root / "-tmp" / "edge_cases.jsonl").write_bytes(source.read_bytes())
    result = run_pass(db_path, [root])
    assert result.lines_added == count_lines(source.read_bytes()) == 19
    assert result.errors == 3
    # its last line has no newline but is complete JSON: archived now
    assert query(db_path, "SELECT tail_unterminated FROM sync_files")[0][0] == 1
    assert_export_matches(db_path, root, tmp_path)


def test_50_mb_line(root, db_path, tmp_path):
    path = session_file(root)
    content = "word " * (10 * 1024 * 1024)
    big = record(1, message={"role": "user", "content": content})
    assert len(big) > 50 * 1024 * 1024
    path.write_bytes(record(0) + b"\n" + big + b"\n" + record(2) + b"\n")
    result = run_pass(db_path, [root])
    assert result.lines_added == 3
    (length,) = query(db_path, "SELECT raw_length(raw) FROM events WHERE line_number=2")
    assert length == (len(big),)
    assert_export_matches(db_path, root, tmp_path)


# -- truncation, replacement, deletion --------------------------------------------------


def test_truncated_and_rewritten_file(root, db_path, tmp_path):
    path = session_file(root)
    lines = [record(i) for i in range(5)]
    path.write_bytes(b"".join(line + b"\n" for line in lines))
    run_pass(db_path, [root])
    # truncate to two lines, then a different third line
    with open(path, "r+b") as f:
        f.truncate(2 * (len(lines[0]) + 1))
    with open(path, "ab") as f:
        f.write(record(9) + b"\n")
    result = run_pass(db_path, [root])
    assert result.lines_added == 1  # the two kept lines are moved, not inserted again
    assert query(db_path, "SELECT generation FROM sync_files")[0][0] == 1
    assert [raw for _, _, raw in current_rows(db_path)] == [lines[0], lines[1], record(9)]
    all_rows = query(
        db_path, "SELECT generation, line_number, raw_bytes(raw) FROM events ORDER BY id"
    )
    assert len(all_rows) == 6  # the 3 dropped lines stay, in generation 0
    assert sorted(g for g, _, _ in all_rows) == [0, 0, 0, 1, 1, 1]
    assert_export_matches(db_path, root, tmp_path)


def test_head_rewritten_same_size(root, db_path, tmp_path):
    path = session_file(root)
    path.write_bytes(record(0) + b"\n" + record(1) + b"\n")
    run_pass(db_path, [root])
    path.write_bytes(record(5) + b"\n" + record(1) + b"\n" + record(2) + b"\n")
    run_pass(db_path, [root])
    assert [raw for _, _, raw in current_rows(db_path)] == [record(5), record(1), record(2)]
    assert query(db_path, "SELECT count(*) FROM events")[0][0] == 4
    assert_export_matches(db_path, root, tmp_path)


def test_replaced_file_new_inode(root, db_path, tmp_path):
    path = session_file(root)
    body = b"".join(record(i) + b"\n" for i in range(4))
    path.write_bytes(body)
    run_pass(db_path, [root])
    replacement = path.with_suffix(".tmp")
    replacement.write_bytes(body + record(4) + b"\n")
    os.replace(replacement, path)
    result = run_pass(db_path, [root])
    assert result.lines_added == 1
    assert query(db_path, "SELECT count(*) FROM events")[0][0] == 5
    assert query(db_path, "SELECT DISTINCT generation FROM events")[0][0] == 1
    assert_export_matches(db_path, root, tmp_path)


def test_deleted_file_keeps_rows_and_can_come_back(root, db_path, tmp_path):
    path = session_file(root)
    body = b"".join(record(i) + b"\n" for i in range(3))
    path.write_bytes(body)
    session_file(root, OTHER).write_bytes(record(0, OTHER) + b"\n")
    run_pass(db_path, [root])
    path.unlink()
    run_pass(db_path, [root])
    assert query(db_path, "SELECT count(*) FROM events")[0][0] == 4
    (deleted,) = query(db_path, "SELECT deleted_at FROM sync_files WHERE session_id = ?", SESSION)
    assert deleted[0] is not None
    exists = dict(query(db_path, "SELECT session_id, sources_exist FROM sessions"))
    assert exists == {SESSION: 0, OTHER: 1}
    # the archive still exports the deleted file
    out = tmp_path / "out"
    export_files(db_path, out, SESSION)
    assert (out / "-work-demo" / f"{SESSION}.jsonl").read_bytes() == body

    path.write_bytes(body)
    assert run_pass(db_path, [root]).lines_added == 0
    assert query(db_path, "SELECT count(*) FROM events")[0][0] == 4
    assert query(db_path, "SELECT deleted_at FROM sync_files WHERE session_id = ?", SESSION) == [
        (None,)
    ]
    assert dict(query(db_path, "SELECT session_id, sources_exist FROM sessions"))[SESSION] == 1


def test_mtimes_and_bytes_unchanged(real_projects, db_path):
    before = {p: (p.stat().st_mtime_ns, p.read_bytes()) for p in real_projects.rglob("*.jsonl")}
    run_pass(db_path, [real_projects])
    run_pass(db_path, [real_projects])
    after = {p: (p.stat().st_mtime_ns, p.read_bytes()) for p in real_projects.rglob("*.jsonl")}
    assert after == before


# -- derived tables across files and batches ---------------------------------------------


def summary_line(leaf: str) -> bytes:
    return orjson.dumps({"type": "summary", "summary": "A fine title", "leafUuid": leaf})


@pytest.mark.parametrize("summary_first", [True, False])
def test_summary_title_in_either_order(root, db_path, summary_first):
    leaf = f"{SESSION[:8]}-u1"
    summary_file = session_file(root, OTHER)
    target = session_file(root)
    if summary_first:
        summary_file.write_bytes(summary_line(leaf) + b"\n")
        run_pass(db_path, [root])
        target.write_bytes(record(0) + b"\n" + record(1) + b"\n")
    else:
        target.write_bytes(record(0) + b"\n" + record(1) + b"\n")
        run_pass(db_path, [root])
        summary_file.write_bytes(summary_line(leaf) + b"\n")
    run_pass(db_path, [root])
    titles = query(db_path, "SELECT session_id, title, title_source FROM sessions")
    assert titles == [(SESSION, "A fine title", "summary")]  # the summary-only file is no session


@pytest.mark.parametrize("lines, others", [(200, 3), (10, 40)])
def test_summary_title_whichever_is_walked(root, db_path, lines, others):
    """The newest summary with a text whose leaf is a line of the session titles it,
    whether the refresh walks the session's lines (few lines, many summaries) or the
    archive's summaries (many lines, few summaries)."""
    target = session_file(root)
    target.write_bytes(b"".join(record(i) + b"\n" for i in range(lines)))
    summaries = [
        orjson.dumps({"type": "summary", "summary": f"Other {n}", "leafUuid": f"other-u{n}"})
        for n in range(others)
    ]
    summaries[1:1] = [
        orjson.dumps({"type": "summary", "summary": "Older", "leafUuid": f"{SESSION[:8]}-u2"}),
        orjson.dumps({"type": "summary", "summary": "Newest", "leafUuid": f"{SESSION[:8]}-u5"}),
        orjson.dumps({"type": "summary", "leafUuid": f"{SESSION[:8]}-u7"}),  # no text
    ]
    session_file(root, OTHER).write_bytes(b"".join(line + b"\n" for line in summaries))
    run_pass(db_path, [root])
    titles = query(db_path, "SELECT session_id, title, title_source FROM sessions")
    assert titles == [(SESSION, "Newest", "summary")]


def test_a_blank_newest_custom_title_gives_way_to_the_ai_title(root, db_path):
    title = {"type": "custom-title", "sessionId": SESSION}
    session_file(root).write_bytes(
        b"\n".join(
            [
                record(0),
                orjson.dumps({**title, "customTitle": "Mine"}),
                orjson.dumps({"type": "ai-title", "aiTitle": "Generated", "sessionId": SESSION}),
                orjson.dumps({**title, "customTitle": "  "}),
            ]
        )
        + b"\n"
    )
    run_pass(db_path, [root])
    assert query(db_path, "SELECT title, title_source FROM sessions") == [("Generated", "ai-title")]


def test_custom_title_beats_ai_title(root, db_path):
    path = session_file(root)
    path.write_bytes(
        b"\n".join(
            [
                record(0),
                orjson.dumps({"type": "custom-title", "customTitle": "Mine", "sessionId": SESSION}),
                orjson.dumps({"type": "ai-title", "aiTitle": "Generated", "sessionId": SESSION}),
            ]
        )
        + b"\n"
    )
    run_pass(db_path, [root])
    assert query(db_path, "SELECT title, title_source FROM sessions") == [("Mine", "custom-title")]


def test_tool_result_before_its_tool_use(root, db_path):
    use = orjson.dumps(
        {
            "type": "assistant",
            "uuid": "a1",
            "sessionId": SESSION,
            "timestamp": "2026-01-01T00:00:01.000Z",
            "message": {
                "id": "msg_1",
                "role": "assistant",
                "model": "claude-opus-4-6",
                "content": [{"type": "tool_use", "id": "toolu_X", "name": "Bash", "input": {}}],
            },
        }
    )
    result = orjson.dumps(
        {
            "type": "user",
            "uuid": "u2",
            "sessionId": SESSION,
            "timestamp": "2026-01-01T00:00:03.500Z",
            "message": {
                "role": "user",
                "content": [{"type": "tool_result", "tool_use_id": "toolu_X", "content": "ok"}],
            },
        }
    )
    session_file(root, OTHER).write_bytes(result + b"\n")
    run_pass(db_path, [root])
    session_file(root).write_bytes(use + b"\n")
    run_pass(db_path, [root])
    rows = query(
        db_path,
        "SELECT tool_use_id, name, result, is_error, duration_ms FROM tool_calls_with_result",
    )
    assert rows == [("toolu_X", "Bash", "ok", 0, 2500)]
    # stored once: the result line's text holds it
    assert query(db_path, "SELECT result FROM tool_calls") == [(None,)]


def test_flat_agent_file_takes_session_from_records(root, db_path):
    agent = root / "-work-demo" / "agent-1234abcd.jsonl"
    agent.write_bytes(record(0, isSidechain=True, agentId="1234abcd") + b"\n")
    run_pass(db_path, [root])
    assert query(db_path, "SELECT kind, session_id, agent_id FROM sync_files") == [
        ("agent", SESSION, "1234abcd")
    ]
    assert query(db_path, "SELECT agent_id, session_id, events FROM subagents") == [
        ("1234abcd", SESSION, 1)
    ]


def test_meta_json_stored_and_restored_on_change(root, db_path, tmp_path):
    folder = root / "-work-demo" / SESSION / "subagents"
    folder.mkdir(parents=True)
    (folder / "agent-abc.jsonl").write_bytes(record(0, agentId="abc", isSidechain=True) + b"\n")
    meta = folder / "agent-abc.meta.json"
    meta.write_bytes(b'{"agentType": "Explore", "description": "look around"}')
    run_pass(db_path, [root])
    assert query(db_path, "SELECT agent_type, description, session_id FROM subagents") == [
        ("Explore", "look around", SESSION)
    ]
    meta.write_bytes(b'{"agentType": "Plan", "description": "think", "toolUseId": "toolu_P"}')
    run_pass(db_path, [root])
    assert query(db_path, "SELECT count(*) FROM file_contents")[0][0] == 2
    assert query(db_path, "SELECT agent_type, tool_use_id FROM subagents") == [("Plan", "toolu_P")]
    assert_export_matches(db_path, root, tmp_path)


# -- one writer --------------------------------------------------------------------------


def test_second_writer_gives_up_or_waits(root, db_path):
    session_file(root).write_bytes(record(0) + b"\n")
    lock = WriterLock(db_path)
    lock.acquire()
    try:
        with pytest.raises(LockBusy, match=f"pid {os.getpid()}"):
            run_pass(db_path, [root], wait=False)
        started = time.monotonic()
        with pytest.raises(LockBusy, match="after waiting 0.3 s"):
            run_pass(db_path, [root], wait=0.3)
        assert time.monotonic() - started >= 0.3
        threading.Timer(0.3, lock.release).start()
        assert run_pass(db_path, [root], wait=10).lines_added == 1
    finally:
        lock.release()
    assert lock.holder_pid() is None


def test_rebuild_all_matches_incremental(real_projects, db_path):
    from ingest import derive
    from ingest.sync import open_db

    run_pass(db_path, [real_projects])
    tables = {
        "sessions": "SELECT session_id, project_path, title, title_source, first_prompt, "
        "events, prompts, assistant_messages, tool_calls, subagents, models, git_branch, "
        "version FROM sessions",
        "tool_calls": "SELECT tool_use_id, session_id, name, input, event_id, result_event_id, "
        "result, is_error, started_at, finished_at, duration_ms FROM tool_calls",
        "subagents": "SELECT * FROM subagents",
        "projects": "SELECT * FROM projects",
    }
    before = {name: sorted(query(db_path, sql), key=repr) for name, sql in tables.items()}
    conn = open_db(db_path)
    conn.execute("BEGIN IMMEDIATE")
    derive.rebuild_all(conn)
    conn.execute("COMMIT")
    conn.close()
    after = {name: sorted(query(db_path, sql), key=repr) for name, sql in tables.items()}
    assert after == before
    assert len(after["sessions"]) == 22


@pytest.mark.asyncio
async def test_datasette_finds_the_fts_index(real_projects, db_path):
    from datasette.app import Datasette

    run_pass(db_path, [real_projects])
    expected = query(
        db_path,
        "SELECT count(*) FROM events_fts WHERE events_fts MATCH 'pydantic'",
    )[0][0]
    assert expected > 0
    ds = Datasette([str(db_path)])
    response = await ds.client.get(
        f"/{db_path.stem}/events.json?_search=pydantic&_shape=array&_size=max&_col=id"
    )
    assert response.status_code == 200
    assert len(response.json()) == expected


# -- symlinks, quiet passes, huge texts -------------------------------------------------


def test_symlinked_root_is_the_same_archive(root, db_path, tmp_path):
    path = session_file(root)
    path.write_bytes(record(0) + b"\n" + record(1) + b"\n")
    link = tmp_path / "link-to-projects"
    link.symlink_to(root, target_is_directory=True)
    run_pass(db_path, [root])
    assert run_pass(db_path, [link]).lines_added == 0
    with open(path, "ab") as f:
        f.write(record(2) + b"\n")
    assert run_pass(db_path, [link]).lines_added == 1
    with open(path, "ab") as f:
        f.write(record(3) + b"\n")
    # what watch does: a pass over the files its events name, under the link
    linked_file = link / path.relative_to(root)
    assert run_pass(db_path, [link], paths=[linked_file]).lines_added == 1
    assert query(db_path, "SELECT path, root, rel_path FROM sync_files") == [
        (str(path), str(root), f"-work-demo/{SESSION}.jsonl")
    ]
    assert query(db_path, "SELECT count(*) FROM events") == [(4,)]
    assert_export_matches(db_path, root, tmp_path)


def test_files_archived_under_a_symlink_are_renamed_to_the_real_path(root, db_path, tmp_path):
    """Archives written before roots were resolved keep the link's paths: the first pass
    through the link re-keys them instead of archiving every file again."""
    path = session_file(root)
    path.write_bytes(record(0) + b"\n")
    link = tmp_path / "link-to-projects"
    link.symlink_to(root, target_is_directory=True)
    run_pass(db_path, [link])
    conn = sqlite3.connect(db_path)
    register_lines(conn)
    with conn:
        conn.execute(
            "UPDATE sync_files SET path = replace(path, ?, ?), root = ?",
            (str(root), str(link), str(link)),
        )
    conn.close()
    assert run_pass(db_path, [link]).lines_added == 0
    assert run_pass(db_path, [root]).lines_added == 0
    assert query(db_path, "SELECT path, root FROM sync_files") == [(str(path), str(root))]
    assert query(db_path, "SELECT count(*) FROM events") == [(1,)]


def test_watch_passes_that_find_nothing_leave_no_run_row(root, db_path):
    session_file(root).write_bytes(record(0) + b"\n")
    first = run_pass(db_path, [root], trigger="initial").run_id
    for trigger in ("rescan", "watch"):
        result = run_pass(db_path, [root], trigger=trigger)
        assert (result.run_id, result.files_scanned) == (None, 1)
    assert run_pass(db_path, [root], paths=[session_file(root)], trigger="watch").run_id is None
    manual = run_pass(db_path, [root], trigger="manual").run_id
    cli_run = run_pass(db_path, [root]).run_id
    with open(session_file(root), "ab") as f:
        f.write(record(1) + b"\n")
    changed = run_pass(db_path, [root], trigger="rescan")
    assert changed.lines_added == 1
    session_file(root).unlink()
    gone = run_pass(db_path, [root], trigger="rescan").run_id
    runs = query(db_path, "SELECT id, trigger, lines_added, ended_at IS NOT NULL FROM sync_runs")
    assert runs == [
        (first, "initial", 1, 1),
        (manual, "manual", 0, 1),
        (cli_run, "cli", 0, 1),
        (changed.run_id, "rescan", 1, 1),
        (gone, "rescan", 0, 1),
    ]


def test_huge_line_archived_whole_and_its_text_cut(root, db_path, tmp_path):
    from ingest.parse import HUGE_BYTES, KEEP_BYTES

    content = "opening é " + "filler " * (HUGE_BYTES // 7) + "closingword"
    result = {"type": "tool_result", "tool_use_id": "toolu_big", "content": content}
    session_file(root).write_bytes(
        record(0)
        + b"\n"
        + record(1, message={"role": "user", "content": [result]}, toolUseResult=content)
        + b"\n"
    )
    line = session_file(root).read_bytes().split(b"\n")[1]
    assert len(line) >= 2 * HUGE_BYTES
    run_pass(db_path, [root])
    # raw: every byte, compressed like any other line; text and the result: the start
    assert query(
        db_path,
        "SELECT raw_length(raw), raw_bytes(raw) = ?, kind FROM events WHERE line_number = 2",
        line,
    ) == [(len(line), 1, "tool_result")]
    ((text,),) = query(db_path, "SELECT text FROM events WHERE line_number = 2")
    assert content.startswith(text) and KEEP_BYTES - 8 < len(text.encode()) <= KEEP_BYTES
    assert query(db_path, "SELECT result FROM tool_calls_with_result") == [(text,)]

    def found(word):
        return query(db_path, "SELECT rowid FROM events_fts WHERE events_fts MATCH ?", word)

    (line2,) = query(db_path, "SELECT id FROM events WHERE line_number = 2")
    assert found("opening") == [line2]
    assert found("closingword") == []
    assert found("number") != []  # short texts: indexed whole as before
    assert_export_matches(db_path, root, tmp_path)


def test_tool_calls_do_not_depend_on_batch_boundaries(real_projects, tmp_path, monkeypatch):
    # Default batches: a call's tool_use and tool_result mostly share a batch and are
    # written with one insert; 2 KB batches: nearly every call goes through the upserts.
    # Both must leave the same rows.
    columns = (
        "tool_use_id, session_id, agent_id, name, input, event_id, result_event_id, result, "
        "is_error, started_at, finished_at, duration_ms"
    )
    whole = tmp_path / "whole.db"
    run_pass(whole, [real_projects])
    monkeypatch.setenv("CLAUDE_SESSIONS_BATCH_BYTES", "2048")
    split = tmp_path / "split.db"
    run_pass(split, [real_projects])
    select = f"SELECT {columns} FROM tool_calls ORDER BY tool_use_id"
    rows = query(whole, select)
    assert len(rows) > 300 and sum(1 for row in rows if row[10] is not None) > 300
    assert rows == query(split, select)


def test_tool_result_stored_once(root, db_path, capfd):
    """A result that is its line's whole text is not copied into tool_calls; a line with
    two results keeps each; tool_calls_with_result shows all of them, and m702 converts
    an archive that stored them twice."""
    calls = record(
        1,
        type="assistant",
        message={
            "role": "assistant",
            "content": [
                {"type": "tool_use", "id": f"toolu_{n}", "name": "Bash", "input": {"command": n}}
                for n in ("a", "b", "c")
            ],
        },
    )
    one = record(
        2,
        message={
            "role": "user",
            "content": [{"type": "tool_result", "tool_use_id": "toolu_a", "content": "alpha out"}],
        },
    )
    two = record(
        3,
        message={
            "role": "user",
            "content": [
                {"type": "tool_result", "tool_use_id": "toolu_b", "content": "beta out"},
                {"type": "tool_result", "tool_use_id": "toolu_c", "content": "gamma out"},
            ],
        },
    )
    session_file(root).write_bytes(calls + b"\n" + one + b"\n" + two + b"\n")
    run_pass(db_path, [root])
    stored = dict(query(db_path, "SELECT tool_use_id, result FROM tool_calls"))
    assert stored == {"toolu_a": None, "toolu_b": "beta out", "toolu_c": "gamma out"}
    shown = dict(query(db_path, "SELECT tool_use_id, result FROM tool_calls_with_result"))
    assert shown == {"toolu_a": "alpha out", "toolu_b": "beta out", "toolu_c": "gamma out"}

    # an archive from before m702: every result stored; the migration drops the copies
    conn = sqlite3.connect(db_path)
    register_lines(conn)
    conn.execute(
        "UPDATE tool_calls SET result = (SELECT text FROM events WHERE id = result_event_id) "
        "WHERE result IS NULL"
    )
    conn.execute("DROP VIEW tool_calls_with_result")
    conn.execute("DELETE FROM _sqlite_migrations WHERE name = 'm702_tool_results_once'")
    conn.commit()
    conn.close()
    assert query(db_path, "SELECT count(*) FROM tool_calls WHERE result IS NULL") == [(0,)]
    from ingest import db as engine_db

    engine_db._schema_ready.clear()  # as a new process: the schema is checked again
    capfd.readouterr()
    run_pass(db_path, [root])
    assert "Storing each tool result once" in capfd.readouterr().err  # its progress bar
    assert dict(query(db_path, "SELECT tool_use_id, result FROM tool_calls")) == stored
    assert dict(query(db_path, "SELECT tool_use_id, result FROM tool_calls_with_result")) == shown
