"""Command: demo."""

from __future__ import annotations

import shlex
import shutil
import sys
from datetime import UTC
from pathlib import Path

import click

from .cli import cli


@cli.command(name="demo")
@click.argument("directory", type=click.Path(file_okay=False, path_type=Path))
@click.option(
    "--mb",
    type=click.FloatRange(min=0, min_open=True),
    default=20,
    show_default=True,
    help="Total size to write, in megabytes (10^6 bytes).",
)
@click.option(
    "--seed", type=int, default=0, show_default=True, help="Seed: same seed, same corpus."
)
@click.option(
    "--sessions",
    type=click.IntRange(min=1),
    default=None,
    help="Number of session transcripts (default: follows from --mb, about 3 per MB).",
)
@click.option(
    "--now",
    type=click.DateTime(formats=["%Y-%m-%d", "%Y-%m-%dT%H:%M:%S", "%Y-%m-%d %H:%M:%S"]),
    metavar="DATETIME",
    default=None,
    help="Date the corpus as if generated at this UTC time, YYYY-MM-DD or "
    "YYYY-MM-DDTHH:MM:SS (default: the current time).  With --now the output is "
    "byte-identical on every run.",
)
@click.option(
    "--full",
    is_flag=True,
    help="Write a whole Claude directory: the transcripts in DIRECTORY/projects, and what "
    "Claude Code keeps beside them: tool-results/ in the session folders (tool outputs "
    "over 30,000 characters of 2.1 sessions, their lines keeping a preview), "
    "file-history/, plans/, todos/ and history.jsonl.",
)
@click.option(
    "--mix",
    type=click.Choice(["default", "small", "tool-heavy", "thinking-heavy"]),
    default="default",
    show_default=True,
    help="Kind of history: default (the historic mix), small (many small lines: short "
    "prompts, small tool results), tool-heavy (large Bash and Read results), "
    "thinking-heavy (long thinking before most answers).",
)
@click.option(
    "--force",
    is_flag=True,
    help="Write into DIRECTORY even if it is not empty (files with the same names are "
    "overwritten, nothing is deleted).",
)
def demo_command(
    directory: Path, mb: float, seed: int, sessions, now, full: bool, mix: str, force: bool
):
    """Write a synthetic Claude Code projects tree into DIRECTORY.

    The tree looks like ~/.claude/projects: several projects, sessions over the last
    60 days, subagents in both layouts (flat agent-*.jsonl and
    <session>/subagents/), tool calls and errors, compactions, titles, summaries,
    resumed sessions, a few lines of several MB.  Use it to try the web app, the
    search and the SQL views without your own transcripts, or to benchmark:

    \b
      claude-sessions demo /tmp/demo-projects --mb 100
      claude-sessions sync --projects /tmp/demo-projects --db /tmp/demo.db

    --mix picks the kind of history (the benchmarks run every mix).  The same --seed
    (and --mb/--sessions/--mix) gives the same files and contents; only the timestamps
    follow the current time, unless --now pins them.  Nothing is written outside
    DIRECTORY.
    """
    from . import demo

    directory = directory.expanduser()
    if directory.exists() and any(directory.iterdir()) and not force:
        raise click.ClickException(
            f"{directory} is not empty; give a new or empty folder (or --force to write into it)."
        )
    free_in = directory
    while not free_in.exists():
        free_in = free_in.parent
    free = shutil.disk_usage(free_in).free
    if free < mb * demo.MB * 1.05:
        raise click.ClickException(
            f"Not enough free disk space for {mb:g} MB in {free_in} ({free / demo.MB:.0f} MB free)."
        )
    anchor = now.replace(tzinfo=UTC).timestamp() if now else None
    projects = directory / "projects" if full else directory
    extra = None
    try:
        if sys.stderr.isatty():
            with click.progressbar(length=int(mb * demo.MB), file=sys.stderr) as bar:
                summary = demo.generate(
                    projects,
                    mb=mb,
                    seed=seed,
                    progress=bar.update,
                    sessions=sessions,
                    now=anchor,
                    mix=mix,
                )
        else:
            summary = demo.generate(
                projects, mb=mb, seed=seed, sessions=sessions, now=anchor, mix=mix
            )
        if full:
            from .demo_keep import add_claude_dir_files

            extra = add_claude_dir_files(directory, seed=seed)
    except OSError as e:
        raise click.ClickException(
            f"Cannot write the demo corpus to {directory}: {e.strerror or e}."
        ) from None
    click.echo(
        f"Wrote {summary['mb']:g} MB to {directory}: {summary['sessions']:,} sessions and "
        f"{summary['subagents']:,} subagents in {summary['projects']} projects "
        f"({summary['files']:,} files, {summary['lines']:,} lines) in {summary['seconds']:g} s."
    )
    if extra is not None:
        click.echo(
            f"Beside them: {extra['files']:,} files ({extra['bytes'] / demo.MB:,.1f} MB) in "
            f"tool-results/ ({extra['moved']:,} outputs moved there), file-history/, plans/, "
            "todos/ and history.jsonl."
        )
    # Its own database: synced into the default archive, the fake sessions would mix with
    # the real ones.
    db = directory.resolve().parent / f"{directory.resolve().name}.db"
    where = "--claude-dir" if extra is not None else "--projects"
    click.echo(
        "Archive it in a database of its own (not your real archive) with:\n"
        f"  claude-sessions sync {where} {shlex.quote(str(directory))} "
        f"--db {shlex.quote(str(db))}",
        err=True,
    )
