"""Build the transcript of a session (or of one subagent) for display and JSON.

All functions here take a plain ``sqlite3.Connection`` and run inside
``Database.execute_fn`` (one worker-thread hop per page).  The page costs one query of
``id, uuid, parent_uuid, timestamp, file_id`` for the whole thread, the ordering in
Python, then queries for the page's rows only.
"""

from __future__ import annotations

import json
import re
import threading
from collections import OrderedDict
from dataclasses import dataclass, field
from typing import Any

from ingest import lines, prompts, sidechains
from ingest.parse import HUGE_BYTES, KEEP_BYTES, LineError, load_record

from . import facts, kept, render, tools
from .facts import human_duration
from .order import conversation_order

PAGE_SIZE = 500
MAX_PAGE_SIZE = 2000
# Subagent transcripts shown inline under the call that started them.
INLINE_AGENT_EVENTS = 200
INLINE_BUDGET = 1500
MAX_AGENT_DEPTH = 3
# Every text block (prompts and answers too) is cut to TEXT_LIMIT characters for display
# and in the JSON; the raw JSON link always has everything.
TEXT_LIMIT = 10_000
# Lines longer than this (bytes of raw JSON) are not fetched nor parsed: they are shown
# from the first TEXT_LIMIT characters of their flattened text.
RAW_LIMIT = 1_000_000

_ORDER_COLUMNS = "e.id, e.uuid, e.parent_uuid, e.timestamp, e.file_id"
_MAIN_THREAD_SQL = f"""
select {_ORDER_COLUMNS} from events e join sync_files f on f.id = e.file_id
where e.session_id = ? and e.agent_id is null and f.agent_id is null
order by e.id
"""
_AGENT_SQL = f"""
select {_ORDER_COLUMNS} from events e join sync_files f on f.id = e.file_id
where e.session_id = ? and coalesce(e.agent_id, f.agent_id) = ?
order by e.id
"""
_PAGE_ROWS_SQL = f"""
select id, type, subtype, kind, uuid, parent_uuid, timestamp, is_sidechain, is_meta,
    model, message_id, agent_id, line_number,
    case when raw_length(raw) <= {RAW_LIMIT} then raw_bytes(raw) end as raw,
    raw_length(raw) as raw_length,
    case when raw_length(raw) > {RAW_LIMIT} then substr(text, 1, {TEXT_LIMIT}) end as text,
    case when raw_length(raw) > {RAW_LIMIT} then length(text) end as text_length
from events where id in ({{}})
"""
# events.text is worked out from raw when read (ingest.lines.event_text: the engine's
# parse of the line), twice for substr and length: the page reads it only for lines too
# long to fetch; the JSON form works it out once from the bytes it has (_add_text).


_ORDER_CACHE: OrderedDict[tuple, tuple[tuple, list[int]]] = OrderedDict()
_ORDER_CACHE_SIZE = 16
_ORDER_CACHE_LOCK = threading.Lock()


def thread_order(conn, session_id: str, agent_id: str | None, cache_key: str = "") -> list[int]:
    """Ordered event ids of a session's main thread, or of one of its subagents.

    Orders are cached per (cache_key, session, agent) while the session's event count and
    largest id stay the same, so paging through a big session orders it once.
    """
    version = tuple(
        conn.execute(
            "select count(*), max(id) from events where session_id = ?", (session_id,)
        ).fetchone()
    )
    key = (cache_key, session_id, agent_id)
    with _ORDER_CACHE_LOCK:
        cached = _ORDER_CACHE.get(key)
        if cached and cached[0] == version:
            _ORDER_CACHE.move_to_end(key)
            return cached[1]
    order = _compute_order(conn, session_id, agent_id)
    with _ORDER_CACHE_LOCK:
        _ORDER_CACHE[key] = (version, order)
        while len(_ORDER_CACHE) > _ORDER_CACHE_SIZE:
            _ORDER_CACHE.popitem(last=False)
    return order


def _compute_order(conn, session_id: str, agent_id: str | None) -> list[int]:
    # Plain tuples and str: Datasette's sqlite3.Row and decoding text_factory cost more
    # than the query on a 50,000-event session.  uuids and timestamps come from parsed
    # JSON, so they are valid UTF-8.
    row_factory, text_factory = conn.row_factory, conn.text_factory
    conn.row_factory, conn.text_factory = None, str
    try:
        inline = {}
        if agent_id is None or agent_id.startswith(sidechains.PREFIX):
            # 1.0.x subagents are chains of sidechain lines inside the session file.
            has_inline = conn.execute(
                "select 1 from subagents where session_id = ? and agent_id like ? limit 1",
                (session_id, sidechains.PREFIX + "%"),
            ).fetchone()
            inline = sidechains.chains(conn, session_id) if has_inline else {}
        if agent_id is None:
            rows = conn.execute(_MAIN_THREAD_SQL, (session_id,)).fetchall()
            nested = {i for chain in inline.values() for i in chain["ids"]}
            if nested:
                rows = [r for r in rows if r[0] not in nested]
        elif agent_id.startswith(sidechains.PREFIX):
            ids = inline.get(agent_id, {}).get("ids", [])
            rows = []
            for chunk in _chunks(ids):
                rows += conn.execute(
                    f"select {_ORDER_COLUMNS} from events e "
                    f"where e.id in ({','.join('?' * len(chunk))}) order by e.id",
                    chunk,
                ).fetchall()
        else:
            rows = conn.execute(_AGENT_SQL, (session_id, agent_id)).fetchall()
    finally:
        conn.row_factory, conn.text_factory = row_factory, text_factory
    return conversation_order(rows)


def locate_event(conn, event_id: int) -> tuple[str | None, str | None] | None:
    """(session_id, agent_id) of an event, or None when it does not exist."""
    row = conn.execute(
        "select e.session_id, coalesce(e.agent_id, f.agent_id), e.is_sidechain from events e "
        "join sync_files f on f.id = e.file_id where e.id = ?",
        (event_id,),
    ).fetchone()
    if not row:
        return None
    if row[1] is None and row[2] and row[0]:
        # A 1.0.x sidechain line: its subagent is the inline chain holding it.
        for agent, chain in sidechains.chains(conn, row[0]).items():
            if event_id in chain["ids"]:
                return row[0], agent
    return row[0], row[1]


def _chunks(values: list, size: int = 500):
    for i in range(0, len(values), size):
        yield values[i : i + size]


def _fetch_rows(conn, ids: list[int]) -> dict[int, dict]:
    rows: dict[int, dict] = {}
    for chunk in _chunks(ids):
        cursor = conn.execute(_PAGE_ROWS_SQL.format(",".join("?" * len(chunk))), chunk)
        names = [d[0] for d in cursor.description]
        for values in cursor:
            row = dict(zip(names, values, strict=True))
            rows[row["id"]] = row
    return rows


def _record(raw: Any) -> Any:
    """The line's object through ingest's own parse (lone surrogates included), or None."""
    if raw is None:
        return None
    if isinstance(raw, str):
        raw = raw.encode("utf-8", "surrogatepass")
    try:
        return load_record(raw)
    except (LineError, RecursionError):
        return None


# Block fields the views read as text: any other JSON value there (a list, a number)
# is made None, or for text and thinking shown as its JSON, so no view meets a type
# it does not expect (a hand-edited or fuzzed line renders, never fails the page).
_ID_FIELDS = ("type", "id", "name", "tool_use_id")
_TEXT_FIELDS = ("text", "thinking")


def _sound(block: dict) -> dict:
    fields = _ID_FIELDS + _TEXT_FIELDS
    bad = [k for k in fields if k in block and not isinstance(block[k], str | None)]
    if not bad:
        return block
    block = dict(block)
    for key in bad:
        block[key] = _as_text(block[key]) if key in _TEXT_FIELDS else None
    return block


def record_blocks(record: dict) -> list[dict]:
    """The content blocks of a record's message, each a dict with sound text fields."""
    message = record.get("message")
    if not isinstance(message, dict):
        return []
    content = message.get("content")
    if isinstance(content, str):
        return [{"type": "text", "text": content}]
    if isinstance(content, list):
        return [_sound(b) for b in content if isinstance(b, dict)]
    return []


def _cut(text: str) -> tuple[str, int]:
    """Text cut to TEXT_LIMIT characters, and how many were left out."""
    if len(text) <= TEXT_LIMIT:
        return text, 0
    return text[:TEXT_LIMIT], len(text) - TEXT_LIMIT


def _markdown(text: Any) -> dict:
    """A markdown block of at most TEXT_LIMIT characters."""
    shown, cut = _cut(text if isinstance(text, str) else "")
    return {"type": "markdown", "html": render.markdown(shown), "cut": cut}


def _details(summary: str, text: Any, *, markdown: bool = True, css: str = "") -> dict:
    """A closed <details> block of at most TEXT_LIMIT characters."""
    shown, cut = _cut(text if isinstance(text, str) else "")
    html = render.markdown(shown) if markdown else render.pre(shown)
    return {"type": "details", "summary": summary, "css": css, "html": html, "cut": cut}


def _preview(text: Any, limit: int = 120) -> str:
    """The first line of a text, cut to ``limit`` characters."""
    if not isinstance(text, str):
        return ""
    for line in text.splitlines():
        line = line.strip()
        if line:
            return line if len(line) <= limit else line[: limit - 1] + "…"
    return ""


def _as_text(value: Any) -> str:
    if isinstance(value, str):
        return value
    return json.dumps(value, indent=2, ensure_ascii=False, default=str)


REDACTED_THINKING = "redacted: the transcript keeps no text for this thinking"
# Records that only keep Claude Code's own state: shown as one small line each, and
# consecutive ones collapsed into one "n bookkeeping records" block.
BOOKKEEPING_TYPES = {
    "file-history-snapshot",
    "queue-operation",
    "permission-mode",
    "last-prompt",
    "progress",
    "attachment",
}
# Hook messages of 1.0.x, system records such as "Running PostToolUse:Edit...".
_HOOK_TEXT = re.compile(
    r"^(Running )?(PreToolUse|PostToolUse|Stop|SubagentStop|UserPromptSubmit|SessionStart"
    r"|SessionEnd|Notification|PreCompact)\b"
)
_CAVEAT = "Caveat: The messages below were generated by the user while running local commands"
_COMMAND_OUTPUTS = (
    ("local-command-stdout", "output", ""),
    ("local-command-stderr", "error output", "stderr"),
    ("bash-stdout", "stdout", ""),
    ("bash-stderr", "stderr", "stderr"),
    ("command-contents", "contents", ""),
)


_OPENED_FILE = re.compile(r"opened the file (.+?) in the IDE")
_SELECTED = re.compile(r"selected the lines (\d+) to (\d+) from (.+?):\n")
_CONTEXT_LABELS = {
    "ide_opened_file": "Opened in the IDE",
    "ide_selection": "Selected in the IDE",
    "ide_diagnostics": "IDE diagnostics",
    "system-reminder": "System reminder",
    "user-prompt-submit-hook": "Prompt hook output",
    "task-notification": "Background task notification",
}


def _context_block(tag: str, content: str) -> dict:
    """A small note for IDE context, a reminder or hook output inside a user record."""
    label = _CONTEXT_LABELS.get(tag, tag)
    content = content.strip()
    if tag == "ide_opened_file":
        m = _OPENED_FILE.search(content)
        if m:
            return {"type": "context", "label": label, "detail": m.group(1)}
    if tag == "ide_selection":
        m = _SELECTED.search(content)
        if m:
            first, last, path = m.groups()
            lines = f"line {first}" if first == last else f"lines {first}–{last}"
            selected = content[m.end() :]
            selected = selected.rsplit("\n\nThis may or may not be related", 1)[0]
            shown, cut = _cut(selected)
            return {
                "type": "context",
                "label": label,
                "detail": f"{path}, {lines}",
                "html": render.pre(shown),
                "cut": cut,
            }
    shown, cut = _cut(content)
    return {
        "type": "context",
        "label": label,
        "detail": _preview(content, 100),
        "html": render.pre(shown),
        "cut": cut,
    }


def _prompt_blocks(text: Any) -> list[dict]:
    """A user text block: what was typed as Markdown, Claude Code's context around it as
    small notes, command tags as command lines."""
    if not isinstance(text, str):
        return [_markdown(text)]
    blocks: list[dict] = []
    plain: list[str] = []
    for tag, content in prompts.segments(text):
        if tag is None:
            if content.strip().startswith(prompts.INTERRUPTED):
                blocks.append({"type": "note", "text": content.strip().strip("[]")})
            else:
                plain.append(content)
            continue
        if plain:
            blocks.append(_markdown("".join(plain).strip("\n")))
            plain = []
        if tag in prompts.CONTEXT_TAGS:
            blocks.append(_context_block(tag, content))
        elif tag in ("command-name", "bash-input"):
            line = content.strip()
            if tag == "bash-input":
                line = "! " + line
            elif not line.startswith("/"):
                line = "/" + line
            blocks.append({"type": "command", "line": line})
        elif content.strip() and tag not in ("command-message", "local-command-caveat"):
            blocks.append(_details(tag, content, markdown=False, css="command-output"))
    if plain:
        blocks.append(_markdown("".join(plain).strip("\n")))
    return blocks


def _interrupted(blocks: list[dict]) -> bool:
    return any(b["type"] == "note" and b["text"].startswith("Request interrupted") for b in blocks)


def _command_view(tags: dict[str, str]) -> tuple[str, str, list[dict]]:
    """A slash command (``/model opus``) or ``!`` shell command as one line, and its
    output in closed blocks."""
    blocks: list[dict] = []
    name = (tags.get("command-name") or tags.get("command") or "").strip()
    if name or "command-name" in tags:
        if name and not name.startswith("/"):
            name = "/" + name
        args = (tags.get("command-args") or "").strip()
        label = "Command"
        blocks.append({"type": "command", "line": " ".join(p for p in (name, args) if p)})
    elif "bash-input" in tags:
        label = "Shell command"
        blocks.append({"type": "command", "line": "! " + tags["bash-input"].strip()})
    else:
        label = "Command output"
    for tag, title, css in _COMMAND_OUTPUTS:
        text = (tags.get(tag) or "").strip("\n")
        if text.strip() and text.strip() != "(no content)":
            summary = f"{title}: {_preview(text, 100)}"
            blocks.append(_details(summary, text, markdown=False, css=f"command-output {css}"))
    if tags.get("local-command-caveat"):
        blocks.append({"type": "note", "text": tags["local-command-caveat"].strip()})
    if label == "Command output":
        return label, "command-result", blocks or [{"type": "note", "text": "(no output)"}]
    return label, "command", blocks


def _bookkeeping_view(label: str, record: Any, summary: str = "Record") -> tuple:
    text, cut = _cut(_as_text(record))
    return (
        label,
        "bookkeeping",
        [{"type": "details", "summary": summary, "html": render.pre(text), "cut": cut}],
    )


@dataclass
class Context:
    """What rendering one page needs besides the events themselves."""

    urls: Any  # callable(kind, **kw) -> str, supplied by pages.py
    events_url: str  # the events table page; rows are at <events_url>/<id>
    cache_key: str = ""  # the database, for thread_order's cache
    tool_calls: dict[str, dict] = field(default_factory=dict)
    agents_by_call: dict[str, list[dict]] = field(default_factory=dict)
    on_page: set[int] = field(default_factory=set)
    # tool_use_id -> parts showing a tool output kept from tool-results/ (kept.py)
    kept_outputs: dict[str, list[dict]] = field(default_factory=dict)
    budget: int = INLINE_BUDGET
    usage_shown: set[str] = field(default_factory=set)  # message ids with their numbers drawn
    agent_events: int = INLINE_AGENT_EVENTS  # a nested subagent's events drawn inline
    standalone: bool = False  # an exported file: no links into the web app
    with_text: bool = False  # each event's flattened text too (the JSON form)


def _tool_summary(name: str | None, data: Any) -> str:
    if not isinstance(data, dict):
        return ""
    for key in (
        "description",
        "command",
        "file_path",
        "path",
        "notebook_path",
        "pattern",
        "url",
        "query",
        "prompt",
        "skill",
    ):
        value = data.get(key)
        if isinstance(value, str) and value.strip():
            return value.strip().splitlines()[0][:160]
    if isinstance(data.get("todos"), list):
        return f"{len(data['todos'])} todos"
    return ""


def _result_parts(content: Any) -> list[dict]:
    if content is None:
        return []
    if isinstance(content, str):
        text, cut = _cut(content)
        return [{"html": render.pre(text), "cut": cut}]
    if not isinstance(content, list):
        text, cut = _cut(_as_text(content))
        return [{"html": render.pre(text), "cut": cut}]
    parts = []
    for block in content:
        if isinstance(block, dict) and block.get("type") == "image":
            parts.append({"html": render.image(block), "cut": 0})
        elif isinstance(block, dict) and block.get("type") == "text":
            text, cut = _cut(str(block.get("text") or ""))
            parts.append({"html": render.pre(text), "cut": cut})
        elif isinstance(block, dict) and block.get("type") == "tool_reference":
            name = block.get("tool_name") or block.get("name") or ""
            parts.append({"html": render.pre(f"[tool reference: {name}]"), "cut": 0})
        else:
            text, cut = _cut(_as_text(block))
            parts.append({"html": render.pre(text), "cut": cut})
    return parts


def _event_link(ctx: Context, event_id: int | None) -> str | None:
    if event_id is None:
        return None
    if event_id in ctx.on_page:
        return f"#e{event_id}"
    return ctx.urls("event", event_id=event_id)


def _view_blocks(row: dict, record: Any, ctx: Context) -> tuple[str, str, list[dict]]:
    """(label, css class, blocks) for one event."""
    kind = row["kind"]
    rtype = row["type"]
    if row["raw"] is None and row["raw_length"]:
        return _huge_line_view(row)
    if not isinstance(record, dict):
        raw = row["raw"]
        if isinstance(raw, bytes):
            raw = raw.decode("utf-8", "replace")
        text, cut = _cut(raw or "")
        return "Unreadable line", "error", [{"type": "pre", "html": render.pre(text), "cut": cut}]

    if rtype == "user":
        if record.get("isCompactSummary"):
            text = "\n".join(
                b.get("text") or "" for b in record_blocks(record) if b.get("type") == "text"
            )
            return (
                "Compaction summary",
                "compact-summary",
                [_details("Summary of the earlier conversation", text)],
            )
        content_blocks = record_blocks(record)
        if content_blocks and all(b.get("type") == "text" for b in content_blocks):
            joined = "\n".join(str(b.get("text") or "") for b in content_blocks)
            tags = render.command_tags(joined)
            if tags and not record.get("isMeta"):
                return _command_view(tags)
            # The note Claude Code injects before local command output, tagged or not.
            if (tags and set(tags) == {"local-command-caveat"}) or (
                record.get("isMeta") and joined.startswith(_CAVEAT)
            ):
                caveat = tags["local-command-caveat"] if tags else joined
                return "Command caveat", "bookkeeping", [_details("Caveat", caveat, markdown=False)]
        blocks = []
        for block in content_blocks:
            btype = block.get("type")
            if btype == "text":
                if record.get("isMeta"):
                    blocks.append(_details("Injected context", block.get("text"), markdown=False))
                else:
                    blocks.extend(_prompt_blocks(block.get("text")))
            elif btype == "image":
                blocks.append({"type": "html", "html": render.image(block)})
            elif btype == "tool_result":
                call = ctx.tool_calls.get(block.get("tool_use_id") or "", {})
                is_error = bool(block.get("is_error")) or bool(call.get("is_error"))
                blocks.append(
                    {
                        "type": "tool_result",
                        "name": call.get("name") or "tool",
                        "tool_use_id": block.get("tool_use_id"),
                        "is_error": is_error,
                        "call_link": _event_link(ctx, call.get("event_id")),
                        "parts": ctx.kept_outputs.get(block.get("tool_use_id") or "")
                        or _result_parts(block.get("content")),
                    }
                )
            else:
                text, cut = _cut(_as_text(block))
                blocks.append({"type": "pre", "html": render.pre(text), "cut": cut})
        if kind == "tool_result":
            return "Tool result", "tool-result", blocks
        if record.get("isMeta"):
            return "Meta", "meta", blocks
        if kind in ("context", "command"):
            # Nothing typed: IDE context, a reminder, hook output, an interruption.
            label = "Interrupted" if _interrupted(blocks) else "Context"
            return label, "context", blocks
        return ("Sidechain prompt" if row["is_sidechain"] else "Prompt"), "prompt", blocks

    if rtype == "assistant":
        blocks = []
        for block in record_blocks(record):
            btype = block.get("type")
            if btype == "text":
                blocks.append(_markdown(block.get("text")))
            elif btype == "thinking" and _preview(block.get("thinking")):
                # The event is labelled "Thinking" already: the summary previews it.
                thinking = block.get("thinking")
                blocks.append(_details(_preview(thinking), thinking, css="thinking"))
            elif btype in ("thinking", "redacted_thinking"):
                # Thinking whose text the transcript does not keep (redacted, or only its
                # signature saved): one small line, never an empty card.
                blocks.append({"type": "note", "text": REDACTED_THINKING, "redacted": True})
            elif btype in ("tool_use", "server_tool_use"):
                tool_id = block.get("id") or ""
                call = ctx.tool_calls.get(tool_id, {})
                agents = list(ctx.agents_by_call.get(tool_id, []))
                name = block.get("name") or "tool"
                view = tools.tool_view(name, block.get("input"))
                blocks.append(
                    {
                        "type": "tool_use",
                        "name": name,
                        "id": tool_id,
                        "summary": view[0] if view else _tool_summary(name, block.get("input")),
                        "body": view[1] if view else tools.json_view(block.get("input")),
                        "open": view is not None and name in tools.OPEN_TOOLS,
                        "status": (
                            "error"
                            if call.get("is_error")
                            else "ok"
                            if call.get("result_event_id")
                            else "pending"
                        ),
                        "duration_ms": call.get("duration_ms"),
                        "duration": human_duration(call.get("duration_ms")),
                        "result_link": _event_link(ctx, call.get("result_event_id")),
                        "agents": agents,
                    }
                )
            elif btype == "image":
                blocks.append({"type": "html", "html": render.image(block)})
            else:
                text, cut = _cut(_as_text(block))
                blocks.append({"type": "pre", "html": render.pre(text), "cut": cut})
        css = "answer"
        if blocks and all(b.get("redacted") for b in blocks):
            return "Thinking", "bookkeeping", blocks
        if record.get("isApiErrorMessage") or record.get("error"):
            css = "answer error"
        label = {"thinking": "Thinking", "tool_use": "Tool call"}.get(kind, "Answer")
        if row["is_sidechain"]:
            label = f"Sidechain {label.lower()}"
        return label, css, blocks

    if rtype == "system":
        content = record.get("content")
        if row["subtype"] == "compact_boundary":
            meta = record.get("compactMetadata") or {}
            detail = []
            if isinstance(meta, dict):
                if meta.get("trigger"):
                    detail.append(f"trigger: {meta['trigger']}")
                if meta.get("preTokens"):
                    detail.append(
                        f"{meta['preTokens']:,} tokens before"
                        if isinstance(meta["preTokens"], int)
                        else f"pre tokens: {meta['preTokens']}"
                    )
            text = "Conversation compacted" + (f" ({', '.join(detail)})" if detail else "")
            return "Compaction", "compact-boundary", [{"type": "note", "text": text}]
        level = record.get("level")
        hook_text = render.strip_ansi(content).strip() if isinstance(content, str) else ""
        if row["subtype"] == "stop_hook_summary" or (
            not row["subtype"] and level == "info" and _HOOK_TEXT.match(hook_text)
        ):
            return _bookkeeping_view("Hook", hook_text or record, _preview(hook_text) or "Record")
        css = "system" + (f" level-{level}" if level in ("warning", "error") else "")
        label = "System" + (f": {row['subtype']}" if row["subtype"] else "")
        text, cut = _cut(content if isinstance(content, str) and content else _as_text(record))
        return label, css, [{"type": "pre", "html": render.pre(text), "cut": cut}]

    if rtype == "summary":
        return "Summary", "summary", [{"type": "note", "text": str(record.get("summary") or "")}]
    if kind == "title":
        title = record.get("customTitle") or record.get("aiTitle") or record.get("agentName")
        label = {"custom-title": "Title", "ai-title": "Generated title"}.get(rtype, "Agent name")
        return label, "title", [{"type": "note", "text": str(title or "")}]
    if rtype == "queue-operation":
        content = record.get("content")
        label = f"Queued input ({record.get('operation') or 'operation'})"
        if content is None:
            return label, "bookkeeping", []
        return _bookkeeping_view(label, content, _preview(_as_text(content)) or "Record")

    # file-history-snapshot, progress, attachment, permission-mode, unknown types...
    summary = rtype or "record"
    if row["subtype"]:
        summary += f": {row['subtype']}"
    if rtype in BOOKKEEPING_TYPES:
        return _bookkeeping_view(summary, record)
    text, cut = _cut(_as_text(record))
    return (
        summary,
        "other",
        [{"type": "details", "summary": "Record", "html": render.pre(text), "cut": cut}],
    )


_KIND_VIEWS = {
    "prompt": ("Prompt", "prompt"),
    "answer": ("Answer", "answer"),
    "thinking": ("Thinking", "answer"),
    "tool_use": ("Tool call", "answer"),
    "tool_result": ("Tool result", "tool-result"),
}


def _huge_line_view(row: dict) -> tuple[str, str, list[dict]]:
    """A line longer than RAW_LIMIT, shown from the start of its flattened text."""
    label, css = _KIND_VIEWS.get(row["kind"] or "", (row["type"] or "Record", "other"))
    text = row["text"] or ""
    cut = max((row["text_length"] or 0) - len(text), 0)
    note = (
        f"This line is {row['raw_length'] / 1e6:,.1f} MB of JSON: shown from its text "
        f"({row['text_length'] or 0:,} characters)."
    )
    if row["raw_length"] >= HUGE_BYTES:
        note += (
            f" The archive keeps the first {KEEP_BYTES // 1024} KiB of each long string of "
            "such a line as its text; the raw JSON has every byte."
        )
    blocks = [{"type": "note", "text": note}]
    if text:
        blocks.append({"type": "pre", "html": render.pre(text), "cut": cut})
    return label, css, blocks


def _event_view(row: dict, record: Any, ctx: Context) -> dict:
    label, css, blocks = _view_blocks(row, record, ctx)
    return {
        "id": row["id"],
        "type": row["type"],
        "kind": row["kind"],
        "label": label,
        "css": css,
        "timestamp": row["timestamp"],
        "model": row["model"],
        "message_id": row["message_id"],
        "sidechain": bool(row["is_sidechain"]),
        "raw_url": None if ctx.standalone else f"{ctx.events_url}/{row['id']}",
        # the line's JSON: events.raw is compressed (ingest.lines), the events_json view
        # shows it as text
        "raw_json_url": None if ctx.standalone else f"{ctx.events_url}_json?id={row['id']}",
        "blocks": blocks,
        "usage": None,
        "record": record,
        "text": row["text"],
        "text_length": row["text_length"],
        "raw_length": row["raw_length"],
    }


def group_turns(events: list[dict]) -> list[dict]:
    """Consecutive assistant lines of one message.id become one turn; consecutive
    bookkeeping records become one turn too, with a ``bookkeeping`` summary of their
    labels such as ``file-history-snapshot ×2, Hook``."""
    turns: list[dict] = []
    for event in events:
        last = turns[-1] if turns else None
        if (
            last is not None
            and event["type"] == "assistant"
            and event["message_id"]
            and last["message_id"] == event["message_id"]
        ) or (last is not None and event["css"] == last["css"] == "bookkeeping"):
            last["events"].append(event)
            continue
        turns.append(
            {
                "message_id": event["message_id"] if event["type"] == "assistant" else None,
                "css": event["css"],
                "model": event["model"],
                "events": [event],
            }
        )
    for turn in turns:
        if turn["css"] == "bookkeeping":
            counts: dict[str, int] = {}
            for event in turn["events"]:
                counts[event["label"]] = counts.get(event["label"], 0) + 1
            turn["bookkeeping"] = ", ".join(
                name if n == 1 else f"{name} ×{n}" for name, n in counts.items()
            )
    return turns


def _tool_ids(records: list[Any]) -> list[str]:
    ids = []
    for record in records:
        if not isinstance(record, dict):
            continue
        for block in record_blocks(record):
            if block.get("type") in ("tool_use", "server_tool_use") and block.get("id"):
                ids.append(block["id"])
            elif block.get("type") == "tool_result" and block.get("tool_use_id"):
                ids.append(block["tool_use_id"])
    return [i for i in ids if isinstance(i, str)]


def _tool_results(records: list[Any]) -> list[tuple[str, Any]]:
    """(tool_use_id, content) of every tool_result block of the records."""
    return [
        (block["tool_use_id"], block.get("content"))
        for record in records
        if isinstance(record, dict)
        for block in record_blocks(record)
        if block.get("type") == "tool_result" and isinstance(block.get("tool_use_id"), str)
    ]


def _load_tool_calls(conn, ids: list[str]) -> dict[str, dict]:
    calls: dict[str, dict] = {}
    for chunk in _chunks(sorted(set(ids))):
        cursor = conn.execute(
            "select tool_use_id, name, event_id, result_event_id, is_error, duration_ms "
            f"from tool_calls where tool_use_id in ({','.join('?' * len(chunk))})",
            chunk,
        )
        for tool_use_id, name, event_id, result_event_id, is_error, duration_ms in cursor:
            calls[tool_use_id] = {
                "name": name,
                "event_id": event_id,
                "result_event_id": result_event_id,
                "is_error": is_error,
                "duration_ms": duration_ms,
            }
    return calls


def session_agents(conn, session_id: str) -> list[dict]:
    """The subagents table rows of a session."""
    cursor = conn.execute(
        "select agent_id, tool_use_id, agent_type, description, first_timestamp, "
        "last_timestamp, events from subagents where session_id = ? "
        "order by first_timestamp, agent_id",
        (session_id,),
    )
    names = [d[0] for d in cursor.description]
    return [dict(zip(names, row, strict=True)) for row in cursor]


def _add_text(row: dict) -> None:
    """events.text of a fetched line (the engine's flattened text), cut to TEXT_LIMIT."""
    if row["raw"] is None:
        return  # a line too long to fetch: the query read its text
    text = lines.event_text(row["raw"], row["kind"])
    row["text_length"] = None if text is None else len(text)
    row["text"] = None if text is None else text[:TEXT_LIMIT]


def build_events(conn, ids: list[int], ctx: Context, session_id: str, depth: int = 0) -> list:
    """View dicts for the given ordered ids, with subagents nested under their calls."""
    rows = _fetch_rows(conn, ids)
    if ctx.with_text:
        for row in rows.values():
            _add_text(row)
    ordered = [rows[i] for i in ids if i in rows]
    records = [_record(r["raw"]) for r in ordered]
    ctx.on_page.update(ids)
    ctx.tool_calls.update(_load_tool_calls(conn, _tool_ids(records)))
    ctx.kept_outputs.update(
        kept.output_parts(
            conn,
            session_id,
            _tool_results(records),
            TEXT_LIMIT,
            lambda file_id: ctx.urls("kept", file_id=file_id),
        )
    )
    usage = facts.message_usage(
        conn, [r["message_id"] for r in ordered if r["type"] == "assistant" and r["message_id"]]
    )
    views = []
    for row, record in zip(ordered, records, strict=True):
        view = _event_view(row, record, ctx)
        message_id = view["message_id"]
        if view["type"] == "assistant" and message_id in usage:
            # Once per message, on its first line on the page.
            if message_id not in ctx.usage_shown:
                ctx.usage_shown.add(message_id)
                view["usage"] = usage[message_id]
        views.append(view)
        for block in view["blocks"]:
            if block["type"] != "tool_use" or not block["agents"]:
                continue
            block["agents"] = [
                _nested_agent(conn, agent, ctx, session_id, depth + 1) for agent in block["agents"]
            ]
    return views


def _nested_agent(conn, agent: dict, ctx: Context, session_id: str, depth: int) -> dict:
    nested = dict(agent)
    nested["url"] = None if ctx.standalone else ctx.urls("agent", agent_id=agent["agent_id"])
    nested["turns"] = []
    nested["shown"] = 0
    order = thread_order(conn, session_id, agent["agent_id"], ctx.cache_key)
    nested["total"] = len(order)
    nested["facts"] = facts.thread_facts(conn, session_id, agent["agent_id"])
    if depth > MAX_AGENT_DEPTH or ctx.budget <= 0:
        return nested
    take = order[: min(ctx.agent_events, ctx.budget)]
    ctx.budget -= len(take)
    nested["turns"] = group_turns(build_events(conn, take, ctx, session_id, depth))
    nested["shown"] = len(take)
    return nested


def json_event(view: dict, position: int) -> dict:
    """The JSON form of one event view.  ``text`` (the flattened text) holds at most
    TEXT_LIMIT characters (``truncated`` says when there is more); ``record``, the parsed
    line, is null for lines over RAW_LIMIT bytes (``record_omitted``): ``raw_url`` has
    everything."""
    text = view["text"]
    omitted = view["record"] is None and bool(view["raw_length"]) and view["raw_length"] > RAW_LIMIT
    return {
        "position": position,
        "id": view["id"],
        "type": view["type"],
        "kind": view["kind"],
        "timestamp": view["timestamp"],
        "model": view["model"],
        "message_id": view["message_id"],
        "is_sidechain": view["sidechain"],
        "raw_url": view["raw_url"],
        "raw_json_url": view["raw_json_url"],
        "text": text,
        "text_length": view["text_length"],
        "truncated": (view["text_length"] or 0) > len(text or ""),
        "record": view["record"],
        "record_omitted": omitted,
    }
