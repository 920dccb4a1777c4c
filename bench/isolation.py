"""Benchmarks never touch the real home: ``isolate(work)`` points HOME,
CLAUDE_CONFIG_DIR, CLAUDE_SESSIONS_DB and XDG_DATA_HOME at a folder under work."""

from __future__ import annotations

import os
from pathlib import Path


def isolate(work: Path) -> None:
    home = work / "home"
    home.mkdir(exist_ok=True)
    os.environ.update(
        HOME=str(home),
        CLAUDE_CONFIG_DIR=str(home / ".claude"),
        CLAUDE_SESSIONS_DB=str(home / "archive.db"),
        XDG_DATA_HOME=str(home / ".local" / "share"),
    )
