"""Live updates as Server-Sent Events: ``/-/claude-sessions/live``.

Query parameters:

- ``runs_after=<sync_runs.id>``: send ``event: run`` for every later pass, once it ends.
- ``session=<session_id>&after=<events.id>``: send ``event: events`` with a JSON list of
  that session's new events (id, session_id, agent_id, type, kind, role, timestamp, text
  cut to 2,000 characters).  Without ``after`` the stream starts at the newest event.
  ``main=1`` keeps the main thread's events only, ``agent=<agent_id>`` one subagent's.

With ``session``, each ``events`` message is followed by ``event: html``: ``{first_id,
last_id, html}``, those events drawn by the same templates as the transcript page (a
line that arrives live looks as it will after a reload).  With ``runs_after``, each run
is followed by ``event: figures``: ``{html}``, the status page's last pass and figures
(templates/claude_sessions/_status_figures.html), fresh.

Every stream also sends ``event: sidecar`` when the watch sidecar's state changes.  Each
message, and the stream's first line, carries ``id: <runs_after>.<after>`` so a
reconnecting EventSource resumes where it stopped (Last-Event-ID).  The database is
polled every POLL_SECONDS with indexed queries; a comment line every KEEPALIVE_SECONDS
keeps proxies from closing the stream, which ends when the client disconnects, when the
server shuts down, or after MAX_SECONDS (the browser reconnects).
"""

from __future__ import annotations

import asyncio
import functools
import json
import signal
import time

from datasette import NotFound

from . import pages, status
from .utils import archive_database, require_view, rows

POLL_SECONDS = 0.3
KEEPALIVE_SECONDS = 15.0
MAX_SECONDS = 300.0
TEXT_MAX = 2000
EVENTS_MAX = 200


def routes():
    return [(r"^/-/claude-sessions/live$", live_events)]


def _int(value, default: int | None = 0) -> int | None:
    try:
        return int(value)
    except (TypeError, ValueError):
        return default


def _runs_after(conn, after: int) -> list[dict]:
    # Stop at the first unfinished pass so passes are announced in order, once finished.
    found = rows(conn, "select * from sync_runs where id > ? order by id limit 50", (after,))
    finished = []
    for run in found:
        if not run["ended_at"]:
            break
        finished.append(run)
    return finished


def _session_events(conn, session_id: str, after: int, thread: str | None) -> list[dict]:
    """New events of a session: ``thread`` None (all), "" (main thread) or an agent id."""
    # "+session_id" keeps SQLite on the rowid range (few new rows) instead of the
    # session index (every row of a long session).
    where = ""
    params: tuple = (TEXT_MAX, after, session_id)
    if thread == "":
        where = " and agent_id is null"
    elif thread:
        where = " and +agent_id = ?"
        params += (thread,)
    return rows(
        conn,
        f"""
        select id, session_id, agent_id, type, kind, role, timestamp, substr(text, 1, ?) as text
        from events where id > ? and +session_id = ?{where} order by id limit ?
        """,
        params + (EVENTS_MAX,),
    )


def _poll(conn, runs_after, session_id, after, thread, draw=None, figures=None):
    """New runs, new events, the sidecar; ``draw(conn, ids)``: the events' HTML as the
    transcript page draws them; ``figures(conn)``: the status figures' HTML, after a run."""
    runs = _runs_after(conn, runs_after) if runs_after is not None else []
    events = _session_events(conn, session_id, after, thread) if session_id else []
    sidecar = status.sidecar_status(conn)
    html = draw(conn, [e["id"] for e in events]) if events and draw else None
    tiles = figures(conn) if runs and figures else None
    return runs, events, {k: sidecar[k] for k in ("alive", "state", "pid", "host")}, html, tiles


def _start_positions(conn, runs_after, session_id, after):
    if runs_after is None:
        runs_after = conn.execute("select coalesce(max(id), 0) from sync_runs").fetchone()[0]
    if session_id and after is None:
        after = conn.execute("select coalesce(max(id), 0) from events").fetchone()[0]
    return runs_after, after


def server_exiting():
    """A function telling whether uvicorn was asked to stop.

    uvicorn waits for open responses before it exits, so an endless stream would hold
    Ctrl-C up; its SIGINT handler is the running Server's bound ``handle_exit``, whose
    ``should_exit`` flag the stream polls.  Other servers: never.
    """
    server = getattr(signal.getsignal(signal.SIGINT), "__self__", None)
    if server is not None and hasattr(server, "should_exit"):
        return lambda: server.should_exit
    return lambda: False


def message(event: str | None, data, event_id: str | None = None) -> bytes:
    lines = []
    if event:
        lines.append(f"event: {event}")
    if event_id:
        lines.append(f"id: {event_id}")
    for line in json.dumps(data, default=str).splitlines() or [""]:
        lines.append(f"data: {line}")
    return ("\n".join(lines) + "\n\n").encode("utf-8")


async def live_events(datasette, request, send, receive):
    db = await archive_database(datasette)
    if db is None:
        raise NotFound("No claude-sessions archive is attached.")
    await require_view(datasette, request, db)
    args = request.args
    session_id = args.get("session") or None
    thread = "" if args.get("main") else (args.get("agent") or None)
    runs_after = _int(args.get("runs_after"), None)
    after = _int(args.get("after"), None)
    last_event_id = request.headers.get("last-event-id", "")
    if "." in last_event_id:
        resumed_runs, resumed_after = (_int(p, None) for p in last_event_id.split(".", 1))
        runs_after = resumed_runs if resumed_runs is not None else runs_after
        after = resumed_after if resumed_after is not None else after
    runs_after, after = await db.execute_fn(
        lambda conn: _start_positions(conn, runs_after, session_id, after)
    )
    draw = figures = None
    if session_id:
        # Main thread: no agent filter of the page (thread ""); a subagent's page: its id.
        agent_id = thread or None

        def draw(conn, ids):
            return pages.transcript_fragment(conn, datasette, db, session_id, agent_id, ids)

    if runs_after is not None:
        cleanup = status.cleanup_sources(datasette)

        def figures(conn):
            return status.figures_html(conn, db.path, *cleanup)

    await send(
        {
            "type": "http.response.start",
            "status": 200,
            "headers": [
                [b"content-type", b"text/event-stream; charset=utf-8"],
                [b"cache-control", b"no-cache"],
                [b"x-accel-buffering", b"no"],
            ],
        }
    )
    disconnected = asyncio.Event()

    async def watch_disconnect():
        while True:
            incoming = await receive()
            if incoming["type"] == "http.disconnect":
                disconnected.set()
                return

    watcher = asyncio.ensure_future(watch_disconnect())

    async def push(chunk: bytes) -> None:
        await send({"type": "http.response.body", "body": chunk, "more_body": True})

    try:
        # The id sets the browser's Last-Event-ID before any event: a reconnect resumes
        # from here even when nothing arrived.
        await push(f"retry: 1000\nid: {runs_after}.{after or 0}\n\n".encode())
        started = last_sent = time.monotonic()
        sidecar_seen = None
        exiting = server_exiting()
        while (
            not disconnected.is_set() and not exiting() and time.monotonic() - started < MAX_SECONDS
        ):
            runs, events, sidecar, html, tiles = await db.execute_fn(
                functools.partial(
                    _poll,
                    runs_after=runs_after,
                    session_id=session_id,
                    after=after,
                    thread=thread,
                    draw=draw,
                    figures=figures,
                )
            )
            sent = bool(runs or events)
            for run in runs:
                runs_after = run["id"]
                await push(message("run", run, f"{runs_after}.{after or 0}"))
            if tiles is not None:
                await push(message("figures", {"html": tiles}, f"{runs_after}.{after or 0}"))
            if events:
                after = events[-1]["id"]
                await push(message("events", events, f"{runs_after}.{after}"))
                if html is not None:
                    fragment = {"first_id": events[0]["id"], "last_id": after, "html": html}
                    await push(message("html", fragment, f"{runs_after}.{after}"))
            if sidecar != sidecar_seen:
                sidecar_seen = sidecar
                sent = True
                await push(message("sidecar", sidecar, f"{runs_after}.{after or 0}"))
            if sent:
                last_sent = time.monotonic()
            elif time.monotonic() - last_sent > KEEPALIVE_SECONDS:
                await push(b": keepalive\n\n")
                last_sent = time.monotonic()
            try:
                await asyncio.wait_for(disconnected.wait(), POLL_SECONDS)
            except TimeoutError:
                pass
    except OSError:
        pass  # the client went away mid-write
    finally:
        watcher.cancel()
    if not disconnected.is_set():
        await send({"type": "http.response.body", "body": b"", "more_body": False})
