"""The writer's own shortcuts (issue 12 point 2, the initial sync's CPU): each must leave
the archive exactly as the plain way would.

- lines are compressed on a thread of their own (``lines.Packing``) while the writer
  writes the search entries: the frames are the ones ``Packer.pack`` makes;
- events.text is a virtual column (``event_text(raw, kind)``): SQLite works it out on
  every INSERT and throws the value away, so the writer's INSERT answers None at once
  (``lines.writing_rows``) instead of parsing each line a second time.
"""

from __future__ import annotations

import re
import sqlite3
from pathlib import Path

import pytest

from ingest import lines
from ingest.parse import TEXT_INDEX, LineError, parse
from ingest.sync import run_pass


def connect(db: Path) -> sqlite3.Connection:
    conn = sqlite3.connect(db)
    lines.register(conn)
    return conn


def parsed_text(data: bytes | None) -> str | None:
    if not data or data.isspace():
        return None
    try:
        return parse(data)[1][TEXT_INDEX]
    except LineError:
        return None


def test_writer_does_not_parse_lines_again_on_insert(real_projects, db_path, monkeypatch):
    calls = []
    real = lines.event_text

    def counted(value, kind, conn=None):
        calls.append(kind)
        return real(value, kind, conn)

    monkeypatch.setattr(lines, "event_text", counted)
    run_pass(db_path, [real_projects])
    conn = connect(db_path)
    events = conn.execute("SELECT count(*) FROM events").fetchone()[0]
    conn.close()
    assert events > 1000
    # Before writing_rows every INSERT called it once per row (calls >= events); what is
    # left are the sessions rows' reads (first prompts, titles).
    assert len(calls) < events / 4, (len(calls), events)


def test_text_read_back_is_the_parsed_text(real_projects, db_path):
    run_pass(db_path, [real_projects])
    conn = connect(db_path)
    rows = conn.execute("SELECT id, kind, raw_bytes(raw), text FROM events").fetchall()
    assert len(rows) > 1000
    with_text = 0
    for event_id, kind, data, text in rows:
        expected = None if kind == "error" else parsed_text(data)
        assert text == expected, event_id
        with_text += text is not None
    assert with_text > len(rows) / 2
    # and the search index holds it: every word of a sampled text finds its row
    for event_id, _, _, text in rows[:: max(1, len(rows) // 50)]:
        words = re.findall(r"(?<!\w)[A-Za-z]{4,}(?!\w)", text or "")[:3]
        if not words:
            continue
        found = conn.execute(
            "SELECT rowid FROM events_fts WHERE events_fts MATCH ? AND rowid = ?",
            (" ".join(f'"{w}"' for w in words), event_id),
        ).fetchall()
        assert found, (event_id, words)
    conn.close()


def test_writing_rows_is_this_connection_only_and_ends(real_projects, db_path):
    run_pass(db_path, [real_projects])
    a, b = connect(db_path), connect(db_path)
    query = "SELECT id, event_text(raw, kind) FROM events WHERE text IS NOT NULL LIMIT 20"
    before = a.execute(query).fetchall()
    assert len(before) == 20 and all(text for _, text in before)
    with lines.writing_rows(a):
        assert all(text is None for _, text in a.execute(query))
        assert b.execute(query).fetchall() == before
    assert a.execute(query).fetchall() == before
    a.close()
    b.close()


def test_nothing_reads_events_text_on_insert(real_projects, db_path):
    """What SQLite does with a virtual column's value on INSERT: check constraints,
    index it, hand it to triggers.  None of these may read events.text, or the writer's
    None (writing_rows) would be stored or checked."""
    run_pass(db_path, [real_projects])
    conn = connect(db_path)
    for kind, name, sql in conn.execute(
        "SELECT type, name, sql FROM sqlite_master WHERE tbl_name = 'events' AND sql IS NOT NULL"
    ):
        if kind == "trigger":
            raise AssertionError(f"trigger {name} on events")
        if kind == "index":
            assert not re.search(r"\btext\b", sql, re.I), name
        if kind == "table":
            assert "CHECK" not in sql.upper(), sql
            column = re.search(r"\btext\b[^,]*", sql).group(0)
            assert "GENERATED ALWAYS" in column and "STORED" not in column.upper()
    conn.close()


# -- the packing thread (lines.Packing): lines compressed while the writer writes --------


@pytest.mark.parametrize("spare_core", [True, False])
def test_archived_frames_are_what_pack_makes(real_projects, db_path, monkeypatch, spare_core):
    """Each line is compressed on the packing thread (multi_compress_to_buffer with a
    precomputed dictionary) when a core is free for it, else, and for huge lines and
    tiny batches, in the writer: every frame is the one Packer.pack makes of the line,
    byte for byte."""
    monkeypatch.setattr(lines, "spare_core", lambda: spare_core)
    started = []
    real_start = lines.Packer.start
    monkeypatch.setattr(
        lines.Packer, "start", lambda self, x: started.append(1) or real_start(self, x)
    )
    run_pass(db_path, [real_projects])
    assert bool(started) == spare_core
    conn = connect(db_path)
    packer = lines.Packer(conn)
    assert packer.dict_id
    rows = conn.execute("SELECT raw FROM events").fetchall()
    assert len(rows) > 1000
    for (raw,) in rows:
        assert raw == packer.pack(lines.line_bytes(raw, conn))
    conn.close()


def test_packing_gives_packs_frames_in_order(real_projects, db_path):
    run_pass(db_path, [real_projects])
    conn = connect(db_path)
    data = [lines.line_bytes(r, conn) for (r,) in conn.execute("SELECT raw FROM events")]
    data += [b"", b" ", b"x" * 300_000]
    for packer in (lines.Packer(conn), lines.Packer(sqlite3.connect(":memory:"))):
        jobs = [packer.start(data[i : i + 97]) for i in range(0, len(data), 97)]
        frames = [f for job in jobs for f in job.frames()]
        assert frames == [packer.pack(line) for line in data]
        assert [lines.line_bytes(f, conn) for f in frames] == data
    conn.close()


def test_packing_error_reaches_the_writer():
    packer = lines.Packer(sqlite3.connect(":memory:"))
    job = packer.start([b"a line", "not bytes"])
    try:
        job.frames()
    except TypeError:
        pass
    else:
        raise AssertionError("frames() should raise the packing thread's error")
    assert packer.start([b"next"]).frames() == [packer.pack(b"next")]  # thread still there


def test_forked_child_packs_with_a_thread_of_its_own():
    import os
    import select

    packer = lines.Packer(sqlite3.connect(":memory:"))
    assert packer.start([b"parent"]).frames()  # the parent's packing thread is running
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: a queue inherited without its thread would wait forever
        try:
            ok = packer.start([b"child", b"line"]).frames() == [
                packer.pack(b"child"),
                packer.pack(b"line"),
            ]
            os.write(write, b"1" if ok else b"0")
        finally:
            os._exit(0)
    os.close(write)
    try:
        ready, _, _ = select.select([read], [], [], 30)
        answer = os.read(read, 1) if ready else b""
    finally:
        if not ready:
            os.kill(pid, 9)
        os.waitpid(pid, 0)
        os.close(read)
    assert answer == b"1"
