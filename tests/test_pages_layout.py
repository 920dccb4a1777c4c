"""The plugin's pages in a real headless Chromium: widths at desktop and phone sizes, and
the transcript's script that opens the <details> around a linked event.

Chromium loads the pages from Datasette's in-process test client (Playwright's request
routing), so no server process is needed.
"""

from __future__ import annotations

import sqlite3
from urllib.parse import urlsplit

import pytest

from ingest.lines import register as register_lines

from .browser_helpers import CHROMIUM, CHROMIUM_ARGS, require_chromium
from .pages_helpers import build_archive, datasette_for

SESSION = "0d3a8e6f-290f-4105-a327-a2496e5e2a83"  # tool results and thinking blocks
BASE = "http://claude-sessions.test"


@pytest.fixture(scope="module")
def archive(tmp_path_factory):
    return build_archive(tmp_path_factory.mktemp("layout"))


async def open_browser(ds, width: int, height: int = 900):
    """(playwright, browser, page) with every request to BASE (or localhost) answered by
    ds.client; any other request is refused."""
    async_api = pytest.importorskip("playwright.async_api")
    require_chromium()
    playwright = await async_api.async_playwright().start()
    browser = await playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
    page = await browser.new_page(viewport={"width": width, "height": height})

    async def answer(route):
        # Datasette writes some absolute URLs (datasette.absolute_url) for localhost.
        url = urlsplit(route.request.url)
        if url.hostname not in (urlsplit(BASE).hostname, "localhost"):
            await route.abort()
            return
        response = await ds.client.get(url.path + (f"?{url.query}" if url.query else ""))
        headers = {"content-type": response.headers.get("content-type", "text/html")}
        await route.fulfill(status=response.status_code, headers=headers, body=response.content)

    await page.route("**/*", answer)
    return playwright, browser, page


async def close(playwright, browser):
    await browser.close()
    await playwright.stop()


def event_ids(db_path, kind: str) -> list[int]:
    conn = sqlite3.connect(db_path)
    register_lines(conn)
    try:
        return [
            row[0]
            for row in conn.execute(
                "select id from events where session_id = ? and kind = ? and agent_id is null "
                "order by id",
                (SESSION, kind),
            )
        ]
    finally:
        conn.close()


OPEN_DETAILS = """id => Array.from(document.getElementById(id).querySelectorAll('details'))
    .filter(d => d.closest('.cs-event').id === id).map(d => d.open)"""


@pytest.mark.asyncio
async def test_linked_event_inside_details_is_opened(archive):
    ds = datasette_for(archive)
    result, thinking = event_ids(archive, "tool_result")[3], event_ids(archive, "thinking")[0]
    playwright, browser, page = await open_browser(ds, 1280)
    try:
        await page.goto(f"{BASE}/-/claude-sessions/session/{SESSION}?size=2000#e{result}")
        await page.wait_for_function(
            f"() => document.querySelector('#e{result} details') && "
            f"document.querySelector('#e{result} details').open"
        )
        assert await page.evaluate(OPEN_DETAILS, f"e{result}") == [True]
        assert await page.evaluate(OPEN_DETAILS, f"e{thinking}") == [False]
        # Following another link on the same page (hashchange) opens that one too.
        await page.evaluate(f"window.location.hash = '#e{thinking}'")
        await page.wait_for_function(f"() => document.querySelector('#e{thinking} details').open")
    finally:
        await close(playwright, browser)


PAGE_WIDTH = "document.documentElement.scrollWidth"


@pytest.mark.asyncio
@pytest.mark.parametrize(
    ("path", "width"),
    [
        ("/-/claude-sessions/search?q=test", 1280),
        ("/-/claude-sessions/search?q=test", 390),
        ("/", 1280),
        ("/", 390),
        (f"/-/claude-sessions/session/{SESSION}", 390),
    ],
)
async def test_pages_fit_the_window(archive, path, width):
    ds = datasette_for(archive)
    playwright, browser, page = await open_browser(ds, width)
    try:
        await page.goto(BASE + path)
        assert await page.evaluate(PAGE_WIDTH) <= width
    finally:
        await close(playwright, browser)
