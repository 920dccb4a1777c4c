"""Command: statusline (its --help; ingest.entry runs it without click)."""

from __future__ import annotations

from pathlib import Path

import click

from .cli import cli, db_option, given_claude_dir, projects_option


@cli.command()
@db_option
@projects_option
@click.option("--no-sync", is_flag=True, help="Do not archive the session's new lines first.")
def statusline(db_path: Path | None, projects: tuple[Path, ...], no_sync: bool):
    """One line for Claude Code's status bar: session, today and 5-hour block cost.

    Reads the JSON Claude Code writes on stdin (session_id, transcript_path, model,
    ...), archives that transcript's new lines (an incremental pass of that one file),
    and prints the session's cost, today's cost (local date), the running 5-hour
    block's cost, time left and burn rate, and the session's context size, like
    `ccusage statusline`.  Enable it in ~/.claude/settings.json:

    \b
      {"statusLine": {"type": "command", "command": "claude-sessions statusline"}}

    See docs/statusline.md.
    """
    from .statusline import main

    roots = [p.expanduser().absolute() for p in projects]
    claude_dir = given_claude_dir()
    if not roots and claude_dir is not None:
        roots = [claude_dir / "projects"]
    code = main(db_path.expanduser() if db_path else None, roots, sync=not no_sync)
    raise SystemExit(code)
