"""The kept files in a real browser: `claude-sessions serve --claude-dir` on a Claude
directory whose tool output survives only in tool-results/ (the session folder was then
deleted), driven by headless Chromium: the tool result shows the whole output, the
session links its plan, the search page finds a typed prompt of history.jsonl; no
request or script is refused by the page's Content-Security-Policy."""

from __future__ import annotations

import json
import shutil

import pytest

from .browser_helpers import (
    Server,
    chromium,
    free_port,
    isolated_env,
)
from .pages_helpers import write_jsonl
from .test_keep_pages import OUTPUT, PROJECT, SESSION, SLUG, marker, records

sync_api = pytest.importorskip("playwright.sync_api")


@pytest.fixture(scope="module")
def claude(tmp_path_factory):
    home = tmp_path_factory.mktemp("keep-browser") / "claude"
    project = home / "projects" / PROJECT
    (project / SESSION / "tool-results").mkdir(parents=True)
    (project / SESSION / "tool-results" / "toolu_01BIG.txt").write_text(OUTPUT)
    path = f"/home/you/.claude/projects/{PROJECT}/{SESSION}/tool-results/toolu_01BIG.txt"
    write_jsonl(
        project / f"{SESSION}.jsonl", records(SESSION, "toolu_01BIG", marker(path, "144KB"), SLUG)
    )
    (home / "plans").mkdir()
    (home / "plans" / f"{SLUG}.md").write_text("# The plan\n\n1. find the callers\n")
    (home / "history.jsonl").write_text(
        json.dumps({"display": "grep the retry callers", "timestamp": 1772359200000}) + "\n"
    )
    return home


@pytest.fixture(scope="module")
def server(claude):
    work = claude.parent
    home = work / "home"
    home.mkdir()
    db = work / "a.db"
    server = Server(
        ["--db", str(db), "--claude-dir", str(claude), "--no-watch"],
        env=isolated_env(home),
        log_path=work / "serve.log",
        port=free_port(),
    )
    try:
        server.wait_until_up()
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="module")
def browser(claude):
    with chromium(claude.parent / "browser-home") as browser:
        yield browser


def test_kept_output_plan_and_history_in_the_browser(server, browser, claude):
    # cleanup: the session folder goes; the archive has what it held
    shutil.rmtree(claude / "projects" / PROJECT / SESSION)
    context = browser.new_context(viewport={"width": 1280, "height": 860})
    page = context.new_page()
    page.set_default_timeout(15_000)
    refused = []
    page.on(
        "console",
        lambda m: refused.append(m.text) if "Content Security Policy" in m.text else None,
    )
    try:
        page.goto(f"{server.url}/-/claude-sessions/session/{SESSION}")
        result = page.locator("details.cs-tool-result").first
        result.locator("summary").click()
        note = result.locator(".cs-kept-output")
        assert note.is_visible()
        assert f"Full output ({len(OUTPUT):,} bytes)" in note.inner_text()
        assert "00269 a line of a large grep output" in result.inner_text()
        result.get_by_text("Show the whole output").click()
        page.wait_for_load_state()
        assert (
            page.locator("body")
            .inner_text()
            .rstrip()
            .endswith("03999 a line of a large grep output")
        )
        page.go_back()
        page.get_by_role("link", name="plan", exact=True).click()
        page.wait_for_load_state()
        assert page.locator("body").inner_text().startswith("# The plan")
        page.goto(f"{server.url}/-/claude-sessions/search?q=retry")
        assert "Typed prompts in history.jsonl: 1 matching." in page.locator("body").inner_text()
        page.get_by_role("link", name="Search them all").click()
        page.wait_for_load_state()
        assert "grep the retry callers" in page.locator("body").inner_text()
        assert refused == []
    finally:
        context.close()
