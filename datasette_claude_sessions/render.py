"""Safe HTML for transcript text: Markdown (CommonMark + tables, strikethrough and bare
URLs, by markdown-it-py), highlighted code (Pygments), images and tool input.

Raw HTML in the text is never passed through (markdown-it-py's ``html`` option is off:
it is shown as text).  Links keep only ``http:``, ``https:`` and ``mailto:`` targets;
Markdown images become plain links (no remote loads).  The only ``<img>`` this module
writes is a ``data:`` URL of a base64 image block whose media type is PNG, JPEG, GIF or
WebP (never SVG).  Highlighted code is Pygments' ``<span class="...">`` markup of
escaped text.
"""

from __future__ import annotations

import fnmatch
import re
import threading
import time
from collections import OrderedDict
from html import escape, unescape
from typing import Any

from markdown_it import MarkdownIt
from markupsafe import Markup

from ingest import prompts

# Longer texts are shown as preformatted text: there is no point formatting megabytes of
# pasted logs.
MARKDOWN_LIMIT = 200_000
# Nesting (quotes in lists in quotes...) deeper than this is shown as text.
MAX_DEPTH = 20
# Code blocks longer than this are not highlighted.
HIGHLIGHT_LIMIT = 50_000
IMAGE_TYPES = {"image/png", "image/jpeg", "image/gif", "image/webp"}
SAFE_SCHEMES = ("http://", "https://", "mailto:")
LINK_REL = "nofollow noopener noreferrer"

_ANSI = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]")
_BASE64 = re.compile(r"^[A-Za-z0-9+/]+={0,2}$")
_ALIGN = re.compile(r"text-align:(left|right|center)")


def strip_ansi(text: str) -> str:
    return _ANSI.sub("", text)


def _clean(text: str) -> str:
    return strip_ansi(text).replace("\x00", "\ufffd").replace("\r\n", "\n").replace("\r", "\n")


def safe_url(url: str) -> str | None:
    """The URL if its scheme is allowed (after entity decoding), else None."""
    plain = unescape(url).strip()
    squashed = re.sub(r"[\x00-\x20\x7f]", "", plain).lower()
    if squashed.startswith(SAFE_SCHEMES) and plain == plain.replace(" ", ""):
        return plain
    return None


def _anchor(url: str, label_html: str) -> str:
    return f'<a href="{escape(url, quote=True)}" rel="{LINK_REL}">{label_html}</a>'


# Pygments ------------------------------------------------------------------------------

_LEXERS: dict[str, Any] = {}


def _lexer(language: str | None = None, filename: str | None = None):
    """A Pygments lexer by fence language or file name, or None (cached, never guessed
    from the content: guessing is slow and often wrong)."""
    from pygments.lexers import get_lexer_by_name
    from pygments.util import ClassNotFound

    key = f"l:{language.lower()}" if language else f"f:{(filename or '').rsplit('/', 1)[-1]}"
    if key in _LEXERS:
        return _LEXERS[key]
    lexer = None
    try:
        if language:
            lexer = get_lexer_by_name(language.lower(), stripnl=False, ensurenl=False)
        elif filename:
            cls = _lexer_class_for_filename(filename.rsplit("/", 1)[-1])
            lexer = cls(stripnl=False, ensurenl=False) if cls else None
    except ClassNotFound:
        lexer = None
    if len(_LEXERS) < 500:
        _LEXERS[key] = lexer
    return lexer


# Pygments' own file name lookup also asks every installed package for plugin lexers
# (entry points) on each call, which imports them: IPython's took 0.9 s on a first page.
# This index holds the built-in lexers' file name patterns; the choice among several
# matches is Pygments' (priority, a bonus for a pattern without '*', then class name).
_FILENAME_INDEX: tuple[dict, dict, list] | None = None


def _filename_index() -> tuple[dict, dict, list]:
    global _FILENAME_INDEX
    if _FILENAME_INDEX is None:
        from pygments.lexers._mapping import LEXERS

        exact: dict[str, list] = {}
        suffix: dict[str, list] = {}
        other: list = []
        for _module, name, _aliases, patterns, _mimes in LEXERS.values():
            for pattern in patterns:
                entry = (name, pattern)
                if not any(c in pattern for c in "*?["):
                    exact.setdefault(pattern, []).append(entry)
                elif pattern.startswith("*.") and not any(c in pattern[1:] for c in "*?["):
                    suffix.setdefault(pattern[1:], []).append(entry)
                else:
                    other.append((re.compile(fnmatch.translate(pattern)), entry))
        _FILENAME_INDEX = (exact, suffix, other)
    return _FILENAME_INDEX


def _lexer_class_for_filename(name: str):
    """The built-in Pygments lexer class Pygments picks for this file name, or None."""
    from pygments.lexers import find_lexer_class

    exact, suffix, other = _filename_index()
    entries = list(exact.get(name, ()))
    dot = name.find(".")
    while dot != -1:
        entries += suffix.get(name[dot:], ())
        dot = name.find(".", dot + 1)
    entries += [entry for regex, entry in other if regex.match(name)]
    if not entries:
        return None
    rated = []
    for lexer_name, pattern in entries:
        cls = find_lexer_class(lexer_name)
        bonus = 0.5 if "*" not in pattern else 0
        rated.append(((cls.priority + bonus, cls.__name__), cls))
    return max(rated, key=lambda r: r[0])[1]


_FORMATTER = None
# Highlighted code by (lexer key, code): a page drawn again costs no Pygments time.
_HL_CACHE: OrderedDict[tuple, str] = OrderedDict()
_HL_CACHE_CHARS = 20_000_000
_hl_cache_chars = 0
_HL_LOCK = threading.Lock()
_budget = threading.local()


def highlight_budget(seconds: float | None) -> None:
    """Give the drawing done next in this thread at most ``seconds`` of Pygments time
    (None: no limit).  Past it, code is shown plain: a page full of long files stays
    fast the first time, and is highlighted as it is drawn again (the cache above)."""
    _budget.left = seconds


def highlight_spans(code: str, language: str | None = None, filename: str | None = None):
    """Code as escaped HTML with Pygments ``<span class>`` markup (no surrounding tags), or
    None when no lexer fits, the code is too long or this page's budget is spent."""
    global _FORMATTER, _hl_cache_chars
    if len(code) > HIGHLIGHT_LIMIT:
        return None
    lexer = _lexer(language, filename)
    if lexer is None:
        return None
    key = (id(lexer), code)
    with _HL_LOCK:
        cached = _HL_CACHE.get(key)
        if cached is not None:
            _HL_CACHE.move_to_end(key)
            return cached
    left = getattr(_budget, "left", None)
    if left is not None and left <= 0:
        return None
    from pygments import highlight
    from pygments.formatters import HtmlFormatter

    if _FORMATTER is None:
        _FORMATTER = HtmlFormatter(nowrap=True, classprefix="hl-")
    started = time.perf_counter()
    spans = highlight(code, lexer, _FORMATTER)
    if left is not None:
        _budget.left = left - (time.perf_counter() - started)
    with _HL_LOCK:
        _HL_CACHE[key] = spans
        _hl_cache_chars += len(code) + len(spans)
        while _hl_cache_chars > _HL_CACHE_CHARS and _HL_CACHE:
            (_lex, old_code), old_spans = _HL_CACHE.popitem(last=False)
            _hl_cache_chars -= len(old_code) + len(old_spans)
    return spans


def code_block(code: str, language: str | None = None, filename: str | None = None) -> Markup:
    """A <pre><code> block, highlighted when a lexer fits."""
    code = _clean(code)
    cls = f' class="language-{escape(language, quote=True)}"' if language else ""
    spans = highlight_spans(code, language, filename)
    if spans is None:
        return Markup(f"<pre><code{cls}>{escape(code)}</code></pre>")
    return Markup(f'<pre class="highlight"><code{cls}>{spans}</code></pre>')


# Markdown ------------------------------------------------------------------------------


def _validate_link(url: str) -> bool:
    return safe_url(url) is not None


def _render_image(self, tokens, idx, options, env) -> str:
    token = tokens[idx]
    src = safe_url(token.attrGet("src") or "")
    label = escape(self.renderInlineAsText(token.children or [], options, env))
    if src is None:
        return f"[image: {label}]"
    return _anchor(src, f"[image: {label}]")


def _render_link_open(self, tokens, idx, options, env) -> str:
    token = tokens[idx]
    token.attrSet("rel", LINK_REL)
    for name in list(token.attrs):
        if name not in ("href", "rel"):
            del token.attrs[name]
    return self.renderToken(tokens, idx, options, env)


def _render_cell_open(self, tokens, idx, options, env) -> str:
    # Alignment as a class, not an inline style (the Content-Security-Policy has no
    # 'unsafe-inline' styles).
    token = tokens[idx]
    style = token.attrGet("style") or ""
    token.attrs.pop("style", None)
    m = _ALIGN.search(style)
    if m:
        token.attrSet("class", f"align-{m.group(1)}")
    return self.renderToken(tokens, idx, options, env)


def _render_fence(self, tokens, idx, options, env) -> str:
    token = tokens[idx]
    info = unescape(token.info or "").strip()
    language = info.split(maxsplit=1)[0] if info else None
    if language and not re.fullmatch(r"[\w+#.-]{1,40}", language):
        language = None
    return str(code_block(token.content.removesuffix("\n"), language)) + "\n"


def _render_code_block(self, tokens, idx, options, env) -> str:
    return f"<pre><code>{escape(tokens[idx].content.removesuffix(chr(10)))}</code></pre>\n"


def _make_markdown() -> MarkdownIt:
    md = MarkdownIt(
        "commonmark",
        {"html": False, "linkify": True, "breaks": True, "xhtmlOut": False, "typographer": False},
    )
    md.enable(["table", "strikethrough", "linkify"])
    md.options["maxNesting"] = MAX_DEPTH
    # Only URLs with a scheme become links: "renderer.py" or "README.md" in a sentence
    # must stay text (fuzzy linking takes .py and .md for top-level domains).
    md.linkify.set({"fuzzy_link": False, "fuzzy_email": False})
    md.validateLink = _validate_link
    rules = md.add_render_rule
    rules("image", _render_image)
    rules("link_open", _render_link_open)
    rules("th_open", _render_cell_open)
    rules("td_open", _render_cell_open)
    rules("fence", _render_fence)
    rules("code_block", _render_code_block)
    rules("s_open", lambda self, tokens, idx, options, env: "<del>")
    rules("s_close", lambda self, tokens, idx, options, env: "</del>")
    return md


_MD: MarkdownIt | None = None


_MD_CACHE: OrderedDict[str, str] = OrderedDict()
_MD_CACHE_SIZE = 20_000
_MD_CACHE_TEXT = 20_000  # longer texts are not kept


def markdown(text: str | None) -> Markup:
    """Render Markdown text as safe HTML (kept in a cache of recent texts)."""
    global _MD
    if not text:
        return Markup("")
    with _HL_LOCK:
        cached = _MD_CACHE.get(text)
        if cached is not None:
            _MD_CACHE.move_to_end(text)
            return Markup(cached)
    source = text
    text = _clean(text)
    if len(text) > MARKDOWN_LIMIT:
        return Markup(f'<pre class="long-text">{escape(text)}</pre>')
    if _MD is None:
        _MD = _make_markdown()
    html = _MD.render(text)
    if len(source) <= _MD_CACHE_TEXT and '<pre class="highlight">' not in html:
        with _HL_LOCK:
            _MD_CACHE[source] = html
            while len(_MD_CACHE) > _MD_CACHE_SIZE:
                _MD_CACHE.popitem(last=False)
    return Markup(html)


def inline(text: str) -> str:
    """One line of Markdown without a surrounding paragraph; returns HTML."""
    global _MD
    if _MD is None:
        _MD = _make_markdown()
    return _MD.renderInline(_clean(text))


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
    if title.lstrip().startswith(tuple(f"<{t}>" for t in prompts.CONTEXT_TAGS)):
        # An archive titled before context was told from prompts (the next sync fixes it).
        return prompts.typed_text(title) or None
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


# Warming ---------------------------------------------------------------------------------

# Languages whose Pygments lexers are built at startup: building one compiles its
# regular expressions (2-60 ms each), once per process.  Others are built on first use.
WARM_LANGUAGES = ("python", "javascript", "typescript", "json", "bash", "diff", "markdown")
WARM_FILES = ("x.py", "x.js", "x.ts", "x.tsx", "x.json", "x.sh", "x.md", "x.html", "x.yaml")
_WARM_MARKDOWN = (
    "# Title\n\nSome *text* with `code`, a [link](https://example.com) and "
    "https://example.org.\n\n1. one\n2. two\n\n- a\n- b\n\n> quote\n\n"
    "| a | b |\n|---|:-:|\n| `x` | y |\n\n```python\nx = 1\n```\n"
)
_warmed = False


def warm() -> None:
    """Do the one-time work of the first transcript page now (once per process): the
    Markdown parser and its link finder, the file name index, the lexers of common
    languages and the HTML formatter."""
    global _warmed
    if _warmed:
        return
    _warmed = True
    _filename_index()
    for language in WARM_LANGUAGES:
        _lexer(language)
    for name in WARM_FILES:
        _lexer(filename=name)
    saved = getattr(_budget, "left", None)
    highlight_budget(None)
    try:
        markdown(_WARM_MARKDOWN)
        highlight_spans("x = 1\n", "python")
    finally:
        highlight_budget(saved)
