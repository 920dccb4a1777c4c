"""metadata.yml for the archives served: what the get_metadata hook returns.

The renaming of metadata.yml's archive section for the name a database is served under
is ingest.metadata's (``claude-sessions serve`` uses it too, without importing this
package, which imports datasette).
"""

from __future__ import annotations

import copy
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
_pristine: dict[tuple[str, ...], dict] = {}  # copies of _full never handed out
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
        _pristine[names] = copy.deepcopy(data)
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


def _fresh(node, other, depth: int):
    """node with new dicts for its first ``depth`` levels and, deeper, wherever
    ``other`` has a dict at the same place; the rest shared.  Datasette changes what
    the hook returns: it merges its own metadata (``other``) into it in place, going
    down wherever both sides hold a dict, and adds keys (each query's name).  Shared
    dicts there would change the cached answer (a --metadata query's SQL became every
    later answer's)."""
    if not isinstance(node, dict) or (depth <= 0 and not isinstance(other, dict)):
        return node
    other = other if isinstance(other, dict) else {}
    return {key: _fresh(value, other.get(key), depth - 1) for key, value in node.items()}


def archive_metadata(names: tuple[str, ...], key: str | None = None, local=None) -> dict:
    """What the get_metadata hook returns for the archives ``names`` and ``key``, given
    Datasette's own metadata ``local``; cheap, since Datasette asks for it hundreds of
    times a page."""
    subset = _subsets.get((names, key))
    if subset is None:
        subset = _subsets[(names, key)] = _subset(_archive_full(names), key)
    return _fresh(subset, local, 4)


_given: dict[tuple[str, ...], tuple[object, bool]] = {}


def _contains(outer, inner) -> bool:
    if isinstance(inner, dict):
        return isinstance(outer, dict) and all(
            key in outer and _contains(outer[key], value) for key, value in inner.items()
        )
    return outer == inner


def given_locally(local, names: tuple[str, ...]) -> bool:
    """Whether Datasette's own metadata (``--metadata``) already holds everything the
    get_metadata hook would add for ``names``.  Checked once per metadata object."""
    if not isinstance(local, dict) or not local:
        return False
    _archive_full(names)
    cached = _given.get(names)
    if cached is not None and cached[0] is local:
        return cached[1]
    answer = _contains(local, _pristine[names])
    _given[names] = (local, answer)
    return answer
