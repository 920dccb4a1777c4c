"""The sync, status, export and path commands through click."""

from __future__ import annotations

import json
import os
import shutil
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

from ingest.cli import cli
from ingest.lines import register as register_lines
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
    assert (
        "Files:     31 files tracked\n" in text
        and "Sessions:  22" in text
        and "Lag:       17 bytes" in text
    )
    info = json.loads(run("status", "--db", str(db_path), "--json").output)
    assert info["files"] == 31 and info["lines"] == 1540 and info["lag_bytes"] == 17
    assert info["last_pass"]["trigger"] == "cli" and info["sidecar"] is None


def test_status_on_a_file_that_is_not_an_archive(tmp_path):
    bogus = tmp_path / "bogus.db"
    bogus.write_text("hello")
    result = CliRunner().invoke(cli, ["status", "--db", str(bogus)])
    assert result.exit_code == 1
    assert result.output == f"Error: {bogus} is not a SQLite database.\n"


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
    single = run("export", "07f2e15c", "-o", str(tmp_path / "single"), "--db", str(db_path))
    assert single.output.startswith("Wrote 1 file to ")
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
    assert result.output == f"Error: {bogus} is not a SQLite database.\n"
    assert not Path(f"{bogus}.lock").exists()
    missing_parent = Path("/proc/claude-sessions-test/archive.db")
    result = CliRunner().invoke(
        cli, ["sync", "--db", str(missing_parent), "--projects", str(real_projects)]
    )
    assert result.exit_code == 1
    assert result.output.startswith("Error: Cannot ") and "\n" == result.output[-1:]
    assert result.output.count("\n") == 1
    for command in ("sync", "watch"):  # a folder that exists but takes no files
        result = CliRunner().invoke(
            cli, [command, "--db", "/proc/claude-sessions.db", "--projects", str(real_projects)]
        )
        assert result.exit_code == 1
        assert result.output.startswith("Error: Cannot write in /proc, the archive's folder: ")
        assert result.output.count("\n") == 1


def test_status_counts_files_no_pass_has_read(real_projects, db_path):
    run("sync", "--db", str(db_path), "--projects", str(real_projects))
    new = real_projects / "-new-project" / "dddddddd-0000-4000-8000-000000000001.jsonl"
    new.parent.mkdir()
    new.write_bytes(b'{"type": "user"}\n' * 3)
    plain = json.loads(run("status", "--db", str(db_path), "--json").output)
    assert plain["lag_bytes"] == 0 and plain["unseen_files"] == 0  # default roots: none here
    args = ("status", "--db", str(db_path), "--projects", str(real_projects))
    info = json.loads(run(*args, "--json").output)
    assert info["lag_bytes"] == 51 and info["unseen_files"] == 1
    assert (
        "Lag:       51 bytes not archived yet (with 1 file no pass has read)" in run(*args).output
    )
    run("sync", "--db", str(db_path), "--projects", str(real_projects))
    assert json.loads(run(*args, "--json").output)["lag_bytes"] == 0
    new.unlink()
    run("sync", "--db", str(db_path), "--projects", str(real_projects))
    text = run(*args).output
    assert "Files:     32 files tracked (1 deleted at the source)\n" in text


def test_backup_is_a_complete_copy(real_projects, db_path, tmp_path):
    run("sync", "--db", str(db_path), "--projects", str(real_projects))
    writer = sqlite3.connect(db_path)  # holds changes in the -wal, not in the main file
    writer.execute("PRAGMA wal_autocheckpoint=0")
    writer.execute("INSERT INTO usage_settings VALUES ('backup-test', 'in the wal')")
    writer.commit()
    copy = tmp_path / "copy.db"
    result = run("backup", str(copy), "--db", str(db_path))
    assert result.output.startswith(f"Copied {db_path} to {copy} (")
    conn = sqlite3.connect(copy)
    register_lines(conn)
    assert conn.execute("SELECT value FROM usage_settings WHERE key = 'backup-test'").fetchone()
    assert conn.execute("SELECT count(*) FROM events").fetchone() == (1540,)
    conn.close()
    writer.close()
    again = CliRunner().invoke(cli, ["backup", str(copy), "--db", str(db_path)])
    assert (
        again.exit_code == 1
        and again.output == f"Error: {copy} already exists; give a new file name.\n"
    )


def test_second_watch_says_only_that_it_runs(tmp_path, db_path):
    from ingest.lock import WatchLock

    with WatchLock(db_path):
        result = CliRunner().invoke(
            cli, ["watch", "--db", str(db_path), "--projects", str(tmp_path)]
        )
    assert result.exit_code == 1
    assert result.output == (
        f"Error: `claude-sessions watch` (pid {os.getpid()}) is already running on {db_path}.\n"
    )


@pytest.mark.parametrize("command", ["status", "export", "backup", "sync", "watch"])
def test_unusable_db_is_one_sentence_for_every_command(command, tmp_path, real_projects):
    args = {
        "status": [],
        "export": ["--all", "-o", str(tmp_path / "out")],
        "backup": [str(tmp_path / "copy.db")],
        "sync": ["--projects", str(real_projects)],
        "watch": ["--projects", str(real_projects)],
    }[command]
    text = tmp_path / "notsqlite.db"
    text.write_text("hello, I am text\n" * 10)
    folder = tmp_path / "folder.db"
    folder.mkdir()
    result = CliRunner().invoke(cli, [command, "--db", str(text), *args])
    assert result.exit_code == 1, result.output
    assert result.output == f"Error: {text} is not a SQLite database.\n"
    result = CliRunner().invoke(cli, [command, "--db", str(folder), *args])
    assert result.exit_code == 2  # click's own check of --db
    assert result.output.endswith(
        f"Error: Invalid value for '--db': File '{folder}' is a directory.\n"
    )
    assert sorted(p.name for p in tmp_path.iterdir()) == ["folder.db", "notsqlite.db", "projects"]


def test_every_command_is_found_in_the_module_that_defines_it():
    import importlib

    from ingest import cli as cli_module

    for name, module in cli_module.COMMANDS.items():
        command = cli.get_command(None, name)
        assert command is not None and command.name == name
        assert command.callback.__module__ == f"ingest.{module}"
    for module in set(cli_module.COMMANDS.values()):
        importlib.import_module(f"ingest.{module}")
    assert set(cli.commands) == set(cli_module.COMMANDS)  # no command left out


def test_a_command_imports_only_its_own_module():
    code = (
        "import sys; from ingest.cli import cli; "
        "cli(['path'], standalone_mode=False); "
        "print(sorted(m for m in sys.modules if m.startswith('ingest.cli_')))"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    ).stdout
    assert out.splitlines()[-1] == "['ingest.cli_sync']"
