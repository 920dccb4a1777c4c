"""Sessions of well-formed JSON lines with wrong types anywhere (a list where an id
goes, a number for a message, time stamps with and without a zone) sync, render on
the session page (HTML and JSON, every page) and export to Markdown and HTML without
an error: one odd line costs its own card at most, never the page.

The lines come from a seeded random generator, so a failure names its seed and the
same sessions come back; ``FUZZ_SEEDS=200 pytest tests/test_fuzz_pages.py`` explores
more of them (CI runs the default few)."""

from __future__ import annotations

import json
import os
import random
import sqlite3
import traceback

import pytest

from datasette_claude_sessions import readable
from ingest.lines import register as register_lines
from ingest.sync import run_pass

from .pages_helpers import datasette_for

SCALARS = [None, True, False, 0, -1, 2**63, 1.5, "", "x", "<b>", "é", "2025-08-01", "/tmp"]
TOOLS = ["Edit", "Write", "Bash", "Task", "Read", "TodoWrite", "MultiEdit", "Agent", "Grep"]


class Lines:
    def __init__(self, seed: int):
        self.rng = random.Random(seed)

    def pick(self, *options):
        return self.rng.choice(options)

    def value(self, depth: int = 0):
        """Any JSON value, mostly small."""
        r = self.rng.random()
        if depth > 2 or r < 0.6:
            return self.rng.choice(SCALARS)
        if r < 0.8:
            return [self.value(depth + 1) for _ in range(self.rng.randint(0, 3))]
        keys = ["type", "text", "id", "name", "input", "content", "x"]
        return {self.rng.choice(keys): self.value(depth + 1) for _ in range(self.rng.randint(0, 3))}

    def tool_input(self) -> dict:
        p = self.pick
        return {
            "file_path": p("/a.py", 3, None),
            "old_string": p("a\nb", 1),
            "new_string": p("a\nc", []),
            "content": p("x", {}),
            "command": p("ls", 2),
            "prompt": p("p", None),
            "todos": p([{"content": 1}], "x"),
            "edits": p([{"old_string": 1}], 2),
        }

    def block(self) -> dict:
        p = self.pick
        good = {
            "text": "hi",
            "id": "toolu_1",
            "name": p(*TOOLS),
            "tool_use_id": "toolu_1",
            "thinking": "x",
            "is_error": True,
            "input": self.tool_input(),
            "content": p("r", [{"type": "text", "text": 5}], 7, [{"type": "tool_reference"}]),
            "source": p({"type": "base64", "media_type": "image/png", "data": "AAAA"}, 1),
        }
        kind = p("text", "tool_use", "tool_result", "thinking", "image", "redacted_thinking")
        block = {"type": kind if self.rng.random() < 0.9 else self.value()}
        for key, sound in good.items():
            if self.rng.random() < 0.5:
                block[key] = self.value() if self.rng.random() < 0.4 else sound
        return block

    def session(self, session_id: str) -> list[str]:
        p = self.pick
        lines, previous = [], None
        for j in range(self.rng.randint(1, 8)):
            uuid = p(f"u{j}", self.value(), None)
            message = {
                "role": p("user", "assistant"),
                "content": p("hello", [self.block() for _ in range(self.rng.randint(0, 3))]),
                "model": p("claude-sonnet-4-20250514", self.value()),
                "id": p(f"msg_{j}", self.value()),
                "usage": p({"input_tokens": 5, "output_tokens": 3}, self.value()),
            }
            record = {
                "type": p("user", "assistant", "system", "summary", "progress", self.value()),
                "sessionId": session_id,
                "uuid": uuid,
                "parentUuid": p(previous, None, self.value()),
                "timestamp": p(f"2025-08-01T10:00:0{j}Z", f"2025-08-01T10:00:0{j}", None),
                "message": p(message, message, self.value()),
            }
            for key in (
                "isSidechain", "toolUseResult", "agentId", "cwd", "isMeta", "subtype",
                "content", "summary", "leafUuid", "requestId", "isCompactSummary", "level",
            ):  # fmt: skip
                if self.rng.random() < 0.3:
                    record[key] = p(True, self.value(), "x", "/tmp")
            lines.append(json.dumps(record))
            previous = uuid if isinstance(uuid, str) else previous
        return lines


SEEDS = range(int(os.environ.get("FUZZ_SEEDS", "3")))


@pytest.mark.asyncio
@pytest.mark.parametrize("seed", SEEDS)
async def test_fuzzed_sessions_render_and_export(tmp_path, seed):
    lines = Lines(seed)
    project = tmp_path / "projects" / "-work-fuzz"
    project.mkdir(parents=True)
    for i in range(40):
        session_id = f"aaaaaaaa-0000-4000-8000-{seed:04d}{i:08d}"
        text = "\n".join(lines.session(session_id)) + "\n"
        (project / f"{session_id}.jsonl").write_text(text)
    db = tmp_path / "fuzz.db"
    result = run_pass(db, [tmp_path / "projects"])
    assert result.lines_added > 0
    conn = sqlite3.connect(db)
    register_lines(conn)  # as the CLI's and the plugin's connections (ingest.lines)
    sessions = [r[0] for r in conn.execute("select session_id from sessions")]
    assert len(sessions) >= 30
    failures = []
    for session_id in sessions:
        for export in (readable.markdown_document, readable.html_page):
            try:
                assert export(conn, session_id)
            except Exception:
                failures.append((export.__name__, session_id, traceback.format_exc(limit=-2)))
    conn.close()
    ds = datasette_for(db)
    for session_id in sessions:
        for suffix in ("", "?page=2", ".json"):
            url = f"/-/claude-sessions/session/{session_id}{suffix}"
            response = await ds.client.get(url)
            if response.status_code not in (200, 404):  # page 2 may not exist
                failures.append((url, response.status_code))
    assert failures == [], f"seed {seed}: {failures[:3]}"
