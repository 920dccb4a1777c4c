"""Command: share.  A redacted copy of the archive for publishing (see share.py)."""

from __future__ import annotations

import sqlite3
import sys
from pathlib import Path

import click

from . import archive
from .cli import cli, db_option
from .paths import default_db_path


def _day(ctx, param, value):
    if value is None:
        return None
    import datetime as dt

    try:
        return dt.date.fromisoformat(value).isoformat()
    except ValueError:
        raise click.BadParameter(f"{value!r} is not a date like 2025-07-01.") from None


@cli.command()
@click.argument("dest", type=click.Path(dir_okay=False, path_type=Path))
@db_option
@click.option(
    "--project",
    "projects",
    multiple=True,
    metavar="NAME",
    help="Only sessions of this project: its name (last folder of the path), its full "
    "path or its encoded folder under projects/ (repeatable).",
)
@click.option(
    "--session",
    "sessions",
    multiple=True,
    metavar="ID",
    help="Only this session (an id or the start of one; repeatable).",
)
@click.option(
    "--since",
    callback=_day,
    metavar="DATE",
    help="Only sessions active on or after DATE (UTC, YYYY-MM-DD).",
)
@click.option(
    "--until", callback=_day, metavar="DATE", help="Only sessions started on or before DATE (UTC)."
)
@click.option(
    "--drop",
    "drops",
    multiple=True,
    type=click.Choice(["raw", "thinking", "tool-results", "file-history"]),
    help="Leave out: raw (the original lines), thinking, tool-results (tool output, also "
    "the kept tool-results files), file-history (kept file backups). Repeatable.",
)
@click.option(
    "--keep-paths",
    is_flag=True,
    help="Keep home folders as they are (default: /home/NAME, /Users/NAME and /root become ~).",
)
def share(dest, db_path, projects, sessions, since, until, drops, keep_paths):
    """Write DEST: a redacted copy of the archive, for publishing.

    The archive itself is only read.  In the copy, every text, JSON and raw column of
    every table, and the contents of kept files, have their secrets replaced by
    [REDACTED:<kind>]: Anthropic, OpenAI, AWS (key id and secret), GitHub, GitLab,
    Slack, Stripe and Google API keys, PyPI, SendGrid, Azure and Discord tokens,
    private key blocks, JWTs, passwords in URLs and the values of secret-looking names
    in .env-style lines (NAME_TOKEN=..., DB_PASSWORD=...).  Home folders become ~.  The
    full-text index is rebuilt from the redacted text and the file is vacuumed, so no
    original text is left in free pages.  It prints what it replaced, by kind.

    Redaction is pattern matching: read what you publish.  A share copy is not
    byte-exact (`export` refuses it).  Serve it read-only: datasette DEST -i
    (see docs/sharing.md).

    \b
    Examples:
      claude-sessions share public.db --project my-tool --since 2025-07-01
      claude-sessions share one.db --session 0d3a8e6f --drop thinking --drop raw
    """
    from .share import Options, ShareError
    from .share import share as make_share

    db = (db_path or default_db_path()).expanduser()
    if dest.exists() or dest.is_symlink():
        raise click.ClickException(f"{dest} already exists; give a new file name.")
    if not dest.parent.is_dir():
        raise click.ClickException(f"{dest.parent} is not a folder; create it first.")
    if dest.absolute() == db.absolute():
        raise click.ClickException("DEST must be a new file, not the archive.")
    archive.open_read(db).close()
    options = Options(projects, sessions, since, until, tuple(drops), keep_paths)
    try:
        with click.progressbar(length=1, label="Redacting", file=sys.stderr) as bar:
            result = make_share(db, dest, options, progress=bar)
    except ShareError as e:
        raise click.ClickException(str(e)) from None
    except sqlite3.DatabaseError as e:
        raise click.ClickException(f"Cannot make the share copy: {e}.") from None
    except OSError as e:
        raise click.ClickException(f"Cannot write {dest}: {e.strerror or e}.") from None
    secrets = {k: n for k, n in result.counts.items() if k != "home-path"}
    click.echo(
        f"Wrote {dest}: {result.sessions:,} session{'s' * (result.sessions != 1)}, "
        f"{result.size / 1e6:,.1f} MB, in {result.seconds:.1f} s."
    )
    if secrets:
        click.echo("Replaced:")
        for kind, n in sorted(secrets.items(), key=lambda kv: (-kv[1], kv[0])):
            click.echo(f"  {kind:<20} {n:>8,}")
    else:
        click.echo("Replaced: no secret found.")
    if not keep_paths:
        click.echo(f"Home folders shown as ~: {result.counts.get('home-path', 0):,}.")
