"""`claude-sessions export --format markdown|html`: transcripts to read or share."""

from __future__ import annotations

import re

import pytest
from click.testing import CliRunner

from ingest.cli import cli

from .browser_helpers import CHROMIUM, CHROMIUM_ARGS, require_chromium
from .pages_helpers import build_archive, write_jsonl
from .test_transcript_render import INLINE, REVIEW, inline_sidechain_session, review_session

REAL_SESSION = "37f83ec9-f2ea-42a9-925e-0d5c105cb6e8"  # 101 tool calls, edits, bash


@pytest.fixture(scope="module")
def archive(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("readable")
    review, inline = tmp / "review.jsonl", tmp / "inline.jsonl"
    write_jsonl(review, review_session())
    write_jsonl(inline, inline_sidechain_session())
    return build_archive(
        tmp,
        extra={f"-work-review/{REVIEW}.jsonl": review, f"-work-old/{INLINE}.jsonl": inline},
    )


def export(db, out, *args) -> str:
    result = CliRunner().invoke(cli, ["export", *args, "-o", str(out), "--db", str(db)])
    assert result.exit_code == 0, result.output
    return result.output


def test_markdown_reads_like_a_transcript(archive, tmp_path):
    export(archive, tmp_path, REVIEW[:8], "--format", "markdown")
    text = (tmp_path / f"{REVIEW}.md").read_text()
    assert text.startswith("# Rename **total** to sum")
    assert "## Prompt · 2025-09-01 10:00:00\n\nRename **total** to sum\n\n1. in app.py" in text
    assert "ide_opened_file" not in text
    # Tool calls folded, drawn like the web app: a diff, a file, a command, a todo list.
    assert text.count("<details>") >= 7
    assert "<summary>🔧 Edit /work/review/app.py</summary>" in text
    assert "````diff\n-def f(x):\n-    total = x + 1" in text and "+    sum_ = x + 1" in text
    assert "````py\nimport os" in text
    assert "````bash\npytest -q tests/\n````" in text and "3 passed in 0.01s" in text
    assert "- [x] Rename in app\n- [~] Rename in tests\n- [ ] Update docs" in text
    assert "- **knob**: 3" in text  # an unknown tool: its fields, not its JSON
    # No raw JSON anywhere.
    assert '"type":' not in text and '"tool_use"' not in text
    assert not re.search(r"^\s*\{\"", text, re.M)


def test_markdown_nests_subagents_under_their_call(archive, tmp_path):
    export(archive, tmp_path, INLINE, "--format", "markdown")
    text = (tmp_path / f"{INLINE}.md").read_text()
    for n in (1, 2, 3):
        call = text.index(f"<summary>🔧 Task: Module {n}</summary>")
        agent = text.index(f"<summary>Subagent sidechain-r{n}")
        assert call < agent
        block = text[agent : text.index("</details>", agent)]
        assert f"> Module {n} step 2" in block
        assert all(f"Module {m} step" not in block for m in (1, 2, 3) if m != n)


def test_html_is_one_self_contained_file(archive, tmp_path):
    require_chromium()
    from playwright.sync_api import sync_playwright

    export(archive, tmp_path, REAL_SESSION, "--format", "html")
    page_file = tmp_path / f"{REAL_SESSION}.html"
    html = page_file.read_text()
    assert "<style>" in html and "<script>" in html
    assert not re.search(r"<(link|script)[^>]+(href|src)=", html)  # nothing to fetch
    assert 'href="/' not in html and "http://127.0.0.1" not in html
    assert '<pre class="cs-diff">' in html and "<del>" in html and "<ins>" in html
    requests, problems = [], []
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        page = browser.new_page()
        page.on("request", lambda r: requests.append(r.url))
        page.on("console", lambda m: m.type in ("error", "warning") and problems.append(m.text))
        page.on("pageerror", lambda e: problems.append(str(e)))
        page.goto(page_file.as_uri())
        page.wait_for_load_state("load")
        assert page.locator(".cs-event.cs-prompt").count() >= 6
        # The inline script works: the next-prompt button moves to a prompt.
        page.locator("button[data-jump='cs-prompt'][data-step='1']").click()
        page.locator("button[data-jump='cs-prompt'][data-step='1']").click()
        assert page.evaluate("window.scrollY") > 0
        assert page.locator(".cs-current.cs-prompt").count() == 1
        browser.close()
    assert problems == []
    # Only the file itself (and data: images, if any) was loaded.
    assert [u for u in requests if not u.startswith(("file://", "data:"))] == []


def test_all_as_html_is_a_static_site(archive, tmp_path):
    output = export(archive, tmp_path, "--all", "--format", "html")
    index = (tmp_path / "index.html").read_text()
    pages = sorted(p.name for p in tmp_path.glob("*.html") if p.name != "index.html")
    assert len(pages) >= 10 and f"Wrote {len(pages) + 1} files" in output
    linked = set(re.findall(r'<a href="([^"]+\.html)">', index))
    assert linked == set(pages)
    assert "Rename **total** to sum" in index
    one = (tmp_path / f"{REVIEW}.html").read_text()
    assert '<a href="index.html">all sessions</a>' in one


def test_export_refusals_are_one_sentence(archive, tmp_path):
    runner = CliRunner()
    result = runner.invoke(
        cli, ["export", "nope-nope", "--format", "html", "-o", str(tmp_path), "--db", str(archive)]
    )
    assert result.exit_code == 1 and result.output.startswith("Error: No session nope-nope")
    result = runner.invoke(
        cli, ["export", "--format", "markdown", "-o", str(tmp_path), "--db", str(archive)]
    )
    assert result.output.startswith("Error: Give either a SESSION_ID or --all.")
    (tmp_path / "x").write_text("mine")
    result = runner.invoke(
        cli, ["export", REVIEW, "--format", "html", "-o", str(tmp_path), "--db", str(archive)]
    )
    assert "is not empty; pass --force" in result.output and "Traceback" not in result.output
