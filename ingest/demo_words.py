"""The demo generator's vocabulary and mixes: projects, prompts, sentences, tool weights,
the mixes of lines (``MIXES``) and small helpers shared by its modules."""

from __future__ import annotations

import string
import time
from dataclasses import dataclass

import orjson

MB = 1_000_000
DAY = 86_400.0
SPAN_DAYS = 60

B62 = string.ascii_letters + string.digits
DUMPS_OPTION = orjson.OPT_APPEND_NEWLINE

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


def version_tuple(version: str) -> tuple[int, ...]:
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
