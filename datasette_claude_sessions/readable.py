"""Transcripts to read away from the web app: `claude-sessions export --format html|markdown`.

- HTML: one self-contained file per session, drawn by the transcript page's own
  templates (the same renderer), with the stylesheet and script inline: no request to
  any server, opens from ``file://``.  ``--all`` adds an ``index.html``.
- Markdown: prompts and answers as they were written, each tool call folded into a
  ``<details>`` block shown the way the web app shows it (diffs, files, commands, todo
  lists), subagents nested under the call that started them; no raw JSON.

Everything runs on a plain read-only ``sqlite3`` connection to the archive.
"""

from __future__ import annotations

import html as html_module
import json
import re
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from ingest import prompts

from . import facts, render, transcript

STATIC = Path(__file__).resolve().parent / "static"
SAFE_NAME = re.compile(r"[^A-Za-z0-9._-]")


def _rows(cursor) -> list[dict]:
    names = [d[0] for d in cursor.description]
    return [dict(zip(names, row, strict=True)) for row in cursor]


def session_info(conn, session_id: str) -> dict | None:
    found = _rows(conn.execute("select * from sessions where session_id = ?", (session_id,)))
    return found[0] if found else None


def _context(conn, session_id: str) -> transcript.Context:
    ctx = transcript.Context(
        urls=lambda kind, **kw: f"#e{kw['event_id']}" if kind == "event" else "#",
        events_url="",
        budget=10**9,
        agent_events=10**9,
        standalone=True,
    )
    for agent in transcript.session_agents(conn, session_id):
        if agent["tool_use_id"]:
            ctx.agents_by_call.setdefault(agent["tool_use_id"], []).append(agent)
    return ctx


def _views(conn, session_id: str) -> tuple[list[dict], transcript.Context]:
    render.highlight_budget(None)  # an export highlights everything
    order = transcript.thread_order(conn, session_id, None, "export")
    ctx = _context(conn, session_id)
    ctx.on_page.update(order)
    return transcript.build_events(conn, order, ctx, session_id), ctx


def _title(session: dict | None, session_id: str) -> str:
    session = session or {}
    return render.session_label(session.get("title"), session_id, None)


# HTML ------------------------------------------------------------------------------------


def html_page(conn, session_id: str, *, index_href: str | None = None) -> str:
    """One self-contained HTML file for the session."""
    from .pages import render_turns, sync_env

    session = session_info(conn, session_id)
    views, _ctx = _views(conn, session_id)
    body = render_turns(transcript.group_turns(views))
    thread = facts.thread_facts(conn, session_id, None) if session else None
    template = sync_env().get_template("claude_sessions/export.html")
    return template.render(
        title=_title(session, session_id),
        session=session,
        session_id=session_id,
        facts=thread,
        transcript_html=body,
        css=(STATIC / "claude-sessions.css").read_text(encoding="utf-8"),
        script=(STATIC / "transcript.js").read_text(encoding="utf-8"),
        index_href=index_href,
        exported_at=datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC"),
        events=len(views),
    )


def html_index(conn, pages: list[tuple[str, str]]) -> str:
    """index.html of a static site: every exported session, newest first."""
    from .pages import sync_env

    rows = []
    for session_id, href in pages:
        session = session_info(conn, session_id) or {}
        rows.append(
            {
                "href": href,
                "title": _title(session, session_id),
                "project": session.get("project_path") or session.get("project_dir") or "",
                "first": (session.get("first_timestamp") or "")[:16].replace("T", " "),
                "last": session.get("last_timestamp") or "",
                "prompts": session.get("prompts") or 0,
            }
        )
    rows.sort(key=lambda r: r["last"], reverse=True)
    template = sync_env().get_template("claude_sessions/export_index.html")
    return template.render(
        rows=rows,
        css=(STATIC / "claude-sessions.css").read_text(encoding="utf-8"),
        exported_at=datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC"),
    )


# Markdown --------------------------------------------------------------------------------

FENCE = "`" * 4


def _fence(text: str, language: str = "") -> str:
    """A fenced block long enough not to be closed by backticks inside the text."""
    longest = max((len(m) for m in re.findall(r"`{3,}", text)), default=0)
    fence = "`" * max(4, longest + 1)
    return f"{fence}{language}\n{text.rstrip(chr(10))}\n{fence}"


def _text(value: Any) -> str:
    if isinstance(value, str):
        return value
    if isinstance(value, list):
        parts = []
        for block in value:
            if isinstance(block, dict) and block.get("type") == "text":
                parts.append(str(block.get("text") or ""))
            elif isinstance(block, dict) and block.get("type") == "image":
                parts.append("[image]")
            elif isinstance(block, str):
                parts.append(block)
        return "\n".join(parts)
    return "" if value is None else str(value)


def _fields(data: dict) -> str:
    """A tool input as a list of fields (never raw JSON)."""
    lines = []
    for key, value in data.items():
        if isinstance(value, str) and "\n" not in value and len(value) < 200:
            lines.append(f"- **{key}**: `{value}`" if value else f"- **{key}**: (empty)")
        elif isinstance(value, str):
            lines.append(f"- **{key}**:\n\n{_fence(value)}\n")
        elif isinstance(value, bool | int | float) or value is None:
            lines.append(f"- **{key}**: {json.dumps(value)}")
        else:
            lines.append(f"- **{key}**:\n\n{_fence(_yamlish(value))}\n")
    return "\n".join(lines)


def _yamlish(value: Any, indent: int = 0) -> str:
    pad = "  " * indent
    if isinstance(value, dict):
        out = []
        for k, v in value.items():
            if isinstance(v, dict | list) and v:
                out.append(f"{pad}{k}:\n{_yamlish(v, indent + 1)}")
            else:
                out.append(f"{pad}{k}: {v if isinstance(v, str) else json.dumps(v)}")
        return "\n".join(out)
    if isinstance(value, list):
        out = []
        for v in value:
            if isinstance(v, dict | list) and v:
                out.append(f"{pad}-\n{_yamlish(v, indent + 1)}")
            else:
                out.append(f"{pad}- {v if isinstance(v, str) else json.dumps(v)}")
        return "\n".join(out)
    return f"{pad}{value}"


def _tool_markdown(name: str, data: Any) -> tuple[str, str]:
    """(summary, body) of a tool call."""
    if not isinstance(data, dict):
        return name, _fence(_text(data))
    if name in ("Edit", "MultiEdit"):
        edits = data.get("edits") if name == "MultiEdit" else [data]
        if isinstance(edits, list) and all(isinstance(e, dict) for e in edits):
            path = data.get("file_path") or ""
            diffs = []
            for edit in edits:
                old = str(edit.get("old_string") or "").split("\n")
                new = str(edit.get("new_string") or "").split("\n")
                diffs.append(
                    _fence(
                        "\n".join([f"-{line}" for line in old] + [f"+{line}" for line in new]),
                        "diff",
                    )
                )
            return f"{name} {path}", "\n\n".join(diffs)
    if name == "Write" and isinstance(data.get("content"), str):
        path = str(data.get("file_path") or "")
        language = path.rsplit(".", 1)[-1] if "." in path.rsplit("/", 1)[-1] else ""
        return f"Write {path}", _fence(data["content"], language)
    if name == "Bash" and isinstance(data.get("command"), str):
        summary = data.get("description") or data["command"].splitlines()[0][:80]
        return f"Bash: {summary}", _fence(data["command"], "bash")
    if name == "Read" and isinstance(data.get("file_path"), str):
        span = ""
        if isinstance(data.get("offset"), int) and isinstance(data.get("limit"), int):
            span = f" (lines {data['offset']}–{data['offset'] + data['limit'] - 1})"
        return f"Read {data['file_path']}{span}", ""
    if name == "TodoWrite" and isinstance(data.get("todos"), list):
        marks = {"completed": "[x]", "in_progress": "[~]", "pending": "[ ]"}
        lines = [
            f"- {marks.get(t.get('status'), '[ ]')} {t.get('content') or ''}"
            for t in data["todos"]
            if isinstance(t, dict)
        ]
        return f"TodoWrite ({len(lines)} todos)", "\n".join(lines)
    summary = transcript._tool_summary(name, data)
    return f"{name}{': ' + summary if summary else ''}", _fields(data)


def _details(summary: str, body: str) -> str:
    summary = html_module.escape(summary.replace("\n", " "))
    return f"<details>\n<summary>{summary}</summary>\n\n{body.strip()}\n\n</details>\n"


def markdown_events(views: list[dict], results: dict[str, dict], depth: int = 0) -> list[str]:
    """Markdown for the event views (nested subagents included)."""
    out: list[str] = []
    heading = "#" * min(2 + depth, 6)
    for view in views:
        record = view["record"] if isinstance(view["record"], dict) else {}
        message = record.get("message")
        content = message.get("content") if isinstance(message, dict) else None
        when = (view["timestamp"] or "")[:19].replace("T", " ")
        if view["css"] == "prompt":
            text = prompts.typed_text(_text(content)) or _text(content)
            out.append(f"{heading} {view['label']} · {when}\n\n{text.strip()}\n")
        elif view["css"] in ("context", "command"):
            line = " ".join(
                b.get("line") or b.get("label") or b.get("text") or ""
                for b in view["blocks"]
                if b["type"] in ("command", "context", "note")
            ).strip()
            out.append(f"> *{view['label']}*: {line}\n" if line else f"> *{view['label']}*\n")
        elif view["type"] == "assistant":
            for block in transcript.record_blocks(record):
                btype = block.get("type")
                if btype == "text":
                    out.append(
                        f"{heading} Answer · {when}\n\n{str(block.get('text') or '').strip()}\n"
                    )
                elif btype == "thinking" and str(block.get("thinking") or "").strip():
                    out.append(_details("Thinking", str(block["thinking"])))
                elif btype in ("tool_use", "server_tool_use"):
                    name = str(block.get("name") or "tool")
                    summary, body = _tool_markdown(name, block.get("input"))
                    result = results.get(block.get("id") or "")
                    if result is not None:
                        label = "Result (error)" if result["is_error"] else "Result"
                        body += (
                            f"\n\n**{label}:**\n\n{_fence(result['text'][: transcript.TEXT_LIMIT])}"
                        )
                    out.append(_details(f"🔧 {summary}", body))
                    for view_block in view["blocks"]:
                        if view_block["type"] == "tool_use" and view_block["id"] == block.get("id"):
                            for agent in view_block["agents"]:
                                out.append(_agent_markdown(agent, results, depth))
        elif view["css"] == "compact-summary":
            out.append(_details("Compaction summary", _text(content)))
        elif view["css"] == "compact-boundary":
            out.append("---\n\n*Conversation compacted*\n")
    return out


def _agent_markdown(agent: dict, results: dict, depth: int) -> str:
    title = f"Subagent {agent['agent_id']}"
    if agent.get("agent_type"):
        title += f" ({agent['agent_type']})"
    if agent.get("description"):
        title += f": {agent['description']}"
    inner = []
    for turn in agent.get("turns") or []:
        inner += markdown_events(turn["events"], results, depth + 1)
    quoted = "\n".join(("> " + line) if line else ">" for line in "\n".join(inner).splitlines())
    return f"<details>\n<summary>{html_module.escape(title)}</summary>\n\n{quoted}\n\n</details>\n"


def _results(conn, session_id: str) -> dict[str, dict]:
    # The result's text is the result line's flattened text (tool_calls keeps no copy).
    return {
        tool_use_id: {"text": result or "", "is_error": bool(is_error)}
        for tool_use_id, result, is_error in conn.execute(
            f"select t.tool_use_id, substr(e.text, 1, {transcript.TEXT_LIMIT}), t.is_error "
            "from tool_calls t join events e on e.id = t.result_event_id "
            "where t.session_id = ?",
            (session_id,),
        )
    }


def markdown_document(conn, session_id: str) -> str:
    session = session_info(conn, session_id) or {}
    views, _ctx = _views(conn, session_id)
    thread = facts.thread_facts(conn, session_id, None) if session else None
    head = [f"# {_title(session, session_id)}", ""]
    meta = [f"- Session: `{session_id}`"]
    if session.get("project_path"):
        meta.append(f"- Project: `{session['project_path']}`")
    if session.get("first_timestamp"):
        meta.append(
            f"- Time: {session['first_timestamp'][:19].replace('T', ' ')} → "
            f"{(session.get('last_timestamp') or '')[:19].replace('T', ' ')} UTC"
        )
    if thread:
        meta.append(
            f"- {session.get('prompts') or 0} prompts, {thread['tools']['calls']} tool calls"
            + (f" ({thread['tools']['line']})" if thread["tools"]["line"] else "")
        )
        if thread["models"]:
            meta.append(f"- Models: {', '.join(thread['models'])}")
        if thread["usage"] and thread["usage"]["line"]:
            meta.append(f"- Tokens: {thread['usage']['line']}")
    body = markdown_events(views, _results(conn, session_id))
    return "\n".join(head + meta + [""] + body).rstrip() + "\n"


def file_name(session_id: str, title: str | None, suffix: str) -> str:
    return SAFE_NAME.sub("_", session_id) + suffix
