"""Safe HTML for transcript text: a small Markdown subset, images and tool input.

Everything that comes from a transcript is HTML-escaped *before* any Markdown rule runs,
and the rules only wrap escaped text in a fixed set of tags (``p br h1-h6 strong em del
code pre blockquote ul ol li table thead tbody tr th td hr a``).  Links keep only
``http:``, ``https:`` and ``mailto:`` targets; Markdown images become plain links (no
remote loads).  The only ``<img>`` this module writes is a ``data:`` URL of a base64
image block whose media type is PNG, JPEG, GIF or WebP (never SVG).
"""

from __future__ import annotations

import re
from html import escape, unescape
from typing import Any

from markupsafe import Markup

# Longer texts are shown as preformatted text: the regexes below are linear per
# line but there is no point formatting megabytes of pasted logs.
MARKDOWN_LIMIT = 200_000
MAX_DEPTH = 8
IMAGE_TYPES = {"image/png", "image/jpeg", "image/gif", "image/webp"}
SAFE_SCHEMES = ("http://", "https://", "mailto:")

_ANSI = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]")
_BASE64 = re.compile(r"^[A-Za-z0-9+/]+={0,2}$")
_FENCE = re.compile(r"^ {0,3}(`{3,}|~{3,})[ \t]*([\w+#.-]*)")
_HEADING = re.compile(r"^ {0,3}(#{1,6})[ \t]+(.*)$")
_HR = re.compile(r"^ {0,3}([-*_])(?:[ \t]*\1){2,}[ \t]*$")
_QUOTE = re.compile(r"^ {0,3}> ?")
_ITEM = re.compile(r"^( *)([-*+]|\d{1,9}[.)])[ \t]+(.*)$")
_TABLE_SEP = re.compile(r"^ *\|? *:?-{2,}:? *(\| *:?-{2,}:? *)*\|? *$")

_BACKTICKS = re.compile(r"`+")
_LINK = re.compile(
    r"(!?)\[([^\]\n]{1,1000})\]\(([^()\s]{1,2000})(?:[ \t]{1,10}&quot;[^\n]{0,300}?&quot;)?\)"
)
_AUTOLINK = re.compile(r"\bhttps?://(?:(?!&lt;|&gt;|&quot;|&#x27;)[^\s\x00])+")
# Emphasis spans never contain their own delimiter, so a scan from an opener stops at the
# next delimiter: linear time even on lines full of unmatched ** or __.
_STRONG = re.compile(
    r"\*\*(?=\S)((?:[^*\n]|\*(?!\*))+?)(?<=\S)\*\*"
    r"|(?<!\w)__(?=\S)((?:[^_\n]|_(?!_))+?)(?<=\S)__(?!\w)"
)
_EM = re.compile(
    r"(?<![*\w])\*(?=[^\s*])([^*\n]+?)(?<=[^\s*])\*(?![*\w])|(?<!\w)_(?=\S)([^_\n]+?)(?<=\S)_(?!\w)"
)
_DEL = re.compile(r"~~(?=\S)((?:[^~\n]|~(?!~))+?)(?<=\S)~~")
_TOKEN = re.compile("\x00(\\d+)\x00")


def strip_ansi(text: str) -> str:
    return _ANSI.sub("", text)


def _clean(text: str) -> str:
    # NUL is the placeholder delimiter below; transcripts never need it.
    return strip_ansi(text).replace("\x00", "\ufffd").replace("\r\n", "\n").replace("\r", "\n")


def safe_url(url: str) -> str | None:
    """The URL if its scheme is allowed (after entity decoding), else None."""
    plain = unescape(url).strip()
    squashed = re.sub(r"[\x00-\x20\x7f]", "", plain).lower()
    if squashed.startswith(SAFE_SCHEMES) and plain == plain.replace(" ", ""):
        return plain
    return None


def _anchor(url: str, label_html: str) -> str:
    return (
        f'<a href="{escape(url, quote=True)}" rel="nofollow noopener noreferrer">{label_html}</a>'
    )


def inline(text: str) -> str:
    """Escape one run of text and apply the inline rules; returns HTML."""
    html = escape(text, quote=True)
    saved: list[str] = []

    def keep(fragment: str) -> str:
        saved.append(fragment)
        return f"\x00{len(saved) - 1}\x00"

    html = _code_spans(html, keep)

    def link(m: re.Match) -> str:
        bang, label, target = m.groups()
        url = safe_url(target)
        if url is None:
            return keep(m.group(0))
        if bang:
            return keep(_anchor(url, f"[image: {label}]"))
        return keep(_anchor(url, label))

    html = _LINK.sub(link, html)

    def autolink(m: re.Match) -> str:
        found = m.group(0)
        trail = re.search(r"[.,;:!?)\]']+$", found)
        tail = ""
        if trail:
            found, tail = found[: trail.start()], found[trail.start() :]
        url = safe_url(found)
        return (keep(_anchor(url, found)) if url else found) + tail

    html = _AUTOLINK.sub(autolink, html)
    html = _STRONG.sub(lambda m: f"<strong>{m.group(1) or m.group(2)}</strong>", html)
    html = _EM.sub(lambda m: f"<em>{m.group(1) or m.group(2)}</em>", html)
    html = _DEL.sub(lambda m: f"<del>{m.group(1)}</del>", html)
    for _ in range(3):  # link labels may hold code spans
        if "\x00" not in html:
            break
        html = _TOKEN.sub(lambda m: saved[int(m.group(1))], html)
    return html


def _code_spans(html: str, keep) -> str:
    """Replace `code` spans (a run of backticks up to the next run of the same length) by
    placeholders; paired by scanning the runs once, not by a backtracking regex."""
    runs = [(m.start(), m.end()) for m in _BACKTICKS.finditer(html)]
    if len(runs) < 2:
        return html
    next_same: list[int | None] = [None] * len(runs)
    seen: dict[int, int] = {}
    for i in range(len(runs) - 1, -1, -1):
        length = runs[i][1] - runs[i][0]
        next_same[i] = seen.get(length)
        seen[length] = i
    parts, pos, i = [], 0, 0
    while i < len(runs):
        j = next_same[i]
        if j is None:
            i += 1
            continue
        start, end = runs[i]
        parts.append(html[pos:start])
        parts.append(keep(f"<code>{html[end : runs[j][0]].strip()}</code>"))
        pos = runs[j][1]
        i = j + 1
    parts.append(html[pos:])
    return "".join(parts)


def _heading_text(text: str) -> str:
    """Heading text without a closing run of #s (done without a backtracking regex)."""
    text = text.rstrip()
    bare = text.rstrip("#")
    if bare != text and (not bare or bare[-1] in " \t"):
        return bare.rstrip()
    return text


def _cells(line: str) -> list[str]:
    line = line.strip()
    if line.startswith("|"):
        line = line[1:]
    if line.endswith("|"):
        line = line[:-1]
    return [c.strip() for c in line.split("|")]


def _starts_block(lines: list[str], i: int) -> bool:
    line = lines[i]
    return bool(
        _FENCE.match(line)
        or _HEADING.match(line)
        or _HR.match(line)
        or _QUOTE.match(line)
        or _ITEM.match(line)
        or ("|" in line and i + 1 < len(lines) and _TABLE_SEP.match(lines[i + 1]))
    )


def _blocks(lines: list[str], depth: int) -> list[str]:
    out: list[str] = []
    i, n = 0, len(lines)
    while i < n:
        line = lines[i]
        if not line.strip():
            i += 1
            continue
        if depth >= MAX_DEPTH:
            out.append(f"<p>{escape(chr(10).join(lines[i:]))}</p>")
            break
        fence = _FENCE.match(line)
        if fence:
            marker = fence.group(1)
            body: list[str] = []
            i += 1
            while i < n and not lines[i].strip().startswith(marker):
                body.append(lines[i])
                i += 1
            i += 1
            lang = fence.group(2)
            cls = f' class="language-{escape(lang, quote=True)}"' if lang else ""
            out.append(f"<pre><code{cls}>{escape(chr(10).join(body))}</code></pre>")
            continue
        heading = _HEADING.match(line)
        if heading:
            level = len(heading.group(1))
            out.append(f"<h{level}>{inline(_heading_text(heading.group(2)))}</h{level}>")
            i += 1
            continue
        if _HR.match(line):
            out.append("<hr>")
            i += 1
            continue
        if _QUOTE.match(line):
            quoted: list[str] = []
            while i < n and _QUOTE.match(lines[i]):
                quoted.append(_QUOTE.sub("", lines[i], count=1))
                i += 1
            out.append(f"<blockquote>{''.join(_blocks(quoted, depth + 1))}</blockquote>")
            continue
        item = _ITEM.match(line)
        if item:
            indent = len(item.group(1))
            ordered = item.group(2)[0].isdigit()
            items: list[list[str]] = []
            while i < n:
                m = _ITEM.match(lines[i])
                if m and len(m.group(1)) <= indent + 1 and m.group(2)[0].isdigit() == ordered:
                    items.append([m.group(3)])
                    i += 1
                elif items and lines[i].strip() and lines[i].startswith(" " * (indent + 2)):
                    items[-1].append(lines[i][indent + 2 :])
                    i += 1
                elif (
                    items
                    and not lines[i].strip()
                    and i + 1 < n
                    and lines[i + 1].startswith(" " * (indent + 2))
                ):
                    items[-1].append("")
                    i += 1
                else:
                    break
            tag = "ol" if ordered else "ul"
            start = ""
            if ordered:
                number = int(re.match(r"\d+", item.group(2)).group(0))
                start = f' start="{number}"' if number != 1 else ""
            lis = []
            for body in items:
                if len(body) == 1:
                    lis.append(f"<li>{inline(body[0])}</li>")
                else:
                    lis.append(f"<li>{''.join(_blocks(body, depth + 1))}</li>")
            out.append(f"<{tag}{start}>{''.join(lis)}</{tag}>")
            continue
        if "|" in line and i + 1 < n and _TABLE_SEP.match(lines[i + 1]):
            head = _cells(line)
            i += 2
            rows = []
            while i < n and "|" in lines[i] and lines[i].strip():
                rows.append(_cells(lines[i]))
                i += 1
            thead = "".join(f"<th>{inline(c)}</th>" for c in head)
            tbody = "".join(
                "<tr>" + "".join(f"<td>{inline(c)}</td>" for c in row) + "</tr>" for row in rows
            )
            out.append(f"<table><thead><tr>{thead}</tr></thead><tbody>{tbody}</tbody></table>")
            continue
        para = [line]
        i += 1
        while i < n and lines[i].strip() and not _starts_block(lines, i):
            para.append(lines[i])
            i += 1
        out.append("<p>" + "<br>\n".join(inline(p) for p in para) + "</p>")
    return out


def markdown(text: str | None) -> Markup:
    """Render Markdown text as safe HTML."""
    if not text:
        return Markup("")
    text = _clean(text)
    if len(text) > MARKDOWN_LIMIT:
        return Markup(f'<pre class="long-text">{escape(text)}</pre>')
    return Markup("\n".join(_blocks(text.split("\n"), 0)))


def pre(text: Any) -> Markup:
    """Preformatted, escaped text."""
    if text is None:
        return Markup("")
    if not isinstance(text, str):
        text = str(text)
    return Markup(f"<pre>{escape(_clean(text))}</pre>")


def image_src(block: dict) -> str | None:
    """A data: URL for a base64 image block of an allowed raster type, else None."""
    source = block.get("source")
    if not isinstance(source, dict) or source.get("type") != "base64":
        return None
    media = source.get("media_type")
    data = source.get("data")
    if media not in IMAGE_TYPES or not isinstance(data, str) or not data:
        return None
    data = re.sub(r"\s+", "", data)
    if not _BASE64.match(data):
        return None
    return f"data:{media};base64,{data}"


def image(block: dict) -> Markup:
    """An <img> for an image block, or a short note when it cannot be shown safely."""
    src = image_src(block)
    if src is None:
        source = block.get("source") if isinstance(block.get("source"), dict) else {}
        media = source.get("media_type") or source.get("type") or "unknown"
        return Markup(f'<p class="image-skipped">[image not shown: {escape(str(media))}]</p>')
    return Markup(f'<img class="transcript-image" alt="image" loading="lazy" src="{src}">')


# Titles -----------------------------------------------------------------------------------

_COMMAND_TAG = re.compile(
    r"<(command-name|command-message|command-args|command-contents|command|bash-input"
    r"|bash-stdout|bash-stderr|local-command-stdout|local-command-stderr"
    r"|local-command-caveat)>(.*?)</\1>",
    re.S,
)
_DROPPED_TAGS = {"command-message", "local-command-caveat"}


def command_tags(text: Any) -> dict[str, str] | None:
    """The tags of a record that holds only slash-command or ``!`` shell-command tags
    (``command-name``, ``bash-stdout``...), by name; None for any other text, such as a
    prompt that quotes a tag."""
    if not isinstance(text, str) or "<" not in text:
        return None
    tags: dict[str, str] = {}
    for name, value in _COMMAND_TAG.findall(text):
        tags.setdefault(name, strip_ansi(value))
    if not tags or _COMMAND_TAG.sub("", text).strip():
        return None
    return tags


def display_title(title: str | None) -> str | None:
    """A session title for display: the tags Claude Code wraps slash commands and ``!``
    shell commands in become plain text (``/model opus``, ``! uv run ty check``).  The
    archive keeps the raw title."""
    if not title or "<" not in title:
        return title
    parts = {name: value.strip() for name, value in _COMMAND_TAG.findall(title)}
    if not parts:
        return title
    if parts.get("command-name"):
        text = " ".join(p for p in (parts["command-name"], parts.get("command-args")) if p)
    else:

        def plain(m: re.Match) -> str:
            name, value = m.group(1), m.group(2).strip()
            if name in _DROPPED_TAGS:
                return " "
            return f" ! {value} " if name == "bash-input" else f" {value} "

        text = _COMMAND_TAG.sub(plain, title)
    text = " ".join(strip_ansi(text).split())
    return text or title


def session_label(title: str | None, session_id: str, project: str | None = None) -> str:
    """What a list shows for a session: its display title, or for a session without one
    (a warmup with no prompt) ``(no prompt) 1a2b3c4d · project``."""
    shown = display_title(title)
    if shown and shown != session_id:
        return shown
    label = f"(no prompt) {session_id[:8]}"
    return f"{label} · {project}" if project else label
