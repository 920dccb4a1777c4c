"""An archive on a read-only location: the read commands work, the writers say why not.

Permissions are real: the commands run as a real process, without the capabilities that
let root ignore file modes when the tests run as root.  A read-only mount cannot be made here; a folder
of mode 0555 holding a file of mode 0444 fails the same way for SQLite (no -shm file can
be created next to the database).
"""

from __future__ import annotations

import json
import os
import shutil
import sqlite3
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

from ingest.lines import register as register_lines
from ingest.sync import run_pass

ROOT_POWERS = "-dac_override,-dac_read_search,-fowner"


def as_reader(args: list[str], home: Path) -> subprocess.CompletedProcess:
    """`claude-sessions ARGS` as a process without root's power over file modes."""
    command = [sys.executable, "-c", "from ingest.cli import cli; cli(prog_name='claude-sessions')"]
    if os.geteuid() == 0:
        setpriv = shutil.which("setpriv")
        if setpriv is None:
            pytest.skip("setpriv is needed to drop root's permissions")
        command = [setpriv, f"--inh-caps={ROOT_POWERS}", f"--bounding-set={ROOT_POWERS}", *command]
    env = dict(os.environ, HOME=str(home), CLAUDE_CONFIG_DIR=str(home / ".claude"))
    env["CLAUDE_SESSIONS_DB"] = str(home / "unused.db")
    env["XDG_DATA_HOME"] = str(home / "data")
    return subprocess.run(command + args, capture_output=True, text=True, env=env, timeout=60)


@pytest.fixture
def shelf(real_projects):
    """A synced archive in a folder readable by everyone, then made read-only."""
    top = Path(tempfile.mkdtemp(prefix="claude-sessions-ro-"))
    os.chmod(top, 0o755)
    folder = top / "ro"
    folder.mkdir()
    db = folder / "archive.db"
    run_pass(db, [real_projects])
    out = top / "out"
    out.mkdir()
    os.chmod(out, 0o777)
    yield db
    for path in (folder, *folder.iterdir()):
        os.chmod(path, 0o755)
    shutil.rmtree(top)


def seal(db: Path) -> None:
    for path in db.parent.iterdir():
        os.chmod(path, 0o444)
    os.chmod(db.parent, 0o555)


def test_read_commands_work_on_a_read_only_archive(shelf):
    assert not Path(f"{shelf}-wal").exists()  # closed cleanly: everything in the main file
    seal(shelf)
    before = sorted(p.name for p in shelf.parent.iterdir())
    home = shelf.parent.parent
    status = as_reader(["status", "--db", str(shelf), "--json"], home)
    assert status.returncode == 0, status.stderr
    assert json.loads(status.stdout)["lines"] == 1540
    cost = as_reader(["cost", "--db", str(shelf), "--json", "--utc"], home)
    assert cost.returncode == 0, cost.stderr
    assert json.loads(cost.stdout)["totals"]["calls"] == 449
    out = home / "out" / "tree"
    export = as_reader(["export", "--all", "-o", str(out), "--db", str(shelf)], home)
    assert export.returncode == 0, export.stderr
    assert export.stdout == f"Wrote 31 files to {out}.\n"
    sync = as_reader(["sync", "--db", str(shelf), "--projects", str(out)], home)
    assert sync.returncode == 1
    assert sync.stderr.startswith(f"Error: {shelf} is on a read-only location; ")
    assert sorted(p.name for p in shelf.parent.iterdir()) == before  # nothing written


def test_read_only_archive_with_pending_wal_says_so(shelf):
    writer = sqlite3.connect(shelf)
    register_lines(writer)
    writer.execute("PRAGMA wal_autocheckpoint=0")
    writer.execute("INSERT INTO usage_settings VALUES ('pending', 'in the wal')")
    writer.commit()
    try:
        os.chmod(Path(f"{shelf}-wal"), 0o000)  # and cannot be read either
        seal(shelf)
        os.chmod(Path(f"{shelf}-wal"), 0o000)
        status = as_reader(["status", "--db", str(shelf)], shelf.parent.parent)
    finally:
        writer.close()
    assert status.returncode == 1
    assert status.stderr == (
        f"Error: {shelf} is on a read-only location and its archive.db-wal file (the latest "
        "changes) cannot be read; copy both files to a writable folder or ask for read "
        "access.\n"
    )
