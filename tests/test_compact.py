"""Compressed lines (issue 12, ingest/lines.py): every line stored as a zstd frame with a
dictionary trained on the archive's own lines, read back byte-exact by every reader;
old archives converted by m703 with a progress bar and VACUUM; merges across archives
with different dictionaries and formats."""

from __future__ import annotations

import json
import shutil
import sqlite3
from pathlib import Path

import orjson
import pytest
import zstandard
from click.testing import CliRunner

from ingest import lines
from ingest.cli import cli
from ingest.merge import merge
from ingest.sync import run_pass

from .test_sync import SESSION, assert_export_matches, record, session_file


@pytest.fixture
def root(tmp_path) -> Path:
    path = tmp_path / "projects"
    (path / "-work-demo").mkdir(parents=True)
    return path


def connect(db: Path) -> sqlite3.Connection:
    conn = sqlite3.connect(db)
    lines.register(conn)
    return conn


def frames(db: Path) -> list[tuple[int, int]]:
    """(dictionary id, line length) of every events row's frame."""
    conn = connect(db)
    try:
        out = []
        for (raw,) in conn.execute("SELECT raw FROM events ORDER BY id"):
            assert isinstance(raw, bytes) and raw[:4] == lines.MAGIC
            params = zstandard.get_frame_parameters(raw)
            out.append((params.dict_id, params.content_size))
        return out
    finally:
        conn.close()


def make_old(db: Path) -> None:
    """Turn an archive back into one from before m703: raw the line itself (TEXT when
    UTF-8, else a BLOB), no dictionaries, the old summary index, no leaf_uuid."""
    conn = connect(db)
    rows = conn.execute("SELECT id, raw_bytes(raw) FROM events").fetchall()
    conn.execute("BEGIN")
    for event_id, data in rows:
        try:
            value = data.decode("utf-8")
        except UnicodeDecodeError:
            value = data
        conn.execute("UPDATE events SET raw = ? WHERE id = ?", (value, event_id))
    conn.execute("DROP TABLE raw_dictionaries")
    conn.execute("DROP VIEW events_json")
    conn.execute("DROP INDEX idx_events_summary_leaf")
    conn.execute("ALTER TABLE events DROP COLUMN leaf_uuid")
    conn.execute(
        "CREATE INDEX idx_events_summary_leaf ON events(json_extract(raw, '$.leafUuid')) "
        "WHERE type = 'summary'"
    )
    conn.execute("DELETE FROM _sqlite_migrations WHERE name = 'm703_compressed_lines'")
    conn.execute("COMMIT")
    conn.execute("VACUUM")
    conn.close()


def test_lines_are_frames_with_the_archives_dictionary(real_projects, db_path, tmp_path):
    run_pass(db_path, [real_projects])
    found = frames(db_path)
    conn = connect(db_path)
    (dict_id,) = conn.execute("SELECT id FROM raw_dictionaries").fetchone()
    sources = sum(p.stat().st_size for p in real_projects.rglob("*.jsonl"))
    stored = conn.execute("SELECT sum(length(raw)) FROM events").fetchone()[0]
    # the view and the functions give each line's exact bytes and JSON
    for line, data, length in conn.execute(
        "SELECT json, raw_bytes(e.raw), raw_length(e.raw) FROM events_json j "
        "JOIN events e ON e.id = j.id WHERE e.id % 7 = 0"
    ):
        assert line.encode("utf-8") == data and len(data) == length
        json.loads(line)
    conn.close()
    assert {d for d, _ in found} == {dict_id}  # the whole first pass used the dictionary
    assert stored < sources / 3
    assert_export_matches(db_path, real_projects, tmp_path)
    result = CliRunner().invoke(cli, ["verify", "--db", str(db_path)])
    assert result.exit_code == 0, result.output


def test_a_dictionary_once_there_are_enough_lines(root, db_path, tmp_path):
    """A first pass with a few lines: no dictionary yet (frames without one); once the
    archive holds enough lines, one is trained and the earlier lines repacked with it."""
    path = session_file(root)
    path.write_bytes(b"".join(record(i) + b"\n" for i in range(5)))
    run_pass(db_path, [root])
    assert {d for d, _ in frames(db_path)} == {0}
    # many more lines
    with open(path, "ab") as f:
        for i in range(5, 3000):
            f.write(record(i) + b"\n")
    run_pass(db_path, [root])
    found = frames(db_path)
    assert len(found) == 3000 and len({d for d, _ in found}) == 1 and found[0][0] != 0
    assert_export_matches(db_path, root, tmp_path)


def test_m703_converts_an_old_archive(real_projects, db_path, tmp_path):
    run_pass(db_path, [real_projects])
    conn = connect(db_path)
    titles = conn.execute("SELECT session_id, title, title_source FROM sessions").fetchall()
    leaves = conn.execute("SELECT id, leaf_uuid FROM events WHERE type = 'summary'").fetchall()
    conn.close()
    assert any(t[2] == "summary" for t in titles) and leaves
    make_old(db_path)
    old_size = db_path.stat().st_size
    conn = sqlite3.connect(db_path)
    assert conn.execute("SELECT count(*) FROM events WHERE typeof(raw) = 'text'").fetchone()[0]
    conn.close()

    # any writer's open migrates it: with a progress bar, then VACUUM
    result = CliRunner().invoke(
        cli, ["sync", "--projects", str(real_projects), "--db", str(db_path)]
    )
    assert result.exit_code == 0, result.output
    assert "Compressing the archived lines" in result.output
    assert "VACUUM" in result.output
    assert {d for d, _ in frames(db_path)} != {0}
    conn = connect(db_path)
    assert conn.execute("PRAGMA freelist_count").fetchone() == (0,)
    assert conn.execute("SELECT session_id, title, title_source FROM sessions").fetchall() == titles
    assert conn.execute("SELECT id, leaf_uuid FROM events WHERE type = 'summary'").fetchall() == (
        leaves
    )
    conn.close()
    assert db_path.stat().st_size < old_size * 0.8
    assert_export_matches(db_path, real_projects, tmp_path)


def test_merge_across_dictionaries_and_formats(real_projects, tmp_path):
    """Three archives: this one, another trained on other lines (another dictionary) and
    one from before m703.  Merged, every line reads back exact and exports whole."""
    a, b, c = tmp_path / "a.db", tmp_path / "b.db", tmp_path / "c.db"
    files = sorted(real_projects.rglob("*.jsonl"))
    half = tmp_path / "half"
    shutil.copytree(real_projects, half)
    for p in sorted(half.rglob("*.jsonl"))[::2]:
        p.unlink()
    run_pass(a, [half], host="one")
    run_pass(b, [real_projects], host="two")
    run_pass(c, [real_projects], host="three")
    make_old(c)
    ids = {frames(db)[0][0] for db in (a, b)}
    assert len(ids) == 2  # trained on different lines: two dictionaries
    merge(a, b)
    merge(a, c)
    conn = connect(a)
    assert conn.execute("SELECT count(*) FROM raw_dictionaries").fetchone()[0] == 2
    per_host = dict(
        conn.execute(
            "SELECT f.host, count(*) FROM events e JOIN sync_files f ON f.id = e.file_id "
            "GROUP BY f.host"
        ).fetchall()
    )
    assert (
        per_host["two"] == per_host["three"] == sum(len(p.read_bytes().splitlines()) for p in files)
    )
    # every line of host three (stored as it was) is a frame now, and reads back exact
    per_file: dict[tuple[str, str], list[bytes]] = {}
    for host, rel_path, data in conn.execute(
        "SELECT f.host, f.rel_path, raw_bytes(e.raw) FROM events e JOIN sync_files f "
        "ON f.id = e.file_id WHERE f.host IN ('two', 'three') ORDER BY e.file_id, e.byte_offset"
    ):
        per_file.setdefault((host, rel_path), []).append(data)
    with_lines = {str(p.relative_to(real_projects)) for p in files if p.read_bytes().strip()}
    assert {k for k in per_file if k[0] == "three"} == {("three", r) for r in with_lines}
    for (_, rel_path), got in per_file.items():
        assert (real_projects / rel_path).read_bytes() == b"".join(x + b"\n" for x in got)
    assert conn.execute(
        "SELECT count(*) FROM events WHERE typeof(raw) != 'blob' OR raw_length(raw) IS NULL"
    ).fetchone() == (0,)
    conn.close()


def test_hostile_lines_round_trip(root, db_path, tmp_path):
    """Lines that are no JSON, not UTF-8, start like a zstd frame, or are blank: each
    is stored and read back byte-exact."""
    path = session_file(root)
    odd = [
        record(0),
        lines.MAGIC + b"\xff not a frame",
        b"\x28\xb5\x2f\xfd",
        b"",
        b"   ",
        b'{"type": "summary", "leafUuid": {"not": "a string"}, "summary": 5}',
        orjson.dumps({"sessionId": SESSION, "type": "user", "message": [1, 2]}),
        b"\xc3\x28 invalid utf-8",
    ]
    path.write_bytes(b"\n".join(odd) + b"\n")
    run_pass(db_path, [root])
    conn = connect(db_path)
    got = [r[0] for r in conn.execute("SELECT raw_bytes(raw) FROM events ORDER BY byte_offset")]
    leaf = conn.execute("SELECT leaf_uuid FROM events WHERE type = 'summary'").fetchone()
    conn.close()
    assert got == odd
    assert leaf == ('{"not":"a string"}',)
    assert_export_matches(db_path, root, tmp_path)


def test_the_dictionary_learns_from_files_across_the_whole_pass(
    root, db_path, tmp_path, monkeypatch
):
    """A first pass over many files in many projects: the dictionary is trained on lines
    of files spread over all of them, not on the first files' lines only (the first
    files a pass lists are the first project folders').  Each project's lines name it
    (its cwd); the lines training reads name every project."""
    projects = 20
    for p in range(projects):
        marker = f"qx{p:02d}marker"
        folder = root / f"-work-{marker}"
        folder.mkdir(parents=True, exist_ok=True)
        for n in range(10):
            session = f"{p:04x}{n:04x}-0000-4000-8000-000000000000"
            with open(folder / f"{session}.jsonl", "wb") as f:
                for i in range(60):  # 18 KB a file, 3.6 MB in all: training reads 2 MiB
                    f.write(record(i, session, cwd=f"/work/{marker}", slug=marker * 8) + b"\n")
    trained_on = []
    train = lines.train

    def watched(samples):  # the real training, with the lines it is given noted
        trained_on.extend(samples)
        return train(samples)

    monkeypatch.setattr(lines, "train", watched)
    run_pass(db_path, [root])
    assert sum(map(len, trained_on)) > lines.SAMPLE_BYTES * 3 // 4
    named = {p for p in range(projects) for line in trained_on if f"qx{p:02d}m".encode() in line}
    assert named == set(range(projects))
    conn = connect(db_path)
    (data,) = conn.execute("SELECT data FROM raw_dictionaries").fetchone()
    conn.close()
    assert sum(f"qx{p:02d}marker".encode() in data for p in range(projects)) >= projects // 2
    assert_export_matches(db_path, root, tmp_path)
