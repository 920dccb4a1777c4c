"""Every setting in one place: its command-line flag, its plugin setting, its default.

Each setting has one name, used as the plugin setting (``plugins:
datasette-claude-sessions: NAME:``) and, with dashes, as the command-line flag of the
commands that take it (``--NAME``).  ``claude-sessions serve`` hands the values it was
given to the plugin, with where each came from, and the status page lists them all:
``effective()`` says what is in effect and why.

No click and no datasette here: the CLI and the plugin both import it.
"""

from __future__ import annotations

import os
import socket
from dataclasses import dataclass
from pathlib import Path

from .paths import claude_dirs, default_db_path

PLUGIN = "datasette-claude-sessions"
# The plugin setting ``db`` was called ``database`` before: still read when ``db`` is not
# given, and the status page says to rename it.
OLD_DB_NAME = "database"
# The plugin setting where `serve` records where each value came from.
SOURCES_KEY = "sources"


@dataclass(frozen=True)
class Setting:
    name: str  # the plugin setting; --name with dashes on the command line
    commands: tuple[str, ...]  # the commands that take --name
    what: str
    env: str | None = None  # an environment variable it falls back on

    @property
    def flag(self) -> str:
        return "--" + self.name.replace("_", "-")


SETTINGS: tuple[Setting, ...] = (
    Setting(
        "projects",
        ("sync", "watch", "serve", "status", "statusline"),
        "Claude Code projects directories the passes read",
        "CLAUDE_CONFIG_DIR",
    ),
    Setting(
        "claude_dir",
        ("sync", "watch", "serve", "status", "statusline"),
        "Claude Code directories whose own files are kept (history, plans, todos, ...)",
        "CLAUDE_CONFIG_DIR",
    ),
    Setting(
        "db",
        ("sync", "watch", "serve", "status", "cost", "statusline", "export", "merge"),
        "the archive database file",
        "CLAUDE_SESSIONS_DB",
    ),
    Setting("debounce", ("watch", "serve"), "seconds the sidecar collects file events"),
    Setting("rescan", ("watch", "serve"), "seconds between the sidecar's full rescans"),
    Setting(
        "machine",
        ("sync", "watch", "serve"),
        "name recorded as the machine the files were read on",
    ),
    Setting("timezone", ("serve", "cost"), "time zone of days in the usage views"),
    Setting("allow_sync", ("serve",), "who may press Sync now"),
    Setting("allow_hosts", ("serve",), "Host names the web app answers besides loopback"),
)
BY_NAME = {s.name: s for s in SETTINGS}
DEFAULTS = {
    "debounce": 0.1,
    "rescan": 30.0,
    "timezone": "UTC",
    "allow_sync": {"id": "root"},
    "allow_hosts": [],
}


def default(name: str):
    """(value, source) of a setting nobody gave."""
    if name == "claude_dir":
        dirs, source = claude_dirs()
        return [str(d) for d in dirs], source
    if name == "projects":
        dirs, source = claude_dirs()
        return [str(d / "projects") for d in dirs], source
    if name == "db":
        env = os.environ.get("CLAUDE_SESSIONS_DB")
        if env:
            return str(Path(env).expanduser()), "environment ($CLAUDE_SESSIONS_DB)"
        return str(default_db_path()), "default"
    if name == "machine":
        return socket.gethostname(), "default (this host name)"
    return DEFAULTS.get(name), "default"


def effective(config: dict | None, given: dict | None = None) -> list[dict]:
    """Every setting: name, flag, value, source.  ``config``: the plugin settings
    (``serve`` records in ``sources`` which flag each came from); ``given``: values
    known otherwise (the archive the plugin found), as {name: (value, source)}."""
    config = config or {}
    sources = config.get(SOURCES_KEY) or {}
    given = given or {}
    out = []
    for setting in SETTINGS:
        if setting.name in given:
            value, source = given[setting.name]
        elif setting.name in config:
            value = config[setting.name]
            source = sources.get(setting.name) or "plugin setting"
        else:
            value, source = default(setting.name)
        out.append(
            {
                "name": setting.name,
                "flag": setting.flag,
                "value": value,
                "source": source,
                "what": setting.what,
            }
        )
    return out
