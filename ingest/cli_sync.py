"""Commands: sync, watch, status, export, backup, path."""

from __future__ import annotations

import sqlite3
import sys
import time
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING

import click
import orjson

from . import archive, heartbeat
from .archive import database_errors
from .cli import (
    cli,
    db_option,
    given_claude_dir,
    plural,
    projects_option,
    resolve_claude_dirs,
    resolve_db,
    resolve_projects,
)
from .export import ExportError, export_files
from .lock import LockBusy, WatchLock, WriterLock
from .paths import default_db_path

if TYPE_CHECKING:
    from .sync import PassResult

PROGRESS_BAR_BYTES = 20 * 1024 * 1024


def host_option(fn):
    return click.option(
        "--machine",
        "--host",
        "host",
        default=None,
        help="Name recorded as the machine the files were read on (what `cost --host` and "
        "the dashboard filter on; --host is the older name). Default: this hostname.",
    )(fn)


def existing_roots(projects: tuple[Path, ...], quiet: bool) -> list[Path]:
    """The roots to read; a missing --projects is an error, a missing default is not."""
    roots = resolve_projects(projects)
    claude_dir = given_claude_dir()
    if claude_dir is not None and not claude_dir.is_dir():
        what = "does not exist" if not claude_dir.exists() else "is not a directory"
        raise click.ClickException(f"--claude-dir {claude_dir} {what}.")
    if projects:
        for root in roots:
            if not root.exists():
                raise click.ClickException(f"--projects {root} does not exist.")
            if not root.is_dir():
                raise click.ClickException(f"--projects {root} is not a directory.")
        return roots
    found = [r for r in roots if r.is_dir()]
    if not found and not quiet:
        where = ", ".join(str(r) for r in roots)
        click.echo(
            f"Nothing to sync yet: {where} does not exist. Claude Code writes its "
            "transcripts there once you use it."
        )
    return found


def summary_line(result: PassResult, db: Path | None = None) -> str:
    """One sentence about a pass (sync, watch and serve print the same); ``db``: name it."""
    into = f" into {db}" if db else ""
    line = (
        f"Synced {plural(result.files_scanned, 'file')}{into} ({result.files_changed:,} changed): "
        f"{plural(result.lines_added, 'new line')}, {result.bytes_read / 1e6:,.1f} MB "
        f"in {result.seconds:.2f} s"
    )
    bad_lines = result.errors - len(result.unreadable)
    if bad_lines:
        line += f"; {plural(bad_lines, 'unreadable line')} kept as errors (see ingest_errors)"
    kept = result.kept
    if kept is not None and (kept.files_read or kept.history_lines):
        line += f"; kept {plural(kept.files_read, 'file')} beside the transcripts"
        if kept.history_lines:
            line += f" ({plural(kept.history_lines, 'history line')})"
    if result.unreadable:
        line += (
            f"; could not read {plural(len(result.unreadable), 'file')} "
            f"(e.g. {result.unreadable[0]}),"
            " retried next pass"
        )
    return line + "."


class Progress:
    """A click progress bar on a terminal, shown once there is much to read."""

    def __init__(self, enabled: bool):
        self.enabled = enabled
        self.bar = None
        self.shown = 0

    def __call__(self, done: int, total: int) -> None:
        if not self.enabled:
            return
        if self.bar is None:
            if total < PROGRESS_BAR_BYTES:
                self.enabled = False
                return
            self.bar = click.progressbar(length=total, label="Reading transcripts")
            self.bar.__enter__()
        self.bar.update(done - self.shown)
        self.shown = done

    def close(self) -> None:
        if self.bar is not None:
            self.bar.__exit__(None, None, None)


@cli.command()
@db_option
@projects_option
@host_option
@click.option(
    "--wait",
    "wait_seconds",
    type=click.FloatRange(min=0),
    default=30.0,
    show_default=True,
    help="Seconds to wait when another sync or watch pass is writing.",
)
@click.option("--no-wait", is_flag=True, help="Exit at once when another sync is writing.")
@click.option("-q", "--quiet", is_flag=True, help="Print nothing unless something fails.")
def sync(db_path, projects, host, wait_seconds, no_wait, quiet):
    """Copy new transcript lines into the archive: one incremental pass.

    Reads every *.jsonl and agent *.meta.json file under the projects directories,
    only the bytes added since the last pass, and keeps every line, also after Claude
    Code deletes the file.  Safe to interrupt at any moment: the next pass resumes.

    \b
    Examples:
      claude-sessions sync
      claude-sessions sync --projects ~/backup/projects --host laptop
    """
    db = resolve_db(db_path)
    archive.check_writable(db)
    roots = existing_roots(projects, quiet)
    claude_dirs = [d for d in resolve_claude_dirs(projects) if d.is_dir()]
    if not roots and not claude_dirs:
        return
    from .sync import run_pass

    progress = Progress(enabled=not quiet and sys.stdout.isatty())
    lock_file = WriterLock(db).path
    new_lock = not lock_file.exists()
    try:
        with database_errors(db):
            result = run_pass(
                db,
                roots,
                host=host,
                progress=progress,
                wait=False if no_wait else wait_seconds,
                claude_dirs=claude_dirs,
            )
    except LockBusy as e:
        raise click.ClickException(str(e)) from None
    except click.ClickException:
        if new_lock:  # the archive could not be used: leave nothing behind
            lock_file.unlink(missing_ok=True)
        raise
    finally:
        progress.close()
    if not quiet:
        click.echo(summary_line(result))


@cli.command()
@db_option
@projects_option
@host_option
@click.option(
    "--debounce",
    type=click.FloatRange(min=0),
    default=0.1,
    show_default=True,
    help="Seconds to collect file events before a pass.",
)
@click.option(
    "--rescan",
    "rescan",
    type=click.FloatRange(min=1),
    default=30.0,
    show_default=True,
    help="Seconds between full rescans, which catch changes the file events missed.",
)
@click.option("-q", "--quiet", is_flag=True, help="Print only errors.")
def watch(db_path, projects, host, debounce, rescan, quiet):
    """Keep the archive up to date as Claude Code writes (the sidecar).

    Runs a first pass, then follows file events under the projects directories and
    archives each new line within a fraction of a second, with a full rescan every
    --rescan seconds.  It refreshes a heartbeat row the web app shows.  Stop it with
    Ctrl-C or SIGTERM; send it SIGUSR1 for an immediate full pass.  Only one watch runs
    per archive; `claude-sessions sync` can still run next to it.
    """
    from .watch import run_watch

    db = resolve_db(db_path)
    archive.check_writable(db)
    probe = WatchLock(db)  # refuse a second watch before saying anything else
    try:
        with database_errors(db):
            probe.acquire(False)
    except LockBusy as e:
        raise click.ClickException(str(e)) from None
    probe.release()
    roots = resolve_projects(projects)
    claude_dirs = resolve_claude_dirs(projects)
    if projects or given_claude_dir():
        existing_roots(projects, quiet)
    elif not quiet and not any(r.is_dir() for r in roots):
        where = ", ".join(str(r) for r in roots)
        click.echo(f"Waiting for {where} to appear (Claude Code creates it on first use).")

    def on_pass(result: PassResult) -> None:
        if not quiet and (result.files_changed or result.errors):
            stamp = datetime.now().strftime("%H:%M:%S")
            click.echo(f"{stamp} {summary_line(result)}")

    def on_error(message: str) -> None:
        click.echo(message, err=True)

    if not quiet:
        click.echo(f"Watching {', '.join(str(r) for r in roots)} into {db} (Ctrl-C stops).")
    try:
        with database_errors(db):
            run_watch(
                db,
                roots,
                host=host,
                debounce=debounce,
                rescan_interval=rescan,
                on_pass=on_pass,
                on_error=on_error,
                claude_dirs=claude_dirs,
            )
    except LockBusy as e:
        raise click.ClickException(str(e)) from None
    if not quiet:
        click.echo("Stopped.")


def age_seconds(stamp: str | None) -> float | None:
    if not stamp:
        return None
    then = datetime.fromisoformat(stamp.replace("Z", "+00:00"))
    return round(time.time() - then.timestamp(), 1)


def collect_status(conn: sqlite3.Connection, roots: list[Path] | None = None) -> dict:
    """The figures `status` prints, from ingest.figures (the status page's too).
    ``roots``: projects directories whose files not archived yet count in the lag."""
    from . import figures

    counts = figures.files(conn)
    lag = figures.pending(conn, roots or [])
    run = figures.last_pass(conn)
    last_pass = None
    if run:
        keys = ("trigger", "started_at", "ended_at", "seconds", "files_changed", "lines_added")
        last_pass = {k: run[k] for k in (*keys, "error")}
    sidecar = figures.sidecar(conn)
    if sidecar is not None:
        sidecar["beat_age"] = sidecar["age_seconds"]  # this command's older name for it
    unreadable = [
        {"path": r["path"], "reason": r["reason"], "since": r["first_seen"]}
        for r in sorted(figures.unreadable(conn), key=lambda r: (r["first_seen"], r["path"]))
    ]
    return {
        "files": counts["files"],
        "deleted_files": counts["files_deleted"],
        "unreadable": unreadable,
        "lines": counts["lines"],
        "sessions": figures.sessions(conn),
        "errors": counts["errors"],
        "last_pass": last_pass,
        "lag_bytes": lag["bytes"],
        "unseen_files": lag["unseen_files"],
        "lag_seconds": age_seconds(run["ended_at"] or run["started_at"]) if run else None,
        "sidecar": sidecar,
        "kept": figures.kept(conn),
        "usage": figures.usage(conn),
    }


@cli.command()
@db_option
@projects_option
@click.option("--json", "as_json", is_flag=True, help="Print the figures as JSON.")
def status(db_path, projects, as_json):
    """What the archive holds and how fresh it is.

    Files tracked (with those deleted at the source), files and folders a pass could not
    read (with the reason; retried on every pass), lines, sessions, unreadable lines,
    the last pass, the lag (bytes written to transcripts under the projects directories
    but not archived yet, including files no pass has seen; seconds since the last pass),
    whether a `claude-sessions watch` sidecar is alive and the running 5-hour block.  The
    web app's status page counts the same figures the same way.  Opens the archive
    read-only.
    """
    db = (db_path or default_db_path()).expanduser()
    roots = existing_roots(projects, quiet=True)
    conn = archive.open_read(db)
    try:
        with database_errors(db):
            info = collect_status(conn, roots)
    finally:
        conn.close()
    if as_json:
        click.echo(orjson.dumps(info, option=orjson.OPT_INDENT_2).decode())
        return
    click.echo(f"Archive:   {db}")
    deleted = info["deleted_files"]  # worded like the web app's status page
    click.echo(
        f"Files:     {plural(info['files'], 'file')} tracked"
        + (f" ({deleted:,} deleted at the source)" if deleted else "")
    )
    for item in info["unreadable"][:5]:
        click.echo(f"Unreadable: {item['path']}: {item['reason']} (since {item['since']})")
    if len(info["unreadable"]) > 5:
        click.echo(f"Unreadable: … and {len(info['unreadable']) - 5:,} more (status --json)")
    if info["unreadable"]:
        click.echo("           (retried on every pass; nothing archived from them is lost)")
    click.echo(f"Lines:     {info['lines']:,} ({info['errors']:,} unreadable, kept as errors)")
    click.echo(f"Sessions:  {info['sessions']:,}")
    kept = info["kept"]
    if kept and (kept["files"] or kept["history_lines"]):
        click.echo(
            f"Kept:      {plural(kept['files'], 'file')} beside the transcripts"
            + (
                f" ({kept['deleted_files']:,} deleted at the source)"
                if kept["deleted_files"]
                else ""
            )
            + f", {kept['stored_bytes'] / 1e6:,.1f} MB stored; "
            + plural(kept["history_lines"], "history line")
        )
    block = info["usage"]["current_block"]
    if block:
        cost = "n/a" if block["cost_usd"] is None else f"${block['cost_usd']:,.2f}"
        rate = (
            f", ${block['cost_per_hour']:,.2f}/hour, ${block['projected_cost_usd']:,.2f} "
            "projected at its end"
            if block["cost_per_hour"] is not None
            else ""
        )
        click.echo(
            f"Block:     {cost} in the 5-hour block {block['start'][11:16]} to "
            f"{block['end'][11:16]} UTC ({plural(block['calls'], 'API call')}{rate})"
        )
    run = info["last_pass"]
    if run:
        outcome = (
            f"failed: {run['error']}" if run["error"] else plural(run["lines_added"], "new line")
        )
        click.echo(
            f"Last pass: {run['trigger']} at {run['started_at']}, {outcome}, "
            f"{info['lag_seconds']:.0f} s ago"
        )
    else:
        click.echo("Last pass: none yet")
    lag = f"Lag:       {plural(info['lag_bytes'], 'byte')} not archived yet"
    if info["unseen_files"]:
        lag += f" (with {plural(info['unseen_files'], 'file')} no pass has read)"
    click.echo(lag)
    sidecar = info["sidecar"]
    if sidecar and sidecar["alive"]:
        click.echo(f"Sidecar:   alive (pid {sidecar['pid']}, {sidecar['state']})")
    elif sidecar and sidecar["state"] != "stopped" and heartbeat.died(sidecar["why"]):
        click.echo(
            f"Sidecar:   died (pid {sidecar['pid']} stopped without saying so; last heartbeat "
            f"{sidecar['beat_age']:.0f} s ago): run `claude-sessions watch` again"
        )
    elif sidecar:
        age = sidecar["beat_age"]
        when = f"last heartbeat {age:.0f} s ago" if age is not None else "no heartbeat time"
        click.echo(f"Sidecar:   not running ({when}: {sidecar['why']})")
    else:
        click.echo("Sidecar:   never started (run `claude-sessions watch`)")


@cli.command()
@click.argument("session_id", required=False)
@click.option("--all", "export_all", is_flag=True, help="Export every archived file.")
@click.option(
    "-o",
    "--output",
    type=click.Path(file_okay=False, path_type=Path),
    required=True,
    help="Folder to write the projects tree into.",
)
@click.option("--force", is_flag=True, help="Write into a folder that is not empty.")
@click.option(
    "--replaced",
    is_flag=True,
    help="Also write the lines a file had before it was truncated or replaced: each older "
    "generation as FILE.generation-N next to FILE (the lines the new version dropped or "
    "changed, in their order).",
)
@click.option(
    "--format",
    "fmt",
    type=click.Choice(["files", "parquet", "markdown", "html"]),
    default="files",
    show_default=True,
    help="files: the projects tree, byte for byte.  parquet: every table as Parquet "
    "files partitioned by host and day, incremental (see below).  markdown, html: "
    "transcripts to read (see below).",
)
@click.option(
    "--no-raw",
    is_flag=True,
    help="With --format parquet: leave each line's raw JSON out of events/ (much smaller).",
)
@click.option(
    "--redact",
    is_flag=True,
    help="With --format markdown or html: draw the transcripts from a redacted copy, as "
    "`claude-sessions share` makes one (secrets become [REDACTED:<kind>], home folders ~).",
)
@db_option
def export(session_id, export_all, output, force, replaced, fmt, no_raw, redact, db_path):
    """Write archived transcripts back as files, byte for byte.

    Recreates the projects tree under --output (project folder / session.jsonl, agent
    files, subagents/ with their .meta.json), identical to what Claude Code wrote, also
    for files it has since deleted.  Give a SESSION_ID for one session (with its
    subagents; the first 6 or more characters of its id are enough when no other session
    starts with them) or --all for everything.  Refuses a non-empty --output folder unless
    --force is given (existing files with the same names are then overwritten).  Without
    --replaced the files are exactly the sources' current versions.  When files of
    several machines (merged) or projects folders share a path, every file goes under
    HOST/PROJECTS-FOLDER/ instead, so none overwrites another.

    --format parquet writes the archive for DuckDB, ClickHouse, Trino or Spark:
    events/ (with each line's archive id, and raw as text unless --no-raw),
    api_calls/ (with cost_usd), tool_calls/, sessions/, subagents/ under --output,
    in host=…/day=… folders.  Run it again into the same folder and it adds only what
    is new since the last time (a watermark file in the folder), never a row twice.
    Needs pyarrow (the parquet extra).  See docs/scale.md.

    --format markdown writes SESSION_ID.md: prompts and answers, each tool call folded in
    a <details> block (diffs, files, commands, todo lists), subagents nested under the
    call that started them, no raw JSON.  --format html writes SESSION_ID.html, drawn like
    the web app's transcript, in one self-contained file (styles and script inline, no
    network request; open it from disk or mail it).  With --all: one file per session
    and, for html, an index.html linking them (a static site).  --redact first makes a
    share copy of the sessions in a temporary folder (the redaction of `claude-sessions
    share`, see docs/sharing.md) and draws from it; the archive is only read.

    \b
    Examples:
      claude-sessions export 0d3a8e6f-290f-4105-a327-a2496e5e2a83 -o /tmp/session
      claude-sessions export --all -o ~/claude-backup --force
      claude-sessions export --format parquet -o ~/claude-parquet
      claude-sessions export 0d3a8e6f --format html -o /tmp/read
      claude-sessions export --all --format html -o ~/claude-site
      claude-sessions export 0d3a8e6f --format markdown --redact -o /tmp/to-share
    """
    if fmt in ("markdown", "html"):
        if no_raw or replaced:
            raise click.ClickException(f"--no-raw and --replaced do not go with --format {fmt}.")
        from .cli_readable import export_readable

        export_readable(session_id, export_all, output, force, fmt, db_path, redact)
        return
    if redact:
        raise click.ClickException(
            "--redact goes with --format markdown or html (for a redacted archive, use "
            "`claude-sessions share`)."
        )
    if fmt == "parquet":
        from .parquet import export_parquet_command

        export_parquet_command(session_id, export_all, output, force, replaced, no_raw, db_path)
        return
    if no_raw:
        raise click.ClickException("--no-raw goes with --format parquet.")
    if bool(session_id) == export_all:
        raise click.ClickException("Give either a SESSION_ID or --all.")
    db = (db_path or default_db_path()).expanduser()
    archive.open_read(db).close()
    if output.exists() and any(output.iterdir()) and not force:
        raise click.ClickException(f"{output} is not empty; pass --force to write into it.")
    try:
        with database_errors(db):
            notes: list[str] = []
            written = export_files(
                db, output, None if export_all else session_id, replaced=replaced, notes=notes
            )
    except ExportError as e:
        raise click.ClickException(str(e)) from None
    except OSError as e:
        raise click.ClickException(f"Cannot write to {output}: {e.strerror}.") from None
    for note in notes:
        click.echo(note)
    click.echo(f"Wrote {plural(len(written), 'file')} to {output}.")


@cli.command()
@click.argument("dest", type=click.Path(dir_okay=False, path_type=Path))
@db_option
def backup(dest, db_path):
    """Copy the archive into the new file DEST, consistent even while a sync writes.

    A plain file copy can miss the latest changes, which wait in the archive's -wal file
    until SQLite moves them into the main file; this writes one complete database
    (SQLite's VACUUM INTO) from a read-only connection, then checks the copy with
    SQLite's quick_check.  Use it to carry an archive to
    another machine for `claude-sessions merge` (docs/several-machines.md).
    """
    db = (db_path or default_db_path()).expanduser()
    if dest.exists() or dest.is_symlink():
        raise click.ClickException(f"{dest} already exists; give a new file name.")
    if not dest.parent.is_dir():
        raise click.ClickException(f"{dest.parent} is not a folder; create it first.")
    conn = archive.open_read(db)
    try:
        with database_errors(db):
            conn.execute("VACUUM INTO ?", (str(dest),))
    except click.ClickException:
        dest.unlink(missing_ok=True)
        raise
    finally:
        conn.close()
    check = quick_check(dest)
    if check != "ok":
        raise click.ClickException(
            f"The copy {dest} fails SQLite's quick_check ({check}); it is kept for a look, "
            f"but do not rely on it: run `claude-sessions verify --db {db}`."
        )
    click.echo(f"Copied {db} to {dest} ({dest.stat().st_size / 1e6:,.1f} MB); quick_check ok.")


def quick_check(db: Path) -> str:
    """SQLite's PRAGMA quick_check of a database file: "ok" or its first complaints."""
    try:
        conn = archive.connect_readonly(db)
    except (archive.ReadOnlyWal, sqlite3.DatabaseError) as e:
        return str(e)
    try:
        found = [r[0] for r in conn.execute("PRAGMA quick_check(5)")]
    except sqlite3.DatabaseError as e:
        return str(e)
    finally:
        conn.close()
    return "ok" if found == ["ok"] else "; ".join(found)


@cli.command()
def path():
    """Print where the archive lives by default.

    That is $CLAUDE_SESSIONS_DB when set, else claude-sessions.db in your user data
    directory.  Every command takes --db to use another file.
    """
    click.echo(default_db_path())
