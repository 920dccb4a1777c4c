"""Indexes of the read path (issue 12 point 3): the pages' queries read them, and old
archives get them from a migration."""

from __future__ import annotations

import sqlite3

import pytest

from ingest.db import open_db
from ingest.lines import register as register_lines

from .pages_helpers import build_archive


@pytest.fixture(scope="module")
def archive(tmp_path_factory):
    return build_archive(tmp_path_factory.mktemp("indexes"))


def plan(conn, sql: str) -> str:
    return " | ".join(row[3] for row in conn.execute("EXPLAIN QUERY PLAN " + sql))


def test_usage_by_agent_pages_from_the_index(archive):
    conn = sqlite3.connect(archive)
    register_lines(conn)
    assert conn.execute("select count(*) from api_calls").fetchone()[0] > 0
    # The view adds up usage_sums (the sums the engine keeps) in its key index's order.
    for view in ("usage_by_agent", "usage_by_session"):
        first_page = plan(conn, f"select * from {view} limit 101")
        assert "idx_usage_sums_key" in first_page and "TEMP B-TREE" not in first_page
    # Lookups by session use the same index (the one on session_id alone is gone).
    assert "idx_api_calls_session_agent" in plan(
        conn, "select * from api_calls where session_id = 'x'"
    )
    names = {r[0] for r in conn.execute("select name from sqlite_master where type = 'index'")}
    assert "idx_api_calls_session" not in names
    conn.close()


def old_copy(archive, tmp_path):
    """A copy of ``archive`` to turn into an older archive: (its path, a connection with
    the lines functions, not migrated)."""
    old = tmp_path / "old.db"
    source = sqlite3.connect(archive)
    register_lines(source)
    source.execute(f"VACUUM INTO '{old}'")
    source.close()
    conn = sqlite3.connect(old)
    register_lines(conn)
    return old, conn


def test_an_old_archive_gets_the_index(archive, tmp_path):
    old, conn = old_copy(archive, tmp_path)
    conn.executescript(
        """
        DROP INDEX idx_api_calls_session_agent;
        CREATE INDEX idx_api_calls_session ON api_calls(session_id);
        DELETE FROM _sqlite_migrations WHERE name = 'm801_api_calls_session_agent';
        """
    )
    conn.close()
    conn = open_db(old)
    names = {r[0] for r in conn.execute("select name from sqlite_master where type = 'index'")}
    assert "idx_api_calls_session_agent" in names and "idx_api_calls_session" not in names
    rows = conn.execute("select * from usage_by_agent").fetchall()
    assert rows
    conn.close()


def _indexes(conn) -> set[str]:
    return {r[0] for r in conn.execute("select name from sqlite_master where type = 'index'")}


def test_prompts_per_day_reads_the_partial_prompt_index(archive):
    from datasette_claude_sessions.metadata import load_metadata
    from ingest.localdays import register as register_days

    meta = load_metadata(archive.stem)["databases"][archive.stem]
    sql = meta["queries"]["prompts_per_day"]["sql"]
    conn = sqlite3.connect(archive)
    register_lines(conn)
    register_days(conn, None)
    assert "idx_events_prompts" in plan(conn, sql)
    assert "SCAN events" not in plan(conn, sql)
    # The partial index answers it as the whole table would.
    full = conn.execute(sql.replace("from events", "from events not indexed")).fetchall()
    assert full and conn.execute(sql).fetchall() == full
    conn.close()


NEW_EVENT_INDEXES = {"idx_events_session", "idx_events_prompts", "idx_events_titles"}
OLD_EVENT_INDEXES = {
    "idx_events_session_facts",
    "idx_events_session_walk",
    "idx_events_kind_facts",
    "idx_events_timestamp",
}


def test_session_lines_are_read_through_one_narrow_index(archive):
    conn = sqlite3.connect(archive)
    register_lines(conn)
    names = _indexes(conn)
    assert NEW_EVENT_INDEXES <= names and not names & OLD_EVENT_INDEXES
    sid = conn.execute("select session_id from sessions order by events desc").fetchone()[0]
    for sql in (
        f"select count(*), min(timestamp), max(timestamp) from events where session_id = '{sid}'",
        f"select id, uuid, parent_uuid from events where session_id = '{sid}' order by timestamp",
    ):
        assert "idx_events_session " in plan(conn, sql) + " ", sql
        assert "TEMP B-TREE" not in plan(conn, sql)
    titles = (
        f"select type, text from events where session_id = '{sid}' "
        "and type in ('custom-title', 'ai-title') order by id desc"
    )
    assert "idx_events_titles" in plan(conn, titles)
    conn.close()


def test_an_old_archive_gets_the_narrower_event_indexes(archive, tmp_path, capfd):
    old, conn = old_copy(archive, tmp_path)
    before = conn.execute("select * from sessions order by session_id").fetchall()
    conn.executescript(
        """
        DROP INDEX idx_events_session;
        DROP INDEX idx_events_prompts;
        DROP INDEX idx_events_titles;
        CREATE INDEX idx_events_session_facts ON events(session_id, timestamp,
            kind, type, is_meta, is_sidechain, message_id, model, git_branch, version, cwd,
            uuid);
        CREATE INDEX idx_events_kind_facts ON events(kind, timestamp, is_sidechain, session_id);
        CREATE INDEX idx_events_timestamp ON events(timestamp);
        DELETE FROM _sqlite_migrations
        WHERE name IN ('m705_narrower_event_indexes', 'm706_session_index');
        """
    )
    conn.close()
    size = old.stat().st_size
    capfd.readouterr()
    conn = open_db(old)
    err = capfd.readouterr().err
    # each rebuild shows a progress bar, then VACUUM says what it does
    for label in ("Rebuilding the indexes of events", "Rebuilding the session index of events"):
        assert f"{label} (1 of 2)" in err and f"{label} (2 of 2)" in err, err
    assert "VACUUM" in err
    names = _indexes(conn)
    assert NEW_EVENT_INDEXES <= names and not names & OLD_EVENT_INDEXES
    # Every session row is worked out again to the same values through the new indexes.
    from ingest.derive import refresh_sessions

    sids = [r[0] for r in conn.execute("select session_id from sessions")]
    with conn:
        refresh_sessions(conn, sids)
    after = conn.execute("select * from sessions order by session_id").fetchall()
    updated = [
        r[0]
        for r in conn.execute(
            "select cid from pragma_table_info('sessions') where name = 'updated_at'"
        )
    ][0]
    strip = lambda rows: [r[:updated] + r[updated + 1 :] for r in rows]  # noqa: E731
    assert strip(after) == strip(before)
    conn.close()
    assert old.stat().st_size < size  # VACUUM gave the dropped indexes' pages back
