"""The home, transcript and search pages, against archives synced from real samples."""

from __future__ import annotations

import re
import shutil
import sqlite3
from urllib.parse import parse_qs, urlsplit

import pytest
from datasette.app import Datasette

from datasette_claude_sessions.order import conversation_order
from datasette_claude_sessions.pages import session_url
from ingest.lines import register as register_lines
from ingest.sync import run_pass

from .pages_helpers import (
    build_archive,
    datasette_for,
    fixture,
    synthetic_session,
    write_jsonl,
)

FLAT_AGENT_SESSION = "a7da6a22-facc-4fcd-8bab-f83c87862004"  # agent-c8d9b115.jsonl next to it
NESTED_AGENT_SESSION = "29ccd257-68b1-427f-ae5f-6524b7cb6f20"  # <sid>/subagents/agent-a2271d1
BIG = "b16b16b1-0000-4000-8000-000000000001"


@pytest.fixture(scope="module")
def real_db(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("real")
    return build_archive(tmp, extra={"-tmp-dag/s1.jsonl": fixture("dag_within_fork.jsonl")})


@pytest.fixture(scope="module")
def big_db(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("big")
    write_jsonl(tmp / "projects" / "-work-big" / f"{BIG}.jsonl", synthetic_session(BIG, 3000))
    return build_archive(tmp, real=False)


def anchors(html: str) -> list[int]:
    return [int(m) for m in re.findall(r'class="cs-event[^"]*" id="e(\d+)"', html)]


# Home ------------------------------------------------------------------------------------


@pytest.mark.asyncio
async def test_home_lists_recent_sessions(real_db):
    ds = datasette_for(real_db)
    response = await ds.client.get("/")
    assert response.status_code == 200
    html = response.text
    assert f"/-/claude-sessions/session/{NESTED_AGENT_SESSION}" in html
    assert "/claude-sessions/sessions_list" in html
    assert 'action="/-/claude-sessions/search"' in html
    data = (await ds.client.get("/-/claude-sessions.json")).json()
    assert data["archive"] == "claude-sessions"
    assert data["sessions"] >= 23
    newest = [r["last_timestamp"] for r in data["recent"]]
    assert newest == sorted(newest, reverse=True)
    assert data["recent"][0]["url"].startswith("/-/claude-sessions/session/")


@pytest.mark.asyncio
async def test_home_of_an_empty_archive_says_what_to_do(tmp_path):
    db_path = build_archive(tmp_path, real=False)
    response = await datasette_for(db_path).client.get("/-/claude-sessions")
    assert response.status_code == 200
    assert "The archive is empty" in response.text
    assert "claude-sessions sync" in response.text
    assert "serve --demo" in response.text
    assert "projects</code>" in response.text  # where Claude Code writes transcripts
    assert (await datasette_for(db_path).client.get("/-/claude-sessions.json")).json()[
        "sessions"
    ] == 0


@pytest.mark.asyncio
async def test_home_without_an_archive(tmp_path):
    # Without an archive, / stays Datasette's own; the plugin's page says what to do.
    response = await Datasette(memory=True).client.get("/")
    assert response.status_code == 200
    assert "No archive attached" not in response.text
    response = await Datasette(memory=True).client.get("/-/claude-sessions")
    assert response.status_code == 200
    assert "No archive attached" in response.text
    search = await Datasette(memory=True).client.get("/-/claude-sessions/search?q=x")
    assert search.status_code == 404


# Sessions list (a Datasette view configured in metadata.yml) ------------------------------


@pytest.mark.asyncio
async def test_sessions_list_links_titles_and_has_facets(real_db):
    ds = datasette_for(real_db)
    response = await ds.client.get("/claude-sessions/sessions_list")
    assert response.status_code == 200
    assert f'<a href="/-/claude-sessions/session/{NESTED_AGENT_SESSION}">' in response.text
    data = (await ds.client.get("/claude-sessions/sessions_list.json?_shape=objects")).json()
    assert set(data["facet_results"]) >= {"project", "models", "branch", "day"}
    models = {f["value"] for f in data["facet_results"]["models"]["results"]}
    assert "claude-opus-4-5-20251101" in models
    last = [r["last_activity"] for r in data["rows"]]
    assert last == sorted(last, reverse=True)


# Transcript ------------------------------------------------------------------------------


@pytest.mark.asyncio
async def test_transcript_renders_and_links_raw_json(real_db):
    ds = datasette_for(real_db)
    response = await ds.client.get(f"/-/claude-sessions/session/{FLAT_AGENT_SESSION}")
    assert response.status_code == 200
    html = response.text
    ids = anchors(html)
    assert len(ids) > 100
    first = ids[0]
    assert f'href="/claude-sessions/events/{first}"' in html
    assert f'href="/claude-sessions/events_json?id={first}"' in html
    assert 'class="cs-md"' in html  # Markdown answers
    assert "cs-tool" in html and "<details" in html  # collapsed tool calls
    raw = await ds.client.get(f"/claude-sessions/events_json.json?id={first}&_shape=array")
    assert raw.status_code == 200
    line = raw.json()[0]["json"]  # the line's exact JSON, as its source file holds it
    conn = sqlite3.connect(real_db)
    register_lines(conn)
    exact = conn.execute("select raw_bytes(raw) from events where id = ?", (first,)).fetchone()
    conn.close()
    assert line.encode("utf-8") == exact[0] and line.startswith("{")


@pytest.mark.asyncio
async def test_transcript_groups_lines_of_one_message(real_db):
    ds = datasette_for(real_db)
    html = (await ds.client.get(f"/-/claude-sessions/session/{FLAT_AGENT_SESSION}")).text
    data = (await ds.client.get(f"/-/claude-sessions/session/{FLAT_AGENT_SESSION}.json")).json()
    ids = [e["message_id"] for e in data["events"] if e["type"] == "assistant"]
    assert len(ids) > len(set(ids))  # some responses span several lines...
    assert '<section class="cs-turn' in html  # ...and are shown as one turn


@pytest.mark.parametrize(
    ("session_id", "agent_id"),
    [(FLAT_AGENT_SESSION, "c8d9b115"), (NESTED_AGENT_SESSION, "a2271d1")],
)
@pytest.mark.asyncio
async def test_subagent_nested_under_its_tool_call(real_db, session_id, agent_id):
    ds = datasette_for(real_db)
    html = (await ds.client.get(f"/-/claude-sessions/session/{session_id}")).text
    agent = (
        await ds.client.get(f"/-/claude-sessions/session/{session_id}.json?agent={agent_id}")
    ).json()
    assert agent["total_events"] > 10
    agent_ids = [e["id"] for e in agent["events"]]
    start = html.index(f"Subagent <code>{agent_id}</code>")
    # Right after the Task call's tool_use block, the agent's whole transcript, in order.
    assert html.rindex('<details class="cs-tool ', 0, start) > html.rindex("cs-event", 0, start)
    assert anchors(html[start:])[: len(agent_ids)] == agent_ids
    # The agent's own page exists and points back to the call.
    page = await ds.client.get(f"/-/claude-sessions/session/{session_id}?agent={agent_id}")
    assert page.status_code == 200
    assert "started by" in page.text


@pytest.mark.asyncio
async def test_transcript_follows_parent_uuid(real_db):
    ds = datasette_for(real_db)
    data = (await ds.client.get("/-/claude-sessions/session/s1.json")).json()
    uuids = [e["record"]["uuid"] for e in data["events"]]
    assert uuids == ["a", "b", "c", "d", "e", "f", "d_prime", "e_prime"]


def test_order_rules():
    # (id, uuid, parent_uuid, timestamp, file_id); rows in file order.
    t = "2025-01-01T00:00:0{}.000Z".format
    rows = [
        (1, None, None, None, 1),  # summary before anything: a root, no timestamp
        (2, "p", None, t(1), 1),  # prompt
        (3, "a1", "p", t(2), 1),  # tool_use 1
        (4, "a2", "a1", t(3), 1),  # tool_use 2 (parallel call, chained to the first)
        (5, "r1", "a1", t(4), 1),  # result 1 hangs off the first call
        (6, "r2", "a2", t(5), 1),  # result 2
        (7, None, None, t(5), 1),  # queue operation: follows r2 in file order
        (8, "next", "r2", t(6), 1),  # the conversation continues
        (9, "x", "y", t(7), 1),  # cycle x <-> y
        (10, "y", "x", t(8), 1),
        (11, "orphan", "missing", t(0), 1),  # dangling parent: a root by its timestamp
        (12, "self", "self", t(9), 1),  # its own parent
    ]
    order = conversation_order(rows)
    assert sorted(order) == list(range(1, 13))
    assert order[:2] == [1, 11]
    assert order[2:9] == [2, 3, 4, 5, 6, 7, 8]
    assert order[9:] == [9, 10, 12]


def test_order_places_records_without_uuid_by_their_timestamp():
    """A file-history snapshot of 15:24 written after an answer of 15:30 comes before it;
    a record without uuid or timestamp keeps its file position."""
    rows = [
        (1, "p", None, "2025-01-01T15:20:00.000Z", 1),
        (2, "a", "p", "2025-01-01T15:30:00.000Z", 1),  # answer
        (3, None, None, "2025-01-01T15:24:00.000Z", 1),  # file-history-snapshot
        (4, None, None, None, 1),  # title record: follows the answer
        (5, "q", "a", "2025-01-01T15:31:00.000Z", 1),
    ]
    assert conversation_order(rows) == [1, 3, 2, 4, 5]


def test_order_compaction_boundary_is_a_root():
    t = "2025-01-01T00:00:0{}.000Z".format
    rows = [
        (1, "p", None, t(1), 1),
        (2, "a", "p", t(2), 1),
        (3, "boundary", None, t(5), 1),  # compact_boundary: parentUuid null
        (4, "summary", "boundary", t(6), 1),
        (5, "late", "a", t(3), 1),
    ]
    assert conversation_order(rows) == [1, 2, 5, 3, 4]


@pytest.mark.asyncio
async def test_thinking_is_labelled_once_and_durations_are_readable(real_db):
    ds = datasette_for(real_db)
    session = "0d3a8e6f-290f-4105-a327-a2496e5e2a83"  # thinking blocks, a 326 s tool call
    html = (await ds.client.get(f"/-/claude-sessions/session/{session}?size=2000")).text
    assert 'class="cs-details thinking"' in html
    assert "<summary>Thinking</summary>" not in html
    assert not re.search(r"\d,\d{3} ms<", html)
    assert re.search(r'title="326500 ms">5m 26s<', html)


def test_human_duration():
    from datasette_claude_sessions.transcript import human_duration

    assert [human_duration(v) for v in (850, 1234, 289116, 7_500_000, None)] == [
        "850 ms",
        "1.2 s",
        "4m 49s",
        "2h 05m",
        "",
    ]


@pytest.mark.asyncio
async def test_commands_are_not_titles_nor_prompts(real_db):
    ds = datasette_for(real_db)
    # Starts with `! uv run ty check` (bash mode) and its output; then "please fix these".
    session = "326189cf-5676-4237-8cde-1ce80aae4a9f"
    page = (await ds.client.get(f"/-/claude-sessions/session/{session}")).text
    assert "<h1>please fix these</h1>" in page and "<title>please fix these</title>" in page
    assert '<p class="cs-command"><code>! uv run ty check</code></p>' in page
    listing = (await ds.client.get("/claude-sessions/sessions_list?_size=max")).text
    assert ">please fix these</a>" in listing
    row = (await ds.client.get(f"/claude-sessions/sessions/{session}.json?_shape=array")).json()
    assert row[0]["title"] == "please fix these" and row[0]["prompts"] == 1


def test_display_title():
    from datasette_claude_sessions.render import display_title, session_label

    assert (
        display_title(
            "<command-message>model is running…</command-message>\n"
            "<command-name>/model</command-name>\n"
            "<command-args>opus</command-args>"
        )
        == "/model opus"
    )
    assert display_title("<local-command-stdout>Set model</local-command-stdout>") == "Set model"
    assert display_title("a < b and <b>bold</b>") == "a < b and <b>bold</b>"
    assert session_label(None, "4e062ed2-cbfa-4cb8", "proj") == "(no prompt) 4e062ed2 · proj"


@pytest.mark.asyncio
async def test_sessions_without_prompts_are_labelled_and_kept_off_the_home_page(real_db):
    ds = datasette_for(real_db)
    warmup = "4e062ed2-cbfa-4cb8-bc9a-1551bf168eaf"  # 0 prompts, no title
    home = await ds.client.get("/")
    assert warmup not in home.text
    assert "without a prompt, such as warmups, are listed there only" in home.text
    assert all(
        r["prompts"] > 0 for r in (await ds.client.get("/-/claude-sessions.json")).json()["recent"]
    )
    listing = (await ds.client.get("/claude-sessions/sessions_list?_size=max")).text
    assert f'/-/claude-sessions/session/{warmup}"' in listing
    assert "(no prompt) 4e062ed2" in listing
    page = (await ds.client.get(f"/-/claude-sessions/session/{warmup}")).text
    assert "<h1>(no prompt) 4e062ed2" in page


@pytest.mark.asyncio
async def test_very_long_lines_are_cut_in_html_and_json(tmp_path):
    """A 3 MB prompt (over RAW_LIMIT: not parsed, shown from its text) and a 50,000
    character answer (parsed, cut): pages and JSON stay small, with a link to the line."""
    sid = "10ee10ee-0000-4000-8000-000000000001"
    records = synthetic_session(sid, 4)
    records[0]["message"]["content"] = "huge prompt " + "x" * 3_000_000
    records[3]["message"]["content"][0]["text"] = "long answer " + "y" * 50_000
    write_jsonl(tmp_path / "projects" / "-work-long" / f"{sid}.jsonl", records)
    db_path = build_archive(tmp_path, real=False)
    ds = datasette_for(db_path)
    page = await ds.client.get(f"/-/claude-sessions/session/{sid}")
    assert page.status_code == 200
    assert len(page.text) < 100_000
    assert "This line is 3.0 MB of JSON: shown from its text" in page.text
    assert "huge prompt xxx" in page.text
    assert "long answer yyy" in page.text
    assert page.text.count("Show the full line (raw JSON)") == 2
    assert "The archive keeps the first 256 KiB of each long string" in page.text
    assert "252,144 more characters" in page.text  # counted from the text (cut at 256 KiB)
    assert "40,012 more characters" in page.text
    data = await ds.client.get(f"/-/claude-sessions/session/{sid}.json")
    assert len(data.content) < 100_000
    events = data.json()["events"]
    prompt, answer = events[0], events[3]
    assert prompt["truncated"] is True and prompt["record_omitted"] is True
    assert prompt["record"] is None
    assert len(prompt["text"]) == 10_000 and prompt["text_length"] == 262_144
    assert prompt["raw_json_url"].endswith(f"/events_json?id={prompt['id']}")
    assert answer["truncated"] is True and answer["record_omitted"] is False
    assert events[1]["truncated"] is False
    # Each event's text is the events.text column's (worked out in Python from the bytes
    # the page fetched, or by the query for a line too long to fetch).
    conn = sqlite3.connect(db_path)
    register_lines(conn)
    for event in events:
        assert (event["text"], event["text_length"]) == conn.execute(
            "select substr(text, 1, 10000), length(text) from events where id = ?",
            (event["id"],),
        ).fetchone()
    conn.close()


@pytest.mark.asyncio
async def test_large_session_is_paged(big_db):
    ds = datasette_for(big_db)
    url = f"/-/claude-sessions/session/{BIG}"
    first = await ds.client.get(url)
    assert first.status_code == 200
    assert len(anchors(first.text)) == 500
    assert "events 1–500 of 3,000" in first.text
    page2 = (await ds.client.get(url + ".json?page=2")).json()
    assert page2["pages"] == 6
    assert [e["position"] for e in page2["events"]] == list(range(500, 1000))
    assert page2["events"][0]["record"]["uuid"] == f"{BIG}-u500"
    assert page2["next_url"].endswith("page=3&_format=json")
    target = page2["events"][0]["id"] + 1999  # position 2499: ids follow file order here
    jump = await ds.client.get(f"{url}?event={target}")
    assert "events 2,001–2,500 of 3,000" in jump.text
    assert target in anchors(jump.text)
    last = (await ds.client.get(url + ".json?page=6")).json()
    assert last["page"] == 6 and last["next_url"] is None
    # Past the end (or before the start) is a 404 that says how many pages there are.
    for query in ("?page=99", ".json?page=99", "?page=0", "?page=7&size=500"):
        missing = await ds.client.get(url + query)
        assert missing.status_code == 404, query
        assert "this transcript has 6 pages" in missing.text, query
    assert (await ds.client.get(url + "?page=6")).status_code == 200


@pytest.mark.asyncio
async def test_event_link_redirects_to_its_thread(real_db):
    ds = datasette_for(real_db)
    agent = (
        await ds.client.get(f"/-/claude-sessions/session/{NESTED_AGENT_SESSION}.json?agent=a2271d1")
    ).json()
    event_id = agent["events"][5]["id"]
    response = await ds.client.get(f"/-/claude-sessions/session/other?event={event_id}")
    assert response.status_code == 302
    location = response.headers["location"]
    assert location.startswith(f"/-/claude-sessions/session/{NESTED_AGENT_SESSION}?")
    assert parse_qs(urlsplit(location).query)["agent"] == ["a2271d1"]
    assert location.endswith(f"#e{event_id}")


@pytest.mark.asyncio
async def test_unknown_session_is_404(real_db):
    ds = datasette_for(real_db)
    response = await ds.client.get("/-/claude-sessions/session/nope")
    assert response.status_code == 404
    assert "No session nope" in response.text


# Search ----------------------------------------------------------------------------------


@pytest.mark.asyncio
async def test_search_highlights_and_links_into_transcript(real_db):
    ds = datasette_for(real_db)
    response = await ds.client.get("/-/claude-sessions/search?q=renderer")
    assert response.status_code == 200
    assert "<mark>renderer</mark>" in response.text.lower()
    data = (await ds.client.get("/-/claude-sessions/search.json?q=renderer")).json()
    assert data["hits"] and data["count"] >= len(data["hits"])
    hit = data["hits"][0]
    assert hit["url"].endswith(f"#e{hit['id']}")
    page = await ds.client.get(hit["url"].split("#")[0])
    assert hit["id"] in anchors(page.text)


@pytest.mark.asyncio
async def test_search_filters(real_db):
    ds = datasette_for(real_db)

    async def hits(query: str) -> list[dict]:
        return (await ds.client.get("/-/claude-sessions/search.json?" + query)).json()["hits"]

    every = await hits("q=claude")
    assert {h["kind"] for h in every} > {"tool_result"}
    prompts = await hits("q=claude&kind=prompt")
    assert prompts and {h["kind"] for h in prompts} == {"prompt"}
    project = await hits("q=claude&project=/src/experiments/claude_p")
    assert project and {h["project_path"] for h in project} == {"/src/experiments/claude_p"}
    dated = await hits("q=claude&from=2026-01-01&to=2026-01-23&sort=newest")
    assert dated and all("2026-01-01" <= h["timestamp"][:10] <= "2026-01-23" for h in dated)
    assert [h["id"] for h in dated] == sorted((h["id"] for h in dated), reverse=True)
    page2 = (await ds.client.get("/-/claude-sessions/search.json?q=claude&page=2")).json()
    assert page2["hits"] and not {h["id"] for h in page2["hits"]} & {h["id"] for h in every}
    assert page2["previous_url"]


@pytest.mark.asyncio
async def test_search_words_do_not_match_the_kind_column(real_db):
    # events_fts also indexes each event's kind (for the kind filter); a search for the
    # word "prompt" must find events whose text says it, not every prompt.
    ds = datasette_for(real_db)
    conn = sqlite3.connect(real_db)
    with_word = {
        row[0]
        for row in conn.execute(
            "select rowid from events_fts where events_fts match 'text : prompt'"
        )
    }
    prompts = conn.execute("select count(*) from events where kind = 'prompt'").fetchone()[0]
    conn.close()
    assert 0 < len(with_word) < prompts
    data = (await ds.client.get("/-/claude-sessions/search.json?q=prompt")).json()
    assert data["count"] == len(with_word)
    # (No typed prompt of the samples says "prompt": the kind filter is tried on "claude".)
    conn = sqlite3.connect(real_db)
    with_claude = {
        row[0]
        for row in conn.execute(
            "select rowid from events_fts where events_fts match 'text : claude'"
        )
    }
    conn.close()
    filtered = (await ds.client.get("/-/claude-sessions/search.json?q=claude&kind=prompt")).json()
    assert filtered["hits"] and {h["kind"] for h in filtered["hits"]} == {"prompt"}
    assert {h["id"] for h in filtered["hits"]} <= with_claude


@pytest.mark.asyncio
async def test_search_bad_syntax_is_a_message(real_db):
    ds = datasette_for(real_db)
    quoted = await ds.client.get('/-/claude-sessions/search?q="unbalanced AND (')
    assert quoted.status_code == 200
    raw = await ds.client.get('/-/claude-sessions/search?q="unbalanced AND (&syntax=fts')
    assert raw.status_code == 200
    assert "could not be read as an FTS5 query" in raw.text
    data = (
        await ds.client.get("/-/claude-sessions/search.json?q=NEAR(&syntax=fts&kind=bogus")
    ).json()
    assert data["hits"] == [] and len(data["errors"]) == 2


@pytest.mark.asyncio
async def test_events_table_links_rows_to_transcript(real_db):
    ds = datasette_for(real_db)
    html = (await ds.client.get("/claude-sessions/events?_search=renderer&_size=5")).text
    assert re.search(r'href="/-/claude-sessions/session/[^"?]+\?event=(\d+)#e\1"', html)


@pytest.mark.asyncio
async def test_compaction_is_marked(tmp_path):
    sid = "c0c0c0c0-0000-4000-8000-000000000001"
    base = {"sessionId": sid, "cwd": "/work/c", "version": "2.1.0"}

    def rec(uuid, parent, second, **fields):
        stamp = f"2025-09-02T10:00:{second:02d}.000Z"
        return {**base, "uuid": uuid, "parentUuid": parent, "timestamp": stamp, **fields}

    write_jsonl(
        tmp_path / "projects" / "-work-c" / f"{sid}.jsonl",
        [
            rec("p1", None, 1, type="user", message={"role": "user", "content": "Before"}),
            rec(
                "b1",
                None,
                5,
                type="system",
                subtype="compact_boundary",
                content="Conversation compacted",
                logicalParentUuid="p1",
                compactMetadata={"trigger": "auto", "preTokens": 155000},
            ),
            rec(
                "s1",
                "b1",
                6,
                type="user",
                isCompactSummary=True,
                message={"role": "user", "content": "This session is being continued..."},
            ),
            rec("p2", "s1", 7, type="user", message={"role": "user", "content": "After"}),
        ],
    )
    ds = datasette_for(build_archive(tmp_path, real=False))
    html = (await ds.client.get(f"/-/claude-sessions/session/{sid}")).text
    assert "Conversation compacted (trigger: auto, 155,000 tokens before)" in html
    assert "Compaction summary" in html
    assert html.index("Before") < html.index("Conversation compacted") < html.index("After")


@pytest.mark.asyncio
async def test_every_fixture_session_renders(tmp_path):
    # Every edge case of samples/fixtures (sidechains, teammates, workflows, hooks, broken
    # lines, every tool's records) opens, paged and as JSON, without a server error.
    projects = tmp_path / "projects"
    shutil.copytree(fixture("."), projects / "-fixtures")
    db_path = tmp_path / "claude-sessions.db"
    run_pass(db_path, [projects], trigger="cli")
    ds = datasette_for(db_path)
    conn = sqlite3.connect(db_path)
    threads = conn.execute(
        "select distinct e.session_id, coalesce(e.agent_id, f.agent_id) from events e "
        "join sync_files f on f.id = e.file_id where e.session_id is not null"
    ).fetchall()
    conn.close()
    assert len(threads) > 30
    for session_id, agent_id in threads:
        url = session_url(ds, session_id, agent=agent_id)
        html = await ds.client.get(url)
        assert html.status_code == 200, url
        assert anchors(html.text), url
        data = await ds.client.get(url.replace("?", ".json?") if "?" in url else url + ".json")
        assert data.status_code == 200 and data.json()["events"], url


@pytest.mark.asyncio
async def test_table_pages_fold_column_descriptions(real_db):
    ds = datasette_for(real_db)
    html = (await ds.client.get("/claude-sessions/sessions_list")).text
    assert 'class="column-descriptions"' in html
    assert "/-/static-plugins/datasette-claude-sessions/columns.js" in html
    script = await ds.client.get("/-/static-plugins/datasette-claude-sessions/columns.js")
    assert script.status_code == 200 and "cs-column-descriptions" in script.text
    home = (await ds.client.get("/")).text
    assert "columns.js" not in home


@pytest.mark.asyncio
async def test_session_with_only_a_subagent_points_to_it(real_db):
    ds = datasette_for(real_db)
    session = "14653a8a-9a1b-4299-8e64-c0aa4b772c1d"  # a warmup: its events are a subagent's
    html = (await ds.client.get(f"/-/claude-sessions/session/{session}")).text
    assert '<details class="cs-agent-list" open>' in html
    assert "No events in the main thread" in html
    assert f"/-/claude-sessions/session/{session}?agent=" in html
