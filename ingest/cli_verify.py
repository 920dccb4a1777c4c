"""Command: verify (the archive against the sources on disk, and SQLite's quick_check)."""

from __future__ import annotations

import sys

import click

from . import archive
from .cli import cli, db_option
from .cli_sync import database_errors, plural
from .lock import LockBusy, WriterLock
from .paths import default_db_path

PROGRESS_BAR_BYTES = 20 * 1024 * 1024


@cli.command()
@db_option
@click.option(
    "--repair",
    is_flag=True,
    help="Read the files that differ again from their start, as a new generation (lines "
    "no longer in them stay archived in the older one; `export --replaced` shows them).",
)
@click.option(
    "--wait",
    "wait_seconds",
    type=click.FloatRange(min=0),
    default=30.0,
    show_default=True,
    help="With --repair: seconds to wait for another writer.",
)
def verify(db_path, repair, wait_seconds):
    """Check the archive against every source still on disk, byte for byte.

    Re-reads each archived transcript that still exists and compares the bytes the
    archive holds of it (its current generation) with the file; runs SQLite's
    quick_check on the archive; prints a summary.  Lines written after the last pass are
    not a difference.  Exits with status 1 when something differs (a file rewritten in
    place that its size and time did not reveal, a damaged database).  --repair then
    archives the changed files again as new generations; nothing archived is deleted.
    """
    from .verify import mark_for_rereading, roots_of
    from .verify import verify as run_verify

    db = (db_path or default_db_path()).expanduser()
    archive.open_read(db).close()
    bar = None

    def progress(nbytes: int) -> None:
        if bar is not None:
            bar.update(nbytes)

    with database_errors(db):
        conn = archive.connect_readonly(db)
        total = conn.execute(
            "SELECT coalesce(sum(position), 0) FROM sync_files WHERE deleted_at IS NULL"
        ).fetchone()[0]
        conn.close()
        if sys.stdout.isatty() and total >= PROGRESS_BAR_BYTES:
            bar = click.progressbar(length=total, label="Comparing sources")
            bar.__enter__()
        try:
            result = run_verify(db, progress)
        finally:
            if bar is not None:
                bar.__exit__(None, None, None)
    for d in result.differences:
        click.echo(f"Differs:    {d.path}: {d.reason}")
    for d in result.unreadable:
        click.echo(f"Unreadable: {d.path}: {d.reason}")
    summary = (
        f"Verified {plural(result.files, 'source')} ({result.bytes / 1e6:,.1f} MB) against "
        f"{db}: {result.identical:,} identical, {len(result.differences):,} differ"
    )
    if result.gone:
        summary += f", {result.gone:,} gone from disk since the last pass"
    if result.elsewhere:
        summary += f", {plural(result.elsewhere, 'file')} of other machines not compared"
    if result.unreadable:
        summary += f", {len(result.unreadable):,} unreadable"
    click.echo(f"{summary}; quick_check {result.quick_check}.")
    if result.quick_check != "ok":
        click.echo(
            f"The database itself is damaged: copy what can be read with `sqlite3 {db} "
            '".recover"` and keep the damaged file.',
            err=True,
        )
    if not result.differences or not repair:
        sys.exit(0 if result.ok else 1)
    from .sync import open_db, run_pass

    archive.check_writable(db)
    paths = [d.path for d in result.differences]
    try:
        with database_errors(db):
            lock = WriterLock(db)
            lock.acquire(wait_seconds)
            try:
                conn = open_db(db)
                try:
                    conn.execute("BEGIN IMMEDIATE")
                    mark_for_rereading(conn, paths)
                    roots = roots_of(conn, paths)
                    conn.execute("COMMIT")
                finally:
                    conn.close()
            finally:
                lock.release()
            passed = run_pass(db, roots, trigger="verify", paths=paths, wait=wait_seconds)
    except LockBusy as e:
        raise click.ClickException(str(e)) from None
    click.echo(
        f"Repaired: read {plural(len(paths), 'file')} again as new generations "
        f"({plural(passed.lines_added, 'new line')})."
    )
    sys.exit(0 if result.quick_check == "ok" else 1)
