"""Default locations: the projects tree Claude Code writes and the archive database."""

from __future__ import annotations

import os
from pathlib import Path

import platformdirs

APP_NAME = "claude-sessions"


def claude_config_dir() -> Path:
    """``$CLAUDE_CONFIG_DIR`` when set (the first of a comma-separated list), else ~/.claude."""
    env = os.environ.get("CLAUDE_CONFIG_DIR")
    if env:
        first = env.split(",")[0].strip()
        if first:
            return Path(first).expanduser()
    return Path.home() / ".claude"


def claude_dirs() -> tuple[list[Path], str]:
    """Claude Code's directories and where they came from: $CLAUDE_CONFIG_DIR
    (comma-separated), else ~/.claude, and ~/.config/claude too when it exists (the
    second place newer Claude Code versions and ccusage look)."""
    env = os.environ.get("CLAUDE_CONFIG_DIR")
    if env:
        dirs = [Path(p.strip()).expanduser() for p in env.split(",") if p.strip()]
        if dirs:
            return dirs, "environment ($CLAUDE_CONFIG_DIR)"
    home = Path.home()
    dirs = [home / ".claude"]
    xdg = Path(os.environ.get("XDG_CONFIG_HOME") or home / ".config") / "claude"
    if (xdg / "projects").is_dir() or xdg.is_dir():
        dirs.append(xdg)
    return dirs, "default"


def default_claude_dirs() -> list[Path]:
    """Claude Code's directories: those of ``$CLAUDE_CONFIG_DIR`` (comma-separated), else
    ~/.claude, and ~/.config/claude too when it exists (see claude_dirs)."""
    return claude_dirs()[0]


def default_projects_dirs() -> list[Path]:
    """The projects trees to read when no --projects is given."""
    return [d / "projects" for d in default_claude_dirs()]


def data_dir() -> Path:
    """The user's data directory for this tool (created on demand by callers)."""
    return Path(platformdirs.user_data_dir(APP_NAME, appauthor=False))


def default_db_path() -> Path:
    """``$CLAUDE_SESSIONS_DB`` when set, else claude-sessions.db in the user's data directory."""
    env = os.environ.get("CLAUDE_SESSIONS_DB")
    if env:
        return Path(env).expanduser()
    return data_dir() / "claude-sessions.db"


def settings_path() -> Path:
    """Claude Code's settings.json (read for cleanupPeriodDays)."""
    return claude_config_dir() / "settings.json"


def places(
    projects: list | None = None, claude_dir: list | None = None
) -> tuple[list[Path], list[Path]]:
    """(projects roots, Claude directories) to read, the one rule of the CLI and the
    plugin: the projects given, else the ``projects/`` of each Claude directory given,
    else of the default ones; the Claude directories given (an empty list: none), else
    none when projects were given (another tree, not a Claude directory), else the
    default ones.  Paths made absolute."""

    def absolute(paths) -> list[Path]:
        return [Path(p).expanduser().absolute() for p in paths]

    if claude_dir is not None:
        dirs = absolute(claude_dir)
    elif projects:
        dirs = []
    else:
        dirs = absolute(default_claude_dirs())
    if projects:
        roots = absolute(projects)
    elif claude_dir is not None:
        roots = [d / "projects" for d in dirs]
    else:
        roots = absolute(default_projects_dirs())
    return roots, dirs
