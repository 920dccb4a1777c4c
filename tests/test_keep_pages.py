"""The kept files in the web app: a tool result cut to a <persisted-output> marker is
shown whole from tool-results/, a session links its plan (by slug), history.jsonl's
prompts are found from the search page, and /-/claude-sessions/kept/<id> serves a file."""

from __future__ import annotations

import json
import shutil

import pytest

from datasette_claude_sessions.pages import session_url
from ingest.sync import run_pass

from .pages_helpers import datasette_for, write_jsonl

SESSION = "5e55e55e-0000-4000-8000-000000000001"
OTHER = "5e55e55e-0000-4000-8000-000000000002"
PROJECT = "-work-kept"
SLUG = "happy-dancing-fox"
OUTPUT = "".join(f"{i:05d} a line of a large grep output\n" for i in range(4000))  # 144 KB


def marker(path: str, size: str) -> str:
    return (
        "<persisted-output>\n"
        f"Output too large ({size}). Full output saved to: {path}\n\n"
        f"Preview (first 2KB):\n{OUTPUT[:2048]}\n...\n</persisted-output>"
    )


def records(session_id: str, tool_id: str, content, slug: str | None) -> list[dict]:
    base = {"sessionId": session_id, "cwd": "/work/kept", "version": "2.1.50"}
    if slug:
        base["slug"] = slug
    return [
        dict(
            base,
            type="user",
            uuid=f"{session_id}-u1",
            parentUuid=None,
            timestamp="2026-03-01T10:00:00.000Z",
            message={"role": "user", "content": "find the callers"},
        ),
        dict(
            base,
            type="assistant",
            uuid=f"{session_id}-a1",
            parentUuid=f"{session_id}-u1",
            timestamp="2026-03-01T10:00:01.000Z",
            message={
                "id": "msg_1",
                "role": "assistant",
                "model": "claude-opus-4-6",
                "content": [
                    {"type": "tool_use", "id": tool_id, "name": "Grep", "input": {"p": "x"}}
                ],
                "usage": {"input_tokens": 1, "output_tokens": 1},
            },
        ),
        dict(
            base,
            type="user",
            uuid=f"{session_id}-u2",
            parentUuid=f"{session_id}-a1",
            timestamp="2026-03-01T10:00:02.000Z",
            message={
                "role": "user",
                "content": [{"type": "tool_result", "tool_use_id": tool_id, "content": content}],
            },
        ),
    ]


@pytest.fixture(scope="module")
def kept_db(tmp_path_factory):
    home = tmp_path_factory.mktemp("kept") / "claude"
    project = home / "projects" / PROJECT
    folder = project / SESSION / "tool-results"
    folder.mkdir(parents=True)
    (folder / "toolu_01BIG.txt").write_text(OUTPUT)
    # a Windows-style path in the marker, content as a list of text blocks
    windows = (
        f"C:\\Users\\me\\.claude\\projects\\{PROJECT}\\{SESSION}\\tool-results\\toolu_01BIG.txt"
    )
    write_jsonl(
        project / f"{SESSION}.jsonl",
        records(
            SESSION, "toolu_01BIG", [{"type": "text", "text": marker(windows, "144.0KB")}], SLUG
        ),
    )
    # a marker whose file was never kept: the preview stays
    write_jsonl(
        project / f"{OTHER}.jsonl",
        records(
            OTHER, "toolu_02GONE", marker(f"/x/{OTHER}/tool-results/toolu_02GONE.txt", "9KB"), None
        ),
    )
    (home / "plans").mkdir()
    (home / "plans" / f"{SLUG}.md").write_text("# The plan\n\n1. find the callers\n")
    (home / "history.jsonl").write_text(
        json.dumps(
            {
                "display": "find the callers of retry",
                "timestamp": 1772359200000,
                "project": "/work/kept",
            }
        )
        + "\n"
        + json.dumps(
            {"display": "something else", "timestamp": 1772359300000, "project": "/work/kept"}
        )
        + "\n"
    )
    db = home.parent / "claude-sessions.db"
    run_pass(db, [home / "projects"], claude_dirs=[home])
    shutil.rmtree(project / SESSION)  # cleanup: the transcript's marker is all that is left
    run_pass(db, [home / "projects"], claude_dirs=[home])
    return db


@pytest.mark.asyncio
async def test_transcript_shows_the_kept_full_output(kept_db):
    ds = datasette_for(kept_db)
    page = await ds.client.get(session_url(ds, SESSION))
    assert page.status_code == 200
    html = page.text
    assert f"Full output ({len(OUTPUT):,} bytes), kept from" in html
    assert "tool-results/toolu_01BIG.txt</a>" in html
    assert "03999 a line of a large grep output" not in html  # cut at 10,000 characters
    assert "00269 a line of a large grep output" in html  # far past the 2 KB preview
    assert "Show the whole output" in html
    assert "&lt;persisted-output&gt;" not in html
    url = html.split('kept from <a href="')[1].split('"')[0]
    whole = await ds.client.get(url)
    assert whole.status_code == 200
    assert whole.headers["content-type"] == "text/plain; charset=utf-8"
    assert whole.text == OUTPUT
    other = await ds.client.get(session_url(ds, OTHER))
    assert "&lt;persisted-output&gt;" in other.text and "Full output (" not in other.text


@pytest.mark.asyncio
async def test_session_links_its_plan(kept_db):
    ds = datasette_for(kept_db)
    html = (await ds.client.get(session_url(ds, SESSION))).text
    plan_url = html.split('">plan</a>')[0].rsplit('href="', 1)[1]
    plan = await ds.client.get(plan_url)
    assert plan.status_code == 200 and plan.text == "# The plan\n\n1. find the callers\n"
    assert ">plan</a>" not in (await ds.client.get(session_url(ds, OTHER))).text
    missing = await ds.client.get("/-/claude-sessions/kept/999999")
    assert missing.status_code == 404


@pytest.mark.asyncio
async def test_search_page_finds_typed_prompts(kept_db):
    ds = datasette_for(kept_db)
    page = await ds.client.get("/-/claude-sessions/search?q=callers+retry")
    assert page.status_code == 200
    assert "Typed prompts in history.jsonl: 1 matching." in page.text
    assert "find the callers of retry" in page.text
    db = kept_db.stem
    table = await ds.client.get(f"/{db}/history.json?_search=retry&_shape=array")
    assert [r["display"] for r in table.json()] == ["find the callers of retry"]
    as_json = (await ds.client.get("/-/claude-sessions/search.json?q=callers+retry")).json()
    assert as_json["history"]["count"] == 1
    assert as_json["history"]["hits"][0]["display"] == "find the callers of retry"
    none = await ds.client.get("/-/claude-sessions/search?q=zebra")
    assert "Typed prompts in history.jsonl" not in none.text
