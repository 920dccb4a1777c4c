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

from .browser_helpers import (
    CHROMIUM,
    CHROMIUM_ARGS,
    Server,
    free_port,
    isolated_env,
    require_chromium,
    screenshot_dir,
)
from .conftest import REAL

sync_api = pytest.importorskip("playwright.sync_api")


@pytest.fixture(scope="module")
def workdir(tmp_path_factory):
    return tmp_path_factory.mktemp("browser")


@pytest.fixture(scope="module")
def projects(workdir):
    if not REAL.exists():
        pytest.skip(f"samples not found at {REAL}")
    dest = workdir / "projects"
    shutil.copytree(REAL, dest)
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
    require_chromium()
    # Module scope starts before conftest's per-test HOME: give chromium its own, so it
    # writes no profile, crash-report or cache folder into the real home.
    home = workdir / "browser-home"
    home.mkdir()
    with sync_api.sync_playwright() as p:
        browser = p.chromium.launch(
            executable_path=str(CHROMIUM), args=CHROMIUM_ARGS, env=isolated_env(home)
        )
        yield browser
        browser.close()


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
