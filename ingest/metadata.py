"""metadata.yml for whatever name the archive database is served under.

metadata.yml describes the archive under ``databases: claude-sessions:`` (the stem of
the default claude-sessions.db).  Datasette names a database after its file stem, so
``serve --db other.db`` needs that section under ``other``, and the dashboards'
``db:`` settings to say ``other`` too: ``for_database("other", path)`` does both.

Used by ``claude-sessions serve`` (which writes it for ``datasette --metadata``) and by
the plugin's get_metadata hook (datasette_claude_sessions.metadata); it imports nothing
but yaml, so serve never imports datasette.
"""

from __future__ import annotations

from pathlib import Path

import yaml

ARCHIVE_KEY = "claude-sessions"


def for_database(database: str, path: Path) -> dict:
    """The metadata.yml at ``path`` as a dict, its archive section keyed by ``database``."""
    data = yaml.safe_load(Path(path).read_text(encoding="utf-8")) or {}
    databases = data.get("databases") or {}
    if database == ARCHIVE_KEY:
        return data
    if ARCHIVE_KEY in databases:
        databases[database] = databases.pop(ARCHIVE_KEY)
    _rename_db(((data.get("plugins") or {}).get("datasette-dashboards")), database)
    return data


def _rename_db(node, database: str) -> None:
    """Point every ``db: claude-sessions`` inside node at ``database``."""
    if isinstance(node, dict):
        if node.get("db") == ARCHIVE_KEY:
            node["db"] = database
        for value in node.values():
            _rename_db(value, database)
    elif isinstance(node, list):
        for value in node:
            _rename_db(value, database)
