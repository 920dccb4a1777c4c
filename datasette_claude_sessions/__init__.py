"""Datasette plugin for the claude-sessions archive.

Hook implementations only; request handlers live in pages.py (sessions, transcripts,
search) and status.py (sync status, Sync now, live updates, permissions).

The plugin minds its own business (scope.py): it takes over ``/``, adds its menu item,
renders cells, adds table scripts and supplies metadata only where an archive is
served; any other Datasette in the same environment looks as it does without it.
"""

from __future__ import annotations

import re

from datasette import hookimpl
from jinja2 import BaseLoader, ChoiceLoader, FileSystemLoader, TemplateNotFound

from . import guard, kept, live, pages, scope, status
from .utils import (  # noqa: F401  (hook implementations; names others import from here)
    metadata_path,
    permission_allowed,
    register_actions,
    templates_dir,
)

# datasette-dashboards' pages start their charts with an inline script that changes per
# page (filters, chart queries): the Content-Security-Policy cannot allow it by hash.
# DashboardLoader serves those two templates with the script replaced by a JSON block
# and static/dashboard.js, which starts the same charts.
DASHBOARD_SCRIPT = re.compile(
    r"<script type=\"text/javascript\">\s*(?:\{% for chart_slug, chart in dashboard\.charts\."
    r"items\(\) %\}|renderChart\('\{\{ slug \}\}').*?</script>",
    re.S,
)
DASHBOARD_DATA = {
    "dashboard_view.html": "{'charts': dashboard.charts, 'query_string': query_string, "
    "'absolute_url': absolute_url, 'autorefresh': settings.autorefresh|default(none), 'full_height': false}",
    "dashboard_chart.html": "{'charts': {slug: chart}, 'query_string': query_string, "
    "'absolute_url': absolute_url, 'autorefresh': none, 'full_height': true}",
}


class DashboardLoader(BaseLoader):
    def __init__(self, base):
        self.base = base

    def get_source(self, environment, template):
        if template not in DASHBOARD_DATA:
            raise TemplateNotFound(template)
        source, filename, uptodate = self.base.get_source(environment, template)
        replacement = (
            '<script type="application/json" id="claude-sessions-dashboard">'
            f"{{{{ {DASHBOARD_DATA[template]}|tojson }}}}</script>\n"
            "  <script src=\"{{ urls.static_plugins('datasette-claude-sessions', "
            "'dashboard.js') }}\"></script>"
        )
        rewritten, count = DASHBOARD_SCRIPT.subn(lambda m: replacement, source)
        if count != 1:
            raise TemplateNotFound(template)  # another version: served as it is
        # The one inline event handler (the policy blocks those): bound by dashboard.js.
        rewritten = rewritten.replace(
            'onclick="toggleFullscreen()"', "data-claude-sessions-fullscreen"
        )
        return rewritten, filename, uptodate

    def list_templates(self):
        return []


def _escape_datasette_uris() -> None:
    """Datasette builds ``file:{path}?mode=ro`` unescaped: an archive whose path holds
    ``#``, ``?`` or ``%`` opens another file (SQLite reads them as URI syntax).  Such
    databases connect through ingest.archive.sqlite_uri instead; others as before."""
    import sqlite3

    from datasette.database import Database

    from ingest.archive import sqlite_uri

    original = Database.connect
    if getattr(original, "claude_sessions_escaped", False):
        return

    def connect(self, write=False):
        path = getattr(self, "path", None)
        if getattr(self, "is_memory", False) or not path or not any(c in path for c in "#?%"):
            return original(self, write)
        if write:
            query = ""
        elif self.is_mutable:
            query = "mode=ro" + ("&nolock=1" if getattr(self.ds, "nolock", False) else "")
        else:
            query = "immutable=1"
        conn = sqlite3.connect(sqlite_uri(path, query), uri=True, check_same_thread=False)
        self._all_file_connections.append(conn)
        return conn

    connect.claude_sessions_escaped = True
    Database.connect = connect


_escape_datasette_uris()

# A table page's count of its rows (or of the rows its filters or _search match) may run
# this long; past it the page shows its rows without the total, as Datasette does when a
# count runs out of time.  Counting every match of a common word, or every row of the
# full-text table, took 0.6-2 s on a 1 GB archive while the rows themselves take a few ms.
# A view's count computes the whole view again (the usage_* views add up every API
# call: as long as the page's own query), so it gets less.
TABLE_COUNT_MS = 200
VIEW_COUNT_MS = 50
_TABLE_COUNT = re.compile(r"select count\(\*\) from (\[[^\]]+\]|\w+) (?:where .*)?", re.S)


def _cap_table_counts() -> None:
    """Give the table page's count (``select count(*) from <table> <where>``, the one
    query Datasette runs with neither a time limit nor truncation) TABLE_COUNT_MS, or
    VIEW_COUNT_MS on a view, in the archive's databases.  Other queries (custom SQL,
    canned queries, facets) keep Datasette's limits."""
    from datasette.database import Database

    original = Database.execute
    if getattr(original, "claude_sessions_capped", False):
        return

    async def execute(self, sql, params=None, *args, **kwargs):
        count = (
            _TABLE_COUNT.fullmatch(sql)
            if not args
            and kwargs.get("custom_time_limit") is None
            and not kwargs.get("truncate")
            and isinstance(sql, str)
            else None
        )
        if count and scope.is_archive(self.ds, self.name):
            name = count.group(1)
            name = name[1:-1] if name.startswith("[") else name
            view = name in await self.view_names()
            kwargs["custom_time_limit"] = VIEW_COUNT_MS if view else TABLE_COUNT_MS
        return await original(self, sql, params, *args, **kwargs)

    execute.claude_sessions_capped = True
    Database.execute = execute


_cap_table_counts()


@hookimpl
def prepare_jinja2_environment(env, datasette):
    base = env.loader
    loaders = [base, FileSystemLoader(str(templates_dir()))]
    if scope.serves_archive(datasette):  # another Datasette's dashboards stay as they are
        loaders.insert(0, DashboardLoader(base))
    env.loader = ChoiceLoader(loaders)


@hookimpl
def asgi_wrapper(datasette):
    if not scope.serves_archive(datasette):
        return None  # a Datasette without an archive answers as without this plugin
    return lambda app: guard.wrap(datasette, app)


@hookimpl
def register_routes(datasette):
    routes = pages.routes() + status.routes() + live.routes() + kept.routes()
    if not scope.serves_archive(datasette):
        # Datasette's own home page stays, where no archive is served.
        routes = [route for route in routes if route[0] != r"^/$"]
    return routes


@hookimpl
def render_cell(row, value, column, table, database, datasette):
    if not scope.is_archive(datasette, database):
        return None
    return pages.render_cell(row, value, column, table, database, datasette)


@hookimpl
def prepare_connection(conn, database, datasette):
    # Local days for the dashboard and the canned queries (plugin setting timezone).
    # raw_bytes(raw), raw_json(raw), raw_length(raw) and event_text(raw, kind), which
    # events.text is worked out with (ingest.lines): on every connection, since one made
    # before an archive's first sync created its tables would otherwise lack them for
    # good (they do nothing until called)
    from ingest import lines

    lines.register(conn)
    if scope.is_archive(datasette, database):
        from ingest.localdays import register, zone
        from ingest.usage import local_views

        name = scope.setting(datasette, "timezone")
        register(conn, name)
        if zone(name) is not None:
            # usage_by_day/week/month in local days (the archive's own are UTC days)
            local_views(conn)


@hookimpl
def canned_queries(datasette, database, actor):
    async def queries():
        return await pages.archive_queries(datasette, database)

    return queries


@hookimpl
def menu_links(datasette, actor, request):
    if not scope.serves_archive(datasette):
        return None
    return status.menu_links(datasette, actor, request)


@hookimpl
def startup(datasette):
    status.startup(datasette)
    if scope.serves_archive(datasette):
        pages.warm(datasette)
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
def extra_js_urls(view_name, database, datasette):
    # Table pages: the column descriptions of metadata.yml fold into a closed <details>
    # (and become header tooltips) so the rows are not pushed below the fold.
    if view_name == "table" and scope.is_archive(datasette, database):
        return [datasette.urls.static_plugins(scope.PLUGIN, "columns.js")]
    return []


try:  # Datasette 0.65; 1.0 dropped the hook (its configuration lives in datasette.yaml)
    from datasette.hookspecs import get_metadata as _get_metadata_spec  # noqa: F401
except ImportError:  # pragma: no cover - Datasette 1.0
    pass
else:

    @hookimpl
    def get_metadata(datasette, key, database, table):
        """metadata.yml for every archive served, so a plain ``datasette archive.db``
        (without ``--metadata``) gets the column descriptions, the canned queries' titles
        and the usage dashboard.  Metadata given with ``--metadata`` takes precedence."""
        names = scope.archive_names(datasette)
        if not names:
            return None
        from .metadata import archive_metadata, given_locally

        local = getattr(datasette, "_metadata_local", None)
        if given_locally(local, tuple(names)):
            # `claude-sessions serve` passes all of it with --metadata: Datasette merges
            # every hook's answer with its own metadata on each metadata() call (per
            # cell: datasette-render-markdown asks for its settings), and merging the
            # same dashboards twice made the events page 3-4 times slower.
            return None
        return archive_metadata(tuple(names), key, local)
