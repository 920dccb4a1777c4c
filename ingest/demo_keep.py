"""The rest of a Claude directory for the demo corpus (``claude-sessions demo --full``).

ingest.demo writes the transcripts; this adds, from what those transcripts say, the
files Claude Code keeps beside them (and its cleanup deletes), seeded, so the same seed
gives the same files:

- ``projects/<project>/<session>/tool-results/<tool_use_id>.txt``: a tool result over
  PERSIST_CHARS characters in a 2.1 session moves there, and its line in the transcript
  keeps a ``<persisted-output>`` marker with a 2 KB preview, as Claude Code 2.1 does
  (the line's ``toolUseResult`` is left whole);
- ``file-history/<session>/<hash>@v<n>``: each successful Edit's ``originalFile``, the
  file as it was before the edit;
- ``plans/<slug>.md``: a plan for about a quarter of the sessions that have a slug;
- ``todos/<session>-agent-<id>.json``: the last TodoWrite list of each thread, else ``[]``;
- ``history.jsonl``: every prompt typed, in time order, as Claude Code logs them.

Files get the mtime of the moment they describe, and rewritten transcripts keep theirs.
"""

from __future__ import annotations

import os
import random
from datetime import datetime
from pathlib import Path
from typing import Any

import orjson

from .digest import blake2b

PERSIST_CHARS = 30_000
PREVIEW_CHARS = 2_000
PLAN_SHARE = 0.25
# Where the markers say the outputs were saved (Claude Code writes its absolute path).
FAKE_CLAUDE_DIR = "/home/you/.claude"


def _vt(version: str) -> tuple[int, ...]:
    try:
        return tuple(int(p) for p in version.split("."))
    except (AttributeError, ValueError):
        return (0,)


def _ms(timestamp: str | None) -> int | None:
    if not timestamp:
        return None
    return int(datetime.fromisoformat(timestamp.replace("Z", "+00:00")).timestamp() * 1000)


def _size_label(n: int) -> str:
    return f"{n / 1024:.1f}KB" if n < 1024 * 1024 else f"{n / 1024 / 1024:.1f}MB"


def marker(path: str, text: str) -> str:
    return (
        "<persisted-output>\n"
        f"Output too large ({_size_label(len(text.encode()))}). Full output saved to: {path}\n\n"
        f"Preview (first 2KB):\n{text[:PREVIEW_CHARS]}\n...\n</persisted-output>"
    )


class _Files:
    def __init__(self, root: Path):
        self.root = root
        self.count = 0
        self.bytes = 0

    def write(self, rel: str, data: bytes, mtime: float) -> None:
        path = self.root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
        os.utime(path, (mtime, mtime))
        self.count += 1
        self.bytes += len(data)


def add_claude_dir_files(claude_dir: str | os.PathLike, seed: int = 0) -> dict[str, Any]:
    """Add tool-results/, file-history/, plans/, todos/ and history.jsonl to the Claude
    directory whose ``projects/`` ingest.demo.generate wrote.  Returns counts."""
    root = Path(claude_dir)
    projects = root / "projects"
    rng = random.Random(f"keep-{seed}")
    files = _Files(root)
    prompts: list[tuple[int, dict]] = []
    moved = 0
    for project in sorted(p for p in projects.iterdir() if p.is_dir()):
        for transcript in sorted(project.glob("*.jsonl")):
            session_id = transcript.stem
            threads = [(transcript, session_id)]
            subagents = project / session_id / "subagents"
            if subagents.is_dir():
                threads += [(p, p.stem[len("agent-") :]) for p in sorted(subagents.glob("*.jsonl"))]
            facts = {"slug": None, "cwd": None, "end": transcript.stat().st_mtime}
            for path, agent_id in threads:
                moved += _thread(files, project.name, session_id, agent_id, path, facts, prompts)
            if facts["slug"] and rng.random() < PLAN_SHARE:
                files.write(f"plans/{facts['slug']}.md", _plan(rng, facts), facts["end"])
    # a resumed session repeats its predecessor's records: each prompt was typed once
    typed = {(ms, entry["display"], entry["project"]): entry for ms, entry in prompts}
    prompts = sorted(((key[0], entry) for key, entry in typed.items()), key=lambda p: p[0])
    history = b"".join(orjson.dumps(e, option=orjson.OPT_APPEND_NEWLINE) for _, e in prompts)
    if history:
        files.write("history.jsonl", history, max(ms for ms, _ in prompts) / 1000)
    return {"files": files.count, "bytes": files.bytes, "moved": moved}


def _thread(
    files: _Files,
    project: str,
    session_id: str,
    agent_id: str,
    path: Path,
    facts: dict,
    prompts: list,
) -> int:
    """One transcript: its large results moved to tool-results/, its Edit backups, todos
    and prompts collected.  Returns how many results were moved."""
    st = path.stat()
    lines = path.read_bytes().split(b"\n")
    changed = False
    moved = 0
    versions: dict[str, int] = {}
    todos: Any = []
    main = agent_id == session_id
    for i, line in enumerate(lines):
        if not line:
            continue
        try:
            record = orjson.loads(line)
        except orjson.JSONDecodeError:
            continue
        if not isinstance(record, dict):
            continue
        facts["slug"] = facts["slug"] or record.get("slug")
        facts["cwd"] = facts["cwd"] or record.get("cwd")
        message = record.get("message")
        content = message.get("content") if isinstance(message, dict) else None
        stamp = _ms(record.get("timestamp"))
        if (
            main
            and record.get("type") == "user"
            and isinstance(content, str)
            and not record.get("isMeta")
            and not record.get("isSidechain")
            and stamp is not None
        ):
            entry = {"display": content, "pastedContents": {}, "timestamp": stamp}
            entry["project"] = record.get("cwd")
            if _vt(record.get("version", "")) >= (2, 0, 55):
                entry["sessionId"] = session_id
            prompts.append((stamp, entry))
        if record.get("type") == "assistant" and isinstance(content, list):
            for block in content:
                if isinstance(block, dict) and block.get("name") == "TodoWrite":
                    todos = (block.get("input") or {}).get("todos", [])
        if record.get("type") != "user" or not isinstance(content, list):
            continue
        result = record.get("toolUseResult")
        if isinstance(result, dict) and isinstance(result.get("originalFile"), str):
            file_path = str(result.get("filePath"))
            n = versions[file_path] = versions.get(file_path, 0) + 1
            name = blake2b(file_path.encode(), digest_size=8).hexdigest()
            when = (stamp or st.st_mtime * 1000) / 1000
            files.write(
                f"file-history/{session_id}/{name}@v{n}", result["originalFile"].encode(), when
            )
        if _vt(record.get("version", "")) < (2, 1):
            continue
        for block in content:
            if not (isinstance(block, dict) and block.get("type") == "tool_result"):
                continue
            text = block.get("content")
            if not isinstance(text, str) or len(text) <= PERSIST_CHARS:
                continue
            tool_id = block.get("tool_use_id")
            rel = f"projects/{project}/{session_id}/tool-results/{tool_id}.txt"
            files.write(rel, text.encode(), (stamp or st.st_mtime * 1000) / 1000)
            block["content"] = marker(f"{FAKE_CLAUDE_DIR}/{rel}", text)
            lines[i] = orjson.dumps(record)
            changed = True
            moved += 1
    if changed:
        path.write_bytes(b"\n".join(lines))
        os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns))
    facts["end"] = max(facts["end"], st.st_mtime)
    files.write(
        f"todos/{session_id}-agent-{agent_id}.json",
        orjson.dumps(todos, option=orjson.OPT_INDENT_2),
        st.st_mtime,
    )
    return moved


def _plan(rng: random.Random, facts: dict) -> bytes:
    steps = [
        "Read the module and its tests to see where the behaviour is decided",
        "Write a failing test that shows the problem",
        "Move the logic into a helper with one clear job",
        "Update the callers and keep the public API unchanged",
        "Run the whole suite and the linters",
        "Update the docs and the changelog",
        "Measure before and after on the benchmark corpus",
        "Remove the old code path once nothing calls it",
    ]
    chosen = rng.sample(steps, rng.randint(3, len(steps)))
    body = [f"# Plan: {facts['slug'].replace('-', ' ')}", "", "## Context", ""]
    body += [
        f"Working in `{facts['cwd']}`. The change touches the parts listed below; each step "
        "ends with the tests passing." * rng.randint(1, 3),
        "",
        "## Steps",
        "",
    ]
    for n, step in enumerate(chosen, 1):
        body.append(f"{n}. {step}.")
        body += [f"   - {rng.choice(steps).lower()}" for _ in range(rng.randint(0, 3))]
    body += ["", "## Risks", "", "- " + rng.choice(steps) + ".", ""]
    return "\n".join(body).encode()
