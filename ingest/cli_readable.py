"""`export --format markdown|html`: transcripts to read (datasette_claude_sessions/readable.py).

With ``--redact`` the transcripts are drawn from a share copy of the chosen sessions
(``ingest/share.py``, made in a temporary folder and deleted after): the same
redaction as ``claude-sessions share`` (secrets become ``[REDACTED:<kind>]``, home
folders ``~``), applied to every table before anything is drawn, so no field of the
page escapes it.
"""

from __future__ import annotations

import sqlite3
import sys
import tempfile
from contextlib import contextmanager
from pathlib import Path

import click

from . import archive
from .archive import database_errors
from .cli import plural
from .export import ExportError, resolve_session
from .paths import default_db_path


@contextmanager
def _redacted_copy(db: Path, session_id: str | None):
    """A share copy of db (only session_id when given), deleted on leaving."""
    from .share import Options, ShareError, share

    with tempfile.TemporaryDirectory(prefix="claude-sessions-redact-") as scratch:
        copy = Path(scratch) / "redacted.db"
        options = Options(sessions=(session_id,) if session_id else ())
        try:
            with click.progressbar(
                length=1, label="Redacting", file=sys.stderr, hidden=not sys.stderr.isatty()
            ) as bar:
                result = share(db, copy, options, progress=bar)
        except ShareError as e:
            raise click.ClickException(str(e)) from None
        except sqlite3.DatabaseError as e:
            raise click.ClickException(f"Cannot make the redacted copy: {e}.") from None
        except OSError as e:
            raise click.ClickException(
                f"Cannot write the redacted copy in {scratch}: {e.strerror or e}."
            ) from None
        yield copy, result


def export_readable(session_id, export_all, output, force, fmt, db_path, redact=False) -> None:
    """Write SESSION_ID (or every session) as Markdown or self-contained HTML."""
    if bool(session_id) == export_all:
        raise click.ClickException("Give either a SESSION_ID or --all.")
    db = (db_path or default_db_path()).expanduser()
    conn = archive.open_read(db)
    try:
        with database_errors(db):
            if not export_all:
                try:
                    session_id = resolve_session(conn, session_id)
                except ExportError as e:
                    raise click.ClickException(str(e)) from None
                from datasette_claude_sessions import readable

                if readable.session_info(conn, session_id) is None:
                    raise click.ClickException(f"No session {session_id} in {db}.")
    finally:
        conn.close()
    if output.exists() and any(output.iterdir()) and not force:
        raise click.ClickException(f"{output} is not empty; pass --force to write into it.")
    if not redact:
        files = _write(db, None if export_all else session_id, output, fmt)
        click.echo(f"Wrote {plural(files, 'file')} to {output}.")
        return
    with _redacted_copy(db, None if export_all else session_id) as (copy, result):
        files = _write(copy, None if export_all else session_id, output, fmt)
    secrets = sum(n for kind, n in result.counts.items() if kind != "home-path")
    click.echo(
        f"Wrote {plural(files, 'file')} to {output}, redacted: "
        f"{plural(secrets, 'secret')} replaced, "
        f"{plural(result.counts.get('home-path', 0), 'home folder')} shown as ~."
    )


def _write(db: Path, session_id: str | None, output: Path, fmt: str) -> int:
    """Draw the sessions of db into output; the number of files written."""
    from datasette_claude_sessions import readable

    conn = archive.open_read(db)
    written: list[tuple[str, str]] = []
    try:
        with database_errors(db):
            if session_id is None:
                sessions = [
                    r[0]
                    for r in conn.execute(
                        "SELECT session_id FROM sessions WHERE events > 0 "
                        "ORDER BY last_timestamp DESC"
                    )
                ]
            else:
                sessions = [session_id]
            suffix = ".md" if fmt == "markdown" else ".html"
            output.mkdir(parents=True, exist_ok=True)
            with click.progressbar(
                sessions, label="Exporting", file=sys.stderr, hidden=not sys.stderr.isatty()
            ) as bar:
                for sid in bar:
                    name = readable.file_name(sid, None, suffix)
                    if fmt == "markdown":
                        text = readable.markdown_document(conn, sid)
                    else:
                        text = readable.html_page(
                            conn, sid, index_href="index.html" if session_id is None else None
                        )
                    (output / name).write_text(text, encoding="utf-8")
                    written.append((sid, name))
            if session_id is None and fmt == "html":
                (output / "index.html").write_text(
                    readable.html_index(conn, written), encoding="utf-8"
                )
    except OSError as e:
        raise click.ClickException(f"Cannot write to {output}: {e.strerror}.") from None
    finally:
        conn.close()
    return len(written) + (1 if session_id is None and fmt == "html" else 0)
