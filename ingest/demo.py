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
import bisect
import itertools
import math
import os
import random
import string
import time
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson

MB = 1_000_000
DAY = 86_400.0
SPAN_DAYS = 60

_B62 = string.ascii_letters + string.digits
_DUMPS_OPTION = orjson.OPT_APPEND_NEWLINE

# (working directory, language of its code).  Non-ASCII, spaces, dots and underscores on
# purpose: they all become '-' in the folder name.
PROJECTS = [
    ("/Users/maya/code/acme-web", "ts"),
    ("/home/dev/src/data_pipeline", "py"),
    ("/Users/maya/Documents/Open Source/sqlite-utils", "py"),
    ("/Users/maya/code/acme-web/.claude/worktrees/search_v2", "ts"),
    ("/home/dev/work/ml-experiments", "py"),
    ("/Users/maya/code/café-orders", "py"),
    ("/home/dev/src/infra.terraform", "ts"),
    ("/Users/maya/.config/dotfiles", "py"),
]

MODELS_20 = [
    ("claude-sonnet-4-5-20250929", 6),
    ("claude-opus-4-1-20250805", 3),
    ("claude-haiku-4-5-20251001", 1),
]
MODELS_21 = [
    ("claude-opus-4-5-20251101", 6),
    ("claude-sonnet-4-5-20250929", 3),
    ("claude-opus-4-6", 1),
]
AGENT_MODEL = "claude-haiku-4-5-20251001"

MODULES = [
    "auth", "billing", "cache", "config", "events", "export", "importer", "invoices",
    "metrics", "models", "notifications", "parser", "queue", "reports", "scheduler",
    "search", "session", "storage", "sync", "users", "webhooks", "api", "cli", "db", "utils",
]  # fmt: skip
THINGS = [
    "the retry logic", "pagination", "cache invalidation", "timezone handling",
    "the upload flow", "rate limiting", "the search index", "error reporting",
    "the login redirect", "CSV export", "the nightly job", "websocket reconnects",
    "the settings page", "dark mode", "the migration runner", "feature flags",
    "connection pooling", "the webhook signature check", "the import wizard",
]  # fmt: skip
FEATURES = [
    "a --dry-run flag", "retry with exponential backoff", "a health check endpoint",
    "structured logging", "an LRU cache", "CSV export", "a progress bar", "input validation",
    "soft deletes", "an audit log", "keyboard shortcuts", "optimistic locking",
    "a rate limiter", "full-text search", "an admin dashboard", "email digests",
]  # fmt: skip
ERRORS = [
    "TypeError: Cannot read properties of undefined (reading 'id')",
    "AssertionError: expected 200, got 500",
    "sqlite3.OperationalError: database is locked",
    "KeyError: 'user_id'",
    "ModuleNotFoundError: No module named 'dateutil'",
    "Error: connect ECONNREFUSED 127.0.0.1:5432",
    "ValueError: time data '2025-13-01' does not match format '%Y-%m-%d'",
    "FAILED tests/test_sync.py::test_resume - assert 3 == 4",
]
BRANCHES = ["main", "main", "main", "feature/search-v2", "fix/login-redirect", "HEAD", ""]
DEPS = ["pydantic", "sqlalchemy", "react", "vite", "typescript", "pytest", "fastapi", "zod"]
IDENTS = [
    "user", "session", "config", "request", "token", "record", "payload", "index",
    "worker", "handler", "router", "schema", "client", "result", "buffer", "item",
    "order", "invoice", "account", "event", "batch", "cursor", "limit", "offset",
]  # fmt: skip
CLASSES = [
    "UserService", "SessionStore", "ConfigLoader", "RetryPolicy", "EventBus", "Invoice",
    "OrderRepository", "SearchIndex", "RateLimiter", "ExportJob", "WebhookHandler", "Cursor",
]  # fmt: skip
SLUG_WORDS = [
    "zippy", "humble", "shimmying", "wondering", "sparking", "doodling", "quiet", "brave",
    "wadler", "wolf", "wall", "hopper", "lovelace", "turing", "knuth", "otter", "maple",
]  # fmt: skip

PROMPTS = [
    "Can you fix the failing test in {file}?",
    "Add {feature} to the {module} module, with tests.",
    "Why is {thing} so slow? Profile it and suggest a fix.",
    "Refactor {file} so that {module} no longer depends on {module2}.",
    "Write a migration that adds a `{ident}_id` column to the {module} table.",
    "CI is red on {branch}: `{error}`. Please investigate and fix it.",
    "Explain how {module} handles {thing}.",
    "Rename `{ident}` to `{ident2}` everywhere and update the docs.",
    "Review the changes on this branch and tell me what could break.",
    "Add type hints to {file} and make the type checker happy.",
    "Implement pagination for the /api/{module} endpoint.",
    "Bump {dep} to the latest version and fix whatever breaks.",
    "Summarize what changed in the last 10 commits.",
    "I get `{error}` when I run the app locally. What's going on?",
    "Write a README section about {feature}.",
    "{thing_cap} broke after yesterday's deploy, can you look at {file}?",
    "Let's add {feature}. Plan first, then implement it step by step.",
    "Can you make {thing} configurable from the settings file?",
]
FOLLOW_UPS = [
    "ok, now run the tests again",
    "looks good, commit it with a sensible message",
    "That didn't work, I still get `{error}`.",
    "Can you also update {file}?",
    "yes, go ahead",
    "Hmm, keep the old behaviour behind a flag instead.",
]
SUBAGENT_PROMPTS = [
    "Use a subagent to explore how {thing} works across the codebase.",
    "Spin up an Explore agent to map out the {module} module before we change it.",
    "Have an agent review {file} for bugs while we keep going.",
]
TITLES = [
    "Fix {thing}", "Add {feature}", "Refactor {module} module", "Debug {error_short}",
    "Investigate {thing}", "{module_cap} cleanup and tests", "Upgrade {dep}",
]  # fmt: skip
SENTENCES = [
    "The {module} module calls `{ident}_{ident2}()` before the {ident} is validated.",
    "{thing_cap} is handled in `{file}`, around the `{cls}` class.",
    "The tests cover the happy path but not the case where `{ident}` is empty.",
    "I'll keep the public API unchanged and move the logic into a helper.",
    "This looks like a race between the writer and {thing}.",
    "There are {n} call sites, all in the {module} package.",
    "The simplest fix is to pass the {ident} explicitly instead of reading it from a global.",
    "The error comes from `{cls}.{ident}()` when the {ident2} is missing.",
    "Caching the result would avoid the repeated query on every request.",
    "The config is loaded twice: once at import time and once in `main()`.",
    "Nothing else depends on `{ident}_{ident2}`, so renaming it is safe.",
    "The migration needs a default value, or existing rows will fail the constraint.",
    "I should check how {module2} uses this before changing the signature.",
    "Running the full suite takes about {n} seconds, so I'll run the focused tests first.",
    "{thing_cap} already has a feature flag; we can reuse it.",
]
ANSWER_OPENERS = [
    "I'll start by looking at `{file}`.",
    "Let me check how `{ident}` is used across the codebase.",
    "Now let me run the tests to confirm.",
    "Let me look at the {module} module first.",
    "I need to see the current implementation before changing anything.",
    "Good, that narrows it down. Let me check `{file}` as well.",
]
BASH_COMMANDS = [
    ("pytest -q {test}", "Run the focused tests"),
    ("git status", "Show working tree status"),
    ("git log --oneline -10", "Show recent commits"),
    ("git diff --stat", "Summarize the changes"),
    ("ls -la {dir}", "List files in the directory"),
    ("npm test -- --run", "Run the test suite"),
    ("ruff check . && ruff format --check .", "Lint and check formatting"),
    ("npm run build", "Build the project"),
    ("python -m {module} --help", "Check the CLI help"),
]
SLASH_COMMANDS = [
    ("model", "opus", "Set model to \x1b[1mopus (claude-opus-4-5-20251101)\x1b[22m"),
    ("cost", "", "Total cost: $1.84\nTotal duration (API): 6m 12.4s\nTotal code changes: 41 lines"),
    ("context", "", "Context usage: 48.2k/200k tokens (24%)"),
    ("mcp", "", "No MCP servers configured."),
]
TOOL_WEIGHTS_MAIN = [
    ("Read", 30), ("Bash", 20), ("Edit", 15), ("Grep", 10), ("Glob", 6), ("Write", 4),
    ("TodoWrite", 5), ("Task", 3), ("WebFetch", 2), ("mcp__github__get_issue", 1),
]  # fmt: skip
TOOL_WEIGHTS_AGENT = [("Read", 40), ("Grep", 25), ("Glob", 15), ("Bash", 15), ("WebFetch", 5)]


@dataclass(frozen=True)
class Mix:
    """The kind of history a corpus holds: sizes and frequencies of its parts.

    ``default`` is the historic corpus (its output is unchanged); the others stress one
    side of the engine: many small lines, large tool outputs, long thinking.
    """

    name: str
    summary: str
    session_median: float = 120_000  # bytes of a session transcript (lognormal)
    calls_mean: float = 4  # API calls per prompt (exponential)
    thinking_p: float = 0.4  # share of API calls that start with a thinking block
    thinking_sentences: tuple[int, int] = (1, 5)
    signature: tuple[int, int] = (200, 1200)  # base64 characters
    read_median: float = 5000  # bytes of a Read result (lognormal, capped)
    read_cap: int = 60_000
    big_read_p: float = 0.012  # share of Reads of 250 KB to 2.5 MB
    bash_median: float = 800  # bytes of a build/log output
    bash_cap: int = 12_000
    bash_log_p: float = 0.0  # share of other commands (pytest, git ...) with a long log
    edit_lines: tuple[int, int] = (40, 400)  # characters of old/new strings
    edit_original_median: float = 4000
    write_median: float = 3000
    grep_median: float = 1500
    image_p: float = 0.02  # share of prompts with a screenshot (first one always)
    tools_main: tuple[tuple[str, int], ...] = tuple(TOOL_WEIGHTS_MAIN)
    tools_agent: tuple[tuple[str, int], ...] = tuple(TOOL_WEIGHTS_AGENT)


MIXES = {
    m.name: m
    for m in (
        Mix("default", "the historic mix: prompts, code, tool calls, a few multi-MB lines"),
        Mix(
            "small",
            "many small lines: short sessions and prompts, small tool results",
            session_median=30_000,
            calls_mean=6,
            thinking_p=0.25,
            thinking_sentences=(1, 2),
            signature=(100, 400),
            read_median=500,
            read_cap=4000,
            big_read_p=0.0,
            bash_median=150,
            bash_cap=1500,
            edit_lines=(20, 120),
            edit_original_median=600,
            write_median=400,
            grep_median=200,
            image_p=0.0,
            tools_main=(
                ("Read", 20),
                ("Bash", 25),
                ("Edit", 10),
                ("Grep", 12),
                ("Glob", 12),
                ("Write", 2),
                ("TodoWrite", 15),
                ("Task", 2),
                ("WebFetch", 1),
                ("mcp__github__get_issue", 1),
            ),
        ),  # fmt: skip
        Mix(
            "tool-heavy",
            "tool-output-heavy: large Bash and Read results",
            read_median=20_000,
            read_cap=400_000,
            big_read_p=0.03,
            bash_median=8000,
            bash_cap=300_000,
            bash_log_p=0.5,
            thinking_p=0.2,
            tools_main=(
                ("Read", 40),
                ("Bash", 40),
                ("Edit", 8),
                ("Grep", 6),
                ("Glob", 2),
                ("Write", 1),
                ("TodoWrite", 1),
                ("Task", 2),
                ("WebFetch", 1),
                ("mcp__github__get_issue", 1),
            ),
            tools_agent=(("Read", 45), ("Bash", 40), ("Grep", 10), ("Glob", 5)),
        ),  # fmt: skip
        Mix(
            "thinking-heavy",
            "thinking-heavy: long thinking before most answers, smaller tool results",
            thinking_p=0.95,
            thinking_sentences=(8, 60),
            signature=(800, 3000),
            read_median=2500,
            read_cap=30_000,
            big_read_p=0.002,
            calls_mean=3,
        ),
    )
}

# Versions by age of the session (days before `now`): older ones are 2.0.x.
VERSION_BY_AGE = [(45, "2.0.37"), (30, "2.0.55"), (18, "2.1.17"), (7, "2.1.42"), (0, "2.1.114")]


def _vt(version: str) -> tuple[int, ...]:
    return tuple(int(p) for p in version.split("."))


def encode_project_dir(cwd: str) -> str:
    """Claude Code's folder name for a working directory: non-[A-Za-z0-9] become '-'
    (one per UTF-16 code unit)."""
    out = []
    for ch in cwd:
        if ch.isascii() and ch.isalnum():
            out.append(ch)
        else:
            out.append("--" if ord(ch) > 0xFFFF else "-")
    return "".join(out)


def iso(t: float) -> str:
    """``YYYY-MM-DDTHH:MM:SS.mmmZ`` for a Unix time, as Claude Code writes it."""
    ms = int(t * 1000)
    tm = time.gmtime(ms // 1000)
    return (
        f"{tm[0]:04d}-{tm[1]:02d}-{tm[2]:02d}T{tm[3]:02d}:{tm[4]:02d}:{tm[5]:02d}.{ms % 1000:03d}Z"
    )


@dataclass
class _Shared:
    """State of one generate() call shared by every writer."""

    rng: random.Random
    root: Path
    now: float
    progress: Callable[[int], None] | None
    code: dict[str, tuple[list[str], list[int]]]  # lines, and where each ends (pool twice)
    blob: str  # base64 text for images and signatures
    mix: Mix = MIXES["default"]
    files: int = 0
    sessions: int = 0
    lines: int = 0
    bytes: int = 0
    subagents: int = 0
    pending: int = 0
    leaves: dict[str, list[str]] = field(default_factory=dict)  # project -> leaf uuids
    replayable: dict[str, list[tuple[list[dict], float]]] = field(default_factory=dict)
    shown: set[str] = field(default_factory=set)

    def wrote(self, n: int) -> None:
        self.bytes += n
        if self.progress is not None:
            self.pending += n
            if self.pending >= 1 << 20:
                self.progress(self.pending)
                self.pending = 0

    def want(self, feature: str, p: float) -> bool:
        """True with probability p, and always the first time: small corpora show it all."""
        if feature not in self.shown:
            self.shown.add(feature)
            return True
        return self.rng.random() < p


class _Writer:
    """One JSONL file being written; counts bytes and remembers the last record time."""

    def __init__(self, shared: _Shared, path: Path):
        path.parent.mkdir(parents=True, exist_ok=True)
        self.shared = shared
        self.path = path
        self.fp = open(path, "wb", buffering=1 << 20)
        self.bytes = 0
        self.last_t = shared.now - SPAN_DAYS * DAY
        shared.files += 1

    def write(self, rec: dict[str, Any], t: float | None = None) -> int:
        data = orjson.dumps(rec, option=_DUMPS_OPTION)
        self.fp.write(data)
        n = len(data)
        self.bytes += n
        self.shared.lines += 1
        self.shared.wrote(n)
        if t is not None and t > self.last_t:
            self.last_t = t
        return n

    def close(self) -> None:
        self.fp.close()
        os.utime(self.path, (self.last_t, self.last_t))


class _Thread:
    """A conversation being written: the main thread of a session or a subagent."""

    def __init__(
        self,
        shared: _Shared,
        writer: _Writer,
        *,
        project: dict[str, Any],
        session_id: str,
        version: str,
        model: str,
        t: float,
        t_end: float,
        branch: str,
        slug: str | None,
        agent_id: str | None = None,
    ):
        self.s = shared
        self.rng = shared.rng
        self.w = writer
        self.project = project
        self.cwd = project["cwd"]
        self.session_id = session_id
        self.version = version
        self.v = _vt(version)
        self.model = model
        self.t = t
        self.t_end = t_end
        self.branch = branch
        self.slug = slug
        self.agent_id = agent_id
        self.sidechain = agent_id is not None
        self.last: str | None = None  # uuid of the last record in the chain
        self.ctx = self.rng.randint(11_000, 22_000)  # context tokens, drives usage numbers
        self.budget = 0  # bytes this thread may still write
        self.replay: list[dict] = []  # first records, kept for a later resume
        self.replay_ok = True
        self.replay_turns = 0  # records in self.replay that end a complete turn
        self.tool_uses = 0
        self.output_tokens = 0
        self.final_text = ""
        self.last_prompt = ""

    # -- ids, time, text ---------------------------------------------------------------

    def uuid(self) -> str:
        return str(uuid.UUID(int=self.rng.getrandbits(128), version=4))

    def b62(self, prefix: str, n: int) -> str:
        return prefix + "".join(self.rng.choices(_B62, k=n))

    def tick(self, lo: float, hi: float) -> str:
        """Advance the clock by lo..hi seconds (less when close to t_end)."""
        dt = self.rng.uniform(lo, hi)
        cap = (self.t_end - self.t) / max(50, self.budget / 1500)  # leave room for the rest
        if dt > cap:
            dt = max(cap, 0.001)
        self.t += dt
        return iso(self.t)

    def fill(self, template: str) -> str:
        r = self.rng
        files = self.project["files"]
        thing = r.choice(THINGS)
        error = r.choice(ERRORS)
        return template.format(
            file=r.choice(files),
            test=r.choice(self.project["tests"]),
            dir=r.choice(self.project["dirs"]),
            module=r.choice(MODULES),
            module2=r.choice(MODULES),
            module_cap=r.choice(MODULES).capitalize(),
            thing=thing,
            thing_cap=thing[0].upper() + thing[1:],
            feature=r.choice(FEATURES),
            ident=r.choice(IDENTS),
            ident2=r.choice(IDENTS),
            cls=r.choice(CLASSES),
            error=error,
            error_short=error.split(":")[0],
            branch=self.branch or "main",
            dep=r.choice(DEPS),
            n=r.randint(2, 40),
        )

    def prose(self, n: int) -> str:
        return " ".join(self.fill(self.rng.choice(SENTENCES)) for _ in range(n))

    def code_lines(self, n_bytes: int) -> list[str]:
        """Consecutive lines of the code pool (wrapping around) adding up to n_bytes."""
        pool, ends = self.s.code[self.project["lang"]]
        whole, n_bytes = divmod(n_bytes, ends[len(pool) - 1])
        start = self.rng.randrange(len(pool))
        offset = ends[start - 1] if start else 0
        stop = bisect.bisect_left(ends, offset + n_bytes) + 1
        doubled = pool + pool if stop > len(pool) else pool
        return pool * whole + doubled[start:stop]

    def b64(self, n: int) -> str:
        n -= n % 4
        blob = self.s.blob
        start = self.rng.randrange(0, len(blob) - n, 4) if n < len(blob) else 0
        return blob[start : start + n]

    def lognormal(self, median: float, sigma: float, cap: float) -> int:
        return int(min(cap, median * math.exp(self.rng.gauss(0, sigma))))

    # -- records ---------------------------------------------------------------------

    def envelope(self, parent: str | None) -> dict[str, Any]:
        rec: dict[str, Any] = {
            "parentUuid": parent,
            "isSidechain": self.sidechain,
            "userType": "external",
            "cwd": self.cwd,
            "sessionId": self.session_id,
            "version": self.version,
            "gitBranch": self.branch,
        }
        if self.agent_id:
            rec["agentId"] = self.agent_id
        if self.slug:
            rec["slug"] = self.slug
        return rec

    def emit(self, rec: dict[str, Any], chain: bool = True) -> int:
        """Write a record; conversation records become the new end of the chain."""
        n = self.w.write(rec, self.t)
        self.budget -= n
        if chain and "uuid" in rec:
            self.last = rec["uuid"]
        if self.replay_ok and not self.sidechain:
            if n < 20_000 and len(self.replay) < 40:
                self.replay.append(rec)
            else:
                self.replay_ok = False
        return n

    def usage(self, output: int, split_5m: bool) -> dict[str, Any]:
        r = self.rng
        write = r.randint(50, 3000) if r.random() < 0.8 else r.randint(3000, 20_000)
        u: dict[str, Any] = {
            "input_tokens": r.randint(1, 12),
            "cache_creation_input_tokens": write,
            "cache_read_input_tokens": self.ctx,
            "cache_creation": {
                "ephemeral_5m_input_tokens": write if split_5m else 0,
                "ephemeral_1h_input_tokens": 0 if split_5m else write,
            },
            "output_tokens": output,
            "service_tier": "standard",
        }
        if self.v >= (2, 1, 42):
            u["inference_geo"] = "not_available"
        self.ctx += write
        return u

    def user(self, content: Any, **extra: Any) -> str:
        rec = self.envelope(self.last)
        rec["type"] = "user"
        rec["message"] = {"role": "user", "content": content}
        uid = rec["uuid"] = self.uuid()
        rec["timestamp"] = self.tick(0.05, 0.4)
        rec.update(extra)
        self.emit(rec)
        return uid

    def assistant(self, blocks: list[dict[str, Any]], stop_reason: str | None) -> list[str]:
        """One API response, one line per content block, sharing id/requestId/usage."""
        r = self.rng
        msg_id = self.b62("msg_01", 22)
        req_id = self.b62("req_011C", 20)
        final_output = sum(
            len(str(b.get("text") or b.get("thinking") or b.get("input"))) for b in blocks
        )
        final_output = max(1, final_output // 4 + r.randint(0, 40))
        split_5m = self.sidechain or self.v < (2, 1)
        usage = self.usage(1, split_5m)
        early = r.choice((1, 1, 2, 3, 12, 25))
        grows = r.random() < 0.7  # else every line repeats the same (final) usage
        uuids = []
        for i, block in enumerate(blocks):
            last = i == len(blocks) - 1
            u = dict(usage)
            u["output_tokens"] = final_output if (last or not grows) else early
            rec = self.envelope(self.last)
            rec["message"] = {
                "model": self.model,
                "id": msg_id,
                "type": "message",
                "role": "assistant",
                "content": [block],
                "stop_reason": stop_reason if last else None,
                "stop_sequence": None,
                "usage": u,
            }
            rec["requestId"] = req_id
            rec["type"] = "assistant"
            rec["uuid"] = self.uuid()
            rec["timestamp"] = self.tick(0.3, 4.0)
            self.emit(rec)
            uuids.append(rec["uuid"])
        self.output_tokens += final_output
        self.ctx += final_output
        return uuids

    def synthetic(self, text: str, **extra: Any) -> None:
        rec = self.envelope(self.last)
        rec["message"] = {
            "id": self.uuid(),
            "container": None,
            "model": "<synthetic>",
            "role": "assistant",
            "stop_reason": "stop_sequence",
            "stop_sequence": "",
            "type": "message",
            "usage": {
                "input_tokens": 0,
                "output_tokens": 0,
                "cache_creation_input_tokens": 0,
                "cache_read_input_tokens": 0,
                "server_tool_use": {"web_search_requests": 0, "web_fetch_requests": 0},
                "service_tier": None,
                "cache_creation": {"ephemeral_1h_input_tokens": 0, "ephemeral_5m_input_tokens": 0},
            },
            "content": [{"type": "text", "text": text}],
        }
        rec["type"] = "assistant"
        rec["uuid"] = self.uuid()
        rec["timestamp"] = self.tick(0.1, 1.0)
        rec.update(extra)
        self.emit(rec)

    def system(self, subtype: str | None, parent: str | None, **fields: Any) -> str:
        rec = self.envelope(parent)
        rec["type"] = "system"
        if subtype:
            rec["subtype"] = subtype
        rec.update(fields)
        rec["timestamp"] = self.tick(0.01, 0.3)
        rec["uuid"] = self.uuid()
        self.emit(rec)
        return rec["uuid"]

    def progress_hook(self, event: str, name: str, tool_use_id: str, parent: str | None) -> None:
        rec = self.envelope(parent)
        rec["type"] = "progress"
        rec["data"] = {
            "type": "hook_progress",
            "hookEvent": event,
            "hookName": name,
            "command": '"${CLAUDE_PLUGIN_ROOT}/scripts/notify.sh" ' + event.lower(),
        }
        rec["parentToolUseID"] = tool_use_id
        rec["toolUseID"] = tool_use_id
        rec["timestamp"] = self.tick(0.01, 0.2)
        rec["uuid"] = self.uuid()
        self.emit(rec, chain=parent is None)

    def meta(self, rtype: str, **fields: Any) -> None:
        """A metadata record (no uuid, not part of the chain)."""
        self.emit({"type": rtype, **fields}, chain=False)

    # -- tools -----------------------------------------------------------------------

    def tool_call(self, name: str) -> tuple[dict[str, Any], Callable[[], tuple[Any, Any, bool]]]:
        """A tool_use block and a function that runs the tool: (content, toolUseResult, error)."""
        r = self.rng
        tid = self.b62("toolu_01", 22)
        p = self.project
        error = r.random() < 0.06
        path = p["cwd"] + "/" + r.choice(p["files"])

        if name == "Read":
            inp: dict[str, Any] = {"file_path": path}

            def run():
                if error:
                    msg = r.choice(
                        ("File does not exist.", "EISDIR: illegal operation on a directory, read")
                    )
                    return msg, "Error: " + msg, True
                mix = self.s.mix
                big = min(2_500_000, self.budget // 3)
                if big > 250_000 and r.random() < mix.big_read_p:
                    size = r.randint(250_000, big)
                else:
                    size = self.lognormal(mix.read_median, 1.1, mix.read_cap)
                lines = self.code_lines(size)
                body = "\n".join(lines)
                numbered = "\n".join(f"{i:>6}→{line}" for i, line in enumerate(lines, 1))
                result = {
                    "type": "text",
                    "file": {
                        "filePath": path,
                        "content": body,
                        "numLines": len(lines),
                        "startLine": 1,
                        "totalLines": len(lines),
                    },
                }
                return numbered, result, False

        elif name == "Bash":
            cmd, desc = r.choice(BASH_COMMANDS)
            cmd = self.fill(cmd)
            inp = {"command": cmd, "description": desc}

            def run():
                if error:
                    out = f"Exit code 1\n{self.fill(r.choice(ERRORS))}\n" + self.prose(1)
                    return out, "Error: " + out, True
                out = self.bash_output(cmd)
                result = {"stdout": out, "stderr": "", "interrupted": False, "isImage": False}
                if self.v >= (2, 1):
                    result["noOutputExpected"] = False
                return out, result, False

        elif name == "Edit":
            lo, hi = self.s.mix.edit_lines
            old = "\n".join(self.code_lines(r.randint(lo, hi)))
            new = "\n".join(self.code_lines(r.randint(lo, hi + hi // 4)))
            inp = {"file_path": path, "old_string": old, "new_string": new}

            def run():
                if error:
                    msg = "String to replace not found in file."
                    return f"<tool_use_error>{msg}</tool_use_error>", "Error: " + msg, True
                original = "\n".join(
                    self.code_lines(self.lognormal(self.s.mix.edit_original_median, 1.0, 80_000))
                )
                out = f"The file {path} has been updated. Here's the result of running `cat -n` on a snippet of the edited file:\n"
                out += "\n".join(f"{i:>6}→{line}" for i, line in enumerate(new.split("\n"), 40))
                n_old, n_new = old.count("\n") + 1, new.count("\n") + 1
                patch = [
                    {
                        "oldStart": 40,
                        "oldLines": n_old,
                        "newStart": 40,
                        "newLines": n_new,
                        "lines": ["-" + x for x in old.split("\n")]
                        + ["+" + x for x in new.split("\n")],
                    }
                ]
                result = {
                    "filePath": path,
                    "oldString": old,
                    "newString": new,
                    "originalFile": original,
                    "structuredPatch": patch,
                    "userModified": False,
                    "replaceAll": False,
                }
                return out, result, False

        elif name == "Write":
            content = "\n".join(
                self.code_lines(self.lognormal(self.s.mix.write_median, 0.8, 40_000))
            )
            inp = {"file_path": path, "content": content}

            def run():
                if error:
                    msg = "File has not been read yet. Read it first before writing to it."
                    return f"<tool_use_error>{msg}</tool_use_error>", "Error: " + msg, True
                out = f"File created successfully at: {path}"
                return (
                    out,
                    {"type": "create", "filePath": path, "content": content, "structuredPatch": []},
                    False,
                )

        elif name == "Grep":
            pattern = r.choice(IDENTS) + r.choice(("", "_id", "\\(", "Error"))
            inp = {"pattern": pattern, "path": p["cwd"], "output_mode": "content", "-n": True}

            def run():
                hits = [
                    f"{p['cwd']}/{r.choice(p['files'])}:{r.randint(1, 400)}:{line.strip()}"
                    for line in self.code_lines(self.lognormal(self.s.mix.grep_median, 1.0, 20_000))
                ]
                out = "\n".join(hits)
                files = sorted({h.split(":")[0] for h in hits})
                return (
                    out,
                    {
                        "mode": "content",
                        "numFiles": len(files),
                        "filenames": [],
                        "content": out,
                        "numLines": len(hits),
                    },
                    False,
                )

        elif name == "Glob":
            ext = ".py" if p["lang"] == "py" else ".ts"
            inp = {"pattern": f"**/*{ext}"}

            def run():
                names = [p["cwd"] + "/" + f for f in p["files"] if f.endswith(ext)]
                return (
                    "\n".join(names),
                    {
                        "filenames": names,
                        "durationMs": r.randint(3, 90),
                        "numFiles": len(names),
                        "truncated": False,
                    },
                    False,
                )

        elif name == "TodoWrite":
            todos = [
                {
                    "content": self.fill(t),
                    "status": s,
                    "activeForm": self.fill(t).replace("Add", "Adding"),
                }
                for t, s in zip(
                    (
                        "Add {feature}",
                        "Fix {thing}",
                        "Write tests for {module}",
                        "Update docs for {feature}",
                    ),
                    ("completed", "in_progress", "pending", "pending"),
                    strict=True,
                )
            ][: r.randint(2, 4)]
            inp = {"todos": todos}

            def run():
                out = "Todos have been modified successfully. Ensure that you continue to use the todo list to track your progress. Please proceed with the current tasks if applicable"
                return out, {"oldTodos": [], "newTodos": todos}, False

        elif name == "WebFetch":
            url = f"https://docs.example.com/{r.choice(DEPS)}/{r.choice(MODULES)}"
            inp = {"url": url, "prompt": self.fill("How does {dep} handle {thing}?")}

            def run():
                if error:
                    msg = "Request failed with status code 404"
                    return msg, "Error: " + msg, True
                text = (
                    "# "
                    + self.fill("{dep}")
                    + "\n\n"
                    + "\n\n".join(self.prose(4) for _ in range(r.randint(2, 8)))
                )
                return (
                    text,
                    {
                        "bytes": r.randint(20_000, 500_000),
                        "code": 200,
                        "codeText": "OK",
                        "result": text,
                        "durationMs": r.randint(800, 9000),
                        "url": url,
                    },
                    False,
                )

        elif name in ("Task", "Agent"):
            agent_type = r.choice(("Explore", "Explore", "general-purpose", "Plan"))
            inp = {
                "description": self.fill(
                    r.choice(("Explore {module} module", "Review {file}", "Map {thing}"))
                ),
                "prompt": self.fill(r.choice(SUBAGENT_PROMPTS)) + "\n\n" + self.prose(3),
                "subagent_type": agent_type,
            }

            def run():
                return self.run_subagent(tid, inp)

        else:  # an MCP tool
            inp = {"owner": "acme", "repo": "acme-web", "issue_number": r.randint(10, 900)}

            def run():
                text = orjson.dumps(
                    {
                        "title": self.fill("{thing_cap} regression"),
                        "state": "open",
                        "body": self.prose(3),
                    }
                ).decode()
                return [{"type": "text", "text": text}], [{"type": "text", "text": text}], False

        block = {"type": "tool_use", "id": tid, "name": name, "input": inp}
        if self.v >= (2, 1, 17):
            block["caller"] = {"type": "direct"}
        return block, run

    def bash_output(self, cmd: str) -> str:
        r = self.rng
        p = self.project
        mix = self.s.mix
        if mix.bash_log_p and r.random() < mix.bash_log_p:
            return "\n".join(self.code_lines(self.lognormal(mix.bash_median, 1.0, mix.bash_cap)))
        if cmd.startswith("pytest"):
            n = r.randint(4, 300)
            return "." * min(n, 80) + f"\n{n} passed in {r.uniform(0.2, 40):.2f}s"
        if cmd.startswith("git status"):
            files = "\n".join(
                f"\tmodified:   {r.choice(p['files'])}" for _ in range(r.randint(1, 5))
            )
            return f"On branch {self.branch or 'main'}\nChanges not staged for commit:\n{files}"
        if cmd.startswith("git log"):
            return "\n".join(
                f"{r.getrandbits(28):07x} {self.fill(r.choice(TITLES))}" for _ in range(10)
            )
        if cmd.startswith("ls"):
            return "total 48\n" + "\n".join(
                f"-rw-r--r--  1 maya  staff  {r.randint(200, 40000):>6} Nov  3 10:{r.randint(10, 59)} {f.rsplit('/', 1)[-1]}"
                for f in r.sample(p["files"], min(8, len(p["files"])))
            )
        if cmd.startswith("npm test"):
            return f" ✓ {r.randint(10, 200)} tests passed ({r.uniform(1, 20):.1f}s)"
        if cmd.startswith("ruff"):
            return "All checks passed!\n42 files already formatted"
        return "\n".join(self.code_lines(self.lognormal(mix.bash_median, 1.0, mix.bash_cap)))

    def run_subagent(self, tool_use_id: str, inp: dict[str, Any]) -> tuple[Any, Any, bool]:
        """Write the subagent's transcript and return the parent's tool_result."""
        r = self.rng
        s = self.s
        if self.v >= (2, 1, 100):
            agent_id = "a" + f"{r.getrandbits(64):016x}"
        elif self.v >= (2, 1):
            agent_id = "a" + f"{r.getrandbits(24):06x}"
        else:
            agent_id = f"{r.getrandbits(32):08x}"
        project_dir = s.root / self.project["dir"]
        if self.v >= (2, 1):
            base = project_dir / self.session_id / "subagents" / f"agent-{agent_id}"
            path = base.with_name(base.name + ".jsonl")
            meta = {"agentType": inp["subagent_type"], "description": inp["description"]}
            meta_path = base.with_name(base.name + ".meta.json")
            meta_path.parent.mkdir(parents=True, exist_ok=True)
            meta_bytes = orjson.dumps(meta)
            meta_path.write_bytes(meta_bytes)
            s.files += 1
            s.wrote(len(meta_bytes))
            self.budget -= len(meta_bytes)
        else:
            path = project_dir / f"agent-{agent_id}.jsonl"
            meta_path = None
        s.subagents += 1
        model = AGENT_MODEL if inp["subagent_type"] == "Explore" else self.model
        writer = _Writer(s, path)
        agent = _Thread(
            s,
            writer,
            project=self.project,
            session_id=self.session_id,
            version=self.version,
            model=model,
            t=self.t,
            t_end=self.t_end,
            branch=self.branch,
            slug=self.slug,
            agent_id=agent_id,
        )
        agent.budget = min(self.budget // 2, self.lognormal(40_000, 1.0, 600_000))
        start = agent.t
        agent.user(inp["prompt"])
        while True:
            done = agent.budget <= 0 or agent.tool_uses >= 40
            agent.call(s.mix.tools_agent, final=done)
            if done:
                break
        writer.close()
        if meta_path is not None:
            os.utime(meta_path, (start, start))
        self.budget -= writer.bytes
        self.t = agent.t
        report = agent.final_text
        duration = int((agent.t - start) * 1000)
        total = agent.ctx + agent.output_tokens
        content = [{"type": "text", "text": report}]
        if self.v >= (2, 1, 100):
            content.append(
                {
                    "type": "text",
                    "text": f"agentId: {agent_id} (use SendMessage with to: '{agent_id}' to continue this agent)\n"
                    f"<usage>total_tokens: {total}\ntool_uses: {agent.tool_uses}\nduration_ms: {duration}</usage>",
                }
            )
        elif self.v >= (2, 1):
            content.append(
                {
                    "type": "text",
                    "text": f"agentId: {agent_id} (for resuming to continue this agent's work if needed)",
                }
            )
        result = {
            "status": "completed",
            "prompt": inp["prompt"],
            "agentId": agent_id,
            "content": [{"type": "text", "text": report}],
            "totalDurationMs": duration,
            "totalTokens": total,
            "totalToolUseCount": agent.tool_uses,
            "usage": agent.usage(agent.output_tokens, True),
        }
        if self.v >= (2, 1):
            result["agentType"] = inp["subagent_type"]
        return content, result, False

    # -- conversation steps ----------------------------------------------------------

    def call(self, tools: Sequence[tuple[str, int]], final: bool) -> None:
        """One API call: thinking/text/tool_use lines, then the tool results."""
        r = self.rng
        blocks: list[dict[str, Any]] = []
        mix = self.s.mix
        if r.random() < mix.thinking_p:
            sig = self.b64(r.randint(*mix.signature))
            thinking = self.prose(r.randint(*mix.thinking_sentences))
            blocks.append({"type": "thinking", "thinking": thinking, "signature": sig})
        if final:
            self.final_text = self.answer()
            blocks.append({"type": "text", "text": self.final_text})
            self.assistant(blocks, "end_turn")
            return
        if r.random() < 0.5:
            blocks.append({"type": "text", "text": self.fill(r.choice(ANSWER_OPENERS))})
        names, weights = zip(*tools, strict=True)
        calls = []
        for _ in range(1 if r.random() < 0.75 else r.randint(2, 3)):
            name = r.choices(names, weights)[0]
            if name == "Task" and self.v >= (2, 1, 100):
                name = "Agent"
            block, run = self.tool_call(name)
            blocks.append(block)
            calls.append((block, run))
        line_uuids = self.assistant(blocks, "tool_use")
        carrier = line_uuids[-1]
        hooks = self.project["hooks"] and self.v >= (2, 1)
        for block, run in calls:
            content, result, is_error = run()
            self.tool_uses += 1
            self.tick(0.1, 25.0)
            if hooks:
                self.progress_hook(
                    "PostToolUse", "PostToolUse:" + block["name"], block["id"], carrier
                )
            tr: dict[str, Any] = {
                "tool_use_id": block["id"],
                "type": "tool_result",
                "content": content,
            }
            if is_error or r.random() < 0.5:
                tr["is_error"] = is_error
            extra: dict[str, Any] = {"toolUseResult": result}
            if self.v >= (2, 1, 17):
                extra["sourceToolAssistantUUID"] = carrier
            self.user([tr], **extra)
            self.ctx += min(len(str(content)) // 4, 25_000)

    def answer(self) -> str:
        r = self.rng
        kind = r.random()
        if kind < 0.35:
            return self.prose(r.randint(1, 3))
        p = self.project
        bullets = "\n".join(
            f"- **{r.choice(p['files'])}**: {self.fill(r.choice(SENTENCES))}"
            for _ in range(r.randint(2, 6))
        )
        text = f"{self.fill(r.choice(TITLES))}: done.\n\n## What changed\n\n{bullets}\n\n{self.prose(2)}"
        if kind > 0.7:
            lang = "python" if p["lang"] == "py" else "typescript"
            text += f"\n\n```{lang}\n" + "\n".join(self.code_lines(r.randint(200, 1500))) + "\n```"
        return text


class _Session(_Thread):
    """The main thread of one session file, with the records around the conversation."""

    def run(self, target: int, *, force_task: bool, resume_of: list[dict] | None) -> None:
        self.s.sessions += 1
        r = self.rng
        s = self.s
        self.budget = target
        pdir = self.project["dir"]
        leaves = s.leaves.setdefault(pdir, [])
        v21 = self.v >= (2, 1)
        if resume_of:
            self.replay_ok = False
            for rec in resume_of:
                rec = dict(rec)
                if "sessionId" in rec:
                    rec["sessionId"] = self.session_id
                self.emit(rec)
        if not v21 and leaves and s.want("summary", 0.5):
            for _ in range(r.randint(1, 3)):
                leaf = r.choice(leaves) if r.random() < 0.8 else self.uuid()
                self.meta("summary", summary=self.fill(r.choice(TITLES)), leafUuid=leaf)
        if self.v >= (2, 1, 100):
            self.meta("permission-mode", permissionMode="default", sessionId=self.session_id)
        if v21:
            self.meta(
                "queue-operation",
                operation="dequeue",
                timestamp=iso(self.t),
                sessionId=self.session_id,
            )
            if self.project["hooks"] and not resume_of:
                self.progress_hook("SessionStart", "SessionStart:startup", self.uuid(), None)
        elif self.v < (2, 0, 50) and s.want("warmup", 0.3):
            self.warmup()
        turn = 0
        while self.budget > 0 or turn == 0:
            self.turn(force_task=force_task and turn == 0, first=turn == 0)
            turn += 1
            if self.replay_ok:
                self.replay_turns = len(self.replay)
            if v21 and turn == 1 and r.random() < 0.7:
                self.meta(
                    "ai-title", aiTitle=self.fill(r.choice(TITLES)), sessionId=self.session_id
                )
            if self.ctx > 155_000 or (turn % 9 == 3 and s.want("compact", 0.3)):
                self.compact(auto=self.ctx > 155_000)
        if v21 and s.want("custom-title", 0.12):
            self.meta(
                "custom-title", customTitle=self.fill(r.choice(TITLES)), sessionId=self.session_id
            )
        if self.v >= (2, 1, 100):
            self.meta("last-prompt", lastPrompt=self.last_prompt, sessionId=self.session_id)
        leaves.append(self.last)
        del leaves[:-20]
        if self.replay_turns:
            kept = s.replayable.setdefault(pdir, [])
            kept.append((self.replay[: self.replay_turns], self.t))
            del kept[:-3]

    def turn(self, force_task: bool, first: bool) -> None:
        r = self.rng
        if not first:
            self.tick(20, 1500)
        roll = r.random()
        if not first and (roll < 0.04 or "slash" not in self.s.shown):
            self.s.shown.add("slash")
            self.slash_command()
            return
        if force_task:
            prompt: Any = self.fill(r.choice(SUBAGENT_PROMPTS))
        else:
            prompt = self.fill(r.choice(FOLLOW_UPS if not first and r.random() < 0.3 else PROMPTS))
        self.last_prompt = prompt
        image_p = self.s.mix.image_p
        if image_p and self.budget > 60_000 and (roll > 1 - image_p or "image" not in self.s.shown):
            self.s.shown.add("image")
            size = max(20_000, self.lognormal(150_000, 1.0, min(1_500_000, self.budget // 2)))
            prompt = [
                {"type": "text", "text": prompt + " (see the screenshot)"},
                {
                    "type": "image",
                    "source": {
                        "type": "base64",
                        "media_type": "image/png",
                        "data": "iVBORw0KGgoAAAANSUhEUgAA" + self.b64(size),
                    },
                },
            ]
        prompt_uuid = self.uuid()
        if self.v >= (2, 0):
            backups = {}
            for f in r.sample(self.project["files"], r.randint(0, 3)):
                version = r.randint(1, 4)
                backups[self.cwd + "/" + f] = {
                    "backupFileName": f"{r.getrandbits(64):016x}@v{version}",
                    "version": version,
                    "backupTime": iso(self.t),
                }
            snap = {
                "messageId": prompt_uuid,
                "trackedFileBackups": backups,
                "timestamp": iso(self.t),
            }
            self.meta(
                "file-history-snapshot",
                messageId=prompt_uuid,
                snapshot=snap,
                isSnapshotUpdate=False,
            )
        rec = self.envelope(self.last)
        rec["type"] = "user"
        rec["message"] = {"role": "user", "content": prompt}
        rec["uuid"] = prompt_uuid
        rec["timestamp"] = self.tick(0.5, 5)
        if self.v < (2, 1, 100):
            rec["thinkingMetadata"] = {"maxThinkingTokens": 31999}
            rec["todos"] = []
        if self.v >= (2, 1, 17):
            rec["permissionMode"] = "default"
        if self.v >= (2, 1, 100):
            rec["promptId"] = self.uuid()
            rec["entrypoint"] = "cli"
        self.emit(rec)
        if self.project["hooks"] and self.v >= (2, 1):
            att = self.envelope(self.last)
            att["type"] = "attachment"
            att["attachment"] = {
                "type": "hook_additional_context",
                "hookEvent": "UserPromptSubmit",
                "hookName": "UserPromptSubmit",
                "toolUseID": "UserPromptSubmit",
                "content": [f"branch: {self.branch or 'main'}", f"open todos: {r.randint(0, 6)}"],
            }
            att["uuid"] = self.uuid()
            att["timestamp"] = self.tick(0.01, 0.1)
            self.emit(att)
        n_calls = 1 + min(int(r.expovariate(1 / self.s.mix.calls_mean)), 25)
        if force_task:
            name = "Agent" if self.v >= (2, 1, 100) else "Task"
            self.call([(name, 1)], final=False)
        for i in range(n_calls):
            final = i == n_calls - 1 or self.budget <= 0
            if not final and self.v >= (2, 0, 37) and r.random() < 0.03:
                queued = self.fill(r.choice(PROMPTS))
                self.meta(
                    "queue-operation",
                    operation="enqueue",
                    timestamp=iso(self.t),
                    sessionId=self.session_id,
                    content=queued,
                )
                self.meta(
                    "queue-operation",
                    operation="remove",
                    timestamp=iso(self.t + 2),
                    sessionId=self.session_id,
                )
            if not final and i > 0 and self.s.want("interrupt", 0.01):
                self.user("[Request interrupted by user]")
                if self.s.want("synthetic", 0.5):
                    self.synthetic("No response requested.")
                return
            if not final and r.random() < 0.004:
                self.synthetic(
                    'API Error: 529 {"type":"error","error":{"type":"overloaded_error","message":"Overloaded"}}',
                    isApiErrorMessage=True,
                )
            self.call(self.s.mix.tools_main, final=final)
            if final:
                break
        if self.v >= (2, 1) and r.random() < 0.5:
            self.system(
                "turn_duration",
                self.last,
                durationMs=r.randint(3000, 600_000),
                messageCount=n_calls * 3,
                isMeta=False,
            )

    def slash_command(self) -> None:
        r = self.rng
        name, args, out = r.choice(SLASH_COMMANDS)
        caveat = (
            "Caveat: The messages below were generated by the user while running local commands. "
            "DO NOT respond to these messages or otherwise consider them in your response unless "
            "the user explicitly asks you to."
        )
        self.user(caveat, isMeta=True)
        self.user(
            f"<command-name>/{name}</command-name>\n<command-message>{name}</command-message>\n<command-args>{args}</command-args>"
        )
        self.user(f"<local-command-stdout>{out}</local-command-stdout>")
        if name == "model":
            self.model = (
                "claude-opus-4-5-20251101" if self.v >= (2, 1) else "claude-opus-4-1-20250805"
            )

    def compact(self, auto: bool) -> None:
        r = self.rng
        pre = self.ctx
        boundary = self.system(
            "compact_boundary",
            None,
            content="Conversation compacted",
            isMeta=False,
            level="info",
            logicalParentUuid=self.last,
            compactMetadata={"trigger": "auto" if auto else "manual", "preTokens": pre},
        )
        self.last = boundary
        summary = (
            "This session is being continued from a previous conversation that ran out of context. "
            "The conversation is summarized below:\n\nAnalysis:\n"
            + "\n".join(f"{i}. {self.prose(2)}" for i in range(1, r.randint(4, 9)))
            + "\n\nPending Tasks:\n- "
            + self.fill("{feature}")
        )
        self.user(summary, isCompactSummary=True, isVisibleInTranscriptOnly=True)
        self.ctx = r.randint(12_000, 30_000)

    def warmup(self) -> None:
        """A 2.0.x 'Warmup' subagent file: one prompt, one short answer."""
        r = self.rng
        s = self.s
        agent_id = f"{r.getrandbits(32):08x}"
        writer = _Writer(s, s.root / self.project["dir"] / f"agent-{agent_id}.jsonl")
        agent = _Thread(
            s, writer, project=self.project, session_id=self.session_id, version=self.version,
            model=AGENT_MODEL, t=self.t, t_end=self.t_end, branch=self.branch, slug=self.slug,
            agent_id=agent_id,
        )  # fmt: skip
        agent.user("Warmup")
        agent.assistant(
            [{"type": "text", "text": "I'm ready to help you explore the codebase."}], "end_turn"
        )
        writer.close()
        s.subagents += 1
        self.budget -= writer.bytes


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
        if i == 0 and _vt(version) >= (2, 1):
            version = "2.0.55"
        if i == n - 1 and n > 1 and _vt(version) < (2, 1):
            version = "2.1.42"
        v21 = _vt(version) >= (2, 1)
        force_task = (v21 and not seen_21) or (not v21 and not seen_20)
        seen_21 |= v21
        seen_20 |= not v21
        models = MODELS_21 if v21 else MODELS_20
        model = rng.choices([m for m, _ in models], [w for _, w in models])[0]
        session_id = str(uuid.UUID(int=rng.getrandbits(128), version=4))
        slug = (
            "-".join(rng.sample(SLUG_WORDS, 3))
            if _vt(version) >= (2, 0, 55) and _vt(version) < (2, 1, 100)
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
