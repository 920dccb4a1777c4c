"""Write a synthetic Claude Code projects tree: realistic, deterministic, any size.

Used by ``claude-sessions demo``, ``serve --demo``, the tests and ``bench/``.  The tree
has the shape of ``~/.claude/projects`` (see ../shared/FORMAT.md): several projects
named after their working directory (every character outside ``[A-Za-z0-9]`` becomes
``-``), many sessions each, lognormal file sizes and a few lines of several MB (file
bodies, pasted screenshots).  Records follow Claude Code 2.0.x for older sessions
(flat ``agent-<8hex>.jsonl`` subagents, summaries, 5-minute cache writes) and 2.1.x for
newer ones (``<sessionId>/subagents/agent-<id>.jsonl`` + ``.meta.json``, titles,
attachments, hook progress, 1-hour cache writes, ``sourceToolAssistantUUID``).  Each
API response is split over several assistant lines that share ``message.id`` and
``requestId`` and repeat ``usage``; there are tool_use/tool_result pairs with
``toolUseResult`` objects and errors, compactions, resumed sessions that replay an
earlier session's records, slash commands, ``<synthetic>`` messages, queue operations,
file-history snapshots, empty files and summary-only files.

Determinism: for the same seed and size options, the same files are written with the
same bytes, except the timestamps.  Records are dated relative to ``now`` (by default
the moment of the call, so a demo archive looks current: sessions spread over the 60
days before it, the last one minutes ago); pass ``now`` to pin them as well, and the
output is byte-identical.  Timestamps have a fixed width, so sizes never depend on
``now``.  Each file's mtime is set to the time of its last record.
"""

from __future__ import annotations

import base64
import itertools
import math
import os
import random
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

from .demo_records import _Shared, _Writer
from .demo_thread import _Session
from .demo_words import (  # noqa: F401 (MIXES, encode_project_dir and iso: the API)
    BRANCHES,
    CLASSES,
    DAY,
    IDENTS,
    MB,
    MIXES,
    MODELS_20,
    MODELS_21,
    MODULES,
    PROJECTS,
    SLUG_WORDS,
    SPAN_DAYS,
    TITLES,
    VERSION_BY_AGE,
    encode_project_dir,
    iso,
    version_tuple,
)


def _code_pool(rng: random.Random, lang: str, n: int = 6000) -> list[str]:
    """Plausible source lines to cut file bodies, diffs and grep hits from."""
    if lang == "py":
        templates = [
            "def {f}({a}, {b}=None):",
            '    """{doc}"""',
            "    if {a} is None:",
            "        return {b}",
            "    for {x} in {a}.{f}s():",
            "        {x}.{g}({b})",
            '    {a} = {b}.get("{a}", {n})',
            '        raise ValueError(f"invalid {a}: {{{a}!r}}")',
            "class {C}({C2}):",
            "    {a}: int = {n}",
            "import {m}",
            "from {m} import {C}, {f}",
            "",
            "    return [{x} for {x} in {a} if {x}.{b}]",
            '    logger.info("{f} done in %.2fs", elapsed)',
            '    with open({a}, "rb") as fp:',
            "        data = fp.read()",
            '@pytest.mark.parametrize("{a}", [{n}, {n}])',
            "def test_{f}({a}):",
            "    assert {f}({a}) == {n}",
            "# {doc}",
        ]
    else:
        templates = [
            "export function {f}({a}: {C}, {b}?: number): {C2} {{",
            "  const {a} = await {b}.{g}({n});",
            "  if (!{a}) {{",
            "    return null;",
            "  }}",
            "}}",
            "import {{ {C}, {f} }} from './{m}';",
            "export class {C} extends {C2} {{",
            "  private {a}: Map<string, {C}> = new Map();",
            "  for (const {x} of {a}) {{",
            "    {x}.{g}({b});",
            "",
            "// {doc}",
            "  throw new Error(`invalid {a}: ${{{a}}}`);",
            "describe('{f}', () => {{",
            "  it('{doc}', async () => {{",
            "    expect({f}({a})).toEqual({n});",
            "  }});",
        ]
    docs = [
        "Return the cached value or compute it",
        "Handle the retry with exponential backoff",
        "TODO: remove once the migration has run everywhere",
        "Validate the payload before writing it",
        "Keep this in sync with the schema",
    ]
    out = []
    for _ in range(n):
        out.append(
            rng.choice(templates).format(
                f=rng.choice(IDENTS) + "_" + rng.choice(IDENTS),
                g=rng.choice(IDENTS),
                a=rng.choice(IDENTS),
                b=rng.choice(IDENTS),
                x=rng.choice(IDENTS)[0],
                C=rng.choice(CLASSES),
                C2=rng.choice(CLASSES),
                m=rng.choice(MODULES),
                n=rng.randint(0, 999),
                doc=rng.choice(docs),
            )
        )
    return out


def _project(rng: random.Random, cwd: str, lang: str, hooks: bool) -> dict[str, Any]:
    ext = ".py" if lang == "py" else ".ts"
    top = "src/" + cwd.rsplit("/", 1)[-1].replace("-", "_").replace(".", "_").lower()
    dirs = [top, "tests", "docs", "scripts"] if lang == "py" else ["src", "src/components", "tests"]
    files = []
    for m in rng.sample(MODULES, 12):
        files.append(f"{dirs[0]}/{m}{ext}")
        if rng.random() < 0.6:
            files.append(f"tests/test_{m}{ext}" if lang == "py" else f"tests/{m}.test{ext}")
    files += ["README.md", "pyproject.toml" if lang == "py" else "package.json"]
    return {
        "cwd": cwd,
        "dir": encode_project_dir(cwd),
        "lang": lang,
        "files": files,
        "tests": [f for f in files if "test" in f],
        "dirs": dirs,
        "hooks": hooks,
    }


def generate(
    out_dir: str | os.PathLike,
    mb: float = 20,
    seed: int = 0,
    progress: Callable[[int], None] | None = None,
    *,
    sessions: int | None = None,
    now: float | None = None,
    mix: str = "default",
) -> dict[str, Any]:
    """Write a demo projects tree of about ``mb`` megabytes (10^6 bytes) into out_dir.

    ``sessions`` fixes the number of session transcripts (sizes are then spread around
    mb/sessions); by default it follows from the size (median session ~120 KB).
    ``progress`` is called with byte counts as they are written.  ``now`` (a Unix time)
    anchors the timestamps; see the module docstring.  ``mix`` names one of ``MIXES``.
    Returns a summary dict.
    """
    started = time.perf_counter()
    if mix not in MIXES:
        raise ValueError(f"unknown mix {mix!r}; one of: {', '.join(MIXES)}")
    mix_ = MIXES[mix]
    rng = random.Random(seed)
    root = Path(out_dir)
    root.mkdir(parents=True, exist_ok=True)
    now = time.time() if now is None else float(now)
    target = int(mb * MB)

    code = {}
    for lang in ("py", "ts"):
        lines = _code_pool(rng, lang)
        code[lang] = (lines, list(itertools.accumulate(len(line) + 1 for line in lines * 2)))
    blob = base64.b64encode(rng.randbytes(3 * 1024 * 1024)).decode()
    shared = _Shared(rng=rng, root=root, now=now, progress=progress, code=code, blob=blob, mix=mix_)

    # Plan: session sizes (lognormal), then dates (sorted, the last one minutes ago).
    if sessions:
        weights = [math.exp(rng.gauss(0, 1.0)) for _ in range(sessions)]
    else:
        weights = []
        total = 0.0
        while total < target:
            w = min(mix_.session_median * math.exp(rng.gauss(0, 1.3)), max(target / 3, 200_000))
            weights.append(w)
            total += w
    n = len(weights)
    starts = []
    for _ in range(n):
        start = now - rng.uniform(1, SPAN_DAYS) * DAY
        starts.append(start - start % DAY + rng.uniform(7.5, 20.0) * 3600)  # working hours
    starts.sort()
    starts[-1] = now - rng.uniform(5, 40) * 60  # the newest session started minutes ago
    n_projects = max(3, min(len(PROJECTS), 2 + n // 12))
    projects = [
        _project(rng, cwd, lang, hooks=i % 3 == 0)
        for i, (cwd, lang) in enumerate(PROJECTS[:n_projects])
    ]
    project_weights = [1 / (i + 1) for i in range(n_projects)]

    seen_20 = seen_21 = False
    remaining_weight = sum(weights)
    for i, (weight, start) in enumerate(zip(weights, starts, strict=True)):
        project = (
            projects[i % n_projects]
            if i < n_projects
            else rng.choices(projects, project_weights)[0]
        )
        version = next(v for days, v in VERSION_BY_AGE if now - start >= days * DAY)
        if i == 0 and version_tuple(version) >= (2, 1):
            version = "2.0.55"
        if i == n - 1 and n > 1 and version_tuple(version) < (2, 1):
            version = "2.1.42"
        v21 = version_tuple(version) >= (2, 1)
        force_task = (v21 and not seen_21) or (not v21 and not seen_20)
        seen_21 |= v21
        seen_20 |= not v21
        models = MODELS_21 if v21 else MODELS_20
        model = rng.choices([m for m, _ in models], [w for _, w in models])[0]
        session_id = str(uuid.UUID(int=rng.getrandbits(128), version=4))
        slug = (
            "-".join(rng.sample(SLUG_WORDS, 3))
            if version_tuple(version) >= (2, 0, 55) and version_tuple(version) < (2, 1, 100)
            else None
        )
        resume_of = None
        kept = shared.replayable.get(project["dir"])
        if kept and shared.want("resume", 0.08):
            resume_of, ended = kept[rng.randrange(len(kept))]
            start = max(start, ended + rng.uniform(60, 3 * 3600))
            if start > now - 600:
                resume_of = None
        budget = int((target - shared.bytes) * weight / remaining_weight)
        remaining_weight -= weight
        writer = _Writer(shared, root / project["dir"] / f"{session_id}.jsonl")
        session = _Session(
            shared,
            writer,
            project=project,
            session_id=session_id,
            version=version,
            model=model,
            t=min(start, now - 120),
            t_end=min(start + rng.uniform(0.5, 10) * 3600, now - 5),
            branch=rng.choice(BRANCHES),
            slug=slug,
        )
        session.run(max(budget, 1), force_task=force_task, resume_of=resume_of)
        writer.close()
        # Odd files a reader must tolerate (FORMAT.md 1.2): empty, summary-only, snapshot-only.
        if shared.want("empty", 0.02):
            _Writer(
                shared,
                root / project["dir"] / f"{uuid.UUID(int=rng.getrandbits(128), version=4)}.jsonl",
            ).close()
        if not v21 and shared.leaves.get(project["dir"]) and shared.want("summary-only", 0.02):
            w = _Writer(
                shared,
                root / project["dir"] / f"{uuid.UUID(int=rng.getrandbits(128), version=4)}.jsonl",
            )
            w.last_t = session.t
            w.write(
                {
                    "type": "summary",
                    "summary": session.fill(rng.choice(TITLES)),
                    "leafUuid": session.last,
                }
            )
            w.close()
        if v21 and shared.want("snapshot-only", 0.01):
            w = _Writer(
                shared,
                root / project["dir"] / f"{uuid.UUID(int=rng.getrandbits(128), version=4)}.jsonl",
            )
            w.last_t = session.t - 600
            for _ in range(rng.randint(1, 4)):
                message_id = str(uuid.UUID(int=rng.getrandbits(128), version=4))
                w.last_t += rng.uniform(1, 60)
                snapshot = {
                    "messageId": message_id,
                    "trackedFileBackups": {},
                    "timestamp": iso(w.last_t),
                }
                w.write(
                    {
                        "type": "file-history-snapshot",
                        "messageId": message_id,
                        "snapshot": snapshot,
                        "isSnapshotUpdate": False,
                    }
                )
            w.close()

    if progress is not None and shared.pending:
        progress(shared.pending)
    return {
        "dir": str(root),
        "projects": len({p["dir"] for p in projects if (root / p["dir"]).exists()}),
        "sessions": shared.sessions,
        "subagents": shared.subagents,
        "files": shared.files,
        "lines": shared.lines,
        "bytes": shared.bytes,
        "mb": round(shared.bytes / MB, 1),
        "mix": mix,
        "seconds": round(time.perf_counter() - started, 2),
    }
