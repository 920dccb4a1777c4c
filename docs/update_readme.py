"""Regenerate the parts of README.md and docs/*.md that come from the real program.

    python docs/update_readme.py          # rewrite the files in place
    python docs/update_readme.py --check  # exit 1 when one is out of date (CI)

Blocks between ``<!-- [[[help CMD]]] -->`` and ``<!-- [[[end]]] -->`` get the output of
``claude-sessions CMD --help`` (docs/cli.md); the block after ``<!-- [[[schema]]] -->`` gets
every table and view of an archive synced from ../shared/samples/real, with the column
comments written in the schema's SQL (docs/schema.md); the block after
``<!-- [[[queries]]] -->`` lists metadata.yml's canned queries (docs/web-app.md).  Any of
these blocks may sit in README.md or any docs/*.md file.  Like cog in sqlite-utils: the
documentation cannot drift from the code.
"""

from __future__ import annotations

import difflib
import os
import re
import shutil
import sqlite3
import sys
import tempfile
from pathlib import Path

from click.testing import CliRunner

from ingest.usage import ROLLUP_COLUMNS

ROOT = Path(__file__).resolve().parent.parent
README = ROOT / "README.md"
DOCS = ROOT / "docs"
SAMPLES = ROOT.parent / "shared" / "samples" / "real"

BLOCK = re.compile(
    r"(<!-- \[\[\[(?P<what>[^\]]+)\]\]\] -->\n)(?P<body>.*?)(<!-- \[\[\[end\]\]\] -->)", re.S
)
# FTS5 shadow tables and the migrations log are implementation details.
HIDDEN = re.compile(
    r"^((events|history)_fts_(data|idx|docsize|config|content)|_sqlite_migrations|sqlite_.*)$"
)
COMMENT = re.compile(r"^\s*\[?(?P<name>\w+)\]?\s.*?--\s*(?P<comment>.+?)\s*$")


def help_text(command: str) -> str:
    from ingest.cli import cli

    args = [*command.split(), "--help"] if command != "claude-sessions" else ["--help"]
    result = CliRunner().invoke(cli, args, prog_name="claude-sessions", terminal_width=88)
    if result.exit_code != 0:
        raise SystemExit(f"claude-sessions {command} --help failed:\n{result.output}")
    return f"```\n{result.output.rstrip()}\n```\n"


def sample_archive(tmp: Path) -> Path:
    """Sync a copy of the samples into a fresh archive, with HOME and friends in tmp."""
    from ingest.cli import cli

    projects = tmp / "projects"
    shutil.copytree(SAMPLES, projects)
    db = tmp / "archive.db"
    env = {
        "HOME": str(tmp),
        "CLAUDE_CONFIG_DIR": str(tmp / ".claude"),
        "CLAUDE_SESSIONS_DB": str(db),
        "XDG_DATA_HOME": str(tmp / "share"),
    }
    result = CliRunner(env=env).invoke(cli, ["sync", "--db", str(db), "--projects", str(projects)])
    if result.exit_code != 0:
        raise SystemExit(f"claude-sessions sync failed:\n{result.output}")
    return db


# What each table is for (the CREATE statement keeps no comment above itself).
TABLE_NOTES = {
    "sync_files": "One row per source file ever seen, with the byte position read so far.",
    "file_contents": "Whole-file copies of non-JSONL sources (agent-*.meta.json), one row per "
    "distinct content; `export` writes the newest.",
    "events": "One row per line ever read, with the line's exact bytes. The source of truth.",
    "events_fts": "Full-text index over `events.text` and `events.kind` (external "
    "content); Datasette's `?_search=` uses it.",
    "projects": "One row per working directory sessions ran in.",
    "sessions": "One row per session, derived from its events.",
    "tool_calls": "One row per tool_use block, paired with its tool_result. The result text "
    "is stored once: `result` is NULL when the text of its result line (`events.text` of "
    "`result_event_id`) is that result; `tool_calls_with_result` fills it in.",
    "tool_calls_with_result": "`tool_calls` with every result filled in from its result line",
    "subagents": "One row per subagent transcript (Task tool).",
    "sync_runs": "One row per sync pass (sync, watch, Sync now, serve).",
    "ingest_errors": "Lines that could not be parsed; their bytes are in `events` all the same.",
    "sync_heartbeat": "The running watch sidecar, refreshed every few seconds.",
    "sync_unreadable": "Files and folders the last passes could not read (a FIFO, a "
    "symlink loop, no permission), with the reason; retried on every pass "
    "([reliability.md](reliability.md)).",
    "kept_blobs": "Contents of the files kept beside the transcripts (tool-results/, "
    "file-history/, plans/, todos/ ...), each stored once ([keep.md](keep.md)).",
    "kept_files": "One row per kept file: where it was, its current content.",
    "kept_versions": "Every content a kept file has had, oldest first.",
    "history": "One row per line of the Claude directory's history.jsonl (the prompts typed).",
    "history_fts": "Full-text index over `history.display`; `/<db>/history?_search=` uses it.",
    "api_calls": "One row per billed API response, deduplicated across lines and files "
    "(rules: [usage-rules.md](usage-rules.md)).",
    "sessions_list": "One row per session with the columns the web app's sessions list "
    "shows, a title on every row and a `day` to facet on.",
    "usage_sums": "`api_calls` summed per UTC quarter hour (`slot`), session, subagent, model, "
    "project and host, kept by the engine in the same transaction as `api_calls`; the "
    "`usage_*` views, the dashboard and `cost` read it ([usage-rules.md](usage-rules.md)).",
    "usage_settings": "Settings of the usage module: price overrides and the price table's "
    "fingerprint.",
    "raw_dictionaries": "The zstd dictionaries `events.raw` is compressed with, trained on the "
    "archive's own lines ([storage.md](storage.md)).",
    "events_json": "Each line's JSON: `raw_json(raw)` of every `events` row, with its length "
    "in bytes",
}
# Meanings for columns whose SQL carries no comment.
COLUMN_NOTES = {
    "sync_heartbeat.archive": "device:inode of the archive file the sidecar writes (a copy is "
    "another file: its copied row does not count as a live sidecar)",
    "device": "st_dev of the file at the last pass",
    "inode": "st_ino of the file at the last pass",
    "sync_files.mtime": "st_mtime of the file at the last pass",
    "first_seen": "when a pass first saw the file",
    "last_synced": "when a pass last read from the file",
    "sha1": "SHA-1 of the content",
    "content": "the file's bytes",
    "read_at": "when this content was read",
    "generation": "the file generation the line was read in (see sync_files.generation)",
    "events.byte_offset": "position of the line's first byte in its file",
    "uuid": "the record's uuid",
    "parent_uuid": "the parent record's uuid (conversations form a tree)",
    "events.session_id": "sessionId of the record, else taken from the file name",
    "events.agent_id": "agentId (subagent transcripts)",
    "is_sidechain": "1 for subagent (sidechain) records",
    "is_meta": "1 for isMeta records (context Claude Code injected)",
    "events.timestamp": "ISO 8601 UTC time of the record",
    "cwd": "working directory of the record",
    "git_branch": "git branch at the time",
    "version": "Claude Code version",
    "role": "message.role",
    "model": "model id",
    "message_id": "message.id: the API response (several lines share one)",
    "request_id": "requestId of the API request",
    "stop_reason": "message.stop_reason",
    "events_fts.text": "events.text, tokenized",
    "history_fts.display": "history.display, tokenized",
    "events_fts.kind": "events.kind, tokenized: search's kind filter (`kind : prompt`) runs in the index",
    "projects.sessions": "number of sessions",
    "first_timestamp": "first record's timestamp",
    "last_timestamp": "last record's timestamp",
    "sessions.session_id": "the session's id (its file name)",
    "project_path": "the project's real working directory",
    "sessions.project_dir": "encoded project folder under projects/",
    "sessions.host": "machine the session's files were read on",
    "title": "custom title, AI title, summary or first prompt, in that order of preference",
    "first_prompt": "the first prompt a person typed",
    "sessions.events": "archived lines, subagents included",
    "prompts": "prompts typed",
    "assistant_messages": "assistant lines",
    "sessions.tool_calls": "tool calls",
    "sessions.subagents": "subagent transcripts",
    "updated_at": "when a pass last changed the row",
    "tool_calls.session_id": "session the call was made in",
    "tool_calls.agent_id": "subagent that made the call (NULL on the main thread)",
    "tool_calls.name": "tool name: Bash, Read, Edit, Task, mcp__…",
    "is_error": "1 when the tool_result was an error",
    "started_at": "when it started",
    "finished_at": "when it finished",
    "duration_ms": "finished_at - started_at in milliseconds",
    "subagents.session_id": "the parent session",
    "subagents.file_id": "its transcript file",
    "agent_type": "subagent type (from the Task input or meta.json)",
    "description": "the Task description",
    "subagents.events": "archived lines",
    "trigger": "what started the pass",
    "sync_runs.host": "machine the pass ran on",
    "pid": "process id",
    "ended_at": "when it ended (NULL while running)",
    "seconds": "duration",
    "files_scanned": "files looked at",
    "files_changed": "files with new bytes",
    "lines_added": "events rows added",
    "bytes_read": "bytes read from sources",
    "errors": "lines that could not be parsed",
    "ingest_errors.event_id": "the events row holding the line's bytes",
    "ingest_errors.byte_offset": "position of the line in its file",
    "ingest_errors.line_number": "1-based line number",
    "ingest_errors.error": "why the line could not be parsed",
    "excerpt": "the line's first characters",
    "created_at": "when the error was recorded",
    "raw_dictionaries.created_at": "when the dictionary was trained",
    "events.leaf_uuid": "a summary's leafUuid: the record whose conversation it titles",
    "events.text": "flattened text for full-text search, worked out from raw when read "
    "(`event_text(raw, kind)`, stored nowhere; a line of 1 MiB or more: the first 256 KiB "
    "of each long string)",
    "sync_heartbeat.host": "machine it runs on",
    "beat_at": "last heartbeat",
    "api_calls.message_id": "message.id",
    "api_calls.session_id": "session the call belongs to",
    "api_calls.host": "machine the line was read on",
    "api_calls.model": "model id",
    "api_calls.timestamp": "time of the counted line",
    "input_tokens": "usage.input_tokens",
    "output_tokens": "usage.output_tokens",
    "cache_creation_5m_tokens": "cache writes with the 5-minute TTL",
    "cache_creation_1h_tokens": "cache writes with the 1-hour TTL",
    "cache_read_tokens": "usage.cache_read_input_tokens",
    "total_tokens": "input + output + cache writes + cache reads",
    "web_search_requests": "usage.server_tool_use.web_search_requests",
    "priced": "1 when cost_usd could be computed",
    "key": "setting name",
    "value": "setting value (JSON or text)",
}


def column_comments(sql: str) -> dict[str, str]:
    """``name TYPE ... -- comment`` lines of a CREATE statement, as {name: comment}."""
    comments = {}
    for line in (sql or "").splitlines():
        m = COMMENT.match(line)
        if m:
            comments[m["name"]] = m["comment"]
    return comments


def cell(text: str) -> str:
    """Text safe inside a Markdown table cell."""
    return text.replace("|", "\\|").replace("<", "&lt;").replace(">", "&gt;")


def rows_label(count: int) -> str:
    return f"{count:,} row{'s' * (count != 1)} from the samples"


def schema_markdown(db_path: Path) -> str:
    from ingest.lines import register

    conn = sqlite3.connect(db_path)
    register(conn)  # raw_json() and raw_length() of the events_json view
    objects = conn.execute(
        "select type, name, sql from sqlite_master where type in ('table', 'view') order by rowid"
    ).fetchall()
    out, views, missing = [], [], []
    for kind, name, sql in objects:
        if HIDDEN.match(name):
            continue
        count = conn.execute(f"select count(*) from [{name}]").fetchone()[0]
        # (table_xinfo: generated columns too, such as events.text)
        columns = [
            (row[1], f"{row[2]} (generated)" if row[6] in (2, 3) else row[2])
            for row in conn.execute(f"pragma table_xinfo([{name}])")
            if row[6] != 1
        ]
        if kind == "view":
            views.append((name, count, [c for c, _ in columns]))
            continue
        pks = {row[1] for row in conn.execute(f"pragma table_info([{name}])") if row[5]}
        fks = {
            row[3]: f"→ `{row[2]}.{row[4] or 'rowid'}`"
            for row in conn.execute(f"pragma foreign_key_list([{name}])")
        }
        comments = column_comments(sql)
        label = "FTS5 table" if "fts5" in sql.lower() else "table"
        out.append(f"## `{name}`\n")
        out.append(f"{TABLE_NOTES.get(name, '')} ({label}, {rows_label(count)}.)\n".lstrip())
        if name not in TABLE_NOTES:
            missing.append(name)
        out.append("| column | type | meaning |\n|---|---|---|")
        for col, ctype in columns:
            meaning = comments.get(col) or COLUMN_NOTES.get(f"{name}.{col}")
            meaning = meaning or COLUMN_NOTES.get(col) or ("primary key" if col in pks else "")
            if col in fks:
                meaning = f"{fks[col]} {meaning}".strip()
            if not meaning:
                missing.append(f"{name}.{col}")
            out.append(f"| `{col}` | {ctype or ''} | {cell(meaning)} |")
        out.append("")
    if views:
        out.append("## Views\n")
        out.append(
            "The `usage_by_*` views add up `usage_sums` (the sums of `api_calls` the engine "
            "keeps) per their own columns, and share the "
            "usage columns: "
            + ", ".join(f"`{c}`" for c in ROLLUP_COLUMNS)
            + " (cache_creation_tokens covers both cache TTLs; unpriced_calls counts calls "
            "of models without a price; first_call and last_call are timestamps).\n"
        )
        out.append("| view | what | columns | rows from the samples |\n|---|---|---|---|")
        for name, count, cols in views:
            own = [c for c in cols if c not in ROLLUP_COLUMNS]
            if len(own) < len(cols):
                what = f"`api_calls` summed per {', '.join(own)}"
                shown = [*own, "usage columns"]
            else:
                what = TABLE_NOTES.get(name, "")
                shown = cols
                if not what:
                    missing.append(name)
            listed = ", ".join(c if c == "usage columns" else f"`{c}`" for c in shown)
            out.append(f"| `{name}` | {cell(what)} | {listed} | {count:,} |")
        out.append("")
    conn.close()
    if missing:
        print("No meaning documented for: " + ", ".join(missing), file=sys.stderr)
    return "\n".join(out)


def queries_markdown() -> str:
    """The canned queries of metadata.yml, with their parameters."""
    import yaml

    metadata = yaml.safe_load((ROOT / "metadata.yml").read_text(encoding="utf-8"))
    out = ["| query | parameters | what |", "|---|---|---|"]
    for database, config in (metadata.get("databases") or {}).items():
        for name, query in (config.get("queries") or {}).items():
            params = dict.fromkeys(re.findall(r"(?<!:):(\w+)", query.get("sql", "")))
            listed = ", ".join(f"`{p}`" for p in params)
            what = query.get("description") or query.get("title") or ""
            out.append(f"| `/{database}/{name}` | {listed} | {cell(what)} |")
    return "\n".join(out) + "\n"


def render(readme: str) -> str:
    schema_cache: dict[str, str] = {}

    def replace(m: re.Match) -> str:
        what = m["what"].strip()
        if what.startswith("help "):
            body = help_text(what.removeprefix("help ").strip())
        elif what == "schema":
            if "schema" not in schema_cache:
                with tempfile.TemporaryDirectory() as tmp:
                    schema_cache["schema"] = schema_markdown(sample_archive(Path(tmp)))
            body = schema_cache["schema"]
        elif what == "queries":
            body = queries_markdown()
        else:
            raise SystemExit(f"unknown README block: {what!r}")
        return m.group(1) + body + m.group(4)

    return BLOCK.sub(replace, readme)


def documents() -> list[Path]:
    """README.md and every docs/*.md: the files that may hold generated blocks."""
    return [README, *sorted(DOCS.glob("*.md"))]


def expected_blocks() -> set[str]:
    """Every command's help, the schema and the queries must be generated somewhere."""
    from ingest.cli import cli

    commands = cli.list_commands(None)
    return {"help claude-sessions", "schema", "queries", *(f"help {c}" for c in commands)}


def main() -> int:
    check = "--check" in sys.argv[1:]
    os.environ.pop("COLUMNS", None)
    stale = []
    found = set()
    for path in documents():
        old = path.read_text(encoding="utf-8")
        found |= {m["what"].strip() for m in BLOCK.finditer(old)}
        new = render(old)
        name = str(path.relative_to(ROOT))
        if new == old:
            continue
        stale.append(name)
        if check:
            sys.stdout.writelines(
                difflib.unified_diff(
                    old.splitlines(True), new.splitlines(True), name, f"{name} (generated)"
                )
            )
        else:
            path.write_text(new, encoding="utf-8")
            print(f"{name} updated")
    missing = sorted(expected_blocks() - found)
    if missing:
        print(f"No generated block for: {', '.join(missing)} (docs/cli.md holds the help texts)")
        return 1
    if not stale:
        print("README.md and docs/ are up to date")
        return 0
    if check:
        print(
            f"{', '.join(stale)} out of date: run `python docs/update_readme.py`",
            file=sys.stderr,
        )
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
