"""No script from data, no request to another site: a transcript whose every field
carries script and off-site payloads, served by a real `claude-sessions serve` and
opened in headless Chromium on every page (plugin pages, dashboards, canned queries,
Datasette's table, row and query pages).  No dialog may open, no request may leave for
another origin, and the Content-Security-Policy must block nothing the pages need
(Datasette's own scripts, the vendored vega files)."""

from __future__ import annotations

import json
import urllib.parse
import urllib.request

import pytest
from datasette.utils import tilde_encode

from .browser_helpers import (
    Server,
    chromium,
    free_port,
    isolated_env,
)
from .pages_helpers import write_jsonl

sync_api = pytest.importorskip("playwright.sync_api")

SID = "c5900000-0000-4000-8000-000000000001"
AGENT = "aevil9"
EVIL = "evil.example"


def payload(tag: str) -> str:
    """Script, event handler, off-site image and CSS, markup-breaking quotes."""
    return (
        f"\"'></textarea></script><script>alert('{tag}')</script>"
        f"<img src=https://{EVIL}/{tag}.png onerror=alert('{tag}')>"
        f"<svg onload=alert('{tag}')></svg><a href=javascript:alert('{tag}')>{tag}</a>"
        f"<style>@import 'https://{EVIL}/{tag}.css';</style>"
        f"![i](https://{EVIL}/{tag}-md.png) [l](javascript:alert('{tag}md'))"
    )


def name_payload(tag: str) -> str:
    """For folder and file names: no slash."""
    return f"x'\"><img src=x onerror=alert('{tag}')><svg onload=alert('{tag}')>"


CWD = f"/tmp/proj/{name_payload('cwd')}"


def env(uuid: str, parent: str | None, second: int, **extra) -> dict:
    return {
        "uuid": uuid,
        "parentUuid": parent,
        "sessionId": SID,
        "cwd": CWD,
        "gitBranch": payload("branch"),
        "version": payload("version"),
        "timestamp": f"2025-09-01T10:00:{second:02d}.000Z",
        **extra,
    }


def assistant(uuid, parent, second, content, **extra) -> dict:
    return {
        "type": "assistant",
        "requestId": f"req_{uuid}",
        "message": {
            "id": f"msg_{uuid}",
            "role": "assistant",
            "model": payload("model"),
            "content": content,
            "usage": {"input_tokens": 10, "output_tokens": 5},
        },
        **env(uuid, parent, second, **extra),
    }


def user(uuid, parent, second, content, **extra) -> dict:
    return {
        "type": "user",
        "message": {"role": "user", "content": content},
        **env(uuid, parent, second, **extra),
    }


def records() -> list[dict]:
    return [
        user("u1", None, 1, payload("prompt")),
        assistant("u2", "u1", 2, [{"type": "thinking", "thinking": payload("thinking")}]),
        assistant("u3", "u2", 3, [{"type": "text", "text": payload("answer")}]),
        assistant(
            "u4",
            "u3",
            4,
            [
                {
                    "type": "tool_use",
                    "id": "toolu_1",
                    "name": payload("toolname"),
                    "input": {
                        "command": payload("input"),
                        "file_path": f"/tmp/{name_payload('file')}.py",
                    },
                },
                {
                    "type": "tool_use",
                    "id": "toolu_2",
                    "name": "Task",
                    "input": {"description": payload("taskdesc"), "prompt": payload("taskprompt")},
                },
                {
                    "type": "tool_use",
                    "id": "toolu_3",
                    "name": "Edit",
                    "input": {
                        "file_path": f"/tmp/{name_payload('editfile')}.py",
                        "old_string": payload("old"),
                        "new_string": payload("new"),
                    },
                },
            ],
        ),
        user(
            "u5",
            "u4",
            5,
            [
                {
                    "type": "tool_result",
                    "tool_use_id": "toolu_1",
                    "is_error": True,
                    "content": payload("result"),
                },
                {"type": "tool_result", "tool_use_id": "toolu_3", "content": payload("editresult")},
            ],
        ),
        user(
            "u6",
            "u5",
            6,
            [
                {
                    "type": "tool_result",
                    "tool_use_id": "toolu_2",
                    "content": [{"type": "text", "text": payload("taskresult")}],
                }
            ],
            toolUseResult={"agentId": AGENT, "status": "completed"},
        ),
        {"type": "custom-title", "customTitle": payload("title"), "sessionId": SID},
        {"type": "summary", "summary": payload("summary"), "leafUuid": "u6"},
        {"type": "system", "content": payload("system"), "level": "error", **env("u7", "u6", 7)},
    ]


def agent_records() -> list[dict]:
    extra = {"agentId": AGENT, "isSidechain": True}
    return [
        user("a1", None, 4, payload("agentprompt"), **extra),
        assistant("a2", "a1", 5, [{"type": "text", "text": payload("agentanswer")}], **extra),
    ]


@pytest.fixture(scope="module")
def workdir(tmp_path_factory):
    return tmp_path_factory.mktemp("csp")


@pytest.fixture(scope="module")
def server(workdir):
    projects = workdir / "projects"
    folder = projects / f"-tmp-{name_payload('dir')}"
    main = write_jsonl(folder / f"{SID}.jsonl", records())
    with open(main, "a", encoding="utf-8") as f:
        f.write(payload("badline") + "\n")
    agents = folder / SID / "subagents"
    write_jsonl(agents / f"agent-{AGENT}.jsonl", agent_records())
    (agents / f"agent-{AGENT}.meta.json").write_text(
        json.dumps({"agentType": payload("agenttype"), "description": payload("agentdesc")})
    )
    home = workdir / "home"
    home.mkdir()
    server = Server(
        ["--db", str(workdir / "a.db"), "--projects", str(projects), "--no-watch"],
        env=isolated_env(home),
        log_path=workdir / "serve.log",
        port=free_port(),
    )
    try:
        server.wait_until_up()
        yield server
    finally:
        server.stop()


def get_json(url: str):
    with urllib.request.urlopen(url, timeout=30) as response:
        return json.loads(response.read())


def every_page(server) -> list[str]:
    db = "a"
    q = urllib.parse.quote
    pages = [
        "/",
        "/-/claude-sessions",
        f"/-/claude-sessions/session/{SID}",
        f"/-/claude-sessions/session/{SID}?agent={AGENT}",
        "/-/claude-sessions/search?q=alert",
        "/-/claude-sessions/search?q=alert&kind=tool_use",
        "/-/claude-sessions/status",
        "/-/dashboards",
        "/-/dashboards/claude-usage",
        f"/{db}",
        f"/{db}?sql=" + q("select * from events"),
        "/-/metadata",
        "/-/databases",
    ]
    database = get_json(f"{server.url}/{db}.json")
    for table in database["tables"]:
        pages.append(f"/{db}/{q(table['name'])}")
    for view in database.get("views", []):
        pages.append(f"/{db}/{q(view['name'])}")
    for name in ("events", "sessions", "tool_calls", "api_calls", "sync_files", "subagents"):
        found = get_json(f"{server.url}/{db}/{name}.json?_size=1&_shape=objects")
        if found["rows"]:
            keys = found.get("primary_keys") or ["rowid"]
            row = found["rows"][0]
            pages.append(f"/{db}/{name}/" + ",".join(tilde_encode(str(row[k])) for k in keys))
    for query in database.get("queries", []):
        pages.append(
            f"/{db}/{q(query['name'])}?"
            + urllib.parse.urlencode({p: "alert" for p in query.get("params", [])})
        )
    metadata = get_json(f"{server.url}/-/metadata.json")
    dashboard = metadata["plugins"]["datasette-dashboards"]["claude-usage"]
    pages += [f"/-/dashboards/claude-usage/{slug}" for slug in dashboard["charts"]]
    return pages


@pytest.fixture(scope="module")
def browser(workdir):
    with chromium(workdir / "browser-home") as browser:
        yield browser


def test_no_script_and_no_foreign_request_on_any_page(server, browser):
    origin = server.url
    dialogs, foreign, blocked, errors = [], [], [], []
    context = browser.new_context()

    def route(r):
        url = r.request.url
        if url.startswith(origin + "/") or url.startswith("data:"):
            return r.continue_()
        foreign.append(url)
        return r.abort()

    context.route("**/*", route)
    context.on(
        "request",
        lambda req: (
            None if req.url.startswith((origin + "/", "data:")) else foreign.append(req.url)
        ),
    )
    page = context.new_page()
    page.set_default_timeout(30_000)
    page.on("dialog", lambda d: (dialogs.append((page.url, d.message)), d.dismiss()))
    page.on(
        "console",
        lambda m: "Content Security Policy" in m.text and blocked.append((page.url, m.text)),
    )
    page.on("pageerror", lambda e: errors.append((page.url, str(e))))
    pages = every_page(server)
    assert len(pages) > 40
    for path in pages:
        response = page.goto(origin + path)
        assert response.status == 200, path
        assert "script-src 'self'" in response.headers["content-security-policy"], path
        page.wait_for_load_state("networkidle")
        # Every value is there as text (the payloads were rendered, not dropped).
        if path.endswith(SID):
            text = page.inner_text("body")
            assert "alert('prompt')" in text, path
    context.close()
    assert dialogs == []
    assert foreign == []
    # The policy blocks nothing that the pages themselves need: no payload gets that
    # far, so any report would be one of our own or Datasette's scripts.
    assert blocked == []
    assert errors == []


def test_dashboard_tables_show_names_as_text(server, browser):
    context = browser.new_context()
    page = context.new_page()
    dialogs = []
    page.on("dialog", lambda d: (dialogs.append(d.message), d.dismiss()))
    page.goto(server.url + "/-/dashboards/claude-usage")
    errors = page.locator("#chart-tool-errors td")
    sync_api.expect(errors.first).to_be_visible(timeout=30_000)
    assert "alert('toolname')" in page.inner_text("#chart-tool-errors")
    assert page.locator("#chart-tool-errors img, #chart-tool-errors script").count() == 0
    projects = page.locator("#chart-top-projects td")
    sync_api.expect(projects.first).to_be_visible()
    assert "onerror=alert('cwd')" in page.inner_text("#chart-top-projects")
    # The vega-lite charts still draw under the policy (no 'unsafe-eval').
    charts = page.locator(".dashboard-card-chart canvas, .dashboard-card-chart svg")
    sync_api.expect(charts.first).to_be_visible()
    assert charts.count() >= 3
    assert dialogs == []
    context.close()
