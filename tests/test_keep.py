"""Everything Claude Code's cleanup deletes is kept (ingest/keep.py): the files in the
session folders (tool-results/ ...) and the Claude directory's history.jsonl,
file-history/, plans/ and todos/: byte-exact, incrementally, content-addressed and
compressed, written back by export, never changing the sources."""

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
from click.testing import CliRunner

from ingest import keep_blobs
from ingest.cli import cli
from ingest.export import export_files
from ingest.lines import register as register_lines
from ingest.sync import run_pass

SESSION = "0d3a8e6f-290f-4105-a327-a2496e5e2a83"
PROJECT = "-work-app"
LINE = (
    '{"type":"user","sessionId":"' + SESSION + '","uuid":"u1",'
    '"timestamp":"2026-01-01T00:00:00Z","message":{"role":"user","content":"hello"}}\n'
)
HISTORY_LINES = [
    b'{"display":"fix the flaky retry test","pastedContents":{},"timestamp":1700000000000,'
    b'"project":"/work/app","sessionId":"' + SESSION.encode() + b'"}\n',
    b'{"display":"now the parser","pastedContents":{},"timestamp":1700000060000,'
    b'"project":"/work/app"}\n',
]


def tree(root: Path) -> dict[str, bytes]:
    return {
        str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()
    }


def mtimes(root: Path) -> dict[str, int]:
    return {str(p): p.lstat().st_mtime_ns for p in root.rglob("*")}


@pytest.fixture
def claude(tmp_path) -> Path:
    """A Claude directory with a transcript, a session folder and the other kept areas."""
    home = tmp_path / "claude"
    project = home / "projects" / PROJECT
    folder = project / SESSION
    (folder / "tool-results" / "toolu_01PAGES").mkdir(parents=True)
    (folder / "subagents").mkdir()
    (project / f"{SESSION}.jsonl").write_text(LINE)
    (folder / "subagents" / "agent-a1.meta.json").write_text('{"agentType":"Explore"}')
    (folder / "subagents" / "agent-a1.jsonl").write_text(LINE)
    big = "".join(f"line {i}: some tool output that repeats itself\n" for i in range(20_000))
    (folder / "tool-results" / "toolu_01ABC.txt").write_text(big)
    (folder / "tool-results" / "toolu_01PAGES" / "page-1.jpg").write_bytes(os.urandom(5000))
    (folder / "custom-title.json").write_text('{"title":"x"}')
    (project / "sessions-index.json").write_text('{"version":1,"entries":[]}')
    (home / "file-history" / SESSION).mkdir(parents=True)
    (home / "file-history" / SESSION / "3f2a@v1").write_text("def f():\n    pass\n")
    (home / "file-history" / SESSION / "3f2a@v2").write_text("def f():\n    pass\n")  # same
    (home / "plans").mkdir()
    (home / "plans" / "happy-dancing-fox.md").write_text("# Plan\n\n1. do it\n")
    (home / "todos").mkdir()
    (home / "todos" / f"{SESSION}-agent-{SESSION}.json").write_text("[]")
    (home / "history.jsonl").write_bytes(b"".join(HISTORY_LINES))
    return home


def sync(db: Path, claude: Path, **kw):
    return run_pass(db, [claude / "projects"], claude_dirs=[claude], **kw)


def kept(db: Path) -> dict[str, tuple]:
    conn = sqlite3.connect(db)
    register_lines(conn)
    try:
        return {
            r[0]: r[1:]
            for r in conn.execute(
                "SELECT rel_path, area, session_id, hash, deleted_at FROM kept_files"
            )
        }
    finally:
        conn.close()


def test_kept_byte_exact_and_sources_untouched(claude, db_path, tmp_path):
    before_tree, before_mtimes = tree(claude), mtimes(claude)
    result = sync(db_path, claude)
    assert mtimes(claude) == before_mtimes and tree(claude) == before_tree
    rows = kept(db_path)
    tool = f"{PROJECT}/{SESSION}/tool-results/toolu_01ABC.txt"
    assert rows[tool][:2] == ("tool-results", SESSION)
    assert rows[f"{PROJECT}/{SESSION}/tool-results/toolu_01PAGES/page-1.jpg"][0] == "tool-results"
    assert rows[f"{PROJECT}/{SESSION}/custom-title.json"][:2] == ("session", SESSION)
    assert rows[f"{PROJECT}/sessions-index.json"][:2] == ("project", None)
    assert rows[f"file-history/{SESSION}/3f2a@v1"][:2] == ("file-history", SESSION)
    assert rows["plans/happy-dancing-fox.md"][0] == "plans"
    assert rows[f"todos/{SESSION}-agent-{SESSION}.json"][:2] == ("todos", SESSION)
    assert rows["history.jsonl"][0] == "history"
    # the transcripts (and agent meta.json) are the engine's, not kept twice
    assert not any(p.endswith((".jsonl", ".meta.json")) for p in rows if p != "history.jsonl")
    assert len(rows) == 9
    assert result.kept.files_read == 9 and result.kept.history_lines == 2
    conn = sqlite3.connect(db_path)
    register_lines(conn)
    for rel_path, (_area, _session, digest, _deleted) in rows.items():
        if digest is None:
            continue
        source = (claude / "projects" if rel_path.startswith(PROJECT) else claude) / rel_path
        assert keep_blobs.blob_bytes(conn, digest) == source.read_bytes()
    conn.close()


def test_identical_contents_stored_once_compressed_when_it_pays(claude, db_path):
    sync(db_path, claude)
    conn = sqlite3.connect(db_path)
    register_lines(conn)
    # the two file-history backups hold the same bytes: one blob
    a, b = (
        conn.execute(
            "SELECT hash FROM kept_files WHERE rel_path = ?", (f"file-history/{SESSION}/3f2a@v{n}",)
        ).fetchone()[0]
        for n in (1, 2)
    )
    assert a == b
    blobs = conn.execute("SELECT count(*) FROM kept_blobs").fetchone()[0]
    files = conn.execute("SELECT count(*) FROM kept_files WHERE hash IS NOT NULL").fetchone()[0]
    assert blobs == files - 1
    text = (
        claude / "projects" / PROJECT / SESSION / "tool-results" / "toolu_01ABC.txt"
    ).read_bytes()
    size, compression, stored = conn.execute(
        "SELECT size, compression, length(data) FROM kept_blobs WHERE hash = ?",
        (keep_blobs.content_hash(text),),
    ).fetchone()
    assert (size, compression) == (len(text), "zstd") and stored < len(text) / 10
    jpg = claude / "projects" / PROJECT / SESSION / "tool-results" / "toolu_01PAGES" / "page-1.jpg"
    compression, stored = conn.execute(
        "SELECT compression, length(data) FROM kept_blobs WHERE hash = ?",
        (keep_blobs.content_hash(jpg.read_bytes()),),
    ).fetchone()
    assert compression is None and stored == 5000  # random bytes: kept as they are
    conn.close()


def test_incremental_only_new_or_changed_files_are_read(claude, db_path):
    sync(db_path, claude)
    again = sync(db_path, claude)
    assert again.kept.files_read == 0 and again.kept.bytes_read == 0
    plan = claude / "plans" / "happy-dancing-fox.md"
    plan.write_text("# Plan\n\n1. do that\n")  # same size, new content
    st = plan.stat()
    os.utime(plan, ns=(st.st_atime_ns, st.st_mtime_ns + 5_000_000_000))
    todo = claude / "todos" / f"{SESSION}-agent-{SESSION}.json"
    os.utime(todo, ns=(todo.stat().st_atime_ns, todo.stat().st_mtime_ns + 5_000_000_000))
    third = sync(db_path, claude)
    assert third.kept.files_read == 2 and third.kept.bytes_read == plan.stat().st_size + 2
    assert third.kept.blobs_added == 1  # the touched todo has the content it had
    conn = sqlite3.connect(db_path)
    register_lines(conn)
    versions = conn.execute(
        "SELECT v.hash FROM kept_versions v JOIN kept_files f ON f.id = v.file_id "
        "WHERE f.rel_path = 'plans/happy-dancing-fox.md' ORDER BY v.id"
    ).fetchall()
    assert len(versions) == 2
    assert keep_blobs.blob_bytes(conn, versions[0][0]) == b"# Plan\n\n1. do it\n"
    assert keep_blobs.blob_bytes(conn, versions[1][0]) == plan.read_bytes()
    assert (
        conn.execute(
            "SELECT count(*) FROM kept_versions v JOIN kept_files f ON f.id = v.file_id "
            "WHERE f.area = 'todos'"
        ).fetchone()[0]
        == 1
    )
    conn.close()


def test_history_is_read_incrementally_and_searchable(claude, db_path):
    sync(db_path, claude)
    history = claude / "history.jsonl"
    extra = b'{"display":"deploy the flaky service","timestamp":1700000120000,"project":"/x"}\n'
    with open(history, "ab") as f:
        f.write(extra + b'{"display":"half a li')  # a line being written
    result = sync(db_path, claude)
    assert result.kept.history_lines == 1 and result.kept.bytes_read == len(extra)
    conn = sqlite3.connect(db_path)
    register_lines(conn)
    hits = conn.execute(
        "SELECT h.display, h.project, h.timestamp FROM history_fts JOIN history h "
        "ON h.id = history_fts.rowid WHERE history_fts MATCH 'flaky' ORDER BY h.id"
    ).fetchall()
    assert hits == [
        ("fix the flaky retry test", "/work/app", "2023-11-14T22:13:20.000Z"),
        ("deploy the flaky service", "/x", "2023-11-14T22:15:20.000Z"),
    ]
    assert conn.execute("SELECT session_id FROM history WHERE id = 1").fetchone()[0] == SESSION
    with open(history, "ab") as f:
        f.write(b'ne"}\n')
    assert sync(db_path, claude).kept.history_lines == 1
    assert conn.execute("SELECT count(*) FROM history").fetchone()[0] == 4
    # rewritten (shortened) history: a new generation, lines that stayed are not doubled
    history.write_bytes(HISTORY_LINES[0] + b'{"display":"other"}\n')
    result = sync(db_path, claude)
    assert result.kept.history_lines == 1
    rows = conn.execute(
        "SELECT generation, display FROM history ORDER BY generation, id"
    ).fetchall()
    assert rows == [
        (0, "now the parser"),
        (0, "deploy the flaky service"),
        (0, "half a line"),
        (1, "fix the flaky retry test"),
        (1, "other"),
    ]
    conn.close()
    out = Path(str(db_path) + ".out")
    export_files(db_path, out)
    assert (out / "history.jsonl").read_bytes() == history.read_bytes()


def test_deleted_sources_stay_and_export_writes_the_whole_tree(claude, db_path, tmp_path):
    original = tree(claude)
    sync(db_path, claude)
    shutil.rmtree(claude / "projects" / PROJECT / SESSION / "tool-results")
    shutil.rmtree(claude / "file-history")
    (claude / "plans" / "happy-dancing-fox.md").unlink()
    sync(db_path, claude)
    rows = kept(db_path)
    assert rows["plans/happy-dancing-fox.md"][3] is not None
    assert rows[f"{PROJECT}/{SESSION}/tool-results/toolu_01ABC.txt"][3] is not None
    assert rows["history.jsonl"][3] is None
    out = tmp_path / "out"
    export_files(db_path, out)
    expected = {}
    for rel_path, data in original.items():
        expected[rel_path.removeprefix("projects/")] = data
    assert tree(out) == expected
    # one session's export: its transcripts and its session folder's files
    one = tmp_path / "one"
    export_files(db_path, one, SESSION)
    assert f"{PROJECT}/{SESSION}/tool-results/toolu_01ABC.txt" in tree(one)
    assert "history.jsonl" not in tree(one)


def test_export_keeps_two_trees_apart_with_their_transcripts(claude, db_path, tmp_path):
    """Two Claude directories (or machines, merged) share paths: export writes each under
    <host>/<folder>/, the kept files beside their own transcripts, byte for byte."""
    from ingest.export import root_folder
    from ingest.merge import merge

    sync(db_path, claude, host="laptop")
    other = tmp_path / "other"
    shutil.copytree(claude, other)
    (other / "plans" / "happy-dancing-fox.md").write_text("# Another plan\n")
    run_pass(db_path, [other / "projects"], claude_dirs=[other], host="laptop")
    out = tmp_path / "out"
    export_files(db_path, out)
    for home in (claude, other):
        projects = out / "laptop" / root_folder(str(home / "projects"))
        assert tree(projects) == tree(home / "projects")
        own = out / "laptop" / root_folder(str(home))
        assert (own / "plans" / "happy-dancing-fox.md").read_bytes() == (
            home / "plans" / "happy-dancing-fox.md"
        ).read_bytes()
        assert (own / "history.jsonl").read_bytes() == (home / "history.jsonl").read_bytes()
    # a second machine's archive of the same tree, merged in
    desktop = tmp_path / "desktop.db"
    sync(desktop, claude, host="desktop")
    merge(db_path, desktop)
    merged = tmp_path / "merged"
    export_files(db_path, merged)
    tool = f"{PROJECT}/{SESSION}/tool-results/toolu_01ABC.txt"
    for host in ("laptop", "desktop"):
        base = merged / host / root_folder(str(claude / "projects"))
        assert (base / tool).read_bytes() == (claude / "projects" / tool).read_bytes()
        assert (base / PROJECT / f"{SESSION}.jsonl").exists()


def test_odd_entries_are_skipped_with_a_reason(claude, db_path):
    results = claude / "projects" / PROJECT / SESSION / "tool-results"
    os.mkfifo(results / "toolu_fifo.txt")
    # (a symlink loop under the projects tree is the engine's business: ingest.sync)
    os.symlink("loop.txt", claude / "plans" / "loop.txt")
    os.symlink("nowhere.txt", results / "broken.txt")
    os.symlink(results, results / "self-dir")  # a symlinked folder is not followed
    bad_name = os.fsencode(str(results)) + b"/toolu_\xff\xfe.txt"
    with open(bad_name, "wb") as f:
        f.write(b"output under a name that is not UTF-8")
    result = sync(db_path, claude)
    reasons = "\n".join(result.unreadable)
    assert "toolu_fifo.txt: a FIFO, not a regular file" in reasons
    assert "loop.txt: Too many levels of symbolic links" in reasons
    assert "broken.txt: broken symlink" in reasons
    assert result.kept.files_read == 10
    conn = sqlite3.connect(db_path)
    register_lines(conn)
    (path,) = conn.execute("SELECT path FROM kept_files WHERE typeof(path) = 'blob'").fetchone()
    assert path == bad_name
    conn.close()
    out = Path(str(db_path) + ".out")
    export_files(db_path, out)
    exported = os.fsencode(str(out)) + b"/" + os.fsencode(PROJECT) + b"/" + SESSION.encode()
    with open(exported + b"/tool-results/toolu_\xff\xfe.txt", "rb") as f:
        assert f.read() == b"output under a name that is not UTF-8"
    assert run_pass(db_path, [claude / "projects"], claude_dirs=[claude]).kept.files_read == 0


@pytest.mark.skipif(not hasattr(os, "setuid"), reason="needs setuid")
def test_unreadable_folder_is_skipped_not_deleted(claude, tmp_path_factory):
    """As another user (root reads everything), a folder that cannot be listed is
    reported, the rest is kept, and what was kept from it is not marked deleted."""
    if os.geteuid() != 0:
        pytest.skip("runs the second pass as user nobody, which needs root")
    base = Path(tempfile.mkdtemp(prefix="keep-nobody-"))  # pytest's folders are 0700
    try:
        os.chmod(base, 0o777)
        home = base / "claude"
        shutil.copytree(claude, home)
        db = base / "archive.db"
        sync(db, home)
        for folder, _dirs, files in os.walk(base):
            os.chmod(folder, 0o777)
            for name in files:
                os.chmod(os.path.join(folder, name), 0o666)
        os.chmod(home / "file-history" / SESSION, 0o700)  # only root may list it
        (home / "plans" / "new.md").write_text("new plan")
        code = (
            # imports first: the Python installation may be out of nobody's reach
            "import os, sys, zstandard; from ingest.memory import glibc; glibc(); "
            "from ingest.sync import run_pass; "
            "os.setgid(65534); os.setuid(65534); "
            "r = run_pass(sys.argv[1], [sys.argv[2] + '/projects'], claude_dirs=[sys.argv[2]]); "
            "print(r.kept.files_read); print('\\n'.join(r.unreadable))"
        )
        env = dict(os.environ, PYTHONPATH=os.pathsep.join(sys.path))
        out = subprocess.run(
            [sys.executable, "-c", code, str(db), str(home)],
            capture_output=True,
            text=True,
            env=env,
            cwd="/",
        )
        assert out.returncode == 0, out.stderr
        assert out.stdout.splitlines()[0] == "1"  # plans/new.md
        assert f"file-history/{SESSION}: cannot list the folder: Permission denied" in out.stdout
        rows = kept(db)
        assert rows[f"file-history/{SESSION}/3f2a@v1"][3] is None
        assert rows["plans/new.md"][0] == "plans"
    finally:
        shutil.rmtree(base, ignore_errors=True)


def test_watch_pass_keeps_the_session_folder_of_a_changed_transcript(claude, db_path):
    sync(db_path, claude)
    results = claude / "projects" / PROJECT / SESSION / "tool-results"
    (results / "toolu_02.txt").write_text("new output")
    transcript = claude / "projects" / PROJECT / f"{SESSION}.jsonl"
    with open(transcript, "a") as f:
        f.write(LINE.replace('"u1"', '"u2"'))
    result = run_pass(db_path, [claude / "projects"], paths=[transcript], trigger="watch")
    assert result.kept.files_read == 1
    assert f"{PROJECT}/{SESSION}/tool-results/toolu_02.txt" in kept(db_path)


def invoke(*args):
    return CliRunner().invoke(cli, list(args), catch_exceptions=False)


def test_cli_claude_dir_and_projects_defaults(claude, tmp_path, monkeypatch):
    db = tmp_path / "a.db"
    monkeypatch.setenv("CLAUDE_CONFIG_DIR", str(claude))
    result = invoke("sync", "--db", str(db))
    assert result.exit_code == 0, result.output
    assert "kept 9 files beside the transcripts (2 history lines)" in result.output
    assert "history.jsonl" in kept(db)
    # --claude-dir wins over $CLAUDE_CONFIG_DIR, and --projects defaults under it
    other = tmp_path / "other"
    shutil.copytree(claude, other)
    db2 = tmp_path / "b.db"
    result = invoke("sync", "--db", str(db2), "--claude-dir", str(other))
    assert result.exit_code == 0, result.output
    conn = sqlite3.connect(db2)
    register_lines(conn)
    roots = {r[0] for r in conn.execute("SELECT root FROM sync_files")}
    kept_roots = {r[0] for r in conn.execute("SELECT root FROM kept_files")}
    conn.close()
    assert roots == {str(other / "projects")}
    assert kept_roots == {str(other / "projects"), str(other)}
    # --projects alone: the Claude directory's own files are not read
    db3 = tmp_path / "c.db"
    invoke("sync", "--db", str(db3), "--projects", str(claude / "projects"))
    assert "history.jsonl" not in kept(db3)
    assert f"{PROJECT}/{SESSION}/tool-results/toolu_01ABC.txt" in kept(db3)
    status = invoke("status", "--db", str(db))
    assert "Kept:      8 files beside the transcripts, " in status.output
    assert "MB stored; 2 history lines" in status.output
    (claude / "plans" / "happy-dancing-fox.md").unlink()
    invoke("sync", "--db", str(db))
    kept_info = json.loads(invoke("status", "--db", str(db), "--json").output)["kept"]
    assert kept_info["files"] == 8 and kept_info["deleted_files"] == 1
    assert kept_info["history_lines"] == 2
    assert 0 < kept_info["stored_bytes"] < kept_info["content_bytes"]
    missing = CliRunner().invoke(
        cli, ["sync", "--db", str(db), "--claude-dir", str(tmp_path / "no")]
    )
    assert missing.exit_code == 1
    assert missing.output.strip() == f"Error: --claude-dir {tmp_path / 'no'} does not exist."
    for command in ("sync", "watch", "status", "serve"):
        assert "--claude-dir" in invoke(command, "--help").output


def test_demo_full_is_a_claude_directory_kept_whole(tmp_path):
    """demo --full: seeded (same seed, same bytes), its markers point at real
    tool-results files, and sync --claude-dir then export --all give it back byte for
    byte, transcripts included."""
    out = tmp_path / "demo"
    args = ["--mb", "4", "--now", "2026-09-21", "--seed", "3", "--full"]
    result = invoke("demo", str(out), *args)
    assert result.exit_code == 0, result.output
    assert "outputs moved there), file-history/, plans/, todos/ and history.jsonl." in result.output
    again = tmp_path / "again"
    invoke("demo", str(again), *args)
    assert tree(out) == tree(again)
    plain = tmp_path / "plain"
    invoke("demo", str(plain), *args[:-1])
    assert sorted(p.name for p in out.iterdir()) == [
        "file-history", "history.jsonl", "plans", "projects", "todos"
    ]  # fmt: skip
    moved = sorted(out.glob("projects/*/*/tool-results/*.txt"))
    assert moved and list(out.glob("file-history/*/*@v1")) and list(out.glob("plans/*.md"))
    for path in moved:
        transcript = path.parent.parent.parent / f"{path.parent.parent.name}.jsonl"
        text = transcript.read_text()
        assert f"tool-results/{path.name}\\n\\nPreview (first 2KB):" in text
        assert path.stat().st_size > 30_000
    # the transcripts whose outputs were not moved are the plain demo's, byte for byte
    touched = {p.parent.parent for p in moved}  # session folders
    for path in plain.rglob("*.jsonl"):
        twin = out / "projects" / path.relative_to(plain)
        session_folder = twin.with_suffix("") if twin.parent.parent == out / "projects" else None
        if session_folder is not None and session_folder not in touched:
            assert twin.read_bytes() == path.read_bytes()
    db = tmp_path / "demo.db"
    before = mtimes(out)
    result = invoke("sync", "--db", str(db), "--claude-dir", str(out))
    assert result.exit_code == 0, result.output
    assert mtimes(out) == before
    exported = tmp_path / "exported"
    invoke("export", "--all", "-o", str(exported), "--db", str(db))
    expected = {k.removeprefix("projects/"): v for k, v in tree(out).items()}
    assert tree(exported) == expected


def test_merge_copies_kept_files_and_a_later_pass_leaves_them(claude, tmp_path):
    """merge brings another machine's kept files (their contents once), idempotently;
    this machine's next pass over the same paths neither reads them as its own nor
    marks them deleted."""
    from ingest.merge import merge

    laptop, desktop = tmp_path / "laptop.db", tmp_path / "desktop.db"
    run_pass(laptop, [claude / "projects"], claude_dirs=[claude], host="laptop")
    run_pass(desktop, [claude / "projects"], claude_dirs=[claude], host="desktop")
    result = merge(desktop, laptop)
    assert result.kept_added == 9
    assert merge(desktop, laptop).kept_added == 0
    conn = sqlite3.connect(desktop)
    register_lines(conn)
    hosts = dict(conn.execute("SELECT host, count(*) FROM kept_files GROUP BY host").fetchall())
    assert hosts == {"desktop": 9, "laptop": 9}
    blobs = conn.execute("SELECT count(*) FROM kept_blobs").fetchone()[0]
    assert blobs == len({r[2] for r in kept(laptop).values() if r[2]})  # shared contents
    assert conn.execute("SELECT count(*) FROM history").fetchone()[0] == 4
    hits = conn.execute("SELECT count(*) FROM history_fts WHERE history_fts MATCH 'flaky'")
    assert hits.fetchone()[0] == 2
    conn.close()
    again = run_pass(desktop, [claude / "projects"], claude_dirs=[claude], host="desktop")
    assert again.kept.files_read == 0 and again.kept.deleted == 0
    (claude / "plans" / "happy-dancing-fox.md").unlink()
    after = run_pass(desktop, [claude / "projects"], claude_dirs=[claude], host="desktop")
    assert after.kept.deleted == 1


def test_watch_keeps_tool_outputs_with_their_line_and_the_rest_on_full_passes(claude, db_path):
    """The real sidecar (a watchdog observer on a real folder, no rescan within the
    test): a tool output written with its transcript line is kept by the pass that line
    starts; the Claude directory's files wait for a full pass (a rescan, or the first
    pass of the next watch)."""
    import threading
    import time

    from ingest.watch import run_watch

    def start() -> tuple[threading.Thread, threading.Event, list[str]]:
        stop = threading.Event()
        errors: list[str] = []
        thread = threading.Thread(
            target=lambda: run_watch(
                db_path,
                [claude / "projects"],
                debounce=0.05,
                rescan_interval=600,
                heartbeat_interval=0.2,
                stop_event=stop,
                on_error=errors.append,
                claude_dirs=[claude],
            )
        )
        thread.start()
        return thread, stop, errors

    def stop_it(thread, stop, errors) -> None:
        stop.set()
        thread.join(10)
        assert not thread.is_alive() and errors == []

    def has(rel_path: str) -> bool:
        try:
            return rel_path in kept(db_path)
        except sqlite3.OperationalError:
            return False

    def wait_for(predicate, timeout: float = 20.0) -> None:
        started = time.monotonic()
        while not predicate():
            assert time.monotonic() - started < timeout, "condition not met"
            time.sleep(0.02)

    def events() -> int:
        conn = sqlite3.connect(db_path)
        register_lines(conn)
        try:
            return conn.execute("SELECT count(*) FROM events").fetchone()[0]
        finally:
            conn.close()

    transcript = claude / "projects" / PROJECT / f"{SESSION}.jsonl"
    watch = start()
    try:
        wait_for(lambda: has("history.jsonl"))  # the first, full pass
        results = claude / "projects" / PROJECT / SESSION / "tool-results"
        (results / "toolu_03WATCH.txt").write_text("a large output\n" * 3000)
        (claude / "plans" / "new-plan.md").write_text("# new\n")
        before = events()
        with open(transcript, "a") as f:
            f.write(LINE.replace('"u1"', '"u3"'))
        wait_for(lambda: has(f"{PROJECT}/{SESSION}/tool-results/toolu_03WATCH.txt"))
        wait_for(lambda: events() == before + 1)
        assert not has("plans/new-plan.md")  # not the session folder: the next full pass
    finally:
        stop_it(*watch)
    watch = start()
    try:
        wait_for(lambda: has("plans/new-plan.md"))
    finally:
        stop_it(*watch)


def test_unreadable_names_that_are_not_utf8_are_reported_as_text(claude, db_path):
    """A FIFO named with bytes that are not UTF-8 (found by the fault suite's fuzzing):
    the pass's note in sync_runs and the printed summary carry its name as text."""
    from ingest.cli_sync import summary_line

    projects = os.fsencode(str(claude / "projects"))
    os.mkfifo(projects + b"/\xff\xfe.jsonl")
    os.mkfifo(os.fsencode(str(claude / "plans")) + b"/\xff.md")
    result = sync(db_path, claude)
    assert len(result.unreadable) == 2
    line = summary_line(result)
    line.encode("utf-8")  # no lone surrogates left
    conn = sqlite3.connect(db_path)
    register_lines(conn)
    (error,) = conn.execute("SELECT error FROM sync_runs ORDER BY id DESC LIMIT 1").fetchone()
    conn.close()
    assert error.startswith("could not read 2 files, e.g. ") and "\ufffd" in error
