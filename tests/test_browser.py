"""End-to-end tests: a real `claude-sessions serve` on a copy of the samples, driven by
headless Chromium (Debian's /usr/bin/chromium through Playwright).

Set UPDATE_SCREENSHOTS=1 to refresh the README's screenshots in docs/.
"""

from __future__ import annotations

import json
import re
import shutil
import sqlite3
import urllib.request
import uuid
from datetime import UTC, datetime
from pathlib import Path

import pytest

from ingest.lines import register as register_lines

from .browser_helpers import (
    Server,
    chromium,
    free_port,
    isolated_env,
    screenshot_dir,
)
from .conftest import FIXTURES, REAL

sync_api = pytest.importorskip("playwright.sync_api")

INLINE_SIDECHAIN = "df749439-8556-41bf-9965-9f49cf38bf2a"
REVIEW_SESSION = "37f83ec9-f2ea-42a9-925e-0d5c105cb6e8"  # 29 Edits, 45 Bash calls, lists


@pytest.fixture(scope="module")
def workdir(tmp_path_factory):
    return tmp_path_factory.mktemp("browser")


@pytest.fixture(scope="module")
def projects(workdir):
    if not REAL.exists():
        pytest.skip(f"samples not found at {REAL}")
    dest = workdir / "projects"
    shutil.copytree(REAL, dest)
    # A 1.0.35 session whose Task subagent is written inline (no prompt of its own in the
    # main thread, so the tests that pick a session by its prompts never pick it).
    inline = dest / "-fixtures-sidechain" / f"{INLINE_SIDECHAIN}.jsonl"
    inline.parent.mkdir()
    shutil.copy(FIXTURES / "sidechain.jsonl", inline)
    return dest


@pytest.fixture(scope="module")
def server(workdir, projects):
    home = workdir / "home"
    home.mkdir()
    server = Server(
        ["--db", str(workdir / "a.db"), "--projects", str(projects)],
        env=isolated_env(home),
        log_path=workdir / "serve.log",
        port=free_port(),
    )
    try:
        server.wait_until_up()
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="module")
def browser(workdir):
    with chromium(workdir / "browser-home") as browser:
        yield browser


@pytest.fixture
def page(browser):
    context = browser.new_context(viewport={"width": 1280, "height": 860})
    page = context.new_page()
    page.set_default_timeout(15_000)
    yield page
    context.close()


@pytest.fixture(scope="module")
def shots(workdir):
    return screenshot_dir(workdir / "screenshots")


def query(workdir, sql: str, params=()) -> list[tuple]:
    """Read the served archive (read-only; the server keeps writing it)."""
    conn = sqlite3.connect(f"file:{workdir / 'a.db'}?mode=ro", uri=True)
    register_lines(conn)
    try:
        return conn.execute(sql, params).fetchall()
    finally:
        conn.close()


def session_file(workdir, order_by: str) -> tuple[str, str]:
    """(session_id, source path) of the first archived session in this order."""
    rows = query(
        workdir,
        "select s.session_id, f.path from sessions s join sync_files f "
        "on f.session_id = s.session_id and f.kind = 'session' "
        f"where s.prompts > 0 order by {order_by} limit 1",
    )
    assert rows, "the initial sync archived no session with a file"
    return rows[0]


def test_sessions_list(server, page, shots):
    page.goto(server.url + "/")
    links = page.locator("a[href*='/-/claude-sessions/session/']")
    sync_api.expect(links.first).to_be_visible()
    assert links.count() >= 10  # the samples hold over 20 sessions
    page.screenshot(path=shots / "sessions.png")
    title = links.first.inner_text()
    links.first.click()
    sync_api.expect(page).to_have_url(re.compile(r"/-/claude-sessions/session/[^/?#]+"))
    sync_api.expect(page.locator("h1")).to_contain_text(title.rstrip("…").strip())
    assert page.locator(".cs-event").count() > 0


def test_search_follows_a_hit_to_its_place(server, page, shots):
    page.goto(server.url + "/-/claude-sessions/search?q=TestCacheManager")
    hits = page.locator(".cs-hit")
    sync_api.expect(hits.first).to_be_visible()
    sync_api.expect(hits.first.locator("mark").first).to_contain_text("TestCacheManager")
    page.screenshot(path=shots / "search.png")
    link = hits.nth(2).locator(".cs-hit-head a").first
    event_id = re.search(r"#e(\d+)$", link.get_attribute("href")).group(1)
    link.click()
    sync_api.expect(page).to_have_url(re.compile(rf"/-/claude-sessions/session/.+#e{event_id}$"))
    target = page.locator(f"#e{event_id}")
    sync_api.expect(target).to_be_in_viewport()
    sync_api.expect(target).to_contain_text("TestCacheManager")


def test_transcript_expands_a_tool_call(server, page, shots, workdir):
    session_id, _ = session_file(workdir, "s.tool_calls desc")
    page.goto(f"{server.url}/-/claude-sessions/session/{session_id}")
    # Edits, writes, commands and todo lists are shown open; the others are folded.
    sync_api.expect(page.locator("details.cs-tool-bash").first).to_have_attribute("open", "")
    call = page.locator("details.cs-tool-read").first
    sync_api.expect(call).to_be_visible()
    fields = call.locator(".cs-tool-body")
    sync_api.expect(fields).to_be_hidden()
    call.locator("summary").click()
    sync_api.expect(call).to_have_attribute("open", "")
    sync_api.expect(fields).to_be_visible()
    # Show the call's whole assistant turn with a little of what came before.
    call.evaluate(
        "e => window.scrollTo(0, (e.closest('.cs-turn') || e).getBoundingClientRect().top"
        " + scrollY - 100)"
    )
    page.screenshot(path=shots / "transcript.png")


def test_status_page_sync_now(server, page, shots):
    page.goto(server.url + "/-/claude-sessions/status")
    assert page.locator("h1").inner_text() == "Sync status"
    # The initial pass of serve is listed among the recent passes.
    assert page.locator("#recent-runs tbody tr").count() >= 1
    manual_runs = page.locator("#recent-runs tbody tr", has_text="manual")
    before = manual_runs.count()
    page.get_by_role("button", name="Sync now").click()
    result = page.locator("#cs-sync-result")
    sync_api.expect(result).to_contain_text("Synced:", timeout=60_000)
    # The page stayed put (fetch, no reload) and the new pass arrived over SSE.
    sync_api.expect(manual_runs).to_have_count(before + 1)
    page.screenshot(path=shots / "status.png")


def test_status_figures_update_live(server, page, workdir):
    page.goto(server.url + "/-/claude-sessions/status")
    tile = page.locator("#cs-live-figures .cs-grid div", has_text="lines archived").locator(
        "strong"
    )
    lines = int(tile.inner_text().replace(",", ""))
    page.evaluate("window.__not_reloaded = true")
    session_id, path = session_file(workdir, "s.events desc")
    with open(path, "ab") as f:  # what Claude Code does; the watch sidecar archives it
        f.write(transcript_line(session_id, "one more line for the status tiles"))
    sync_api.expect(tile).to_have_text(f"{lines + 1:,}", timeout=30_000)
    # The last pass is told in the server's words, with the right grammar.
    sync_api.expect(page.locator("#cs-last-pass")).to_contain_text("1 new line from")
    assert page.evaluate("window.__not_reloaded") is True


def transcript_line(session_id: str, text: str) -> bytes:
    """A user prompt record as Claude Code writes it, with its newline."""
    record = {
        "type": "user",
        "uuid": str(uuid.uuid4()),
        "parentUuid": None,
        "sessionId": session_id,
        "isSidechain": False,
        "userType": "external",
        "cwd": "/tmp",
        "version": "2.1.42",
        "timestamp": datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z",
        "message": {"role": "user", "content": text},
    }
    return json.dumps(record).encode() + b"\n"


def test_new_line_appears_live_in_the_open_transcript(server, page, workdir):
    # A short session: its transcript fits on one page, so new lines belong on it.
    session_id, path = session_file(workdir, "s.events")
    page.goto(f"{server.url}/-/claude-sessions/session/{session_id}")
    # Bookkeeping records start folded; the first conversation event is shown.
    sync_api.expect(page.locator(".cs-event:not(.cs-bookkeeping)").first).to_be_visible()
    page.evaluate("window.__not_reloaded = true")
    marker = f"live-update-marker-{uuid.uuid4().hex[:12]}"
    sync_api.expect(page.get_by_text(marker)).to_have_count(0)
    # The test's own copy of the samples: appending is what Claude Code does.
    with open(path, "ab") as f:
        f.write(transcript_line(session_id, f"1. **{marker}**\n2. [docs](https://example.com/)"))
    # Drawn by the server like any line: a prompt card, Markdown, a numbered list, links.
    live = page.locator("#live-events .cs-event.cs-prompt", has_text=marker)
    sync_api.expect(live).to_be_visible(timeout=30_000)
    sync_api.expect(live.locator("ol li strong")).to_have_text(marker)
    sync_api.expect(live.locator("a[href='https://example.com/']")).to_have_text("docs")
    assert page.evaluate("window.__not_reloaded") is True
    drawn_live = live.evaluate("e => e.outerHTML")
    page.reload()
    after_reload = page.locator(".cs-event.cs-prompt", has_text=marker)
    sync_api.expect(after_reload).to_be_visible()
    assert after_reload.evaluate("e => e.outerHTML") == drawn_live


def test_dashboard_renders_charts(server, page, shots):
    errors, queries = [], []
    page.on("pageerror", lambda e: errors.append(str(e)))
    page.on("response", lambda r: "sql=" in r.url and queries.append((r.status, r.url)))
    page.goto(server.url + "/-/dashboards/claude-usage")
    # vega-embed draws each vega-lite chart into a canvas (or an svg).
    charts = page.locator(".dashboard-card-chart canvas, .dashboard-card-chart svg")
    sync_api.expect(charts.first).to_be_visible(timeout=30_000)
    page.wait_for_load_state("networkidle")
    assert charts.count() >= 3
    assert queries, "the dashboard ran no chart query"
    assert [q for q in queries if q[0] != 200] == []
    assert errors == []
    page.screenshot(path=shots / "dashboard.png")


WEB_APP_DOC = Path(__file__).resolve().parent.parent / "docs" / "web-app.md"
CURL = re.compile(r"^curl -s (?:-X (?P<method>POST) )?'http://127\.0\.0\.1:8001(?P<path>[^']+)'$")


def test_documented_curl_examples_answer_json(server):
    """Every `curl` line of docs/web-app.md answers 200 with JSON (the archive here is `a`)."""
    examples = [m for line in WEB_APP_DOC.read_text().splitlines() if (m := CURL.match(line))]
    assert len(examples) >= 5
    for m in examples:
        path = re.sub(r"^/claude-sessions(?=[/.])", "/a", m["path"])
        request = urllib.request.Request(server.url + path, method=m["method"] or "GET")
        with urllib.request.urlopen(request, timeout=60) as response:
            assert response.status == 200, path
            assert json.loads(response.read()) is not None, path


def test_transcript_reads_like_a_code_review(server, page, shots):
    page.context.grant_permissions(["clipboard-read", "clipboard-write"])
    page.goto(f"{server.url}/-/claude-sessions/session/{REVIEW_SESSION}")
    # Lists keep their numbers and bullets (Datasette's CSS reset is undone).
    ol = page.locator(".cs-md ol").first
    assert ol.evaluate("e => getComputedStyle(e).listStyleType") == "decimal"
    assert (
        page.locator(".cs-md ul").first.evaluate("e => getComputedStyle(e).listStyleType") == "disc"
    )
    # Edits are open diffs: removed lines red, added lines green.
    edit = page.locator("details.cs-tool-edit[open]").first
    sync_api.expect(edit.locator("del").first).to_be_visible()
    sync_api.expect(edit.locator("ins").first).to_be_visible()
    assert edit.locator("del").first.evaluate("e => getComputedStyle(e).backgroundColor") != (
        edit.locator("ins").first.evaluate("e => getComputedStyle(e).backgroundColor")
    )
    # Each assistant message has its tokens and cost; the header its totals.
    sync_api.expect(page.locator(".cs-usage").first).to_have_text(re.compile(r"^in \d+ · out"))
    sync_api.expect(page.locator(".cs-facts")).to_contain_text("Bash ×45")
    sync_api.expect(page.locator(".cs-totals")).to_contain_text("$")
    # Next prompt twice: the second prompt is the current one, at the top of the window.
    down = page.locator("button[data-jump='cs-prompt'][data-step='1']")
    down.click()
    down.click()
    current = page.locator(".cs-event.cs-current")
    sync_api.expect(current).to_have_count(1)
    assert "cs-prompt" in current.get_attribute("class")
    sync_api.expect(current).to_be_in_viewport()
    page.keyboard.press("e")  # next failed tool call
    sync_api.expect(page.locator(".cs-current .cs-badge-error").first).to_be_in_viewport()
    # claude --resume, copied; a click in the page folds nothing (Datasette's menu script
    # would close every open <details>).
    open_edits = page.locator("details.cs-tool-edit[open]").count()
    page.locator("button[data-copy='cs-resume-command']").click()
    page.locator(".cs-event.cs-prompt .cs-md").first.click()
    assert page.locator("details.cs-tool-edit[open]").count() == open_edits > 0
    sync_api.expect(page.locator("button[data-copy='cs-resume-command']")).to_have_text("Copied")
    copied = page.evaluate("navigator.clipboard.readText()")
    assert copied.endswith(f"claude --resume {REVIEW_SESSION}") and copied.startswith("cd ")
    edit.evaluate(
        "e => window.scrollTo(0, e.closest('.cs-event').getBoundingClientRect().top + scrollY - 60)"
    )
    page.screenshot(path=shots / "transcript-review.png")


def test_commands_and_context_are_not_prompts(server, page):
    # Starts with `! uv run ty check` and its output; the first typed prompt comes after.
    page.goto(f"{server.url}/-/claude-sessions/session/326189cf-5676-4237-8cde-1ce80aae4a9f")
    sync_api.expect(page.locator("h1")).to_have_text("please fix these")
    sync_api.expect(page.locator("p.cs-command code").first).to_have_text("! uv run ty check")
    assert page.locator(".cs-event.cs-prompt", has_text="uv run ty check").count() == 0


def test_inline_subagent_is_nested_under_its_task_call(server, page):
    page.goto(f"{server.url}/-/claude-sessions/session/{INLINE_SIDECHAIN}")
    call = page.locator("details.cs-tool-task").first
    agent = page.locator("details.cs-subagent").first
    sync_api.expect(agent).to_contain_text("sidechain-")
    sync_api.expect(agent).to_contain_text("Debug failing test output")
    assert call.evaluate("(c, a) => !!(c.compareDocumentPosition(a) & 4)", agent.element_handle())
    agent.locator("summary").first.click()
    sync_api.expect(agent.get_by_text("I'll help you debug this failing test")).to_be_visible()
    # The main thread no longer shows the subagent's lines on their own.
    assert page.locator(".cs-transcript > .cs-event.cs-sidechain").count() == 0


def test_saved_query_rows_lead_to_their_line(server, page):
    page.goto(f"{server.url}/a/failing_tool_calls")
    link = page.locator("td.col-event_id a").first
    sync_api.expect(link).to_be_visible()
    event_id = link.evaluate("a => a.closest('td').textContent").split()[0]
    link.click()
    sync_api.expect(page).to_have_url(re.compile(rf"/-/claude-sessions/session/.+#e{event_id}$"))
    sync_api.expect(page.locator(f"#e{event_id}")).to_be_in_viewport()
