"""Archives and a Datasette for the page tests (test_pages, test_metadata, test_hostile)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

from datasette.app import Datasette

from datasette_claude_sessions.metadata import load_metadata
from ingest.sync import run_pass

from .conftest import FIXTURES, REAL


def build_archive(tmp: Path, *, real: bool = True, extra: dict[str, Path] | None = None) -> Path:
    """Sync a projects tree (a copy of samples/real, plus ``extra``: relative path ->
    source file) into tmp/claude-sessions.db and return the database path."""
    projects = tmp / "projects"
    if real:
        shutil.copytree(REAL, projects)
    projects.mkdir(parents=True, exist_ok=True)
    for rel, source in (extra or {}).items():
        dest = projects / rel
        dest.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(source, dest)
    db_path = tmp / "claude-sessions.db"
    run_pass(db_path, [projects], trigger="cli")
    return db_path


def fixture(name: str) -> Path:
    return FIXTURES / name


def datasette_for(db_path: Path) -> Datasette:
    return Datasette([str(db_path)], metadata=load_metadata(db_path.stem))


def write_jsonl(path: Path, records: list[dict]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w", encoding="utf-8") as f:
        for record in records:
            f.write(json.dumps(record) + "\n")
    return path


def _stamp(i: int) -> str:
    seconds = i * 7
    return (
        f"2025-08-{1 + seconds // 86400:02d}T{seconds // 3600 % 24:02d}:"
        f"{seconds // 60 % 60:02d}:{seconds % 60:02d}.000Z"
    )


def _review_tool(i: int) -> dict:
    """An Edit (drawn as a diff) or a Write of a Python file (highlighted)."""
    if i % 8 == 1:
        return {
            "type": "tool_use",
            "id": f"toolu_{i}",
            "name": "Edit",
            "input": {
                "file_path": f"/work/big/module_{i % 50}.py",
                "old_string": "\n".join(f"    value_{k} = compute({k}, {i})" for k in range(12)),
                "new_string": "\n".join(
                    f"    value_{k} = compute({k}, {i + (k % 3 == 0)})" for k in range(12)
                ),
            },
        }
    body = "\n".join(
        f"def handler_{k}(request):\n    return {{'id': {k}, 'n': {i}}}  # widget{i}\n"
        for k in range(10)
    )
    return {
        "type": "tool_use",
        "id": f"toolu_{i}",
        "name": "Write",
        "input": {"file_path": f"/work/big/gen_{i % 50}.py", "content": "import os\n\n" + body},
    }


def synthetic_session(
    session_id: str, events: int, cwd: str = "/work/big", review: bool = False
) -> list[dict]:
    """A linear conversation of ``events`` records: prompts, answers, tool calls (Bash;
    with ``review``, Edit and Write calls instead, drawn as diffs and highlighted code)."""
    records: list[dict] = []
    parent = None
    base = {"sessionId": session_id, "cwd": cwd, "version": "2.0.0", "gitBranch": "main"}
    i = 0
    while len(records) < events:
        uuid = f"{session_id}-u{i}"
        stamp = _stamp(i)
        step = i % 4
        if step == 0:
            rec = {
                "type": "user",
                "message": {"role": "user", "content": f"Prompt number {i} about widget{i}"},
            }
        elif step == 1:
            rec = {
                "type": "assistant",
                "requestId": f"req_{i}",
                "message": {
                    "id": f"msg_{i}",
                    "role": "assistant",
                    "model": "claude-sonnet-4-5-20250929",
                    "content": [
                        _review_tool(i)
                        if review
                        else {
                            "type": "tool_use",
                            "id": f"toolu_{i}",
                            "name": "Bash",
                            "input": {"command": f"echo {i}"},
                        }
                    ],
                },
            }
        elif step == 2:
            rec = {
                "type": "user",
                "message": {
                    "role": "user",
                    "content": [
                        {
                            "type": "tool_result",
                            "tool_use_id": f"toolu_{i - 1}",
                            "content": f"output {i - 1}",
                        }
                    ],
                },
            }
        else:
            rec = {
                "type": "assistant",
                "requestId": f"req_{i}",
                "message": {
                    "id": f"msg_{i}",
                    "role": "assistant",
                    "model": "claude-sonnet-4-5-20250929",
                    "content": [{"type": "text", "text": f"Answer **{i}** done"}],
                },
            }
        rec.update(base, uuid=uuid, parentUuid=parent, timestamp=stamp)
        records.append(rec)
        parent = uuid
        i += 1
    return records
