"""Sync status, the Sync now button, live updates and the claude-sessions-sync permission.

Pages:

- ``/-/claude-sessions/status``: the status page (last pass, sidecar, backlog, errors,
  retention).
- ``/-/claude-sessions/status.json``: the same figures as JSON.
- ``POST /-/claude-sessions/sync`` (``/sync.json`` for a JSON answer): run a pass now.
- ``/-/claude-sessions/live``: Server-Sent Events, see live.py.

Plugin configuration (``plugins: datasette-claude-sessions:`` in metadata):

- ``allow_sync``: who may press Sync now (the ``claude-sessions-sync`` action), an allow
  block like ``{"id": "root"}``, or ``true`` for everybody.  Unset: nobody but the root
  actor.  ``claude-sessions serve`` on a loopback address sets it to ``true``.
- ``projects``: the projects roots a pass reads (default: the ``projects/`` of each
  ``claude_dir``, else Claude Code's own).
- ``claude_dir``: Claude directories whose own files Sync now keeps too (history.jsonl,
  plans, todos, file-history) and whose settings.json the retention warning reads.
- ``db``: the archive, its file or its database name (default: the databases with the
  archive's tables); ``database`` is its older name, still read.
- ``machine``: the machine name Sync now's pass records (default: the host name).
- the others of ingest/settings.py (``timezone``, ``debounce``, ...), shown on the status
  page with where each came from.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import os
import signal
import socket
import sqlite3
import threading
import time
import weakref
from pathlib import Path
from urllib.parse import urlsplit

from datasette import Forbidden, Response
from datasette.utils import StartupError, actor_matches_allow
from markupsafe import Markup

from ingest import figures, heartbeat
from ingest.archive import connect_readonly
from ingest.figures import iso_z  # noqa: F401 (the status module's name for it)
from ingest.paths import places, settings_path

from . import guard
from .utils import (
    DEFAULT_ALLOW_SYNC,
    PLUGIN,
    SYNC_ACTION,
    archive_database,
    plugin_config,
    require_view,
    rows,
)

STATUS_PATH = "/-/claude-sessions/status"

HEARTBEAT_FRESH_SECONDS = heartbeat.FRESH_SECONDS
SIDECAR_WAIT_SECONDS = 30.0
LOCK_WAIT_SECONDS = 30.0
STAT_FILES_MAX = 5000
CACHE_SECONDS = 2.0
SOON_DAYS = 7
DEFAULT_CLEANUP_DAYS = 30


def routes():
    return [
        (r"^/-/claude-sessions/status$", status_page),
        (r"^/-/claude-sessions/status\.json$", status_json),
        (r"^/-/claude-sessions/sync(?P<format>\.json)?$", sync_now),
    ]


def menu_links(datasette, actor, request):
    return [{"href": datasette.urls.path(STATUS_PATH), "label": "Sync status"}]


def startup(datasette):
    """Refuse a malformed plugin configuration with one sentence (datasette prints it)."""
    config = plugin_config(datasette)
    allow = config.get("allow_sync", DEFAULT_ALLOW_SYNC)
    if not isinstance(allow, bool | dict):
        raise StartupError(
            f"{PLUGIN}: allow_sync must be true, false or an allow block like "
            f'{{"id": "root"}}, not {allow!r}.'
        )
    projects = config.get("projects")
    if projects is not None and not (
        isinstance(projects, str)
        or (isinstance(projects, list) and all(isinstance(p, str) for p in projects))
    ):
        raise StartupError(f"{PLUGIN}: projects must be a list of folders, not {projects!r}.")
    zone = config.get("timezone")
    if zone is not None:
        from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

        try:
            ZoneInfo(zone)
        except (ZoneInfoNotFoundError, ValueError, TypeError):
            raise StartupError(
                f"{PLUGIN}: timezone must be an IANA name like Europe/Paris, not {zone!r}."
            ) from None


# --- permissions ---------------------------------------------------------------------------


async def can_sync(datasette, request) -> bool:
    """May this request press Sync now?  Beyond loopback (guard.exposed) only an actor
    that allow_sync names: `true` (everybody) counts for loopback servers only."""
    actor = request.actor
    if guard.exposed(datasette, request.scope):
        allow = plugin_config(datasette).get("allow_sync", DEFAULT_ALLOW_SYNC)
        return isinstance(allow, dict) and actor_matches_allow(actor, allow)
    if hasattr(datasette, "allowed"):  # Datasette 1.0
        allow = plugin_config(datasette).get("allow_sync", DEFAULT_ALLOW_SYNC)
        return actor_matches_allow(actor, allow) or await datasette.allowed(
            action=SYNC_ACTION, actor=actor
        )
    return await datasette.permission_allowed(actor, SYNC_ACTION, default=False)


# --- the archive database ------------------------------------------------------------------


def _paths(value) -> list | None:
    if isinstance(value, str):
        return [value]
    return list(value) if isinstance(value, list | tuple) else None


def configured_places(datasette) -> tuple[list[Path], list[Path]]:
    """(projects roots, Claude directories) of the plugin settings ``projects`` and
    ``claude_dir``, by the CLI's rule (ingest.paths.places): projects, else the
    projects/ of each claude_dir, else Claude Code's own; Claude directories whose own
    files (history, plans, todos, file-history) Sync now keeps too."""
    config = plugin_config(datasette)
    return places(_paths(config.get("projects")), _paths(config.get("claude_dir")))


def projects_roots(datasette) -> list[Path]:
    return configured_places(datasette)[0]


def cleanup_sources(datasette) -> tuple[Path, list[Path] | None]:
    """Claude Code's settings.json and the projects folders its cleanup deletes from:
    those of the ``claude_dir`` setting when it names any, else Claude Code's defaults."""
    dirs = configured_places(datasette)[1] if plugin_config(datasette).get("claude_dir") else []
    if dirs:
        return dirs[0] / "settings.json", [d / "projects" for d in dirs]
    return settings_path(), None


# --- status figures (plain sqlite3, no Datasette) ------------------------------------------


def utcnow() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


def parse_time(value: str | None) -> dt.datetime | None:
    if not value:
        return None
    try:
        parsed = dt.datetime.fromisoformat(value)
    except ValueError:
        return None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=dt.UTC)


NO_SIDECAR = {
    "alive": False,
    "state": None,
    "age_seconds": None,
    "pid": None,
    "host": None,
    "why": "no sidecar has run on this archive",
}


def sidecar_status(conn: sqlite3.Connection, now: dt.datetime | None = None) -> dict:
    """ingest.figures.sidecar, or what the page says when no sidecar ever ran."""
    return figures.sidecar(conn, now or utcnow()) or dict(NO_SIDECAR)


def slow_figures(
    conn: sqlite3.Connection,
    now: dt.datetime,
    settings_file: Path,
    claude_roots: list[Path] | None = None,
) -> dict:
    """The figures that cost a scan of sync_files or sessions, or a stat per file."""
    return {
        "files": figures.files(conn),
        "sessions": figures.sessions(conn),
        "pending": figures.pending(conn, limit=STAT_FILES_MAX),
        "retention": figures.retention(conn, now, settings_file, claude_roots),
    }


class Refresher:
    """slow_figures() of one archive, recomputed in a thread of its own.

    A request gets the latest result at once and starts a refresh when that result is
    older than CACHE_SECONDS, so no request pays for the scans and stats (about 25 ms on
    a 1 GB archive) but the very first one, which waits for them.
    """

    def __init__(self, db_path: str, settings_file: Path, claude_roots=None):
        self.db_path = db_path
        self.settings_file = settings_file
        self.claude_roots = None if claude_roots is None else list(claude_roots)
        self.lock = threading.Lock()
        self.value: dict | None = None
        self.error: Exception | None = None
        self.at = 0.0
        self.thread: threading.Thread | None = None

    def get(self) -> dict:
        with self.lock:
            if time.monotonic() - self.at >= CACHE_SECONDS and self.thread is None:
                self.thread = threading.Thread(target=self._refresh, daemon=True)
                self.thread.start()
            thread = self.thread
        if self.value is None and thread is not None:
            thread.join()
        if self.value is None:
            raise self.error
        return self.value

    def _refresh(self) -> None:
        value = error = None
        try:
            conn = _read_only(self.db_path)
            try:
                value = slow_figures(conn, utcnow(), self.settings_file, self.claude_roots)
            finally:
                conn.close()
        except Exception as e:  # handed to the waiting request
            error = e
        with self.lock:
            self.value = value if value is not None else self.value
            self.error = error
            self.at = time.monotonic()
            self.thread = None


_refreshers: dict[tuple, Refresher] = {}


def cached_slow_figures(
    db_path: str, settings_file: Path, claude_roots: list[Path] | None = None
) -> dict:
    key = (db_path, settings_file, None if claude_roots is None else tuple(claude_roots))
    refresher = _refreshers.get(key)
    if refresher is None:
        refresher = _refreshers.setdefault(key, Refresher(db_path, settings_file, claude_roots))
    return refresher.get()


def forget_cached_figures() -> None:
    """Drop every cached slow figure: the next request computes them afresh."""
    _refreshers.clear()


_CHANGED = (
    "(files_changed > 0 or lines_added > 0 or errors > 0 or error is not null or ended_at is null)"
)


def compute_status(
    conn: sqlite3.Connection,
    db_path: str,
    *,
    settings_file: Path | None = None,
    claude_roots: list[Path] | None = None,
    now=None,
) -> dict:
    """Everything the status page shows, from a plain sqlite3 connection to the archive.
    ``settings_file``, ``claude_roots``: Claude Code's settings.json and the projects
    folders its cleanup deletes from (cleanup_sources; default: Claude Code's own)."""
    now = now or utcnow()
    settings_file = settings_file or settings_path()
    # The last pass, then the passes that changed something: a watch sidecar records a
    # rescan every 30 s, and those that found nothing are only counted.
    runs = rows(
        conn,
        f"select * from sync_runs where id = (select max(id) from sync_runs) or {_CHANGED} "
        "order by id desc limit 20",
    )
    quiet_runs = conn.execute(
        f"select count(*) from sync_runs where not ({_CHANGED}) "
        "and id < (select max(id) from sync_runs)"
    ).fetchone()[0]
    errors = rows(
        conn,
        """
        select ingest_errors.id, ingest_errors.file_id, sync_files.path, ingest_errors.event_id,
          ingest_errors.byte_offset, ingest_errors.line_number, ingest_errors.error,
          ingest_errors.excerpt, ingest_errors.created_at
        from ingest_errors join sync_files on sync_files.id = ingest_errors.file_id
        order by ingest_errors.id desc limit 50
        """,
    )
    unreadable = figures.unreadable(conn, limit=50)
    last_finished = next((run for run in runs if run["ended_at"]), None)
    return {
        "now": iso_z(now),
        "host": socket.gethostname(),
        "last_run": runs[0] if runs else None,
        "last_finished_run": last_finished,
        "running": bool(runs and not runs[0]["ended_at"]),
        "sidecar": sidecar_status(conn, now),
        "database_bytes": figures.database_bytes(db_path),
        **cached_slow_figures(db_path, settings_file, claude_roots),
        "recent_runs": runs,
        "quiet_runs": quiet_runs,
        "ingest_errors": errors,
        "unreadable": unreadable,
        "usage": figures.usage(conn, now),
    }


def figures_html(
    conn: sqlite3.Connection,
    db_path: str,
    settings_file: Path | None = None,
    claude_roots: list[Path] | None = None,
) -> str:
    """The status page's last pass and figures, freshly counted (not the cached slow
    figures), drawn by the page's own partial template."""
    from .pages import sync_env

    now = utcnow()
    settings_file = settings_file or settings_path()
    found = compute_status(
        conn, db_path, settings_file=settings_file, claude_roots=claude_roots, now=now
    )
    found.update(slow_figures(conn, now, settings_file, claude_roots))
    template = sync_env().get_template("claude_sessions/_status_figures.html")
    return template.render(status=found, when=when, human_bytes=human_bytes)


async def current_status(datasette, db) -> dict:
    settings_file, claude_roots = cleanup_sources(datasette)
    status = await db.execute_fn(
        lambda conn: compute_status(
            conn, db.path, settings_file=settings_file, claude_roots=claude_roots
        )
    )
    status["settings"] = settings_in_effect(datasette, db)
    return status


def settings_in_effect(datasette, db) -> list[dict]:
    """Every setting (ingest.settings) with its value and where it came from."""
    from ingest.settings import OLD_DB_NAME, effective

    config = plugin_config(datasette)
    if "db" in config:
        found = (config.get("sources") or {}).get("db") or "plugin setting"
    elif OLD_DB_NAME in config:
        found = f"plugin setting {OLD_DB_NAME} (the older name of db: rename it db)"
    else:
        found = "the database Datasette serves that holds an archive"
    if "db" in config and OLD_DB_NAME in config:
        found += f"; the plugin setting {OLD_DB_NAME} is ignored (the older name of db)"
    given = {"db": (db.path, found)}
    if not config.get("projects") and _paths(config.get("claude_dir")):
        roots = [str(r) for r in configured_places(datasette)[0]]
        given["projects"] = (roots, "projects/ of the plugin setting claude_dir")
    return effective(config, given=given)


# --- pages ---------------------------------------------------------------------------------


async def status_page(datasette, request):
    db = await archive_database(datasette)
    context = {"db": db, "status": None, "can_sync": await can_sync(datasette, request)}
    if db is not None:
        await require_view(datasette, request, db)
        context["status"] = await current_status(datasette, db)
        context["database"] = db.name
        context["live_url"] = datasette.urls.path(
            "/-/claude-sessions/live?runs_after={}".format(
                (context["status"]["last_run"] or {}).get("id", 0)
            )
        )
    context["live_js"] = datasette.urls.static_plugins(PLUGIN, "live.js")
    context["human_bytes"] = human_bytes
    context["when"] = when
    return Response.html(
        await datasette.render_template("claude_sessions_status.html", context, request=request)
    )


async def status_json(datasette, request):
    db = await archive_database(datasette)
    if db is None:
        return Response.json({"ok": False, "error": "No claude-sessions archive is attached."}, 404)
    await require_view(datasette, request, db)
    return Response.json({"ok": True, "database": db.name, **await current_status(datasette, db)})


def when(value: str | None) -> Markup:
    """An ISO timestamp as the home page shows it (``2025-07-01 14:03:09 UTC``), the ISO
    value kept in the title and datetime attributes."""
    if not value:
        return Markup("")
    moment = parse_time(value)
    text = moment.astimezone(dt.UTC).strftime("%Y-%m-%d %H:%M:%S UTC") if moment else value
    return Markup('<time datetime="{0}" title="{0}">{1}</time>').format(value, text)


def human_bytes(n: int | None) -> str:
    if n is None:
        return ""
    if n < 1024:
        return f"{n} bytes"
    value = n / 1024
    for unit in ("KB", "MB"):
        if value < 1024:
            return f"{value:.1f} {unit}"
        value /= 1024
    return f"{value:.1f} GB"


# --- Sync now ------------------------------------------------------------------------------

# One pass at a time per Datasette instance: clicks during a pass join it.
_running: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


def wants_json(request) -> bool:
    return bool(request.url_vars.get("format")) or "application/json" in request.headers.get(
        "accept", ""
    )


async def sync_now(datasette, request):
    as_json = wants_json(request)
    if request.method != "POST":
        return Response.text("Use POST to start a sync.", status=405)
    other = foreign_origin(request)
    if other is not None:
        message = f"Sync now refuses requests sent from another site ({other})."
        if as_json:
            return Response.json({"ok": False, "error": message}, status=403)
        return Response.text(message, status=403)
    if not await can_sync(datasette, request):
        message = f"Sync now needs the {SYNC_ACTION} permission."
        if as_json:
            return Response.json({"ok": False, "error": message}, status=403)
        raise Forbidden(message)
    db = await archive_database(datasette)
    if db is None:
        result = {"ok": False, "message": "No claude-sessions archive is attached."}
    elif not db.is_mutable:
        result = {
            "ok": False,
            "message": f"{db.path} is opened immutable (-i): Datasette would not see new "
            "lines. Open it as a normal file to use Sync now.",
        }
    else:
        try:
            roots, claude_dirs = configured_places(datasette)
            result = await request_sync(datasette, db.path, roots, claude_dirs)
        except Exception as e:  # never a 500: one sentence, and the status page
            message = f"Sync now could not run a pass: {describe(e)}"
            if as_json:
                return Response.json({"ok": False, "message": message}, status=503)
            return Response.text(message, status=503)
    if as_json:
        return Response.json(result, status=200 if result["ok"] else 409)
    datasette.add_message(
        request, result["message"], datasette.INFO if result["ok"] else datasette.ERROR
    )
    return Response.redirect(datasette.urls.path(STATUS_PATH))


def describe(error: Exception) -> str:
    """One sentence for an exception, ending with a full stop."""
    text = str(error).strip() or type(error).__name__
    return text if text.endswith(".") else text + "."


def foreign_origin(request) -> str | None:
    """The other site a request came from (its Origin header, else its Referer), or None
    when it names this server's host or neither header is sent.  A cross-site form or
    fetch without cookies passes Datasette's CSRF check; this one stops it."""
    source = request.headers.get("origin") or request.headers.get("referer")
    if not source:
        return None
    if source == "null":  # sandboxed frames, file: pages
        return "null"
    netloc = urlsplit(source).netloc
    if netloc.lower() != (request.host or "").lower():
        return netloc or source
    return None


async def request_sync(
    datasette, db_path: str, roots: list[Path], claude_dirs: list[Path] = ()
) -> dict:
    """Start a pass, or join the one this instance is already running."""
    task = _running.get(datasette)
    joined = task is not None and not task.done()
    if not joined:
        machine = plugin_config(datasette).get("machine")
        task = asyncio.ensure_future(run_sync(db_path, roots, machine, claude_dirs))
        _running[datasette] = task
    result = await asyncio.shield(task)
    return {**result, "joined": joined}


async def run_sync(
    db_path: str, roots: list[Path], machine: str | None = None, claude_dirs: list[Path] = ()
) -> dict:
    """Ask a live sidecar on this host for a pass, else run one in a thread here (which
    keeps the files of ``claude_dirs`` too, as `claude-sessions sync` does)."""
    sidecar, last_run_id = await asyncio.to_thread(_sidecar_and_last_run, db_path)
    if sidecar["alive"] and sidecar["same_host"]:
        try:
            os.kill(sidecar["pid"], signal.SIGUSR1)
        except OSError:
            pass
        else:
            return await _wait_for_manual_run(db_path, last_run_id, sidecar["pid"])
    return await asyncio.to_thread(_run_pass_here, db_path, roots, machine, claude_dirs)


def _read_only(db_path: str) -> sqlite3.Connection:
    return connect_readonly(db_path)


def _sidecar_and_last_run(db_path: str) -> tuple[dict, int]:
    conn = _read_only(db_path)
    try:
        last = conn.execute("select coalesce(max(id), 0) from sync_runs").fetchone()[0]
        return sidecar_status(conn), last
    finally:
        conn.close()


def _finished_manual_run(db_path: str, after_id: int) -> dict | None:
    conn = _read_only(db_path)
    try:
        found = rows(
            conn,
            "select * from sync_runs where id > ? and trigger = 'manual' and ended_at is not null "
            "order by id limit 1",
            (after_id,),
        )
        return found[0] if found else None
    finally:
        conn.close()


async def _wait_for_manual_run(db_path: str, after_id: int, pid: int) -> dict:
    deadline = time.monotonic() + SIDECAR_WAIT_SECONDS
    while time.monotonic() < deadline:
        run = await asyncio.to_thread(_finished_manual_run, db_path, after_id)
        if run:
            return run_result(run, via="sidecar")
        await asyncio.sleep(0.2)
    return {
        "ok": False,
        "via": "sidecar",
        "message": f"The sidecar (pid {pid}) did not finish a pass within "
        f"{SIDECAR_WAIT_SECONDS:g} s; it may still be working, see the status page.",
    }


def _run_pass_here(
    db_path: str, roots: list[Path], machine: str | None = None, claude_dirs: list[Path] = ()
) -> dict:
    from ingest.lock import LockBusy
    from ingest.sync import run_pass

    try:
        result = run_pass(
            db_path,
            roots,
            trigger="manual",
            wait=LOCK_WAIT_SECONDS,
            host=machine,
            claude_dirs=[d for d in claude_dirs if d.is_dir()],
        )
    except LockBusy as e:
        return {"ok": False, "via": "server", "message": str(e)}
    return run_result(
        {
            "id": result.run_id,
            "files_scanned": result.files_scanned,
            "files_changed": result.files_changed,
            "lines_added": result.lines_added,
            "bytes_read": result.bytes_read,
            "errors": result.errors,
            "seconds": result.seconds,
            "error": None,
        },
        via="server",
    )


def run_result(run: dict, *, via: str) -> dict:
    """The JSON answer and the one-line message for a finished pass."""
    if run.get("error"):
        message = f"Sync pass {run['id']} failed: {run['error']}"
    else:
        lines = run["lines_added"]
        files = run["files_changed"]
        message = (
            f"Synced: {lines} new line{'s' * (lines != 1)} from {files} "
            f"file{'s' * (files != 1)} in {run['seconds'] or 0:.2f} s."
        )
        if run.get("errors"):
            n = run["errors"]
            message += f" {n} line{'' if n == 1 else 's'} could not be parsed (see Ingest errors)."
    return {
        "ok": not run.get("error"),
        "via": via,
        "message": message,
        "run_id": run["id"],
        "lines_added": run["lines_added"],
        "files_changed": run["files_changed"],
        "files_scanned": run["files_scanned"],
        "bytes_read": run["bytes_read"],
        "errors": run["errors"],
        "seconds": run["seconds"],
    }
