"""The files kept beside the transcripts (ingest/keep.py) in the web app.

- A tool result the transcript holds only as a ``<persisted-output>`` marker (the output
  was too large, Claude Code saved it to ``<session>/tool-results/<file>`` and kept a
  preview) is shown from the kept file: ``outputs_for`` finds them for a page's records,
  ``output_parts`` gives the transcript's parts for one.
- A session page links its plan (``plans/<slug>.md``, by the records' ``slug``).
- The search page also searches history.jsonl's typed prompts (``history_hits``).
- ``/-/claude-sessions/kept/<id>`` serves a kept file's current content.

Every function takes a plain sqlite3 connection (run inside ``Database.execute_fn``) and
does nothing on an archive without the kept tables (an older one opened read-only).
"""

from __future__ import annotations

import mimetypes
import re
from html import escape
from typing import Any

from datasette.utils.asgi import NotFound, Response
from markupsafe import Markup

from ingest.keep_blobs import blob_bytes

from . import render
from .utils import archive_or_404

PREFIX = "/-/claude-sessions"
PERSISTED = re.compile(r"<persisted-output>.*?Full output saved to:\s*(?P<path>[^\n]+)", re.S)
# Records read for a session's slug: the last ones of the main thread (lines over this
# many bytes are not parsed for it).
SLUG_EVENTS = 50
SLUG_RAW_LIMIT = 200_000
HISTORY_HITS = 5


def routes():
    return [(rf"^{PREFIX}/kept/(?P<file_id>\d+)$", kept_file)]


def has_kept(conn) -> bool:
    return bool(
        conn.execute(
            "select 1 from sqlite_master where type = 'table' and name = 'kept_files'"
        ).fetchone()
    )


def persisted_name(content: Any) -> str | None:
    """The file name a tool_result's ``<persisted-output>`` marker points to, if any."""
    if isinstance(content, list):
        content = "\n".join(
            str(b.get("text") or "")
            for b in content
            if isinstance(b, dict) and b.get("type") == "text"
        )
    if not isinstance(content, str) or "<persisted-output>" not in content:
        return None
    match = PERSISTED.search(content)
    if match is None:
        return None
    path = match.group("path").strip()
    return re.split(r"[\\/]", path)[-1] or None


def output_parts(
    conn, session_id: str, results: list[tuple[str, Any]], limit: int, url_for
) -> dict[str, list[dict]]:
    """{tool_use_id: transcript parts} for the (tool_use_id, content) pairs of a page's
    tool_result blocks whose content is a ``<persisted-output>`` marker and whose file
    is kept: a note naming the file, then the whole output cut to ``limit`` characters
    (``cut``: how many were left out; ``cut_url``, from ``url_for(file_id)``, serves the
    whole file)."""
    wanted = {}
    for tool_use_id, content in results:
        name = persisted_name(content)
        if name:
            wanted[tool_use_id] = name
    if not wanted or not has_kept(conn):
        return {}
    found = {}
    for tool_use_id, name in wanted.items():
        suffix = f"/tool-results/{name}"
        row = conn.execute(
            "select f.id, f.hash, b.size from kept_files f join kept_blobs b on b.hash = f.hash "
            "where f.session_id = ? and f.area = 'tool-results' "
            "and substr(f.rel_path, -?) = ? order by f.deleted_at is not null, f.id desc limit 1",
            (session_id, len(suffix), suffix),
        ).fetchone()
        if row is None:
            continue
        file_id, digest, size = row
        url = url_for(file_id)
        text = (blob_bytes(conn, digest) or b"").decode("utf-8", "replace")
        note = (
            f'<p class="cs-note cs-kept-output">Full output ({size:,} bytes), kept from '
            f'<a href="{escape(url, quote=True)}">tool-results/{escape(name)}</a>; the '
            "transcript holds a preview only.</p>"
        )
        shown, cut = (text, 0) if len(text) <= limit else (text[:limit], len(text) - limit)
        found[tool_use_id] = [
            {"html": Markup(note), "cut": 0},
            {"html": render.pre(shown), "cut": cut, "cut_url": url},
        ]
    return found


def session_slugs(conn, session_id: str) -> list[str]:
    """The ``slug`` values of a session's last records (its plan file's name)."""
    rows = conn.execute(
        "select distinct json_extract(line, '$.slug') from (select raw_json(raw) as line "
        "from events where session_id = ? and raw_length(raw) < ? "
        "and type in ('user', 'assistant') order by id desc limit ?) where json_valid(line)",
        (session_id, SLUG_RAW_LIMIT, SLUG_EVENTS),
    ).fetchall()
    return [r[0] for r in rows if isinstance(r[0], str) and r[0]]


def plan_file(conn, session_id: str) -> int | None:
    """kept_files id of the session's plan (plans/<slug>.md), if kept."""
    if not has_kept(conn):
        return None
    # The plans kept, newest first and present before deleted: without any, the session's
    # lines need not be read for their slug.
    plans: dict[str, int] = {}
    for rel_path, file_id in conn.execute(
        "select rel_path, id from kept_files where area = 'plans' "
        "order by deleted_at is not null, id desc"
    ):
        plans.setdefault(rel_path, file_id)
    if not plans:
        return None
    for slug in session_slugs(conn, session_id):
        if f"plans/{slug}.md" in plans:
            return plans[f"plans/{slug}.md"]
    return None


def history_hits(conn, query: str) -> dict | None:
    """Typed prompts of history.jsonl matching an FTS5 query: their count (up to 1,000)
    and the newest few; None without the history table."""
    exists = conn.execute(
        "select 1 from sqlite_master where type = 'table' and name = 'history_fts'"
    ).fetchone()
    if not exists or not query:
        return None
    count = conn.execute(
        "select count(*) from (select 1 from history_fts where history_fts match ? limit 1001)",
        (query,),
    ).fetchone()[0]
    rows = conn.execute(
        "select h.id, h.timestamp, h.project, h.session_id, h.display from history_fts "
        "join history h on h.id = history_fts.rowid where history_fts match ? "
        "order by h.timestamp desc limit ?",
        (query, HISTORY_HITS),
    ).fetchall()
    keys = ("id", "timestamp", "project", "session_id", "display")
    return {"count": count, "hits": [dict(zip(keys, r, strict=True)) for r in rows]}


def kept_url(datasette, file_id: int) -> str:
    return str(datasette.urls.path(f"{PREFIX}/kept/{file_id}"))


async def kept_file(datasette, request):
    """A kept file's current content: text as text/plain, anything else as a download."""
    db = await archive_or_404(datasette, request)
    file_id = int(request.url_vars["file_id"])

    def load(conn):
        if not has_kept(conn):
            return None
        row = conn.execute(
            "select rel_path, hash from kept_files where id = ? and hash is not null", (file_id,)
        ).fetchone()
        if row is None:
            return None
        return row[0], blob_bytes(conn, row[1])

    found = await db.execute_fn(load)
    if found is None or found[1] is None:
        raise NotFound("No such kept file.")
    rel_path, data = found
    if isinstance(rel_path, bytes):
        rel_path = rel_path.decode("utf-8", "replace")
    name = rel_path.rsplit("/", 1)[-1]
    headers = {"X-Content-Type-Options": "nosniff"}
    try:
        data.decode("utf-8")
        content_type = "text/plain; charset=utf-8"
    except UnicodeDecodeError:
        content_type = mimetypes.guess_type(name)[0] or "application/octet-stream"
        if not content_type.startswith("image/"):
            content_type = "application/octet-stream"
        safe = re.sub(r"[^A-Za-z0-9._@-]", "_", name)
        headers["Content-Disposition"] = f'attachment; filename="{safe}"'
    return Response(data, content_type=content_type, headers=headers)
