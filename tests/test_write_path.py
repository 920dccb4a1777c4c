"""The writer's own shortcuts (issue 12 point 2, the initial sync's CPU): each must leave
the archive exactly as the plain way would.

- events.text is a virtual column (``event_text(raw, kind)``): SQLite works it out on
  every INSERT and throws the value away, so the writer's INSERT answers None at once
  (``lines.writing_rows``) instead of parsing each line a second time.
"""

from __future__ import annotations

import re
import sqlite3
from pathlib import Path

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
