"""How a transcript reads: tools like a code review, context that is not a prompt,
numbers and navigation.  Real archives (synced from files) through a real Datasette."""

from __future__ import annotations

import html as html_module
import re
import sqlite3

import pytest

from ingest.lines import register as register_lines

from .pages_helpers import build_archive, datasette_for, fixture, write_jsonl

REVIEW = "4e71e4e4-0000-4000-8000-00000000c0de"


def _line(i: int, parent: str | None, **rec) -> dict:
    base = {
        "sessionId": REVIEW,
        "cwd": "/work/review",
        "version": "2.0.50",
        "gitBranch": "main",
        "uuid": f"u{i}",
        "parentUuid": parent,
        "timestamp": f"2025-09-01T10:00:{i:02d}.000Z",
    }
    base.update(rec)
    return base


def _assistant(i: int, content: list, usage: dict | None = None) -> dict:
    return _line(
        i,
        f"u{i - 1}" if i else None,
        type="assistant",
        requestId=f"req_{i}",
        message={
            "id": f"msg_{i}",
            "role": "assistant",
            "model": "claude-sonnet-4-5-20250929",
            "content": content,
            "usage": usage
            or {
                "input_tokens": 10,
                "output_tokens": 200,
                "cache_read_input_tokens": 5000,
                "cache_creation_input_tokens": 300,
            },
        },
    )


def _user(i: int, content, **extra) -> dict:
    return _line(
        i,
        f"u{i - 1}" if i else None,
        type="user",
        message={"role": "user", "content": content},
        **extra,
    )


def _result(i: int, tool_id: str, text: str, **extra) -> dict:
    return _user(i, [{"type": "tool_result", "tool_use_id": tool_id, "content": text}], **extra)


def _tool(i: int, tool_id: str, name: str, data: dict) -> dict:
    return _assistant(i, [{"type": "tool_use", "id": tool_id, "name": name, "input": data}])


def review_session() -> list[dict]:
    return [
        _user(
            0,
            [
                {
                    "type": "text",
                    "text": "<ide_opened_file>The user opened the file /work/review/app.py in "
                    "the IDE. This may or may not be related to the current task."
                    "</ide_opened_file>",
                },
                {"type": "text", "text": "Rename **total** to sum\n\n1. in app.py\n2. in tests"},
            ],
        ),
        _tool(
            1,
            "t_edit",
            "Edit",
            {
                "file_path": "/work/review/app.py",
                "old_string": "def f(x):\n    total = x + 1\n    return total",
                "new_string": "def f(x):\n    sum_ = x + 1\n    return sum_",
            },
        ),
        _result(2, "t_edit", "The file /work/review/app.py has been updated."),
        _tool(
            3,
            "t_multi",
            "MultiEdit",
            {
                "file_path": "/work/review/test_app.py",
                "edits": [
                    {"old_string": "assert total", "new_string": "assert sum_"},
                    {"old_string": "x = 1", "new_string": "x = 2"},
                ],
            },
        ),
        _result(4, "t_multi", "Applied 2 edits"),
        _tool(
            5,
            "t_write",
            "Write",
            {"file_path": "/work/review/notes.py", "content": "import os\n\nprint(os.sep)\n"},
        ),
        _result(6, "t_write", "File created successfully"),
        _tool(
            7,
            "t_bash",
            "Bash",
            {"command": "pytest -q tests/", "description": "Run the tests"},
        ),
        _result(8, "t_bash", "3 passed in 0.01s"),
        _tool(9, "t_read", "Read", {"file_path": "/work/review/app.py", "offset": 10, "limit": 5}),
        _result(10, "t_read", "    10→def f(x):\n    11→    sum_ = x + 1"),
        _tool(
            11,
            "t_todo",
            "TodoWrite",
            {
                "todos": [
                    {"content": "Rename in app", "status": "completed", "activeForm": "Renaming"},
                    {"content": "Rename in tests", "status": "in_progress", "activeForm": "R"},
                    {"content": "Update docs", "status": "pending", "activeForm": "Updating"},
                ]
            },
        ),
        _result(12, "t_todo", "Todos have been modified successfully"),
        _tool(13, "t_odd", "FancyTool", {"knob": 3, "label": "<b>x</b>"}),
        _result(14, "t_odd", "ok"),
        _assistant(15, [{"type": "text", "text": "Done: `sum_` everywhere."}]),
    ]


@pytest.fixture(scope="module")
def review_db(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("review")
    write_jsonl(tmp / "projects" / "-work-review" / f"{REVIEW}.jsonl", review_session())
    return build_archive(tmp, real=False)


async def _page(db, session_id=REVIEW, query=""):
    ds = datasette_for(db)
    response = await ds.client.get(f"/-/claude-sessions/session/{session_id}{query}")
    assert response.status_code == 200, response.text[:500]
    return response.text


def _tool_block(html: str, name: str) -> str:
    start = html.index(f'class="cs-tool cs-tool-{name.lower()} ')
    return html[start : html.index("</details>", start)]


@pytest.mark.asyncio
async def test_edit_and_multiedit_are_diffs(review_db):
    html = await _page(review_db)
    edit = _tool_block(html, "Edit")
    assert " open>" in edit.split("\n", 1)[0]
    assert "<del>-     total = x + 1</del>" in edit
    assert "<ins>+     sum_ = x + 1</ins>" in edit
    assert "<del>-     return total</del>" in edit and "<ins>+     return sum_</ins>" in edit
    assert '<span class="cs-diff-ctx">  def f(x):</span>' in edit  # unchanged context
    assert "(−2 +2)" in edit
    multi = _tool_block(html, "MultiEdit")
    assert "edit 1 of 2" in multi and "edit 2 of 2" in multi
    assert "<del>- assert total</del>" in multi and "<ins>+ x = 2</ins>" in multi
    assert "2 edits, −2 +2" in multi


@pytest.mark.asyncio
async def test_write_is_highlighted_by_extension(review_db):
    write = _tool_block(await _page(review_db), "Write")
    assert "<code>/work/review/notes.py</code>" in write and "3 lines" in write
    assert '<pre class="highlight">' in write
    assert '<span class="hl-kn">import</span>' in write  # Python keyword, by .py


@pytest.mark.asyncio
async def test_bash_read_todo_and_unknown_tools(review_db):
    html = await _page(review_db)
    bash = _tool_block(html, "Bash")
    assert "Run the tests" in bash and "pytest -q tests/" in re.sub(r"<[^>]+>", "", bash)
    assert "3 passed in 0.01s" in html  # its output, in the result
    read = _tool_block(html, "Read")
    assert " open>" not in read.split("\n", 1)[0]  # folded
    assert "/work/review/app.py lines 10–14" in read
    todo = _tool_block(html, "TodoWrite")
    assert re.search(r'cs-todo-completed"[^>]*>.*☑.*Rename in app', todo)
    assert re.search(r'cs-todo-in_progress"[^>]*>.*◐.*Rename in tests', todo)
    assert re.search(r'cs-todo-pending"[^>]*>.*☐.*Update docs', todo)
    assert "3 todos: 1 completed, 1 in progress, 1 pending" in todo
    odd = _tool_block(html, "FancyTool")
    text = html_module.unescape(re.sub(r"<[^>]+>", "", odd))
    assert '"knob": 3' in text and "&lt;b&gt;x&lt;/b&gt;" in odd and "<b>x" not in odd


@pytest.mark.asyncio
async def test_real_edits_render_as_diffs(tmp_path):
    db = build_archive(tmp_path, extra={"-tmp-edit/e1.jsonl": fixture("edit_tool.jsonl")})
    conn = sqlite3.connect(db)
    register_lines(conn)
    sid, calls = conn.execute(
        "select session_id, count(*) from tool_calls where name = 'Edit' group by session_id "
        "order by 2 desc limit 1"
    ).fetchone()
    conn.close()
    html = await _page(db, sid, "?size=2000")
    assert html.count('<pre class="cs-diff">') >= calls
    assert "<del>- " in html and "<ins>+ " in html


# Numbers --------------------------------------------------------------------------------


@pytest.mark.asyncio
async def test_each_message_shows_its_tokens_and_cost(review_db):
    html = await _page(review_db)
    lines = re.findall(r'<span class="cs-usage"[^>]*>([^<]*)</span>', html)
    assert len(lines) == 8  # eight assistant messages, each counted once
    for line in lines:
        assert re.fullmatch(r"in 10 · out 200 · cache read 5k · cache write 300 · \$0\.\d{4}", line)
    conn = sqlite3.connect(review_db)
    register_lines(conn)
    cost = conn.execute("select sum(cost_usd), count(*) from api_calls").fetchone()
    conn.close()
    head = html[: html.index('class="cs-transcript"')]
    assert "Bash, Edit, FancyTool, MultiEdit, Read, TodoWrite, Write" in head
    assert re.search(r"in 80 · out 1.6k · cache read 40k · cache write 2.4k · \$[\d.]+", head)
    assert f"${cost[0]:,.2f}" in head and "over 8 API calls" in head
    assert "<code>claude-sonnet-4-5-20250929</code>" in head
    assert "(15.0 s)" in head  # duration, first to last line


@pytest.mark.asyncio
async def test_resume_command_and_navigation(review_db):
    html = await _page(review_db)
    assert (
        f'<code id="cs-resume-command">cd /work/review &amp;&amp; claude --resume {REVIEW}</code>'
        in html
    )
    assert 'data-copy="cs-resume-command"' in html
    assert 'data-jump="cs-prompt" data-step="1"' in html
    assert 'data-jump="cs-prompt" data-step="-1"' in html
    # The buttons work from a static file (the CSP allows no inline script of ours).
    assert re.search(r'<script src="[^"]*/datasette-claude-sessions/transcript.js"', html)


NESTED = "29ccd257-68b1-427f-ae5f-6524b7cb6f20"  # samples/real: subagent a2271d1


@pytest.fixture(scope="module")
def real_db(tmp_path_factory):
    return build_archive(tmp_path_factory.mktemp("real"))


@pytest.mark.asyncio
async def test_subagent_page_shows_its_own_facts(real_db):
    main = await _page(real_db, NESTED)
    agent = await _page(real_db, NESTED, "?agent=a2271d1")
    head = agent[: agent.index('class="cs-transcript"')]
    # The subagent's span (17:34:46 -> 17:35:54), not the session's (17:34:42 -> 17:36:01).
    assert "2026-01-23 17:34:46 → 2026-01-23 17:35:54 UTC" in head
    assert "17:36:01" not in head
    assert "59 events, 1 prompt, 24 tool calls" in head
    assert "over 10 API calls" in head  # its own responses, not the session's 12
    assert "Resume" not in head
    main_head = main[: main.index('class="cs-transcript"')]
    assert "2026-01-23 17:34:42 → 2026-01-23 17:36:01 UTC" in main_head
    assert "25 tool calls" in main_head and "over 12 API calls" in main_head
    # Nested under its Task call, with its own totals in the summary.
    summary = main[main.index('<details class="cs-subagent">') :]
    summary = summary[: summary.index("</summary>")]
    assert "59 events · 1m 07s · 24 tool calls" in summary and "over" not in summary


# Context is not a prompt ----------------------------------------------------------------

COMMANDS_ONLY = "c0aa0a0d-0000-4000-8000-0000000000c1"


def commands_only_session() -> list[dict]:
    lines = [
        "<command-message>model is running…</command-message>\n"
        "<command-name>/model</command-name>\n<command-args>opus</command-args>",
        "<local-command-stdout>Set model to opus</local-command-stdout>",
        [{"type": "text", "text": "<system-reminder>Remember the rules.</system-reminder>"}],
        "<command-name>/exit</command-name>\n<command-message>exit</command-message>",
        "[Request interrupted by user]",
    ]
    out = []
    for i, content in enumerate(lines):
        rec = _user(i, content)
        rec["sessionId"] = COMMANDS_ONLY
        rec["uuid"], rec["parentUuid"] = f"c{i}", (f"c{i - 1}" if i else None)
        out.append(rec)
    return out


@pytest.fixture(scope="module")
def context_db(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("context")
    write_jsonl(tmp / "projects" / "-work-review" / f"{REVIEW}.jsonl", review_session())
    write_jsonl(
        tmp / "projects" / "-work-review" / f"{COMMANDS_ONLY}.jsonl", commands_only_session()
    )
    return build_archive(tmp, real=False)


def test_user_text_kinds():
    from ingest.prompts import kind_of_user_text, typed_text

    ide = "<ide_opened_file>The user opened the file /a.py in the IDE.</ide_opened_file>"
    assert kind_of_user_text(ide) == "context"
    assert (
        kind_of_user_text(ide + "\nFix it") == "prompt" and typed_text(ide + "\nFix it") == "Fix it"
    )
    assert kind_of_user_text("<command-name>/model</command-name>") == "command"
    assert kind_of_user_text("<local-command-stdout>x</local-command-stdout>") == "command"
    assert kind_of_user_text("<bash-input>ls</bash-input>") == "command"
    assert kind_of_user_text("<system-reminder>x</system-reminder>") == "context"
    assert kind_of_user_text("[Request interrupted by user]") == "context"
    assert kind_of_user_text("Why does <system-reminder> show up?") == "prompt"
    assert kind_of_user_text("a < b") == "prompt"


@pytest.mark.asyncio
async def test_context_is_a_note_and_titles_come_from_typed_text(context_db):
    conn = sqlite3.connect(context_db)
    register_lines(conn)
    title, prompts, first = conn.execute(
        "select title, prompts, first_prompt from sessions where session_id = ?", (REVIEW,)
    ).fetchone()
    kinds = [
        r[0]
        for r in conn.execute(
            "select kind from events where type = 'user' and session_id = ? order by id", (REVIEW,)
        )
    ]
    conn.close()
    assert title == "Rename **total** to sum 1. in app.py 2. in tests" and prompts == 1
    assert first.startswith("Rename") and "ide_opened_file" not in first
    assert kinds[0] == "prompt"
    html = await _page(context_db)
    assert "&lt;ide_opened_file&gt;" not in html and "<ide_opened_file>" not in html
    assert re.search(
        r'<p class="cs-context"><span class="cs-context-label">Opened in the IDE</span> '
        r'<code class="cs-context-detail">/work/review/app.py</code></p>',
        html,
    )
    prompt = html[html.index('class="cs-event cs-prompt') :]
    prompt = prompt[: prompt.index('class="cs-event ', 10)]
    assert re.search(r"<ol>\s*<li>in app.py</li>\s*<li>in tests</li>\s*</ol>", prompt)
    assert "<strong>total</strong>" in prompt
    assert "<title>Rename **total** to sum" in html


@pytest.mark.asyncio
async def test_commands_are_not_prompts(context_db):
    conn = sqlite3.connect(context_db)
    register_lines(conn)
    title, prompts = conn.execute(
        "select title, prompts from sessions where session_id = ?", (COMMANDS_ONLY,)
    ).fetchone()
    kinds = [
        r[0]
        for r in conn.execute(
            "select kind from events where session_id = ? order by id", (COMMANDS_ONLY,)
        )
    ]
    conn.close()
    assert (title, prompts) == (None, 0)
    assert kinds == ["command", "command", "context", "command", "context"]
    html = await _page(context_db, COMMANDS_ONLY)
    assert "<h1>(no prompt) c0aa0a0d" in html
    assert "0 prompts" in html
    assert '<p class="cs-command"><code>/model opus</code></p>' in html
    assert '<p class="cs-command"><code>/exit</code></p>' in html
    assert "System reminder" in html and 'class="cs-event cs-context' in html
    assert 'class="cs-event cs-prompt' not in html
    ds = datasette_for(context_db)
    home = (await ds.client.get("/-/claude-sessions.json")).json()
    assert COMMANDS_ONLY not in {r["session_id"] for r in home["recent"]}
    search = (await ds.client.get("/-/claude-sessions/search.json?q=opus&kind=command")).json()
    assert search["hits"] and {h["kind"] for h in search["hits"]} == {"command"}


def test_migration_recomputes_kinds_and_titles(tmp_path):
    from ingest.migrations import ensure_schema
    from ingest.schema import connect

    write_jsonl(tmp_path / "projects" / "-work-review" / f"{REVIEW}.jsonl", review_session())
    write_jsonl(
        tmp_path / "projects" / "-work-review" / f"{COMMANDS_ONLY}.jsonl", commands_only_session()
    )
    db = build_archive(tmp_path, real=False)
    conn = connect(str(db))
    # Make it look like an archive written before m501: every user text a 'prompt', the
    # sessions counted and titled that way.
    ids = [r[0] for r in conn.execute("select id from events where kind in ('command', 'context')")]
    assert len(ids) == 5
    for event_id in ids:
        conn.execute(
            "insert into events_fts (events_fts, rowid, text, kind) select 'delete', id, text, "
            "kind from events where id = ?",
            (event_id,),
        )
        conn.execute("update events set kind = 'prompt' where id = ?", (event_id,))
        conn.execute(
            "insert into events_fts (rowid, text, kind) select id, text, kind from events "
            "where id = ?",
            (event_id,),
        )
    conn.execute(
        "update sessions set prompts = 5, title = '<ide_opened_file>The user opened' "
        "where session_id = ?",
        (REVIEW,),
    )
    conn.execute("update sessions set prompts = 5 where session_id = ?", (COMMANDS_ONLY,))
    conn.execute("delete from _sqlite_migrations where name = 'm501_context_is_not_a_prompt'")
    ensure_schema(conn)
    rows = dict(conn.execute("select session_id, prompts from sessions").fetchall())
    assert rows == {REVIEW: 1, COMMANDS_ONLY: 0}
    assert (
        conn.execute("select title from sessions where session_id = ?", (REVIEW,))
        .fetchone()[0]
        .startswith("Rename")
    )
    counts = dict(conn.execute("select kind, count(*) from events where type = 'user' group by 1"))
    assert counts["command"] == 3 and counts["context"] == 2
    # The index says the same: kind filters find them under their new kinds.
    found = conn.execute(
        "select count(*) from events_fts where events_fts match 'kind : command'"
    ).fetchone()[0]
    stale = conn.execute(
        "select count(*) from events_fts where events_fts match 'text : opus AND kind : prompt'"
    ).fetchone()[0]
    assert (found, stale) == (3, 0)
    conn.execute("insert into events_fts (events_fts) values ('integrity-check')")
    conn.close()


# Links from tables and saved queries ----------------------------------------------------


@pytest.mark.asyncio
async def test_saved_queries_and_tables_link_to_transcripts(real_db):
    ds = datasette_for(real_db)
    links = re.compile(r'href="(/-/claude-sessions/(?:session|event|call)/[^"]+)"')
    pages = {
        "recent_sessions": "/claude-sessions/recent_sessions",
        "search": "/claude-sessions/search?q=cache",
        "failing_tool_calls": "/claude-sessions/failing_tool_calls",
        "longest_sessions": "/claude-sessions/longest_sessions",
        "sessions_touching_file": "/claude-sessions/sessions_touching_file?path=renderer",
        "project_sessions": "/claude-sessions/project_sessions?project=claude",
        "sessions": "/claude-sessions/sessions?_size=max",
        "sessions_list": "/claude-sessions/sessions_list?_size=max",
        "events": "/claude-sessions/events?_size=20",
        "tool_calls": "/claude-sessions/tool_calls?_size=20",
        "subagents": "/claude-sessions/subagents",
        "api_calls": "/claude-sessions/api_calls?_size=20",
    }
    for name, path in pages.items():
        response = await ds.client.get(path)
        assert response.status_code == 200, (name, response.status_code)
        rows = response.text.count("<tr") - 1
        found = links.findall(response.text)
        assert rows > 0 and len(found) >= rows, (name, rows, len(found))
        # Every link leads to a transcript page (redirects included).
        for url in sorted(set(found))[:3]:
            target = await ds.client.get(html_module.unescape(url), follow_redirects=True)
            assert target.status_code == 200, (name, url)
            assert 'class="cs-transcript"' in target.text, (name, url)
    # sessions: every row links, titled or not (13 of 28 did).
    sessions = (await ds.client.get("/claude-sessions/sessions?_size=max")).text
    conn = sqlite3.connect(real_db)
    register_lines(conn)
    count = conn.execute("select count(*) from sessions").fetchone()[0]
    event_id, session_id = conn.execute(
        "select event_id, session_id from tool_calls where is_error = 1 limit 1"
    ).fetchone()
    conn.close()
    titled = re.findall(
        r'<td class="col-title[^"]*"><a href="/-/claude-sessions/session/', sessions
    )
    assert len(titled) == count
    # A line link opens the line's page, at the line.
    jump = await ds.client.get(f"/-/claude-sessions/event/{event_id}")
    assert jump.status_code == 302
    assert jump.headers["location"].endswith(f"#e{event_id}")
    assert session_id in jump.headers["location"]
    assert (await ds.client.get("/-/claude-sessions/event/999999999")).status_code == 404
    assert (await ds.client.get("/-/claude-sessions/call/nope")).status_code == 404


# Subagents of every layout ---------------------------------------------------------------

INLINE = "1a1a1a1a-0000-4000-8000-0000000000aa"


def inline_sidechain_session() -> list[dict]:
    """A 1.0.x session: three parallel Task calls whose subagents' lines are written
    inline (isSidechain, no agentId), interleaved by time."""
    base = {"sessionId": INLINE, "cwd": "/work/old", "version": "1.0.98", "isSidechain": False}
    t = iter(range(100))

    def stamp():
        return f"2025-08-20T10:00:{next(t):02d}.000Z"

    lines = [
        dict(
            base,
            type="user",
            uuid="p0",
            parentUuid=None,
            timestamp=stamp(),
            message={"role": "user", "content": "Look at the three modules"},
        )
    ]
    calls = []
    for n in (1, 2, 3):
        calls.append(
            {
                "type": "tool_use",
                "id": f"toolu_task{n}",
                "name": "Task",
                "input": {
                    "description": f"Module {n}",
                    "prompt": f"Study module {n}",
                    "subagent_type": "general-purpose",
                },
            }
        )
    lines.append(
        dict(
            base,
            type="assistant",
            uuid="a1",
            parentUuid="p0",
            timestamp=stamp(),
            requestId="req_main",
            message={
                "id": "msg_main",
                "role": "assistant",
                "model": "claude-opus-4-1",
                "content": calls,
            },
        )
    )
    side = dict(base, isSidechain=True)
    # roots, then their steps interleaved: 1, 2, 3, 1, 2, 3
    for n in (1, 2, 3):
        lines.append(
            dict(
                side,
                type="user",
                uuid=f"r{n}",
                parentUuid=None,
                timestamp=stamp(),
                message={"role": "user", "content": f"Study module {n}"},
            )
        )
    for step in (1, 2):
        for n in (1, 2, 3):
            lines.append(
                dict(
                    side,
                    type="assistant",
                    uuid=f"s{n}{step}",
                    parentUuid=f"r{n}" if step == 1 else f"s{n}1",
                    timestamp=stamp(),
                    requestId=f"req_{n}{step}",
                    message={
                        "id": f"msg_{n}{step}",
                        "role": "assistant",
                        "model": "claude-sonnet-4",
                        "content": [{"type": "text", "text": f"Module {n} step {step}"}],
                    },
                )
            )
    parent = "a1"
    for n in (1, 2, 3):
        uuid = f"res{n}"
        lines.append(
            dict(
                base,
                type="user",
                uuid=uuid,
                parentUuid=parent,
                timestamp=stamp(),
                message={
                    "role": "user",
                    "content": [
                        {
                            "type": "tool_result",
                            "tool_use_id": f"toolu_task{n}",
                            "content": f"Module {n} report",
                        }
                    ],
                },
            )
        )
        parent = uuid
    return lines


@pytest.mark.asyncio
async def test_inline_sidechains_are_nested_under_their_task_calls(tmp_path):
    write_jsonl(tmp_path / "projects" / "-work-old" / f"{INLINE}.jsonl", inline_sidechain_session())
    db = build_archive(tmp_path, real=False)
    conn = sqlite3.connect(db)
    register_lines(conn)
    agents = conn.execute(
        "select agent_id, tool_use_id, events, description from subagents "
        "where session_id = ? order by tool_use_id",
        (INLINE,),
    ).fetchall()
    subagent_count = conn.execute(
        "select subagents from sessions where session_id = ?", (INLINE,)
    ).fetchone()[0]
    conn.close()
    assert [(a[0], a[1], a[2], a[3]) for a in agents] == [
        (f"sidechain-r{n}", f"toolu_task{n}", 3, f"Module {n}") for n in (1, 2, 3)
    ]
    assert subagent_count == 3
    html = await _page(db, INLINE)
    # Each subagent block follows its own call and holds only its own lines, in order.
    for n in (1, 2, 3):
        start = html.index(f"<code>sidechain-r{n}</code>")
        end = html.find("<code>sidechain-r", start + 10)
        block = html[start : end if end > 0 else html.index('id="live-events"')]
        text = re.sub(r"<[^>]+>", " ", block)
        assert (
            text.index(f"Study module {n}")
            < text.index(f"Module {n} step 1")
            < text.index(f"Module {n} step 2")
        )
        assert all(f"Module {m} step" not in text for m in (1, 2, 3) if m != n)
    # The main thread no longer shows them interleaved.
    main = html[: html.index("<code>sidechain-r1</code>")]
    assert "Sidechain" not in re.sub(r"<details class=\"cs-subagent\">.*", "", main, flags=re.S)
    page = await _page(db, INLINE, "?agent=sidechain-r2")
    assert "Module 2 step 2" in page and "Module 1 step" not in page
    assert "3 events, 1 prompt" in page


def test_migration_finds_inline_sidechains_of_old_archives(tmp_path):
    from ingest.migrations import ensure_schema
    from ingest.schema import connect

    write_jsonl(tmp_path / "projects" / "-work-old" / f"{INLINE}.jsonl", inline_sidechain_session())
    db = build_archive(tmp_path, real=False)
    conn = connect(str(db))
    conn.execute("delete from subagents")
    conn.execute("update sessions set subagents = 0")
    conn.execute("delete from _sqlite_migrations where name = 'm504_inline_sidechains'")
    ensure_schema(conn)
    assert (
        conn.execute("select count(*) from subagents where tool_use_id is not null").fetchone()[0]
        == 3
    )
    assert conn.execute("select subagents from sessions").fetchone()[0] == 3
    conn.close()
