"""Draw every session of a projects folder with claude-code-log and with this project, and
print what each page shows, session by session (docs/vs-claude-code-log.md).

    python -m venv /tmp/ccl && /tmp/ccl/bin/pip install claude-code-log==1.7.0
    python bench/compare_claude_code_log.py --ccl /tmp/ccl/bin/claude-code-log \\
        --projects ../shared/samples/real

Both run on a COPY of --projects in a temporary folder (claude-code-log writes its cache
database into the projects folder; HOME points inside the temporary folder too).  This
project's side: the folder synced into a new archive, then ``claude-sessions export
--all --format html`` (the transcript page's own templates, self-contained files).

For each session both drew, counted in the HTML: typed prompts, tool calls, failed tool
results, Edit/MultiEdit diff lines (removed + added), nested subagent lines or blocks,
per-message token lines, highlighted code blocks, the page's size and title; and the
time each tool took for the whole folder.  Counts come from each tool's own CSS classes
(listed in FACTS), so they say what is drawn, not what the transcript holds.
"""

from __future__ import annotations

import argparse
import html
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))

# (label, this project's pattern, claude-code-log's pattern): each counted in the page.
FACTS = [
    ("prompts", r'class="cs-event cs-prompt"', r"class='message user'"),
    ("tool calls", r'<details class="cs-tool cs-tool-', r"class='message tool_use[ ']"),
    (
        "failed results",
        r'class="cs-tool-result cs-status-error"',
        r"class='message tool_result error",
    ),
    ("diff lines", r"<del>|<ins>", r"class='diff-line diff-(?:added|removed)'"),
    ("subagent lines", r'class="cs-event [^"]*cs-sidechain', r"class='message [^']*sidechain"),
    ("subagent blocks", r'<details class="cs-subagent"', None),
    ("token lines", r'class="cs-usage"', r"class='token-usage'"),
    ("highlighted code", r'<pre class="highlight"', r'class="highlight"'),
]


def count(pattern: str | None, text: str) -> str:
    return "–" if pattern is None else str(len(re.findall(pattern, text)))


def title(text: str) -> str:
    m = re.search(r"<title>(.*?)</title>", text, re.S)
    shown = html.unescape(m.group(1)).strip() if m else ""
    shown = shown.removeprefix("claude-code-log: ")
    return shown if len(shown) <= 40 else shown[:39] + "…"


def calls_in_files(projects: Path) -> dict[str, int]:
    """Distinct tool_use ids per session in the transcripts themselves (main files and
    subagent files), read with json: what both pages could show."""
    import json

    ids: dict[str, set] = {}
    for path in projects.rglob("*.jsonl"):
        for line in path.read_bytes().splitlines():
            try:
                record = json.loads(line)
            except ValueError:
                continue
            message = record.get("message") if isinstance(record, dict) else None
            content = message.get("content") if isinstance(message, dict) else None
            if not isinstance(content, list) or not isinstance(record.get("sessionId"), str):
                continue
            for block in content:
                if isinstance(block, dict) and block.get("type") == "tool_use":
                    ids.setdefault(record["sessionId"], set()).add(block.get("id"))
    return {sid: len(found) for sid, found in ids.items()}


def run_claude_code_log(ccl: str, projects: Path, out: Path, home: Path) -> float:
    started = time.perf_counter()
    subprocess.run(
        [ccl, "--all-projects", "--projects-dir", str(projects), "-o", str(out), "-j", "1"],
        check=True,
        capture_output=True,
        env={**os.environ, "HOME": str(home)},
    )
    return time.perf_counter() - started


def run_ours(projects: Path, db: Path, out: Path) -> float:
    started = time.perf_counter()
    for args in (
        ["sync", "--projects", str(projects), "--db", str(db)],
        ["export", "--all", "--format", "html", "-o", str(out), "--db", str(db)],
    ):
        subprocess.run(
            [sys.executable, "-m", "ingest", *args],
            check=True,
            capture_output=True,
            env={**os.environ, "PYTHONPATH": str(HERE.parent)},
        )
    return time.perf_counter() - started


def browse(pages: list[Path]) -> dict[Path, tuple[float, int, int]]:
    """Each page opened from file:// in headless Chromium: (ms to the load event, console
    errors and page errors, requests to anything but the file itself)."""
    from playwright.sync_api import sync_playwright

    from tests.browser_helpers import CHROMIUM, CHROMIUM_ARGS

    found = {}
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        for path in pages:
            page = browser.new_page()
            url = path.as_uri()
            errors: list = []
            requests: list = []

            def on_console(message, errors=errors):
                if message.type == "error":
                    errors.append(message)

            def on_request(request, url=url, requests=requests):
                if request.url != url:
                    requests.append(request.url)

            page.on("console", on_console)
            page.on("pageerror", lambda error, errors=errors: errors.append(error))
            page.on("request", on_request)
            started = time.perf_counter()
            page.goto(url, wait_until="load")
            found[path] = ((time.perf_counter() - started) * 1000, len(errors), len(requests))
            page.close()
        browser.close()
    return found


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--ccl", required=True, help="the claude-code-log executable")
    parser.add_argument("--projects", type=Path, required=True, help="a projects folder")
    parser.add_argument("--keep", action="store_true", help="keep the temporary folder")
    parser.add_argument(
        "--browser",
        action="store_true",
        help="also open every page in headless Chromium (/usr/bin/chromium): load time, "
        "console errors, requests beyond the file",
    )
    args = parser.parse_args()

    work = Path(tempfile.mkdtemp(prefix="compare-ccl-"))
    try:
        home = work / "home"
        home.mkdir()
        ours_projects, theirs_projects = work / "ours" / "projects", work / "theirs" / "projects"
        shutil.copytree(args.projects, ours_projects)
        shutil.copytree(args.projects, theirs_projects)
        version = subprocess.run(
            [args.ccl, "--version"], capture_output=True, text=True, check=True
        ).stdout.strip()
        ours_s = run_ours(ours_projects, work / "ours" / "archive.db", work / "ours" / "html")
        theirs_s = run_claude_code_log(args.ccl, theirs_projects, work / "theirs" / "html", home)
        ours = {p.stem: p for p in (work / "ours" / "html").glob("*.html") if p.stem != "index"}
        theirs = {
            p.stem.removeprefix("session-"): p
            for p in (work / "theirs" / "html").glob("*/session-*.html")
        }
        written = sorted(
            str(p.relative_to(theirs_projects))
            for p in theirs_projects.rglob("*")
            if p.is_file() and not (args.projects / p.relative_to(theirs_projects)).exists()
        )
        print(
            f"{version}: {theirs_s:.1f} s for the folder; this project (sync + export "
            f"--all --format html): {ours_s:.1f} s"
        )
        print(f"claude-code-log wrote into the projects folder: {', '.join(written) or 'nothing'}")
        print(
            f"sessions drawn: this project {len(ours)}, claude-code-log {len(theirs)}; "
            f"only here: {len(set(ours) - set(theirs))}, only there: "
            f"{len(set(theirs) - set(ours))}\n"
        )
        in_files = calls_in_files(args.projects)
        both = sorted(set(ours) & set(theirs))
        loaded = browse([x[sid] for sid in both for x in (ours, theirs)]) if args.browser else {}
        head = ["session", "calls in files", "side", "title", *[f[0] for f in FACTS], "KB"]
        if args.browser:
            head += ["load ms", "errors", "requests"]
        print("| " + " | ".join(head) + " |")
        print("|" + "---|" * len(head))
        for sid in both:
            for side, path, index in (("here", ours[sid], 1), ("ccl", theirs[sid], 2)):
                text = path.read_text(encoding="utf-8", errors="replace")
                first = side == "here"
                cells = [sid[:8] if first else "", str(in_files.get(sid, 0)) if first else ""]
                cells += [side, title(text).replace("|", "\\|")]
                cells += [count(f[index], text) for f in FACTS]
                cells.append(f"{path.stat().st_size / 1000:,.0f}")
                if path in loaded:
                    ms, errors, requests = loaded[path]
                    cells += [f"{ms:,.0f}", str(errors), str(requests)]
                print("| " + " | ".join(cells) + " |")
    finally:
        if args.keep:
            print(f"\nkept {work}")
        else:
            shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
