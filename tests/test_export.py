"""export writes the archived files back byte-identical, also after the sources are gone."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

from ingest.export import ExportError, export_files
from ingest.lines import register as register_lines
from ingest.sync import run_pass

from .conftest import FIXTURES

WORKFLOW_SESSION = "11110000-0000-4000-8000-000000000001"


def tree(root: Path) -> dict[str, bytes]:
    return {
        str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()
    }


def test_export_all_round_trips_real_samples(real_projects, db_path, tmp_path):
    run_pass(db_path, [real_projects])
    out = tmp_path / "out"
    written = export_files(db_path, out)
    assert len(written) == 31
    assert tree(out) == tree(real_projects)
    if shutil.which("diff"):
        diff = subprocess.run(["diff", "-r", str(real_projects), str(out)], capture_output=True)
        assert diff.returncode == 0 and diff.stdout == b""


def test_export_after_sources_deleted(real_projects, db_path, tmp_path):
    original = tree(real_projects)
    run_pass(db_path, [real_projects])
    shutil.rmtree(real_projects)
    real_projects.mkdir()
    run_pass(db_path, [real_projects])
    out = tmp_path / "out"
    export_files(db_path, out)
    assert tree(out) == original


@pytest.fixture
def workflow_projects(tmp_path) -> Path:
    source = FIXTURES / "workflow_basic"
    if not source.exists():
        pytest.skip("fixtures not found")
    root = tmp_path / "projects"
    shutil.copytree(source, root / "-work-workflow")
    shutil.copy(FIXTURES / "session_b.jsonl", root / "-work-workflow" / "session_b.jsonl")
    return root


def test_export_one_session_with_subagents_meta_and_journal(workflow_projects, db_path, tmp_path):
    run_pass(db_path, [workflow_projects])
    out = tmp_path / "one"
    export_files(db_path, out, WORKFLOW_SESSION)
    expected = {
        name: data
        for name, data in tree(workflow_projects).items()
        if WORKFLOW_SESSION in name  # the main file and everything under <session>/
    }
    assert tree(out) == expected
    names = set(expected)
    assert any(n.endswith(".meta.json") for n in names)
    assert any(n.endswith("journal.jsonl") for n in names)
    assert sum(n.endswith(".jsonl") and "/agent-" in n for n in names) == 3


def test_workflow_files_classified(workflow_projects, db_path):
    import sqlite3

    run_pass(db_path, [workflow_projects])
    conn = sqlite3.connect(db_path)
    register_lines(conn)
    kinds = dict(conn.execute("SELECT kind, count(*) FROM sync_files GROUP BY kind").fetchall())
    assert kinds == {"session": 1, "agent": 3, "meta": 3, "journal": 1, "other": 1}
    assert conn.execute(
        "SELECT count(*) FROM subagents WHERE agent_type = 'workflow-subagent' AND session_id = ?",
        (WORKFLOW_SESSION,),
    ).fetchone() == (3,)
    # journal lines are archived (one row each) but are not transcript records
    journal_rows = conn.execute(
        "SELECT count(*) FROM events e JOIN sync_files f ON f.id = e.file_id "
        "WHERE f.kind = 'journal'"
    ).fetchone()[0]
    assert journal_rows > 0
    conn.close()


def test_unknown_session(real_projects, db_path, tmp_path):
    run_pass(db_path, [real_projects])
    with pytest.raises(ExportError, match="No archived files belong to session nope"):
        export_files(db_path, tmp_path / "x", "nope")


def test_replaced_writes_older_generations(tmp_path, db_path):
    """Lines lost to a truncation come back with --replaced; the default is unchanged."""
    root = tmp_path / "projects"
    folder = root / "-work-demo"
    folder.mkdir(parents=True)
    source = folder / "aaaaaaaa-0000-4000-8000-000000000001.jsonl"
    first = b'{"type":"user","n":1}\n{"type":"user","n":2}\n{"type":"user","n":3}\n'
    source.write_bytes(first)
    run_pass(db_path, [root])
    second = b'{"type":"user","n":1}\n{"type":"user","n":9}'  # truncated and rewritten
    source.write_bytes(second)
    run_pass(db_path, [root])
    source.write_bytes(b'{"type":"user","n":7}\n')  # and replaced once more
    run_pass(db_path, [root])

    plain = tmp_path / "plain"
    export_files(db_path, plain)
    assert tree(plain) == {"-work-demo/" + source.name: source.read_bytes()}

    out = tmp_path / "out"
    written = export_files(db_path, out, replaced=True)
    files = tree(out)
    name = "-work-demo/" + source.name
    assert len(written) == len(files) == 3
    assert files[name] == source.read_bytes()
    # generation 0 keeps the lines generation 1 did not repeat at the same offset
    assert files[name + ".generation-0"] == b'{"type":"user","n":2}\n{"type":"user","n":3}\n'
    assert files[name + ".generation-1"] == b'{"type":"user","n":1}\n{"type":"user","n":9}\n'


def test_session_prefix(real_projects, db_path, tmp_path):
    run_pass(db_path, [real_projects])
    session = "29ccd257-68b1-427f-ae5f-6524b7cb6f20"
    full = tree_of(export_files(db_path, tmp_path / "full", session), tmp_path / "full")
    short = tree_of(export_files(db_path, tmp_path / "short", session[:6]), tmp_path / "short")
    assert short == full and len(full) == 2
    with pytest.raises(ExportError, match="No archived files belong to session 29ccd"):
        export_files(db_path, tmp_path / "x", session[:5])  # too short to be a prefix
    # two sessions starting alike: the prefix is ambiguous
    twin = real_projects / "-twin" / "29ccd257-0000-4000-8000-000000000000.jsonl"
    twin.parent.mkdir()
    twin.write_bytes(b'{"type":"user","sessionId":"29ccd257-0000-4000-8000-000000000000"}\n')
    run_pass(db_path, [real_projects])
    with pytest.raises(ExportError, match="29ccd257 is ambiguous"):
        export_files(db_path, tmp_path / "y", "29ccd257")


def tree_of(written: list[Path], root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in written}
