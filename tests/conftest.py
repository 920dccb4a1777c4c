"""Shared fixtures.  Every test runs with HOME, CLAUDE_CONFIG_DIR and CLAUDE_SESSIONS_DB
pointed at temporary directories, so nothing here can touch the real ~/.claude."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest
from hypothesis import settings

# The fuzz tests draw new examples on every local run.  CI (.ci/run sets
# HYPOTHESIS_PROFILE=ci) draws the same examples every time, so a commit lands or not on
# its own merits; a find from a local run is kept as an @example.
settings.register_profile("ci", derandomize=True, database=None)
if os.environ.get("HYPOTHESIS_PROFILE"):
    settings.load_profile(os.environ["HYPOTHESIS_PROFILE"])

SHARED = Path(__file__).resolve().parent.parent.parent / "shared"
SAMPLES = SHARED / "samples"
REAL = SAMPLES / "real"
FIXTURES = SAMPLES / "fixtures"


@pytest.fixture(autouse=True)
def isolated_home(tmp_path_factory, monkeypatch):
    home = tmp_path_factory.mktemp("home")
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.setenv("CLAUDE_CONFIG_DIR", str(home / ".claude"))
    monkeypatch.setenv("CLAUDE_SESSIONS_DB", str(home / "archive.db"))
    monkeypatch.setenv("XDG_DATA_HOME", str(home / ".local" / "share"))
    return home


@pytest.fixture
def real_projects(tmp_path) -> Path:
    """A writable copy of shared/samples/real (mtimes preserved)."""
    if not REAL.exists():
        pytest.skip(f"samples not found at {REAL}")
    dest = tmp_path / "projects"
    shutil.copytree(REAL, dest)
    return dest


@pytest.fixture
def db_path(tmp_path) -> Path:
    return tmp_path / "archive.db"
