"""The archive's first tables (migrations m001_initial and m100_api_calls), as SQL.

Kept apart from migrations.py only for their length: each migration runs its script
once, and every later change to these tables is a migration of its own in
migrations.py.  The comments beside each column are what docs/schema.md says about it.
"""

INITIAL = """
CREATE TABLE IF NOT EXISTS sync_files (
    id INTEGER PRIMARY KEY,
    path TEXT NOT NULL UNIQUE,       -- absolute path of the source file (a BLOB of its bytes when not UTF-8)
    root TEXT NOT NULL,              -- the projects directory it was found under
    rel_path TEXT NOT NULL,          -- path relative to root (used by export; a BLOB when not UTF-8)
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
    raw                              -- the line's exact bytes (without its newline), zstd-compressed: raw_bytes(raw), raw_json(raw)
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
    result TEXT,                     -- flattened result text; NULL when its line's text holds it
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
"""


API_CALLS = """
-- One row per billed API response (see docs/usage-rules.md).
CREATE TABLE IF NOT EXISTS api_calls (
    id INTEGER PRIMARY KEY,
    event_id INTEGER NOT NULL REFERENCES events(id), -- the line counted
    dedup_key TEXT,                  -- message_id + ' ' + request_id; NULL without message.id
    message_id TEXT,
    request_id TEXT,
    session_id TEXT,
    agent_id TEXT,                   -- NULL on the main thread
    host TEXT,
    project TEXT,                    -- encoded project folder (sync_files.project_dir)
    is_sidechain INTEGER NOT NULL DEFAULT 0,
    model TEXT,
    timestamp TEXT,
    input_tokens INTEGER NOT NULL DEFAULT 0,
    output_tokens INTEGER NOT NULL DEFAULT 0,
    cache_creation_5m_tokens INTEGER NOT NULL DEFAULT 0,
    cache_creation_1h_tokens INTEGER NOT NULL DEFAULT 0,
    cache_read_tokens INTEGER NOT NULL DEFAULT 0,
    total_tokens INTEGER NOT NULL DEFAULT 0,
    web_search_requests INTEGER NOT NULL DEFAULT 0,
    speed TEXT,                      -- usage.speed: standard | fast
    cost_usd REAL,                   -- NULL when the model has no price
    priced INTEGER NOT NULL DEFAULT 0
);
CREATE UNIQUE INDEX IF NOT EXISTS idx_api_calls_key ON api_calls(dedup_key);
CREATE UNIQUE INDEX IF NOT EXISTS idx_api_calls_event ON api_calls(event_id);
CREATE INDEX IF NOT EXISTS idx_api_calls_message ON api_calls(message_id);
CREATE INDEX IF NOT EXISTS idx_api_calls_session ON api_calls(session_id);
CREATE INDEX IF NOT EXISTS idx_api_calls_timestamp ON api_calls(timestamp);
CREATE INDEX IF NOT EXISTS idx_api_calls_project ON api_calls(project, timestamp);
CREATE INDEX IF NOT EXISTS idx_api_calls_model ON api_calls(model);

-- Settings of the usage module: price_overrides (JSON), prices_fingerprint.
CREATE TABLE IF NOT EXISTS usage_settings (
    key TEXT PRIMARY KEY,
    value TEXT
);
"""
