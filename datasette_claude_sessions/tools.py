"""Tool calls drawn like a code review: Edit and MultiEdit as diffs, Write highlighted by
file extension, Bash as a command, Read as a path and line range, TodoWrite as a list
with its states; any other tool as its input JSON.

Every function returns safe HTML (``Markup``) built from escaped text only, or None when
the input does not have the expected shape (the caller then shows the JSON).
"""

from __future__ import annotations

import difflib
import json
from html import escape
from typing import Any

from markupsafe import Markup

from . import render

# Each string of a tool input is cut to this many characters before it is drawn; the
# raw JSON link has everything.
INPUT_LIMIT = 10_000
# A diff of more lines than this is cut (with a note).
DIFF_LINES = 400
CONTEXT_LINES = 3
# Tools whose call is shown open (the reader wants to see the change at once).
OPEN_TOOLS = {"Edit", "MultiEdit", "Write", "TodoWrite", "Bash", "NotebookEdit"}
TODO_MARKS = {"completed": "☑", "in_progress": "◐", "pending": "☐"}


def _s(value: Any) -> str | None:
    return value if isinstance(value, str) else None


def _cut(text: str) -> tuple[str, int]:
    if len(text) <= INPUT_LIMIT:
        return text, 0
    return text[:INPUT_LIMIT], len(text) - INPUT_LIMIT


def _cut_note(cut: int) -> str:
    return f'<p class="cs-cut">… {cut:,} more characters (see the raw JSON)</p>' if cut else ""


def _file_head(path: str, extra: str = "") -> str:
    """The file's path and a note (the summary line above names the file already: only
    a note such as "all occurrences" or "12 lines" makes the line worth drawing)."""
    if not extra:
        return ""
    note = f' <span class="cs-muted">{escape(extra)}</span>' if extra else ""
    return f'<div class="cs-file"><code>{escape(path)}</code>{note}</div>'


def diff_html(old: str, new: str) -> tuple[str, int, int]:
    """A line diff of old -> new as HTML (removed lines in <del>, added in <ins>, up to
    CONTEXT_LINES unchanged lines around each change), and the counts of removed and
    added lines."""
    old_lines = render._clean(old).split("\n")
    new_lines = render._clean(new).split("\n")
    matcher = difflib.SequenceMatcher(None, old_lines, new_lines, autojunk=False)
    out: list[str] = []
    removed = added = shown = 0
    for group in matcher.get_grouped_opcodes(CONTEXT_LINES):
        if out:
            out.append('<span class="cs-diff-gap">⋯</span>')
        for tag, i1, i2, j1, j2 in group:
            if tag == "equal":
                for line in old_lines[i1:i2]:
                    out.append(f'<span class="cs-diff-ctx">  {escape(line)}</span>')
                continue
            for line in old_lines[i1:i2] if tag in ("replace", "delete") else []:
                out.append(f"<del>- {escape(line)}</del>")
                removed += 1
            for line in new_lines[j1:j2] if tag in ("replace", "insert") else []:
                out.append(f"<ins>+ {escape(line)}</ins>")
                added += 1
    if len(out) > DIFF_LINES:
        shown = len(out) - DIFF_LINES
        out = out[:DIFF_LINES] + [f'<span class="cs-diff-gap">… {shown:,} more lines</span>']
    if not out:
        out.append('<span class="cs-diff-gap">(no change)</span>')
    # Each line is a block of its own: no newline between them (a pre would show it).
    return '<pre class="cs-diff">' + "".join(out) + "</pre>", removed, added


def _edit(data: dict) -> tuple[str, str] | None:
    path = _s(data.get("file_path")) or ""
    old, new = _s(data.get("old_string")), _s(data.get("new_string"))
    if old is None or new is None:
        return None
    old, cut_old = _cut(old)
    new, cut_new = _cut(new)
    body, removed, added = diff_html(old, new)
    extra = "all occurrences" if data.get("replace_all") else ""
    summary = f"{path} (−{removed} +{added})"
    return summary, _file_head(path, extra) + body + _cut_note(cut_old + cut_new)


def _multi_edit(data: dict) -> tuple[str, str] | None:
    path = _s(data.get("file_path")) or ""
    edits = data.get("edits")
    if not isinstance(edits, list) or not edits:
        return None
    parts, removed, added = [], 0, 0
    for n, edit in enumerate(edits, 1):
        if not isinstance(edit, dict):
            return None
        old, new = _s(edit.get("old_string")), _s(edit.get("new_string"))
        if old is None or new is None:
            return None
        old, cut_old = _cut(old)
        new, cut_new = _cut(new)
        body, r, a = diff_html(old, new)
        removed, added = removed + r, added + a
        parts.append(
            f'<div class="cs-muted">edit {n} of {len(edits)}</div>{body}'
            + _cut_note(cut_old + cut_new)
        )
    summary = f"{path} ({len(edits)} edits, −{removed} +{added})"
    return summary, _file_head(path) + "".join(parts)


def _write(data: dict) -> tuple[str, str] | None:
    path = _s(data.get("file_path")) or ""
    content = _s(data.get("content"))
    if content is None:
        return None
    shown, cut = _cut(content)
    lines = content.count("\n") + (0 if content.endswith("\n") else 1)
    block = str(render.code_block(shown, filename=path))
    return f"{path} ({lines:,} lines)", _file_head(path, f"{lines:,} lines") + block + _cut_note(
        cut
    )


def _bash(data: dict) -> tuple[str, str] | None:
    command = _s(data.get("command"))
    if command is None:
        return None
    shown, cut = _cut(command)
    description = _s(data.get("description"))
    extras = []
    if data.get("run_in_background"):
        extras.append("in the background")
    if isinstance(data.get("timeout"), int | float):
        extras.append(f"timeout {data['timeout'] / 1000:g} s")
    head = f'<p class="cs-muted">{escape(", ".join(extras))}</p>' if extras else ""
    first_line = command.strip().splitlines()[0] if command.strip() else ""
    summary = description or first_line
    return summary[:160], head + str(render.code_block("$ " + shown, "bash")) + _cut_note(cut)


def _read(data: dict) -> tuple[str, str] | None:
    path = _s(data.get("file_path")) or _s(data.get("notebook_path"))
    if path is None:
        return None
    offset, limit = data.get("offset"), data.get("limit")
    span = ""
    if isinstance(offset, int) and isinstance(limit, int):
        span = f"lines {offset:,}–{offset + limit - 1:,}"
    elif isinstance(offset, int):
        span = f"from line {offset:,}"
    elif isinstance(limit, int):
        span = f"lines 1–{limit:,}"
    pages = _s(data.get("pages"))
    if pages:
        span = f"pages {pages}"
    return (f"{path} {span}".strip(), _file_head(path, span or "the whole file"))


def _todo_write(data: dict) -> tuple[str, str] | None:
    todos = data.get("todos")
    if not isinstance(todos, list):
        return None
    items, counts = [], {}
    for todo in todos:
        if not isinstance(todo, dict):
            return None
        status = _s(todo.get("status")) or "pending"
        counts[status] = counts.get(status, 0) + 1
        text = _s(todo.get("content")) or _s(todo.get("activeForm")) or ""
        mark = TODO_MARKS.get(status, "•")
        items.append(
            f'<li class="cs-todo cs-todo-{escape(status, quote=True)}" title="{escape(status)}">'
            f'<span class="cs-todo-mark" aria-label="{escape(status)}">{mark}</span> '
            f"{escape(text)}</li>"
        )
    states = ", ".join(f"{n} {status.replace('_', ' ')}" for status, n in counts.items())
    summary = f"{len(todos)} todos" + (f": {states}" if states else "")
    return summary, '<ul class="cs-todos">' + "".join(items) + "</ul>"


VIEWS = {
    "Edit": _edit,
    "MultiEdit": _multi_edit,
    "Write": _write,
    "Bash": _bash,
    "Read": _read,
    "TodoWrite": _todo_write,
}


def tool_view(name: str | None, data: Any) -> tuple[str, Markup] | None:
    """(summary, HTML body) for a known tool's input, or None."""
    view = VIEWS.get(name) if isinstance(name, str) else None
    if view is None or not isinstance(data, dict):
        return None
    try:
        made = view(data)
    except (TypeError, ValueError):
        return None
    if made is None:
        return None
    return made[0], Markup(made[1])


def json_view(data: Any) -> Markup:
    """A tool input as indented JSON, highlighted, cut to INPUT_LIMIT characters."""
    text = json.dumps(data, indent=2, ensure_ascii=False, default=str)
    shown, cut = _cut(text)
    return Markup(str(render.code_block(shown, "json")) + _cut_note(cut))
