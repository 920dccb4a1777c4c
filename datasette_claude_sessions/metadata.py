"""metadata.yml for the archives served: what the get_metadata hook returns.

The renaming of metadata.yml's archive section for the name a database is served under
is ingest.metadata's (``claude-sessions serve`` uses it too, without importing this
package, which imports datasette).
"""

from __future__ import annotations

from pathlib import Path

from ingest.metadata import ARCHIVE_KEY, for_database
from ingest.settings import PLUGIN


def load_metadata(database: str = ARCHIVE_KEY, path: Path | None = None) -> dict:
    """metadata.yml as a dict, its archive section keyed by ``database``
    (ingest.metadata.for_database; by default the plugin's own metadata.yml)."""
    if path is None:
        from .utils import metadata_path

        path = metadata_path()
    return for_database(database, path)


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
        plugins.pop(PLUGIN, None)  # settings are the user's to give
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
