"""Home, transcript and search pages, each with a JSON form, plus cell links.

URLs (every HTML page also answers ``.json`` or ``?_format=json``):

- ``/`` and ``/-/claude-sessions``: home: recent sessions, projects, search box, or what
  to do when the archive is empty (JSON: ``/-/claude-sessions.json``);
- ``/-/claude-sessions/session/<session_id>``: the transcript, 500 events a page
  (``?page=N``, ``?event=<id>`` opens the page holding that event, ``?agent=<id>`` one
  subagent's own transcript);
- ``/-/claude-sessions/search?q=``: full-text search with ``project``, ``kind``,
  ``from``/``to`` (YYYY-MM-DD), ``sort`` (rank, newest, oldest), ``syntax=fts`` for raw
  FTS5 query syntax, and ``page``; page 1 also lists matching history.jsonl prompts;
- ``/-/claude-sessions/kept/<id>``: a file kept beside the transcripts (kept.py).
"""

from __future__ import annotations

import math
import re
import secrets
import sqlite3
from html import escape
from urllib.parse import urlencode

from datasette.utils import tilde_decode, tilde_encode
from datasette.utils.asgi import NotFound, Response
from jinja2 import Environment, FileSystemLoader
from markupsafe import Markup

from . import facts, kept, render, scope, transcript
from .utils import (
    PLUGIN,
    PREFIX,
    archive_database,
    archive_or_404,
    dicts,
    require_events,
    templates_dir,
)

SEARCH_KINDS = ("prompt", "answer", "thinking", "tool_use", "tool_result", "command", "context")
SEARCH_PAGE_SIZE = 20
# Pygments time one transcript page may spend (code past it is shown plain until the
# page is drawn again: render.highlight_budget).
HIGHLIGHT_SECONDS = 0.08
SEARCH_COUNT_CAP = 1000
# "Best match" ranks (bm25) every match: for a word in 80,000 lines of a 1 GB archive
# that alone takes 150-300 ms.  Beyond this many matches, the ranking covers the newest
# RANK_WINDOW matches only (found from the index in a few ms), and the page says so.
RANK_WINDOW = 5_000
_DATE = re.compile(r"^\d{4}-\d{2}-\d{2}$")


def routes():
    return [
        (r"^/$", home),
        (rf"^{PREFIX}/?$", home),
        (rf"^{PREFIX}\.(?P<format>json)$", home),
        # Session ids are tilde-encoded in the path, like Datasette's table names.
        (rf"^{PREFIX}/session/(?P<session_id>[^/]+?)(?:\.(?P<format>json))?$", session_page),
        (rf"^{PREFIX}/search(?:\.(?P<format>json))?$", search_page),
        (rf"^{PREFIX}/event/(?P<event_id>\d+)$", event_redirect),
        (rf"^{PREFIX}/call/(?P<tool_use_id>[^/]+)$", call_redirect),
    ]


# Finding the archive -------------------------------------------------------------------


_default_queries: dict | None = None


def default_queries() -> dict:
    """The canned queries of metadata.yml's archive section."""
    global _default_queries
    if _default_queries is None:
        from .metadata import ARCHIVE_KEY, load_metadata

        archive = (load_metadata().get("databases") or {}).get(ARCHIVE_KEY) or {}
        _default_queries = archive.get("queries") or {}
    return _default_queries


def _configured_queries(datasette, database: str) -> dict:
    if hasattr(datasette, "get_database_metadata"):  # Datasette 1.0: queries live in config
        config = getattr(datasette, "config", None) or {}
        return ((config.get("databases") or {}).get(database) or {}).get("queries") or {}
    return datasette.metadata("queries", database=database, fallback=False) or {}


async def archive_queries(datasette, database: str) -> dict:
    """metadata.yml's canned queries for an archive database (one with sessions and
    events) that the metadata in use does not define already: plain
    ``datasette claude-sessions.db``, without ``--metadata``, gets them too."""
    if not scope.is_archive(datasette, database):
        return {}
    configured = _configured_queries(datasette, database)
    return {
        name: dict(query) for name, query in default_queries().items() if name not in configured
    }


def dashboards_configured(datasette) -> bool:
    """Whether datasette-dashboards has a dashboard to show (it is configured only by
    metadata: ``claude-sessions serve`` or ``--metadata metadata.yml``)."""
    return bool(datasette.plugin_config("datasette-dashboards"))


def _wants_json(request) -> bool:
    return (request.url_vars.get("format") == "json") or request.args.get("_format") == "json"


def _path(datasette, path: str) -> str:
    return str(datasette.urls.path(path))


def session_url(datasette, session_id: str, **params) -> str:
    """URL of a transcript page; ``event=`` adds the #e<id> anchor."""
    query = {k: v for k, v in params.items() if v is not None}
    url = _path(datasette, f"{PREFIX}/session/{tilde_encode(session_id)}")
    if query:
        url += "?" + urlencode(query)
    if params.get("event") is not None:
        url += f"#e{params['event']}"
    return url


async def _render(datasette, request, template: str, context: dict):
    return Response.html(await datasette.render_template(template, context, request=request))


# Home ------------------------------------------------------------------------------------


async def home(datasette, request):
    db = await archive_database(datasette)
    context: dict = {"archive": None, "projects_dirs": _projects_dirs()}
    if db is not None:
        await require_events(datasette, request, db.name)
        context["archive"] = db.name
        context.update(await db.execute_fn(_home_data))
    if _wants_json(request):
        data = {k: v for k, v in context.items() if k != "projects_dirs"}
        for row in data.get("recent", []):
            row["url"] = session_url(datasette, row["session_id"])
        return Response.json(data, default=str)
    context["search_url"] = _path(datasette, f"{PREFIX}/search")
    context["session_url"] = lambda sid: session_url(datasette, sid)
    context["json_url"] = _path(datasette, f"{PREFIX}.json")
    context["dashboards_url"] = (
        _path(datasette, "/-/dashboards") if dashboards_configured(datasette) else None
    )
    metadata = await _instance_metadata(datasette)
    context["title"] = metadata.get("title") or "Claude Code sessions"
    context["description"] = metadata.get("description")
    context["databases"] = [
        (name, str(datasette.urls.database(name)))
        for name in datasette.databases
        if not name.startswith("_")
    ]
    if db is not None:
        # sessions_list is a view of migration m003; an archive older than that (opened
        # without syncing) still has the sessions table.
        listing = "sessions_list" if context["has_sessions_list"] else "sessions"
        context["sessions_url"] = str(datasette.urls.table(db.name, listing))
        context["projects_url"] = str(datasette.urls.table(db.name, "projects"))
        context["database_url"] = str(datasette.urls.database(db.name))
    return await _render(datasette, request, "claude_sessions_home.html", context)


async def _instance_metadata(datasette) -> dict:
    if hasattr(datasette, "get_instance_metadata"):  # Datasette 1.0
        return await datasette.get_instance_metadata()
    return datasette.metadata() or {}


def _projects_dirs() -> list[str]:
    from ingest.paths import default_projects_dirs

    return [str(p) for p in default_projects_dirs()]


def _home_data(conn) -> dict:
    totals = conn.execute(
        "select count(*), coalesce(sum(prompts), 0), min(first_timestamp), max(last_timestamp) "
        "from sessions"
    ).fetchone()
    files = conn.execute("select count(*) from sync_files").fetchone()[0]
    last_sync = conn.execute("select max(coalesce(ended_at, started_at)) from sync_runs").fetchone()
    recent = dicts(
        conn.execute(
            "select s.session_id, s.title, s.project_path, s.project_dir, p.name as project, "
            "s.first_timestamp, s.last_timestamp, s.prompts, s.models, s.git_branch "
            "from sessions s left join projects p on p.path = s.project_path "
            "where s.prompts > 0 order by s.last_timestamp desc limit 25"
        )
    )
    for row in recent:
        # A session without a cwd is shown by its projects folder name.
        row["project"] = row["project"] or row["project_dir"]
        row["label"] = render.session_label(row["title"], row["session_id"], row["project"])
    # Sessions without a prompt (warmups, aborted starts) stay in the full list only.
    without_prompts = conn.execute("select count(*) from sessions where prompts = 0").fetchone()[0]
    projects = dicts(
        conn.execute(
            "select path, name, sessions, last_timestamp from projects "
            "order by last_timestamp desc limit 15"
        )
    )
    has_list = conn.execute(
        "select 1 from sqlite_master where type = 'view' and name = 'sessions_list'"
    ).fetchone()
    return {
        "has_sessions_list": bool(has_list),
        "sessions": totals[0],
        "prompts": totals[1],
        "first_timestamp": totals[2],
        "last_timestamp": totals[3],
        "files": files,
        "last_sync": last_sync[0] if last_sync else None,
        "recent": recent,
        "sessions_without_prompts": without_prompts,
        "projects": projects,
    }


# Transcript ------------------------------------------------------------------------------


def _int_arg(request, name: str, default: int | None = None) -> int | None:
    value = request.args.get(name)
    if value is None or value == "":
        return default
    try:
        return int(value)
    except ValueError:
        return default


async def session_page(datasette, request):
    db = await archive_or_404(datasette, request)
    session_id = tilde_decode(request.url_vars["session_id"])
    agent_id = request.args.get("agent") or None
    event_id = _int_arg(request, "event")
    size = max(1, min(_int_arg(request, "size", transcript.PAGE_SIZE), transcript.MAX_PAGE_SIZE))
    as_json = _wants_json(request)

    if event_id is not None:
        located = await db.execute_fn(lambda conn: transcript.locate_event(conn, event_id))
        if located and located[0] and (located[0], located[1]) != (session_id, agent_id):
            # The event belongs elsewhere: send the reader to its own thread.
            target = session_url(
                datasette,
                located[0],
                agent=located[1],
                event=event_id,
                **({"_format": "json"} if as_json else {}),
            )
            return Response.redirect(target)

    requested_page = _int_arg(request, "page", 1)
    cache_key = db.path or db.name

    def build(conn):
        render.highlight_budget(HIGHLIGHT_SECONDS)
        session = dicts(conn.execute("select * from sessions where session_id = ?", (session_id,)))
        order = transcript.thread_order(conn, session_id, agent_id, cache_key)
        pages = max(1, math.ceil(len(order) / size))
        page = requested_page
        if event_id is not None and event_id in order:
            page = order.index(event_id) // size + 1
        elif page < 1 or page > pages:
            return {"page_missing": (page, pages)}
        ids = order[(page - 1) * size : page * size]
        agents = transcript.session_agents(conn, session_id)
        ctx = _transcript_context(datasette, db, session_id, agent_id)
        ctx.with_text = as_json
        if not as_json:
            for agent in agents:
                if agent["tool_use_id"]:
                    ctx.agents_by_call.setdefault(agent["tool_use_id"], []).append(agent)
        events = transcript.build_events(conn, ids, ctx, session_id)
        body = None if as_json else render_turns(transcript.group_turns(events))
        project = None
        if session and session[0]["project_path"]:
            project = dicts(
                conn.execute("select * from projects where path = ?", (session[0]["project_path"],))
            )
        return {
            "session": session[0] if session else None,
            "project": project[0] if project else None,
            "total": len(order),
            "max_id": max(order, default=0),
            "page": page,
            "pages": pages,
            "events": events,
            "body": body,
            "agents": agents,
            "spawned_by": _spawning_event(conn, agents, agent_id),
            "plan_file": None if as_json else kept.plan_file(conn, session_id),
            "facts": facts.thread_facts(conn, session_id, agent_id) if session else None,
        }

    data = await db.execute_fn(build)
    if "page_missing" in data:
        page, pages = data["page_missing"]
        raise NotFound(
            f"No page {page}: this transcript has {pages} page{'s' if pages != 1 else ''}."
        )
    if data["session"] is None and data["total"] == 0:
        raise NotFound(f"No session {session_id} in the archive.")
    agent = next((a for a in data["agents"] if a["agent_id"] == agent_id), None)
    if agent_id is not None and data["total"] == 0 and agent is None:
        raise NotFound(f"No subagent {agent_id} in session {session_id}.")

    def page_url(n: int, fmt: bool = as_json) -> str:
        params = {"agent": agent_id, "page": n}
        if size != transcript.PAGE_SIZE:
            params["size"] = size
        if fmt:
            params["_format"] = "json"
        return session_url(datasette, session_id, **params)

    page, pages = data["page"], data["pages"]
    first_position = (page - 1) * size
    if as_json:
        return Response.json(
            {
                "database": db.name,
                "session": data["session"],
                "agent_id": agent_id,
                "total_events": data["total"],
                "page": page,
                "pages": pages,
                "page_size": size,
                "next_url": page_url(page + 1) if page < pages else None,
                "previous_url": page_url(page - 1) if page > 1 else None,
                "events": [
                    transcript.json_event(view, first_position + i)
                    for i, view in enumerate(data["events"])
                ],
                "subagents": [
                    dict(a, url=session_url(datasette, session_id, agent=a["agent_id"]))
                    for a in data["agents"]
                ],
            },
            default=str,
        )

    spawned_by = None
    if data["spawned_by"] is not None:
        spawned_by = session_url(datasette, session_id, event=data["spawned_by"])
    live_url = None
    if page == pages:
        # New lines of this thread appear at the end of its last page (static/live.js).
        live = {"session": session_id, "after": data["max_id"]}
        live.update({"agent": agent_id} if agent_id else {"main": 1})
        live_url = _path(datasette, f"{PREFIX}/live") + "?" + urlencode(live)
    context = {
        "database": db.name,
        "session_id": session_id,
        "live_url": live_url,
        "live_js": datasette.urls.static_plugins(PLUGIN, "live.js"),
        "transcript_js": datasette.urls.static_plugins(PLUGIN, "transcript.js"),
        "session": data["session"],
        "project": data["project"],
        "title": render.session_label(
            (data["session"] or {}).get("title"),
            session_id,
            (data["project"] or {}).get("name"),
        ),
        "agent_id": agent_id,
        "agent": agent,
        "spawned_by": spawned_by,
        "transcript_html": data["body"],
        "total": data["total"],
        "page": page,
        "pages": pages,
        "first_position": first_position,
        "shown": len(data["events"]),
        "page_urls": [(n, page_url(n, False)) for n in _page_window(page, pages)],
        "next_url": page_url(page + 1, False) if page < pages else None,
        "previous_url": page_url(page - 1, False) if page > 1 else None,
        "json_url": page_url(page, True),
        "main_url": session_url(datasette, session_id),
        "agents": [
            dict(a, url=session_url(datasette, session_id, agent=a["agent_id"]))
            for a in data["agents"]
        ],
        "events_url": str(datasette.urls.table(db.name, "events"))
        + "?"
        + urlencode({"session_id": session_id, "_sort": "id"}),
        "session_row_url": str(datasette.urls.row(db.name, "sessions", tilde_encode(session_id))),
        "search_url": _path(datasette, f"{PREFIX}/search"),
        "home_url": _path(datasette, PREFIX),
        "models": _models(data["session"]),
        "plan_url": data["plan_file"] and kept.kept_url(datasette, data["plan_file"]),
        "facts": data["facts"],
        "resume_command": _resume_command(data["session"], session_id),
        "errors_on_page": len(
            {
                block.get("id") or block.get("tool_use_id")
                for event in data["events"]
                for block in event["blocks"]
                if block["type"] in ("tool_use", "tool_result")
                and (block.get("status") == "error" or block.get("is_error"))
            }
        ),
        "failing_calls_url": str(datasette.urls.table(db.name, "tool_calls"))
        + "?"
        + urlencode({"session_id": session_id, "is_error": 1}),
    }
    return await _render(datasette, request, "claude_sessions_session.html", context)


def _resume_command(session: dict | None, session_id: str) -> str:
    """The shell command that reopens the session in Claude Code (from its folder)."""
    import shlex

    command = f"claude --resume {shlex.quote(session_id)}"
    path = (session or {}).get("project_path")
    return f"cd {shlex.quote(path)} && {command}" if path else command


def _spawning_event(conn, agents: list[dict], agent_id: str | None) -> int | None:
    """Event id of the tool call that started the subagent, if known."""
    tool_use_id = next((a["tool_use_id"] for a in agents if a["agent_id"] == agent_id), None)
    if not tool_use_id:
        return None
    row = conn.execute(
        "select event_id from tool_calls where tool_use_id = ?", (tool_use_id,)
    ).fetchone()
    return row[0] if row else None


def _models(session: dict | None) -> list[str]:
    import json

    if not session or not session.get("models"):
        return []
    try:
        models = json.loads(session["models"])
    except ValueError:
        return []
    return [str(m) for m in models] if isinstance(models, list) else []


def _page_window(page: int, pages: int) -> list[int]:
    """Page numbers to link: first, last, and two either side of the current one."""
    wanted = {1, pages} | set(range(page - 2, page + 3))
    return sorted(n for n in wanted if 1 <= n <= pages)


_sync_env: Environment | None = None


def sync_env() -> Environment:
    """A plain (not async) Jinja environment over the plugin's templates: several times
    faster than Datasette's async one for 500 events, and usable in a worker thread."""
    global _sync_env
    if _sync_env is None:
        _sync_env = Environment(loader=FileSystemLoader(str(templates_dir())), autoescape=True)
    return _sync_env


# Templates a transcript page draws with: compiled at startup (warm), not by the first
# request.
WARM_TEMPLATES = ("claude_sessions_session.html",)


def warm(datasette) -> None:
    """Compile the transcript templates and warm the renderer (render.warm), so the first
    transcript page after startup does none of that work."""
    from jinja2 import TemplateNotFound, meta

    render.warm()
    render_turns([])  # compiles _turns.html and the _transcript.html macros it imports
    env = getattr(datasette, "jinja_env", None)
    todo, seen = list(WARM_TEMPLATES) if env is not None else [], set()
    while todo:
        # Each template and those it extends, includes or imports (base.html...).
        name = todo.pop()
        if name in seen:
            continue
        seen.add(name)
        try:
            env.get_template(name)
            source = env.loader.get_source(env, name)[0]
        except TemplateNotFound:
            continue
        todo += [n for n in meta.find_referenced_templates(env.parse(source)) if n]


def render_turns(turns: list[dict]) -> Markup:
    """The transcript body (the page's, and each live fragment's)."""
    return Markup(sync_env().get_template("claude_sessions/_turns.html").render(turns=turns))


def transcript_fragment(conn, datasette, db, session_id: str, agent_id, ids: list[int]) -> str:
    """The HTML of these events exactly as the transcript page draws them: what the live
    stream sends for lines that arrive while the page is open."""
    render.highlight_budget(None)
    ctx = _transcript_context(datasette, db, session_id, agent_id)
    for agent in transcript.session_agents(conn, session_id):
        if agent["tool_use_id"]:
            ctx.agents_by_call.setdefault(agent["tool_use_id"], []).append(agent)
    events = transcript.build_events(conn, ids, ctx, session_id)
    return str(render_turns(transcript.group_turns(events)))


def _transcript_context(datasette, db, session_id: str, agent_id) -> transcript.Context:
    def urls(kind: str, **kw) -> str:
        if kind == "agent":
            return session_url(datasette, session_id, agent=kw["agent_id"])
        if kind == "event":
            return session_url(datasette, session_id, agent=agent_id, event=kw["event_id"])
        if kind == "kept":
            return kept.kept_url(datasette, kw["file_id"])
        raise ValueError(kind)

    return transcript.Context(
        urls=urls,
        events_url=str(datasette.urls.table(db.name, "events")),
        cache_key=db.path or db.name,
    )


# Search ----------------------------------------------------------------------------------


def fts_query(q: str) -> str:
    """A user's words as a safe FTS5 query: every word or "quoted phrase" becomes a
    quoted string (AND-ed); a trailing * keeps prefix matching."""
    parts = []
    for token in re.findall(r'"[^"]*"|[^\s"]+', q):
        prefix = token.endswith("*") and not token.startswith('"')
        token = token.rstrip("*") if prefix else token.strip('"')
        if not token.strip():
            continue
        parts.append('"' + token.replace('"', '""') + '"' + ("*" if prefix else ""))
    return " ".join(parts)


def _snippet_html(snippet: str | None, open_mark: str, close_mark: str) -> Markup:
    text = render.strip_ansi(snippet or "")
    text = re.sub(r"\s+", " ", text).strip()
    html = escape(text, quote=True)
    return Markup(html.replace(open_mark, "<mark>").replace(close_mark, "</mark>"))


def _search_filters(request) -> tuple[dict, list[str]]:
    """Validated filters from the query string, and messages about ignored ones."""
    errors = []
    filters = {
        "q": (request.args.get("q") or "").strip(),
        "project": request.args.get("project") or "",
        "kind": request.args.get("kind") or "",
        "from": request.args.get("from") or "",
        "to": request.args.get("to") or "",
        "sort": request.args.get("sort") or "rank",
        "syntax": request.args.get("syntax") or "",
    }
    if filters["kind"] and filters["kind"] not in SEARCH_KINDS:
        errors.append(f"Unknown kind {filters['kind']!r} ignored.")
        filters["kind"] = ""
    for key in ("from", "to"):
        if filters[key] and not _DATE.match(filters[key]):
            errors.append(f"{key.title()} date must look like 2025-07-01; ignored.")
            filters[key] = ""
    if filters["sort"] not in ("rank", "newest", "oldest"):
        filters["sort"] = "rank"
    return filters, errors


def _search(conn, filters: dict, page: int, open_mark: str, close_mark: str) -> dict:
    words = filters["q"] if filters["syntax"] == "fts" else fts_query(filters["q"])
    if not words:
        return {"hits": [], "has_next": False, "count": 0, "error": None, "ranked_newest": False}
    # The words search the text column only; a kind filter is a second FTS term on the
    # kind column, so the index itself narrows the matches before they are ranked.
    match = f"text : ({words})"
    if filters["kind"]:
        match += f' AND kind : "{filters["kind"]}"'
    # The unary + keeps SQLite from driving the query from an events index (every prompt,
    # say) instead of from the FTS match: filters are checked on matching rows only.
    where = ["events_fts match :match"]
    params: dict = {"match": match, "open": open_mark, "close": close_mark}
    if filters["project"]:
        where.append("+s.project_path = :project")
        params["project"] = filters["project"]
    if filters["from"]:
        where.append("+e.timestamp >= :from")
        params["from"] = filters["from"]
    if filters["to"]:
        where.append("+e.timestamp < date(:to, '+1 day')")
        params["to"] = filters["to"]
    order = {
        "rank": "events_fts.rank",
        "newest": "events_fts.rowid desc",
        "oldest": "events_fts.rowid",
    }[filters["sort"]]
    joins = (
        "from events_fts join events e on e.id = events_fts.rowid "
        "join sync_files f on f.id = e.file_id "
        "left join sessions s on s.session_id = e.session_id "
        "left join projects p on p.path = s.project_path"
    )
    limit = f"limit {SEARCH_PAGE_SIZE + 1} offset {(page - 1) * SEARCH_PAGE_SIZE}"
    sql = (
        "select e.id, e.session_id, coalesce(e.agent_id, f.agent_id) as agent_id, e.kind, "
        "e.type, e.timestamp, s.title, s.project_path, p.name as project, "
        "snippet(events_fts, 0, :open, :close, '…', 24) as snippet "
        f"{joins} where {' and '.join(where)} order by {order} {limit}"
    )
    if len(where) == 1:
        # No filter on the joined tables: the index picks the page's rows first, and
        # only those are joined (joined first, every match would read its events row).
        sql = (
            "select e.id, e.session_id, coalesce(e.agent_id, f.agent_id) as agent_id, "
            "e.kind, e.type, e.timestamp, s.title, s.project_path, p.name as project, "
            "h.snippet from (select events_fts.rowid as id, "
            "snippet(events_fts, 0, :open, :close, '…', 24) as snippet, "
            f"{order.split()[0]} as o from events_fts where events_fts match :match "
            f"order by {order} {limit}) h "
            "join events e on e.id = h.id join sync_files f on f.id = e.file_id "
            "left join sessions s on s.session_id = e.session_id "
            "left join projects p on p.path = s.project_path "
            f"order by h.o{' desc' if order.endswith('desc') else ''}"
        )
    # Matches are counted (up to a cap) from the index alone; with filters that would
    # mean joining every match a second time, so filtered searches only say "more".
    count_sql = (
        "select count(*) from (select 1 from events_fts where events_fts match :match "
        f"limit {SEARCH_COUNT_CAP + 1})"
    )
    filtered = len(where) > 1
    ranked_newest = False
    try:
        if filters["sort"] == "rank":
            floor = conn.execute(
                "select rowid from events_fts where events_fts match :match "
                f"order by rowid desc limit 1 offset {RANK_WINDOW - 1}",
                {"match": match},
            ).fetchone()
            if floor is not None:
                ranked_newest = True
                params["floor"] = floor[0]
                sql = sql.replace(
                    "where events_fts match :match",
                    "where events_fts match :match and events_fts.rowid >= :floor",
                    1,
                )
        hits = dicts(conn.execute(sql, params))
        count = None if filtered else conn.execute(count_sql, {"match": match}).fetchone()[0]
    except sqlite3.OperationalError as e:
        # FTS5 reports a bad query as "fts5: syntax error ...", "unterminated string",
        # "no such column: x" (a word before a colon), ...; anything else is not ours.
        if not any(word in str(e) for word in ("locked", "interrupted", "no such table")):
            return {
                "hits": [],
                "has_next": False,
                "count": 0,
                "error": "That search could not be read as an FTS5 query "
                f"({e}). Turn off “FTS syntax” to search for the words as typed.",
            }
        raise
    return {
        "hits": hits[:SEARCH_PAGE_SIZE],
        "has_next": len(hits) > SEARCH_PAGE_SIZE,
        "count": count,
        "error": None,
        "ranked_newest": ranked_newest,
    }


def _search_options(conn) -> list[dict]:
    return dicts(
        conn.execute(
            "select path, coalesce(name, path) as name, sessions from projects order by name"
        )
    )


async def search_page(datasette, request):
    db = await archive_or_404(datasette, request)
    filters, errors = _search_filters(request)
    page = max(1, _int_arg(request, "page", 1))
    token = secrets.token_hex(8)
    open_mark, close_mark = f"[[mark-{token}]]", f"[[/mark-{token}]]"

    def run(conn):
        result = _search(conn, filters, page, open_mark, close_mark)
        result["projects"] = _search_options(conn)
        result["history"] = None
        if page == 1 and not result["error"]:
            # the prompts typed, from history.jsonl (kept.py): searched with the same words
            words = filters["q"] if filters["syntax"] == "fts" else fts_query(filters["q"])
            try:
                result["history"] = kept.history_hits(conn, words)
            except sqlite3.OperationalError:
                pass  # a query FTS5 refuses: the events search says so already
        return result

    result = await db.execute_fn(run)
    if result["error"]:
        errors.append(result["error"])
    base = {k: v for k, v in filters.items() if v and not (k == "sort" and v == "rank")}

    def search_url(**extra) -> str:
        params = dict(base, **extra)
        return _path(datasette, f"{PREFIX}/search") + "?" + urlencode(params)

    hits = []
    for hit in result["hits"]:
        hit["label"] = render.session_label(hit["title"], hit["session_id"], hit["project"])
        hit["url"] = session_url(
            datasette, hit["session_id"], agent=hit["agent_id"], event=hit["id"]
        )
        hit["snippet_html"] = _snippet_html(hit.pop("snippet"), open_mark, close_mark)
        hits.append(hit)
    next_url = search_url(page=page + 1) if result["has_next"] else None
    previous_url = search_url(page=page - 1) if page > 1 else None
    if _wants_json(request):
        return Response.json(
            {
                "database": db.name,
                "filters": filters,
                "page": page,
                "page_size": SEARCH_PAGE_SIZE,
                "count": result["count"],
                "count_capped": result["count"] is not None and result["count"] > SEARCH_COUNT_CAP,
                "ranked_newest": result.get("ranked_newest") and RANK_WINDOW,
                "errors": errors,
                "hits": [dict(h, snippet_html=str(h["snippet_html"])) for h in hits],
                "history": result["history"],  # typed prompts of history.jsonl (page 1)
                "next_url": next_url and next_url.replace("?", "?_format=json&", 1),
                "previous_url": previous_url and previous_url.replace("?", "?_format=json&", 1),
            },
            default=str,
        )
    context = {
        "database": db.name,
        "filters": filters,
        "errors": errors,
        "hits": hits,
        "page": page,
        "first_position": (page - 1) * SEARCH_PAGE_SIZE,
        "count": result["count"],
        "count_cap": SEARCH_COUNT_CAP,
        "ranked_newest": result.get("ranked_newest") and RANK_WINDOW,
        "kinds": SEARCH_KINDS,
        "projects": result["projects"],
        "next_url": next_url,
        "previous_url": previous_url,
        "json_url": search_url(_format="json", page=page),
        "search_url": _path(datasette, f"{PREFIX}/search"),
        "home_url": _path(datasette, PREFIX),
        "events_search_url": str(datasette.urls.table(db.name, "events"))
        + "?"
        + urlencode({"_search": filters["q"]}),
        "history": result["history"],
        "history_url": str(datasette.urls.table(db.name, "history"))
        + "?"
        + urlencode({"_search": filters["q"], "_sort_desc": "timestamp"}),
    }
    return await _render(datasette, request, "claude_sessions_search.html", context)


# Cell links on Datasette's own table pages ----------------------------------------------


# Columns that hold an events.id, wherever they appear (tables and saved queries).
EVENT_COLUMNS = {"event_id", "result_event_id"}
SESSION_TABLES = {"sessions", "sessions_list"}


def _link(url: str, label: str, title: str | None = None) -> str:
    extra = f' title="{escape(title, quote=True)}"' if title else ""
    return f'<a href="{escape(url, quote=True)}"{extra}>{escape(label)}</a>'


def render_cell(row, value, column, table, database, datasette):
    """Every cell that names a session, a subagent, an event or a tool call links to its
    transcript (and to the line), on table pages and saved queries alike."""
    if isinstance(value, dict):
        value = value.get("value")
    session_id = _get(row, "session_id")
    if column == "title" and session_id and (table in SESSION_TABLES or table is None):
        project = _get(row, "project") or _get(row, "project_path") or _get(row, "project_dir")
        project = str(project).rstrip("/").rsplit("/", 1)[-1] if project else None
        label = render.session_label(str(value) if value else None, str(session_id), project)
        raw = None if label == value or not value else str(value)
        return Markup(_link(session_url(datasette, str(session_id)), label, raw))
    if value is None or value == "":
        return None
    if column == "session_id":
        event_id = _get(row, "id") if table == "events" else _get(row, "event_id")
        agent_id = _get(row, "agent_id") if table != "sessions" else None
        if isinstance(event_id, int):
            # (the page redirects to the subagent's thread when the line is there)
            url = session_url(datasette, str(value), event=event_id)
        else:
            url = session_url(datasette, str(value), agent=agent_id or None)
        return Markup(
            f"{escape(str(value))} "
            + _link(url, "↗ transcript", "Open in the transcript").replace(
                "<a ", '<a class="cs-cell-link" ', 1
            )
        )
    if (column in EVENT_COLUMNS or (table == "events" and column == "id")) and isinstance(
        value, int
    ):
        url = _path(datasette, f"{PREFIX}/event/{value}")
        return Markup(f"{value} " + _link(url, "↗", "This line in its transcript"))
    if column == "tool_use_id" and table in ("tool_calls", "subagents", "api_calls", None):
        url = _path(datasette, f"{PREFIX}/call/{tilde_encode(str(value))}")
        return Markup(f"{escape(str(value))} " + _link(url, "↗", "The call in its transcript"))
    if column == "agent_id" and session_id:
        url = session_url(datasette, str(session_id), agent=str(value))
        return Markup(_link(url, str(value), "The subagent's transcript"))
    return None


async def event_redirect(datasette, request):
    """/-/claude-sessions/event/<id>: the transcript page holding that line."""
    db = await archive_or_404(datasette, request)
    event_id = int(request.url_vars["event_id"])
    located = await db.execute_fn(lambda conn: transcript.locate_event(conn, event_id))
    if not located or not located[0]:
        raise NotFound(f"No event {event_id} in the archive (or it belongs to no session).")
    return Response.redirect(session_url(datasette, located[0], agent=located[1], event=event_id))


async def call_redirect(datasette, request):
    """/-/claude-sessions/call/<tool_use_id>: the transcript line of that tool call."""
    db = await archive_or_404(datasette, request)
    tool_use_id = tilde_decode(request.url_vars["tool_use_id"])

    def find(conn):
        row = conn.execute(
            "select event_id, result_event_id from tool_calls where tool_use_id = ?",
            (tool_use_id,),
        ).fetchone()
        event_id = row and (row[0] or row[1])
        return event_id, event_id and transcript.locate_event(conn, event_id)

    event_id, located = await db.execute_fn(find)
    if not located or not located[0]:
        raise NotFound(f"No tool call {tool_use_id} in the archive.")
    return Response.redirect(session_url(datasette, located[0], agent=located[1], event=event_id))


def _get(row, key):
    try:
        value = row[key]
    except (KeyError, IndexError):
        return None
    if isinstance(value, dict):  # a foreign key cell: {"value": ..., "label": ...}
        return value.get("value")
    return value
