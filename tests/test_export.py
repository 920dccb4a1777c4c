"""export writes the archived files back byte-identical, also after the sources are gone."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

from ingest.export import ExportError, export_files
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
