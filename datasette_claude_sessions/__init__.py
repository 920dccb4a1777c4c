"""Datasette plugin for the claude-sessions archive.

Hook implementations only; request handlers live in pages.py (sessions, transcripts,
search) and status.py (sync status, Sync now, live updates, permissions).
"""

from __future__ import annotations

from pathlib import Path

from datasette import hookimpl
from jinja2 import ChoiceLoader, FileSystemLoader

from . import kept, pages, status
from .status import permission_allowed, register_actions  # noqa: F401  (hook implementations)

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


@hookimpl
def prepare_jinja2_environment(env):
    env.loader = ChoiceLoader([env.loader, FileSystemLoader(str(templates_dir()))])


@hookimpl
def register_routes():
    return pages.routes() + status.routes() + kept.routes()


@hookimpl
def render_cell(row, value, column, table, database, datasette):
    return pages.render_cell(row, value, column, table, database, datasette)


@hookimpl
def canned_queries(datasette, database, actor):
    async def queries():
        return await pages.archive_queries(datasette, database)

    return queries


@hookimpl
def menu_links(datasette, actor, request):
    return status.menu_links(datasette, actor, request)


@hookimpl
def startup(datasette):
    status.startup(datasette)
    if not hasattr(datasette, "add_query"):
        return None  # Datasette 0.65: the canned_queries hook above serves them

    async def add_archive_queries():
        # Datasette 1.0 dropped the canned_queries hook; queries are stored with add_query.
        for database in list(datasette.databases):
            queries = await pages.archive_queries(datasette, database)
            for name, query in queries.items():
                await datasette.add_query(
                    database,
                    name,
                    query["sql"],
                    title=query.get("title"),
                    description=query.get("description"),
                    hide_sql=bool(query.get("hide_sql")),
                )

    return add_archive_queries


@hookimpl
def extra_js_urls(view_name, datasette):
    # Table pages: the column descriptions of metadata.yml fold into a closed <details>
    # (and become header tooltips) so the rows are not pushed below the fold.
    if view_name == "table":
        return [datasette.urls.static_plugins("datasette-claude-sessions", "columns.js")]
    return []
