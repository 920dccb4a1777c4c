"""The archive's shape: tables, indexes, FTS and views, applied as sqlite-utils migrations.

Every table is documented in README.md ("Schema"); keep the two in step.

Design rules:
- ``events`` holds one row per line ever read, with the line's exact bytes in ``raw``
  (TEXT when the line is valid UTF-8, BLOB otherwise) so ``export`` can write the
  source files back byte-identical.  Everything else (sessions, tool_calls, subagents,
  projects, api_calls) is derived from ``events`` and can be rebuilt from it.
- ``sync_files`` carries the byte position of every source file; the sync engine
  updates it in the same transaction as the rows it read.
- Foreign keys everywhere so Datasette links rows to each other.
"""

from __future__ import annotations

import sqlite3
import sys
from collections.abc import Callable
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from sqlite_utils import Database

MIGRATION_SET = "claude_sessions"
PAGE_SIZE = 16384


class LazyMigrations:
    """Registers migrations like ``sqlite_utils.Migrations`` but imports sqlite-utils only
    when some are pending: a pass over an up-to-date archive and the read-only commands
    start without it (its import costs ~50 ms and several MB)."""

    def __init__(self, name: str):
        self.name = name
        self.steps: list[tuple[str, Callable]] = []

    def __call__(self, *, name: str | None = None) -> Callable[[Callable], Callable]:
        def register(fn: Callable) -> Callable:
            self.steps.append((name or fn.__name__, fn))
            return fn

        return register

    def pending(self, conn: sqlite3.Connection) -> list[str]:
        """Names of the migrations not applied yet (a read, no sqlite-utils)."""
        has_log = conn.execute(
            "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = '_sqlite_migrations'"
        ).fetchone()
        applied = set()
        if has_log:
            applied = {
                row[0]
                for row in conn.execute(
                    "SELECT name FROM _sqlite_migrations WHERE migration_set = ?", (self.name,)
                )
            }
        return [name for name, _ in self.steps if name not in applied]

    def apply(self, db: Database) -> None:
        migrations = _sqlite_utils().Migrations(self.name)
        for name, fn in self.steps:
            migrations(name=name)(fn)
        migrations.apply(db)


def _sqlite_utils():
    """sqlite_utils, imported on first use.

    It imports numpy, when installed, only to store numpy values (never done here); in
    the sidecar that would cost 25 MB of memory and 0.1 s of start-up.  It imports
    hashlib for hash_id (never used here), and hashlib loads OpenSSL's libcrypto: 3.5 MB.
    Hide numpy, and OpenSSL from hashlib (which then uses Python's built-in hashes), for
    this one import; later imports of either elsewhere get the real thing."""
    if "sqlite_utils" in sys.modules:
        return sys.modules["sqlite_utils"]
    hidden = [name for name in ("numpy", "_hashlib") if name not in sys.modules]
    fresh_hashlib = "hashlib" not in sys.modules
    for name in hidden:
        sys.modules[name] = None  # type: ignore[assignment]
    try:
        import sqlite_utils
    finally:
        for name in hidden:
            del sys.modules[name]
        if fresh_hashlib:
            sys.modules.pop("hashlib", None)
    return sqlite_utils


migrations = LazyMigrations(MIGRATION_SET)


@migrations()
def m001_initial(db: Database) -> None:
    _run_script(
        db,
        """
        CREATE TABLE IF NOT EXISTS sync_files (
            id INTEGER PRIMARY KEY,
            path TEXT NOT NULL UNIQUE,       -- absolute path of the source file
            root TEXT NOT NULL,              -- the projects directory it was found under
            rel_path TEXT NOT NULL,          -- path relative to root (used by export)
            project_dir TEXT,                -- first path component: the encoded project folder
            kind TEXT NOT NULL,              -- session | agent | meta | journal | other
            session_id TEXT,                 -- from the file name / folder (records may differ)
            agent_id TEXT,                   -- for agent-<id>.jsonl and agent-<id>.meta.json
            host TEXT NOT NULL,              -- machine the file was read on (or --host)
            device INTEGER,
            inode INTEGER,
            size INTEGER NOT NULL DEFAULT 0, -- size at the last pass
            position INTEGER NOT NULL DEFAULT 0, -- bytes read and archived so far
            head_len INTEGER NOT NULL DEFAULT 0, -- bytes covered by head_hash
            head_hash TEXT,                  -- fingerprint of the first head_len bytes
            generation INTEGER NOT NULL DEFAULT 0, -- bumped when the file was truncated/replaced
            tail_unterminated INTEGER NOT NULL DEFAULT 0, -- last archived line had no newline
            mtime REAL,
            first_seen TEXT NOT NULL,
            last_synced TEXT,
            lines INTEGER NOT NULL DEFAULT 0,  -- events rows from this file
            errors INTEGER NOT NULL DEFAULT 0, -- ingest_errors rows from this file
            deleted_at TEXT                  -- set when the source disappeared
        );
        CREATE INDEX IF NOT EXISTS idx_sync_files_session ON sync_files(session_id);

        -- Whole-file copies of non-JSONL sources (agent-*.meta.json): one row per
        -- distinct content seen, the newest is what export writes.
        CREATE TABLE IF NOT EXISTS file_contents (
            id INTEGER PRIMARY KEY,
            file_id INTEGER NOT NULL REFERENCES sync_files(id),
            sha1 TEXT NOT NULL,
            content BLOB NOT NULL,
            read_at TEXT NOT NULL,
            UNIQUE (file_id, sha1)
        );

        CREATE TABLE IF NOT EXISTS events (
            id INTEGER PRIMARY KEY,
            file_id INTEGER NOT NULL REFERENCES sync_files(id),
            generation INTEGER NOT NULL DEFAULT 0,
            byte_offset INTEGER NOT NULL,
            line_number INTEGER NOT NULL,    -- 1-based line number in the file
            type TEXT,                       -- record type: user, assistant, system, summary, ...
            subtype TEXT,                    -- system subtype, attachment/progress data type
            kind TEXT,                       -- prompt | answer | thinking | tool_use | tool_result | meta | system | summary | other | error
            uuid TEXT,
            parent_uuid TEXT,
            session_id TEXT,
            agent_id TEXT,
            is_sidechain INTEGER,
            is_meta INTEGER,
            timestamp TEXT,
            cwd TEXT,
            git_branch TEXT,
            version TEXT,
            role TEXT,
            model TEXT,
            message_id TEXT,
            request_id TEXT,
            stop_reason TEXT,
            text TEXT,                       -- flattened text for full-text search (a line of 1 MiB or more: the first 256 KiB of each long string)
            raw                              -- exact bytes of the line, without its newline
        );
        CREATE UNIQUE INDEX IF NOT EXISTS idx_events_file_gen_offset
            ON events(file_id, generation, byte_offset);
        CREATE INDEX IF NOT EXISTS idx_events_session ON events(session_id, timestamp);
        CREATE INDEX IF NOT EXISTS idx_events_uuid ON events(uuid);
        CREATE INDEX IF NOT EXISTS idx_events_parent_uuid ON events(parent_uuid);
        CREATE INDEX IF NOT EXISTS idx_events_message ON events(message_id);
        CREATE INDEX IF NOT EXISTS idx_events_timestamp ON events(timestamp);

        -- External-content FTS5 index over events.text; Datasette finds it so
        -- /db/events?_search= works.  Rows are added by the sync engine (no triggers).
        CREATE VIRTUAL TABLE IF NOT EXISTS events_fts USING fts5(
            text, content=[events], content_rowid=[id]
        );

        CREATE TABLE IF NOT EXISTS projects (
            path TEXT PRIMARY KEY,           -- real working directory (from cwd)
            name TEXT,                       -- last path component
            project_dir TEXT,                -- encoded folder name under projects/
            sessions INTEGER NOT NULL DEFAULT 0,
            first_timestamp TEXT,
            last_timestamp TEXT
        );

        CREATE TABLE IF NOT EXISTS sessions (
            session_id TEXT PRIMARY KEY,
            project_path TEXT REFERENCES projects(path),
            project_dir TEXT,
            host TEXT,
            title TEXT,
            title_source TEXT,               -- custom-title | ai-title | summary | first-prompt
            first_prompt TEXT,
            first_timestamp TEXT,
            last_timestamp TEXT,
            events INTEGER NOT NULL DEFAULT 0,
            prompts INTEGER NOT NULL DEFAULT 0,
            assistant_messages INTEGER NOT NULL DEFAULT 0,
            tool_calls INTEGER NOT NULL DEFAULT 0,
            subagents INTEGER NOT NULL DEFAULT 0,
            models TEXT,                     -- JSON array of model ids (no <synthetic>)
            git_branch TEXT,
            version TEXT,
            sources_exist INTEGER NOT NULL DEFAULT 1, -- 0 when every source file was deleted
            updated_at TEXT
        );
        CREATE INDEX IF NOT EXISTS idx_sessions_last ON sessions(last_timestamp);
        CREATE INDEX IF NOT EXISTS idx_sessions_project ON sessions(project_path);

        CREATE TABLE IF NOT EXISTS tool_calls (
            tool_use_id TEXT PRIMARY KEY,
            session_id TEXT REFERENCES sessions(session_id),
            agent_id TEXT,
            name TEXT,
            input TEXT,                      -- JSON of the tool_use input
            event_id INTEGER REFERENCES events(id),        -- line with the tool_use
            result_event_id INTEGER REFERENCES events(id), -- line with the tool_result
            result TEXT,                     -- flattened result text (cut like events.text)
            is_error INTEGER,
            started_at TEXT,
            finished_at TEXT,
            duration_ms INTEGER
        );
        CREATE INDEX IF NOT EXISTS idx_tool_calls_session ON tool_calls(session_id);
        CREATE INDEX IF NOT EXISTS idx_tool_calls_name ON tool_calls(name);

        CREATE TABLE IF NOT EXISTS subagents (
            agent_id TEXT PRIMARY KEY,
            session_id TEXT REFERENCES sessions(session_id),
            file_id INTEGER REFERENCES sync_files(id),
            tool_use_id TEXT REFERENCES tool_calls(tool_use_id), -- the call that spawned it
            agent_type TEXT,
            description TEXT,
            first_timestamp TEXT,
            last_timestamp TEXT,
            events INTEGER NOT NULL DEFAULT 0
        );
        CREATE INDEX IF NOT EXISTS idx_subagents_session ON subagents(session_id);

        CREATE TABLE IF NOT EXISTS sync_runs (
            id INTEGER PRIMARY KEY,
            trigger TEXT NOT NULL,           -- cli | initial | watch | rescan | manual | serve
            host TEXT,
            pid INTEGER,
            started_at TEXT NOT NULL,
            ended_at TEXT,
            seconds REAL,
            files_scanned INTEGER NOT NULL DEFAULT 0,
            files_changed INTEGER NOT NULL DEFAULT 0,
            lines_added INTEGER NOT NULL DEFAULT 0,
            bytes_read INTEGER NOT NULL DEFAULT 0,
            errors INTEGER NOT NULL DEFAULT 0,
            error TEXT                       -- set when the pass itself failed
        );

        CREATE TABLE IF NOT EXISTS ingest_errors (
            id INTEGER PRIMARY KEY,
            file_id INTEGER NOT NULL REFERENCES sync_files(id),
            event_id INTEGER REFERENCES events(id),
            byte_offset INTEGER,
            line_number INTEGER,
            error TEXT NOT NULL,
            excerpt TEXT,
            created_at TEXT NOT NULL
        );

        -- One row per running sidecar (watch).  beat_at is refreshed every few seconds.
        CREATE TABLE IF NOT EXISTS sync_heartbeat (
            id INTEGER PRIMARY KEY CHECK (id = 1),
            pid INTEGER,
            host TEXT,
            started_at TEXT,
            beat_at TEXT,
            state TEXT,                      -- idle | syncing | stopped
            projects TEXT                    -- JSON list of watched roots
        );
        """,
    )


@migrations()
def m002_sync_indexes(db: Database) -> None:
    _run_script(
        db,
        """
        -- Session titles: a summary's leafUuid names an event anywhere in the archive.
        CREATE INDEX IF NOT EXISTS idx_events_summary_leaf
            ON events(json_extract(raw, '$.leafUuid')) WHERE type = 'summary';
        CREATE INDEX IF NOT EXISTS idx_sync_files_agent ON sync_files(agent_id);
        """,
    )


@migrations()
def m003_web_app(db: Database) -> None:
    # sessions_list: the web app's sessions list, one row per session with the columns
    # worth showing, a `day` to facet on and a title on every row (it links to the
    # transcript).  idx_events_kind: prompts per day and search filtered by kind.
    _run_script(
        db,
        """
        CREATE INDEX IF NOT EXISTS idx_events_kind ON events(kind, timestamp);
        CREATE VIEW IF NOT EXISTS sessions_list AS
        SELECT s.session_id,
            coalesce(nullif(s.title, ''), s.session_id) AS title,
            p.name AS project,
            s.project_path,
            s.first_timestamp AS started,
            s.last_timestamp AS last_activity,
            date(s.first_timestamp) AS day,
            s.prompts,
            s.tool_calls,
            s.subagents,
            s.models,
            s.git_branch AS branch,
            s.host,
            s.version
        FROM sessions s LEFT JOIN projects p ON p.path = s.project_path;
        """,
    )


@migrations()
def m004_foreign_key_indexes(db: Database) -> None:
    # Every foreign key column indexed.  Besides Datasette's "links from other tables",
    # SQLite needs them while a transaction has deferred constraints outstanding (the
    # sync engine writes tool_calls before refreshing the sessions they name): each
    # insert into a parent table then looks its children up, a full scan without these.
    _run_script(
        db,
        """
        CREATE INDEX IF NOT EXISTS idx_tool_calls_event ON tool_calls(event_id);
        CREATE INDEX IF NOT EXISTS idx_tool_calls_result_event ON tool_calls(result_event_id);
        CREATE INDEX IF NOT EXISTS idx_ingest_errors_event ON ingest_errors(event_id);
        CREATE INDEX IF NOT EXISTS idx_ingest_errors_file ON ingest_errors(file_id);
        CREATE INDEX IF NOT EXISTS idx_subagents_file ON subagents(file_id);
        CREATE INDEX IF NOT EXISTS idx_subagents_tool_use ON subagents(tool_use_id);
        """,
    )


@migrations()
def m005_session_facts_index(db: Database) -> None:
    # Covers the queries that recompute a sessions row (ingest.derive._refresh_session), so
    # refreshing a long session after an append reads a compact index, not every row
    # (100 ms -> 10 ms for 6,000 events).  Its prefix (session_id, timestamp) replaces
    # idx_events_session.
    _run_script(
        db,
        """
        CREATE INDEX IF NOT EXISTS idx_events_session_facts ON events(session_id, timestamp,
            kind, type, is_meta, is_sidechain, message_id, model, git_branch, version, cwd,
            uuid);
        DROP INDEX IF EXISTS idx_events_session;
        -- the unique (file_id, generation, byte_offset) index serves re-reads well enough
        DROP INDEX IF EXISTS idx_events_file_offset;
        """,
    )


@migrations()
def m006_fts_kind(db: Database) -> None:
    # events_fts gains the event's kind as a second column, so a search filtered by kind
    # ("kind : prompt") is answered inside the FTS index instead of ranking every match
    # and checking its event (the most common term of a 1 GB archive, prompts only:
    # 102 ms -> 9 ms).  Rebuilt from events, with sync's 1,048,576-character cap.
    _run_script(
        db,
        """
        DROP TABLE IF EXISTS events_fts;
        CREATE VIRTUAL TABLE events_fts USING fts5(
            text, kind, content=[events], content_rowid=[id]
        );
        INSERT INTO events_fts (rowid, text, kind)
            SELECT id, substr(text, 1, 1048576), kind FROM events WHERE text IS NOT NULL;
        """,
    )


@migrations()
def m007_drop_unused_indexes(db: Database) -> None:
    # No query of the sidecar, the web app, its canned queries or dashboard looks events up
    # by parent_uuid or message_id (transcripts order a session's events in Python; usage
    # works on api_calls), and every index costs every insert: an initial sync of 100 MB
    # took 8% longer with these two.
    _run_script(
        db,
        """
        DROP INDEX IF EXISTS idx_events_parent_uuid;
        DROP INDEX IF EXISTS idx_events_message;
        """,
    )


@migrations()
def m008_fts_hashsize(db: Database) -> None:
    # FTS5 gathers new terms in memory and writes them out as a segment when they reach
    # this size (1 MiB by default); twice that makes half as many segments to merge
    # later, for 0.5 MB more memory while syncing: an initial sync of 100 MB, 4% faster.
    db.execute("INSERT INTO events_fts (events_fts, rank) VALUES ('hashsize', 2097152)")


def _run_script(db: Database, script: str) -> None:
    """Run statements one by one (executescript would commit the migration's transaction)."""
    statement = ""
    for line in script.splitlines(keepends=True):
        statement += line
        if sqlite3.complete_statement(statement):
            db.execute(statement)
            statement = ""
    assert not statement.strip(), "incomplete SQL statement in migration"


def connect(path: str, *, timeout: float = 30.0) -> sqlite3.Connection:
    """Open the archive with the pragmas every writer and reader here uses."""
    conn = sqlite3.connect(path, timeout=timeout, isolation_level=None, check_same_thread=False)
    if conn.execute("PRAGMA page_count").fetchone()[0] == 0:
        # A new archive: 16 KiB pages.  Rows average a few KB (a line plus its text), so
        # fewer of them spill into overflow pages, and a sync writes and checkpoints a
        # quarter as many pages (an initial sync of 100 MB: about 10% faster with 8 KiB
        # than with 4 KiB pages, and 3.6% faster again with 16 KiB; the web app's pages on
        # a 1 GB archive as fast as with 8 KiB or faster).
        conn.execute(f"PRAGMA page_size={PAGE_SIZE}")
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute("PRAGMA synchronous=NORMAL")
    conn.execute("PRAGMA foreign_keys=ON")
    conn.execute(f"PRAGMA busy_timeout={int(timeout * 1000)}")
    return conn


def ensure_schema(conn: sqlite3.Connection) -> None:
    """Apply pending migrations (idempotent)."""
    from . import usage  # noqa: F401  (registers its migrations on `migrations`)

    if migrations.pending(conn):
        migrations.apply(_sqlite_utils().Database(conn))
