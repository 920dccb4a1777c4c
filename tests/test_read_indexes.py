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
    first_page = plan(conn, "select * from usage_by_agent limit 101")
    assert "idx_api_calls_session_agent" in first_page and "TEMP B-TREE" not in first_page
    # Lookups by session use the same index (the one on session_id alone is gone).
    assert "idx_api_calls_session_agent" in plan(
        conn, "select * from api_calls where session_id = 'x'"
    )
    names = {r[0] for r in conn.execute("select name from sqlite_master where type = 'index'")}
    assert "idx_api_calls_session" not in names
    conn.close()


def test_an_old_archive_gets_the_index(archive, tmp_path):
    old = tmp_path / "old.db"
    source = sqlite3.connect(archive)
    register_lines(source)
    source.execute(f"VACUUM INTO '{old}'")
    source.close()
    conn = sqlite3.connect(old)
    register_lines(conn)
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
