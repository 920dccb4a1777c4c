"""metadata.yml for whatever name the archive database is served under.

metadata.yml describes the archive under ``databases: claude-sessions:`` (the stem of
the default claude-sessions.db).  Datasette names a database after its file stem, so
``serve --db other.db`` needs that section under ``other``, and the dashboards'
``db:`` settings to say ``other`` too: ``load_metadata("other")`` does both.

``claude-sessions serve`` loads this file as a plain module (importing the package would
import datasette), so it imports nothing but yaml at module level.
"""

from __future__ import annotations

from pathlib import Path

import yaml

ARCHIVE_KEY = "claude-sessions"


def load_metadata(database: str = ARCHIVE_KEY, path: Path | None = None) -> dict:
    """metadata.yml as a dict, its archive section keyed by ``database``."""
    if path is None:
        from .utils import metadata_path

        path = metadata_path()
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


_full: dict[tuple[str, ...], dict] = {}
_subsets: dict[tuple[tuple[str, ...], str | None], dict] = {}


def _archive_full(names: tuple[str, ...]) -> dict:
    """metadata.yml's title, description, archive section (tables, column descriptions,
    queries) under each of ``names``, and the dashboards (pointed at the first)."""
    data = _full.get(names)
    if data is None:
        first = load_metadata(names[0])
        section = (first.get("databases") or {}).get(names[0])
        plugins = dict(first.get("plugins") or {})
        plugins.pop("datasette-claude-sessions", None)  # settings are the user's to give
        data = {k: v for k, v in first.items() if k not in ("databases", "plugins")}
        if section is not None:
            data["databases"] = {name: section for name in names}
        if plugins:
            data["plugins"] = plugins
        _full[names] = data
    return data


def _subset(full: dict, key: str | None) -> dict:
    """The parts of ``full`` Datasette's ``metadata(key, ...)`` can look at."""
    if key is None or key in ("databases", "tables"):
        return full
    out: dict = {}
    if key in full:
        out[key] = full[key]
    databases = {}
    for name, section in (full.get("databases") or {}).items():
        part = {key: section[key]} if key in section else {}
        tables = {
            table: {key: config[key]}
            for table, config in (section.get("tables") or {}).items()
            if isinstance(config, dict) and key in config
        }
        if tables:
            part["tables"] = tables
        if part:
            databases[name] = part
    if databases:
        out["databases"] = databases
    return out


def _fresh(node, depth: int):
    """New dicts for the first ``depth`` levels (Datasette merges other metadata into
    what the hook returns, in place), the deeper values shared."""
    if depth == 0 or not isinstance(node, dict):
        return node
    return {k: _fresh(v, depth - 1) for k, v in node.items()}


def archive_metadata(names: tuple[str, ...], key: str | None = None) -> dict:
    """What the get_metadata hook returns for the archives ``names`` and ``key``; cheap,
    since Datasette asks for it hundreds of times a page."""
    subset = _subsets.get((names, key))
    if subset is None:
        subset = _subsets[(names, key)] = _subset(_archive_full(names), key)
    return _fresh(subset, 4)
