"""The sync, status, export and path commands through click."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path

import pytest
from click.testing import CliRunner

from ingest.cli import cli
from ingest.lock import WriterLock


def run(*args: str):
    return CliRunner().invoke(cli, list(args), catch_exceptions=False)


def test_sync_summary_and_no_op(real_projects, db_path):
    first = run("sync", "--db", str(db_path), "--projects", str(real_projects))
    assert first.exit_code == 0
    assert first.output.startswith("Synced 31 files (31 changed): 1,540 new lines, 6.1 MB in ")
    second = run("sync", "--db", str(db_path), "--projects", str(real_projects))
    assert "(0 changed): 0 new lines, 0.0 MB" in second.output
    assert run("sync", "--db", str(db_path), "--projects", str(real_projects), "-q").output == ""


def test_sync_missing_projects_dir_is_one_sentence(tmp_path, db_path):
    result = CliRunner().invoke(cli, ["sync", "--db", str(db_path), "--projects", "nope"])
    assert result.exit_code == 1
    assert result.output.strip() == f"Error: --projects {Path('nope').absolute()} does not exist."


def test_sync_missing_default_projects_dir_is_fine(isolated_home, db_path):
    result = run("sync", "--db", str(db_path))
    assert result.exit_code == 0
    assert "Nothing to sync yet" in result.output
    assert str(isolated_home / ".claude" / "projects") in result.output


def test_sync_defaults_to_claude_config_dir(isolated_home, real_projects):
    shutil.copytree(real_projects, isolated_home / ".claude" / "projects")
    assert run("sync").exit_code == 0
    assert (isolated_home / "archive.db").exists()  # $CLAUDE_SESSIONS_DB


def test_second_writer_no_wait_and_wait(real_projects, db_path):
    program = shutil.which("claude-sessions")
    if program is None:
        pytest.skip("claude-sessions is not installed")
    command = [program, "sync", "--db", str(db_path), "--projects", str(real_projects)]
    with WriterLock(db_path):
        no_wait = subprocess.run([*command, "--no-wait"], capture_output=True, text=True)
        waited = subprocess.run([*command, "--wait", "0.5"], capture_output=True, text=True)
    assert no_wait.returncode == 1
    assert no_wait.stderr.strip() == (
        f"Error: Another sync (pid {os.getpid()}) is writing to {db_path}; "
        "gave up, try again later."
    )
    assert waited.returncode == 1
    assert "after waiting 0.5 s" in waited.stderr
    assert subprocess.run([*command, "--no-wait"], capture_output=True).returncode == 0


def test_status(real_projects, db_path):
    missing = CliRunner().invoke(cli, ["status", "--db", str(db_path)])
    assert missing.exit_code == 1
    assert "No archive at" in missing.output and "claude-sessions sync" in missing.output

    run("sync", "--db", str(db_path), "--projects", str(real_projects))
    with open(next(real_projects.rglob("*.jsonl")), "ab") as f:
        f.write(b'{"type": "user"}\n')
    text = run("status", "--db", str(db_path)).output
    assert "31 tracked" in text and "Sessions:  22" in text and "Lag:       17 bytes" in text
    info = json.loads(run("status", "--db", str(db_path), "--json").output)
    assert info["files"] == 31 and info["lines"] == 1540 and info["lag_bytes"] == 17
    assert info["last_pass"]["trigger"] == "cli" and info["sidecar"] is None


def test_status_on_a_file_that_is_not_an_archive(tmp_path):
    bogus = tmp_path / "bogus.db"
    bogus.write_text("hello")
    result = CliRunner().invoke(cli, ["status", "--db", str(bogus)])
    assert result.exit_code == 1
    assert "is not a claude-sessions archive" in result.output


def test_export_commands(real_projects, db_path, tmp_path):
    run("sync", "--db", str(db_path), "--projects", str(real_projects))
    out = tmp_path / "out"
    result = run("export", "--all", "-o", str(out), "--db", str(db_path))
    assert result.output == f"Wrote 31 files to {out}.\n"
    again = CliRunner().invoke(cli, ["export", "--all", "-o", str(out), "--db", str(db_path)])
    assert again.exit_code == 1 and "is not empty; pass --force" in again.output
    forced = run("export", "--all", "-o", str(out), "--db", str(db_path), "--force")
    assert forced.exit_code == 0

    session = "29ccd257-68b1-427f-ae5f-6524b7cb6f20"
    one = run("export", session, "-o", str(tmp_path / "one"), "--db", str(db_path))
    assert one.output.startswith("Wrote 2 files")
    unknown = CliRunner().invoke(
        cli, ["export", "nope", "-o", str(tmp_path / "x"), "--db", str(db_path)]
    )
    assert unknown.exit_code == 1
    assert unknown.output.strip() == "Error: No archived files belong to session nope."
    neither = CliRunner().invoke(cli, ["export", "-o", str(tmp_path / "y"), "--db", str(db_path)])
    assert "Give either a SESSION_ID or --all." in neither.output


def test_path(isolated_home):
    assert run("path").output.strip() == str(isolated_home / "archive.db")


def test_help_texts():
    for command in ("sync", "watch", "status", "export", "path"):
        result = run(command, "--help")
        assert result.exit_code == 0
        assert len(result.output) > 200


def test_unusable_database_path_is_one_sentence(real_projects, tmp_path):
    bogus = tmp_path / "bogus.db"
    bogus.write_text("not sqlite")
    result = CliRunner().invoke(cli, ["sync", "--db", str(bogus), "--projects", str(real_projects)])
    assert result.exit_code == 1
    assert result.output == f"Error: Cannot use {bogus} as the archive: file is not a database.\n"
    missing_parent = Path("/proc/claude-sessions-test/archive.db")
    result = CliRunner().invoke(
        cli, ["sync", "--db", str(missing_parent), "--projects", str(real_projects)]
    )
    assert result.exit_code == 1
    assert result.output.startswith("Error: Cannot ") and "\n" == result.output[-1:]
    assert result.output.count("\n") == 1
