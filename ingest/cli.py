"""The ``claude-sessions`` command line: one click group, commands in cli_*.py modules.

Shared option decorators live here so every command spells --db and --projects the same.
"""

from __future__ import annotations

import importlib
from pathlib import Path

import click

from . import __version__
from .paths import default_db_path, places


def db_option(fn):
    return click.option(
        "--db",
        "db_path",
        type=click.Path(dir_okay=False, path_type=Path),
        default=None,
        help="Archive database. Default: $CLAUDE_SESSIONS_DB, else "
        "claude-sessions.db in your data directory (see `claude-sessions path`).",
    )(fn)


def _remember_claude_dir(ctx: click.Context, _param, value: Path | None) -> None:
    ctx.meta["claude_sessions.claude_dir"] = value


def projects_option(fn):
    """--projects and --claude-dir (read with resolve_projects and resolve_claude_dirs, so
    a command gets both without a parameter of its own for --claude-dir)."""
    fn = click.option(
        "--claude-dir",
        type=click.Path(file_okay=False, path_type=Path),
        expose_value=False,
        callback=_remember_claude_dir,
        help="Claude Code's directory: its history.jsonl, file-history/, plans/ and todos/ "
        "are archived too, and --projects defaults to DIR/projects. Default: "
        "$CLAUDE_CONFIG_DIR, else ~/.claude (not read when only --projects is given).",
    )(fn)
    return click.option(
        "--projects",
        "projects",
        type=click.Path(file_okay=False, path_type=Path),
        multiple=True,
        help="A Claude Code projects directory to read (repeatable). Default: "
        "<claude-dir>/projects.",
    )(fn)


def given_claude_dir() -> Path | None:
    """The --claude-dir of the running command, if one was given."""
    ctx = click.get_current_context(silent=True)
    value = ctx.meta.get("claude_sessions.claude_dir") if ctx is not None else None
    return value.expanduser().absolute() if value is not None else None


def resolve_claude_dirs(projects: tuple[Path, ...] = ()) -> list[Path]:
    """The Claude directories whose own files are archived: --claude-dir; else, when no
    --projects was given either, $CLAUDE_CONFIG_DIR's (or ~/.claude); else none
    (ingest.paths.places, the plugin's rule too)."""
    given = given_claude_dir()
    return places(list(projects), None if given is None else [given])[1]


def resolve_db(db_path: Path | None) -> Path:
    """The database path to use, its folder created."""
    path = db_path or default_db_path()
    path = path.expanduser()
    if path.exists() and path.is_dir():
        raise click.ClickException(f"--db {path} is a directory; give a file path.")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise click.ClickException(
            f"Cannot create the folder for the database {path}: {e.strerror}."
        ) from None
    return path


def plural(n: int, word: str) -> str:
    return f"{n:,} {word}" + ("" if n == 1 else "s")


def resolve_projects(projects: tuple[Path, ...]) -> list[Path]:
    """The projects roots to read, made absolute: --projects, else the projects folder of
    --claude-dir or of the default Claude directories (ingest.paths.places)."""
    given = given_claude_dir()
    return places(list(projects), None if given is None else [given])[0]


# Each command and the module that defines it: a command's module is imported when the
# command runs (or --help lists them all), so `sync` starts without serve's or cost's.
COMMANDS = {
    "sync": "cli_sync",
    "watch": "cli_sync",
    "status": "cli_sync",
    "export": "cli_sync",
    "backup": "cli_sync",
    "path": "cli_sync",
    "verify": "cli_verify",
    "cost": "cli_cost",
    "reprice": "cli_cost",
    "merge": "cli_cost",
    "demo": "cli_demo",
    "serve": "cli_serve",
    "share": "cli_share",
    "statusline": "cli_statusline",
}


class LazyGroup(click.Group):
    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted({*COMMANDS, *self.commands})

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        if cmd_name not in self.commands and cmd_name in COMMANDS:
            importlib.import_module(f".{COMMANDS[cmd_name]}", __package__)
        return self.commands.get(cmd_name)


@click.group(cls=LazyGroup)
@click.version_option(__version__, prog_name="claude-sessions")
def cli():
    """Keep, search and query your Claude Code sessions in SQLite.

    Reads the JSONL transcripts Claude Code writes under ~/.claude/projects
    ($CLAUDE_CONFIG_DIR/projects when set) into one SQLite archive that keeps every
    line, even after Claude Code deletes the files, and serves it with Datasette.

    \b
    Start here:
      claude-sessions serve        sync, watch and open the web app
      claude-sessions sync         one incremental pass
      claude-sessions status       what is archived and how fresh it is
    """
