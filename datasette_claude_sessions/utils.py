"""What every part of the plugin shares: its name (defined in scope.py, which must stay
free of imports) and files, its settings, finding the archive, the permission checks,
and rows as dicts.

The permission hooks (``permission_allowed``, ``register_actions``) live here too; who may
press Sync now (``status.can_sync``) also depends on where the request comes from
(guard.py).
"""

from __future__ import annotations

import sqlite3
from pathlib import Path

from datasette import hookimpl
from datasette.utils import actor_matches_allow
from datasette.utils.asgi import Forbidden, NotFound

from .scope import PLUGIN, archive_names

PREFIX = "/-/claude-sessions"
SYNC_ACTION = "claude-sessions-sync"
DEFAULT_ALLOW_SYNC = {"id": "root"}
HERE = Path(__file__).resolve().parent


def templates_dir() -> Path:
    """templates/ inside the installed wheel, else the top-level one of a source checkout."""
    for candidate in (HERE / "templates", HERE.parent / "templates"):
        if candidate.is_dir():
            return candidate
    raise RuntimeError("datasette-claude-sessions: templates/ folder not found")


def metadata_path() -> Path:
    """metadata.yml inside the installed wheel, else the top-level one of a source checkout."""
    for candidate in (HERE / "metadata.yml", HERE.parent / "metadata.yml"):
        if candidate.is_file():
            return candidate
    raise RuntimeError("datasette-claude-sessions: metadata.yml not found")


def plugin_config(datasette) -> dict:
    """The plugin's settings (``plugins: datasette-claude-sessions:``)."""
    return datasette.plugin_config(PLUGIN) or {}


# --- the archive ---------------------------------------------------------------------------


async def archive_database(datasette):
    """The (first) archive database served (scope.py says which), or None."""
    names = archive_names(datasette)
    return datasette.databases.get(names[0]) if names else None


async def archive_or_404(datasette, request):
    """The archive, when the actor may read its events (else 403); 404 without one."""
    db = await archive_database(datasette)
    if db is None:
        raise NotFound("No claude-sessions archive is attached to this Datasette.")
    await require_events(datasette, request, db.name)
    return db


# --- permissions ---------------------------------------------------------------------------


async def require_events(datasette, request, db_name: str) -> None:
    """Reading transcripts needs what reading the events table needs (else Forbidden)."""
    if hasattr(datasette, "ensure_permissions"):  # Datasette 0.6x
        await datasette.ensure_permissions(
            request.actor,
            [("view-table", (db_name, "events")), ("view-database", db_name), "view-instance"],
        )
        return
    from datasette.resources import TableResource  # Datasette 1.0

    if not await datasette.allowed(
        action="view-table", resource=TableResource(db_name, "events"), actor=request.actor
    ):
        raise Forbidden("You do not have permission to view this archive")


async def require_view(datasette, request, db) -> None:
    """Raise Forbidden unless the actor may see the archive database (the sync status)."""
    if hasattr(datasette, "ensure_permissions"):  # Datasette 0.65
        await datasette.ensure_permissions(
            request.actor, [("view-database", db.name), "view-instance"]
        )
        return
    from datasette.resources import DatabaseResource  # Datasette 1.0

    if not await datasette.allowed(
        action="view-database", resource=DatabaseResource(db.name), actor=request.actor
    ):
        raise Forbidden("You may not view this database.")


@hookimpl
def permission_allowed(datasette, actor, action, resource):
    """Datasette 0.65: ``claude-sessions-sync`` follows the ``allow_sync`` setting."""
    if action != SYNC_ACTION:
        return None
    return actor_matches_allow(
        actor, plugin_config(datasette).get("allow_sync", DEFAULT_ALLOW_SYNC)
    )


@hookimpl
def register_actions(datasette):
    """Datasette 1.0: declare the action (0.65 has no such hook and never calls this)."""
    try:
        from datasette.permissions import Action
    except ImportError:
        return []
    return [Action(name=SYNC_ACTION, description="Run a claude-sessions sync pass now")]


# --- rows ----------------------------------------------------------------------------------


def dicts(cursor: sqlite3.Cursor) -> list[dict]:
    """A cursor's rows as dicts keyed by column name."""
    names = [d[0] for d in cursor.description]
    return [dict(zip(names, row, strict=True)) for row in cursor]


def rows(conn: sqlite3.Connection, sql: str, params=()) -> list[dict]:
    """The rows of a query as dicts keyed by column name."""
    return dicts(conn.execute(sql, params))
