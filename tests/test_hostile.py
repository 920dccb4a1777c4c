"""A hostile transcript renders inert on every page: HTML in prompts, answers, thinking,
tool input and results, titles, summaries, paths, project directories and subagent meta
files is shown as text, and javascript:/SVG URLs never become links or images."""

from __future__ import annotations

import base64
import json
import re

import pytest

from datasette_claude_sessions import render

from .pages_helpers import build_archive, datasette_for, write_jsonl

SID = "e0000000-0000-4000-8000-00000000000e"
AGENT = "aevil01"
EVIL_SID = "x\"><script>alert('sid')</script>?a=1#b"
CWD = "/tmp/<script>alert('cwd')</script>/proj"
SVG = base64.b64encode(b"<svg xmlns='http://www.w3.org/2000/svg' onload='alert(1)'/>").decode()

DANGEROUS = [
    re.compile(r"<script[^>]*>[^<]*alert", re.I),
    re.compile(r"<(img|svg|iframe|a|object|embed)\b[^<>]*\bon\w+\s*=", re.I),
    re.compile(r"<(iframe|object|embed)\b", re.I),
    re.compile(
        r"""<[a-z][^<>]*\b(href|src|action)\s*=\s*["']?\s*(javascript:|vbscript:|data:text)""", re.I
    ),
    re.compile(r"""<[a-z][^<>]*\bsrc\s*=\s*["']?\s*data:image/svg""", re.I),
]


def envelope(uuid: str, parent: str | None, second: int) -> dict:
    return {
        "uuid": uuid,
        "parentUuid": parent,
        "sessionId": SID,
        "cwd": CWD,
        "gitBranch": "<img src=x onerror=alert('branch')>",
        "version": "2.1.17",
        "timestamp": f"2025-09-01T10:00:{second:02d}.000Z",
    }


def hostile_records() -> list[dict]:
    def msg(uuid, parent, second, rtype, content, **extra):
        role = "assistant" if rtype == "assistant" else "user"
        message = {"role": role, "content": content}
        if role == "assistant":
            message.update(id=f"msg_{uuid}", model="claude-<b>evil</b>")
        return {"type": rtype, "message": message, **envelope(uuid, parent, second), **extra}

    return [
        msg(
            "u1",
            None,
            1,
            "user",
            "Hi <script>alert('prompt')</script> [click](javascript:alert('md')) "
            "<img src=x onerror=alert('img')> [y](  JaVaScRiPt:alert('md3'))",
        ),
        msg(
            "u2",
            "u1",
            2,
            "assistant",
            [{"type": "thinking", "thinking": "<script>alert('thinking')</script>"}],
        ),
        msg(
            "u3",
            "u2",
            3,
            "assistant",
            [
                {
                    "type": "text",
                    "text": "<iframe src=\"javascript:alert('iframe')\"></iframe>\n"
                    "[x](JAVASCRIPT:alert('md2')) ![p](javascript:alert('mdimg'))\n"
                    "<a href=\"javascript:alert('a')\">a</a> **<svg onload=alert('bold')>**\n"
                    "```\n</code></pre><script>alert('fence')</script>\n```\n"
                    "| <script>alert('cell')</script> | b |\n|---|---|\n| 1 | 2 |",
                }
            ],
        ),
        msg(
            "u4",
            "u3",
            4,
            "assistant",
            [
                {
                    "type": "tool_use",
                    "id": "toolu_evil",
                    "name": "Task<script>alert('toolname')</script>",
                    "input": {
                        "file_path": "/tmp/<svg onload=alert('path')>.py",
                        "description": "<script>alert('desc')</script>",
                        "command": "<script>alert('cmd')</script>",
                    },
                }
            ],
        ),
        msg(
            "u5",
            "u4",
            5,
            "user",
            [
                {
                    "type": "tool_result",
                    "tool_use_id": "toolu_evil",
                    "is_error": True,
                    "content": [
                        {"type": "text", "text": "<script>alert('result')</script>"},
                        {
                            "type": "image",
                            "source": {
                                "type": "base64",
                                "media_type": "image/svg+xml",
                                "data": SVG,
                            },
                        },
                        {
                            "type": "image",
                            "source": {
                                "type": "base64",
                                "media_type": "image/png",
                                "data": "x\" onerror=\"alert('png')",
                            },
                        },
                    ],
                }
            ],
            toolUseResult={"agentId": AGENT, "status": "completed"},
        ),
        {
            "type": "custom-title",
            "customTitle": "<script>alert('title')</script>",
            "sessionId": SID,
        },
        {"type": "summary", "summary": "<script>alert('summary')</script>", "leafUuid": "u5"},
        {
            "type": "system",
            "content": "\x1b[31m<script>alert('system')</script>",
            "level": "error",
            **envelope("u6", "u5", 6),
        },
        msg("u7", None, 7, "user", "other session", sessionId=EVIL_SID),
    ]


def agent_records() -> list[dict]:
    base = envelope("a1", None, 4) | {"agentId": AGENT, "isSidechain": True}
    return [
        {
            "type": "user",
            "message": {"role": "user", "content": "<script>alert('agentprompt')</script>"},
            **base,
        },
        {
            "type": "assistant",
            "message": {
                "id": "msg_a2",
                "role": "assistant",
                "model": "m",
                "content": [{"type": "text", "text": "<img src=x onerror=alert('agentanswer')>"}],
            },
            **(envelope("a2", "a1", 5) | {"agentId": AGENT, "isSidechain": True}),
        },
    ]


@pytest.fixture(scope="module")
def hostile_db(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("hostile")
    project = tmp / "projects" / "-tmp--script-alert--cwd----script--proj"
    main = write_jsonl(project / f"{SID}.jsonl", hostile_records())
    with open(main, "a", encoding="utf-8") as f:
        f.write("<script>alert('badline')</script>\n")
    write_jsonl(project / SID / "subagents" / f"agent-{AGENT}.jsonl", agent_records())
    (project / SID / "subagents" / f"agent-{AGENT}.meta.json").write_text(
        json.dumps(
            {
                "agentType": "<img src=x onerror=alert('type')>",
                "description": "<script>alert('agentdesc')</script>",
            }
        ),
        encoding="utf-8",
    )
    return build_archive(tmp, real=False)


PAGES = [
    "/",
    "/-/claude-sessions",
    f"/-/claude-sessions/session/{SID}",
    f"/-/claude-sessions/session/{SID}?agent={AGENT}",
    "/-/claude-sessions/search?q=alert",
    "/-/claude-sessions/search?q=alert&kind=tool_use",
    "/-/claude-sessions/search?q=alert&kind=tool_result",
    "/-/claude-sessions/search?q=script&page=2",
    "/claude-sessions",
    "/claude-sessions/sessions_list",
    "/claude-sessions/sessions",
    f"/claude-sessions/sessions/{SID}",
    "/claude-sessions/projects",
    "/claude-sessions/events",
    "/claude-sessions/events?_search=alert",
    "/claude-sessions/events/1",
    "/claude-sessions/tool_calls",
    "/claude-sessions/subagents",
    "/claude-sessions/sync_files",
    "/claude-sessions/ingest_errors",
    "/claude-sessions/recent_sessions",
    "/claude-sessions/search?q=alert",
    "/claude-sessions/project_sessions?project=tmp",
    "/claude-sessions/failing_tool_calls",
    "/claude-sessions/sessions_touching_file?path=tmp",
    "/claude-sessions/ingest_errors",
]


@pytest.mark.asyncio
async def test_every_page_renders_hostile_data_inert(hostile_db):
    ds = datasette_for(hostile_db)
    for path in PAGES:
        response = await ds.client.get(path)
        assert response.status_code == 200, path
        for pattern in DANGEROUS:
            found = pattern.search(response.text)
            assert found is None, f"{path}: {found.group(0)!r}"


@pytest.mark.asyncio
async def test_hostile_text_is_shown_escaped(hostile_db):
    ds = datasette_for(hostile_db)
    html = (await ds.client.get(f"/-/claude-sessions/session/{SID}")).text
    for word in (
        "prompt",
        "thinking",
        "fence",
        "cell",
        "cmd",
        "result",
        "summary",
        "system",
        "agentprompt",
        "agentdesc",
    ):
        # A quote in a text node needs no escape (markdown-it-py leaves it as it is).
        assert any(
            f"&lt;script&gt;alert({q}{word}{q})" in html for q in ("&#39;", "&#x27;", "'")
        ), word
    assert "[image not shown: image/svg+xml]" in html
    assert "[image not shown: image/png]" in html
    assert "Subagent <code>aevil01</code>" in html  # nested under the Task call
    home = (await ds.client.get("/-/claude-sessions.json")).json()
    evil = next(r for r in home["recent"] if r["session_id"] == EVIL_SID)
    page = await ds.client.get(evil["url"])
    assert page.status_code == 200 and "other session" in page.text


@pytest.mark.asyncio
async def test_json_forms_are_json(hostile_db):
    ds = datasette_for(hostile_db)
    for path in (
        "/-/claude-sessions.json",
        f"/-/claude-sessions/session/{SID}.json",
        "/-/claude-sessions/search.json?q=alert",
    ):
        response = await ds.client.get(path)
        assert response.headers["content-type"].startswith("application/json"), path
        assert response.json()


@pytest.mark.parametrize(
    "text",
    [
        "[a](javascript:alert(1))",
        "[a](JaVaScRiPt:alert(1))",
        "[a](&#106;avascript:alert(1))",
        "[a](java\tscript:alert(1))",
        "[a](data:text/html;base64,PHNjcmlwdD4=)",
        "[a](vbscript:msgbox(1))",
        "![a](javascript:alert(1))",
        '[a](https://x.example/"onmouseover="alert(1))',
        "<https://x.example/><script>alert(1)</script>",
        "https://x.example/<script>alert(1)</script>",
        "`<script>alert(1)</script>`",
        "**<img src=x onerror=alert(1)>**",
        "> <svg onload=alert(1)>",
        "- <iframe src=javascript:alert(1)>",
        "# <script>alert(1)</script>",
        "| <b onmouseover=alert(1)> |\n|---|\n| x |",
    ],
)
def test_markdown_is_inert(text):
    html = str(render.markdown(text))
    for pattern in DANGEROUS:
        assert pattern.search(html) is None, html
    assert "<a " not in html or 'href="https://' in html
    assert not re.search(
        r"<(?!/?(p|br|h\d|strong|em|del|code|pre|blockquote|ul|ol|li|table|"
        r"thead|tbody|tr|th|td|hr|a|span)\b)[a-zA-Z]",
        html,
    ), html


def test_markdown_renders_the_common_subset():
    html = str(
        render.markdown(
            "# Title\n\nSome **bold**, *em*, `code` and [a link](https://example.com/?a=1&b=2).\n\n"
            "- one\n- two\n\n1. first\n2. second\n\n```python\nx = 1 < 2\n```"
        )
    )
    assert "<h1>Title</h1>" in html
    assert "<strong>bold</strong>" in html and "<em>em</em>" in html
    assert "<code>code</code>" in html
    assert 'href="https://example.com/?a=1&amp;b=2"' in html
    assert re.search(r"<ul>\s*<li>one</li>\s*<li>two</li>\s*</ul>", html)
    assert re.search(r"<ol>\s*<li>first</li>\s*<li>second</li>\s*</ol>", html)
    # Highlighted by Pygments: escaped text in <span class="hl-..."> markup.
    assert '<code class="language-python">' in html
    assert '<span class="hl-o">&lt;</span>' in html
    assert re.sub(r"<[^>]+>", "", html.split('language-python">')[1]).startswith("x = 1 &lt; 2")


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("Title\n=====\n\nbody", r"<h1>Title</h1>"),
        ("Sub\n---\n", r"<h2>Sub</h2>"),
        (
            "text\n\n    indented = code\n    more\n",
            r"<pre><code>indented = code\nmore</code></pre>",
        ),
        (
            "[the docs][d]\n\n[d]: https://docs.example/x",
            r'<a href="https://docs.example/x"[^>]*>the docs</a>',
        ),
        (r"\*not emphasis\* and 1\. not a list", r"<p>\*not emphasis\* and 1\. not a list</p>"),
        (
            "<https://a.example/b?c=1>",
            r'<a href="https://a.example/b\?c=1"[^>]*>https://a.example/b\?c=1</a>',
        ),
        (
            "see https://x.example/page.",
            r'<a href="https://x.example/page"[^>]*>https://x.example/page</a>\.',
        ),
        ("<mailto:me@example.com>", r'<a href="mailto:me@example.com"'),
        (
            "| op | meaning |\n|---|---|\n| `a \\| b` | or |\n",
            r"<td><code>a \| b</code></td>\s*<td>or</td>",
        ),
        (
            "| a | b |\n|--:|:-:|\n| 1 | 2 |",
            r'<td class="align-right">1</td>\s*<td class="align-center">2</td>',
        ),
        ("~~gone~~", r"<del>gone</del>"),
        ("3. three\n4. four", r'<ol start="3">'),
        (
            "![diagram](https://x.example/d.png)",
            r'<a href="https://x.example/d.png"[^>]*>\[image: diagram\]</a>',
        ),
        ("line one\nline two", r"line one<br>\s*line two"),
    ],
    ids=[
        "setext-h1",
        "setext-h2",
        "indented-code",
        "reference-link",
        "escapes",
        "autolink",
        "bare-url",
        "mailto",
        "pipe-in-table-code",
        "table-alignment",
        "strikethrough",
        "ordered-start",
        "image-as-link",
        "line-breaks",
    ],
)
def test_markdown_is_commonmark(text, expected):
    html = str(render.markdown(text))
    assert re.search(expected, html), html
    assert "<img" not in html and "style=" not in html


def test_markdown_raw_html_is_text():
    html = str(render.markdown("<div onclick=x>hi</div>\n\n<b>bold</b> <!-- c -->"))
    assert "<div" not in html and "<b>" not in html and "<!--" not in html
    assert "&lt;div onclick=x&gt;hi&lt;/div&gt;" in html and "&lt;b&gt;bold&lt;/b&gt;" in html


def test_images_only_for_raster_base64():
    png = base64.b64encode(b"\x89PNG\r\n\x1a\n").decode()
    ok = {"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": png}}
    assert render.image_src(ok) == f"data:image/png;base64,{png}"
    for media, data in (("image/svg+xml", png), ("text/html", png), ("image/png", 'a"b')):
        block = {"type": "image", "source": {"type": "base64", "media_type": media, "data": data}}
        assert render.image_src(block) is None
    url = {"type": "image", "source": {"type": "url", "url": "javascript:alert(1)"}}
    assert render.image_src(url) is None


@pytest.mark.parametrize(
    "text",
    [
        "# x" + " " * 50_000 + "y",
        "a " + "`" * 50_000 + "x",
        "a " + "``x" * 20_000,
        "**a " * 20_000,
        "__a " * 20_000,
        "~~a " * 20_000,
        "[a](b &quot;" * 20_000,
        "x | " * 20_000 + "\n" + "|--" * 20_000,
    ],
    ids=["heading", "backticks", "code-spans", "strong", "underscores", "del", "link", "table"],
)
def test_markdown_stays_linear_on_pathological_lines(text):
    # Each of these took minutes with backtracking regexes; now they render at once.
    html = str(render.markdown(text))
    assert html.startswith("<") and "<script" not in html
