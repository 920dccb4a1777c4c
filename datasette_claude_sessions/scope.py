"""Where this plugin may act: the databases that are claude-sessions archives.

Installing the plugin must not change a Datasette that serves no archive: the home page,
the menu, cell rendering, table scripts and metadata stay Datasette's own there.  An
archive is the database the plugin setting ``database`` (a name) or ``db`` (the file,
as ``--db`` names it) points at (``claude-sessions serve`` sets both), else every attached file database with the archive's ``sync_files``,
``sessions`` and ``events`` tables.

The hooks that need this are synchronous (``render_cell``, ``get_metadata``, ...) and run
often, so the answer comes from sqlite_master read with the standard library and is
cached per database file; a file found not to be an archive is looked at again after a
few seconds (``claude-sessions sync`` may be filling it).
"""

from __future__ import annotations

import sqlite3
import time
from pathlib import Path

from ingest.settings import OLD_DB_NAME, PLUGIN

RECHECK_SECONDS = 5.0

# (database name, path) -> (is archive, when checked)
_cache: dict[tuple[str, str | None], tuple[bool, float]] = {}


def _config(datasette) -> dict:
    local = getattr(datasette, "_metadata_local", None)
    if isinstance(local, dict):
        config = ((local.get("plugins") or {}).get(PLUGIN)) or {}
    else:  # Datasette 1.0: plugin settings live in datasette.yaml, not in metadata
        config = datasette.plugin_config(PLUGIN) or {}
    return config if isinstance(config, dict) else {}


def setting(datasette, name: str):
    """A plugin setting, read without going through the get_metadata hook."""
    return _config(datasette).get(name)


def configured_database(datasette) -> str | None:
    """The plugin's ``db`` setting (the archive: its file, or its database name) as the
    name of the database served, read without going through get_metadata (whose hook
    asks this module: no recursion).  ``database``, the older name of ``db``, is still
    read when ``db`` is not given (the status page says to rename it)."""
    config = _config(datasette)
    db = config.get("db")
    if not (isinstance(db, str) and db):
        db = config.get(OLD_DB_NAME)
    if isinstance(db, str) and db:
        if db in datasette.databases:
            return db
        wanted = Path(db).expanduser().resolve()
        for db_name, database in list(datasette.databases.items()):
            path = getattr(database, "path", None)
            if path and Path(path).resolve() == wanted:
                return db_name
        return db
    return None


def _has_archive_tables(path: str) -> bool:
    uri = Path(path).resolve().as_uri() + "?mode=ro"
    try:
        conn = sqlite3.connect(uri, uri=True, timeout=1)
    except sqlite3.Error:
        return False
    try:
        names = {
            row[0]
            for row in conn.execute(
                "SELECT name FROM sqlite_master WHERE type = 'table' "
                "AND name IN ('sessions', 'events', 'sync_files')"
            )
        }
        return names == {"sessions", "events", "sync_files"}
    except sqlite3.Error:
        return False
    finally:
        conn.close()


def is_archive_file(name: str, path: str | None) -> bool:
    if not path:
        return False
    key = (name, path)
    now = time.monotonic()
    cached = _cache.get(key)
    if cached is not None and (cached[0] or now - cached[1] < RECHECK_SECONDS):
        return cached[0]
    found = _has_archive_tables(path)
    _cache[key] = (found, now)
    return found


def archive_names(datasette) -> list[str]:
    """Names of the attached databases that are archives (the configured one only, when
    the plugin setting ``database`` names one)."""
    configured = configured_database(datasette)
    if configured is not None:
        return [configured] if configured in datasette.databases else []
    return [
        name
        for name, db in list(datasette.databases.items())
        if not name.startswith("_") and is_archive_file(name, getattr(db, "path", None))
    ]


def is_archive(datasette, database: str | None) -> bool:
    return database is not None and database in archive_names(datasette)


def serves_archive(datasette) -> bool:
    return bool(archive_names(datasette))
