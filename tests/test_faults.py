"""Issue 8: whatever happens to one line or one file, every other line keeps being
archived, and nothing that reached the archive is lost.

Each test builds the fault for real (files, symlinks, FIFOs, permissions, a second
process holding the database) and checks the archive with plain SQLite."""

from __future__ import annotations

import os
import shutil
import sqlite3
import stat
import subprocess
import sys
import time
from pathlib import Path

import orjson
import pytest
from click.testing import CliRunner

from ingest.cli import cli
from ingest.export import export_files
from ingest.lines import register as register_lines
from ingest.sync import run_pass

SESSION = "aaaaaaaa-0000-4000-8000-000000000001"
OTHER = "bbbbbbbb-0000-4000-8000-000000000002"


def line(i: int, session: str = SESSION, **extra) -> bytes:
    record = {
        "type": "user",
        "uuid": f"u-{session[:4]}-{i}",
        "sessionId": session,
        "timestamp": f"2026-01-01T00:00:{i % 60:02d}.000Z",
        "message": {"role": "user", "content": f"line {i}"},
    }
    record.update(extra)
    return orjson.dumps(record)


def big_int_line(where: str) -> bytes:
    """An assistant line with the integer 2^63 in its usage or as a tool name."""
    big = str(2**63).encode()
    usage = b'{"input_tokens": BIG, "output_tokens": 1}' if where == "usage" else b"{}"
    content = b"[]"
    if where == "tool":
        content = b'[{"type": "tool_use", "id": "toolu_big", "name": BIG, "input": {}}]'
    record = (
        b'{"type": "assistant", "uuid": "big-W", "sessionId": "S", '
        b'"timestamp": "2026-01-01T00:01:00.000Z", "requestId": "req_big_W", '
        b'"message": {"id": "msg_big_W", "role": "assistant", "model": "claude-sonnet-4-5", '
        b'"content": CONTENT, "usage": USAGE}}'
    )
    record = record.replace(b"CONTENT", content).replace(b"USAGE", usage)
    return record.replace(b"BIG", big).replace(b"W", where.encode()).replace(b"S", SESSION.encode())


@pytest.fixture
def root(tmp_path) -> Path:
    path = tmp_path / "projects"
    (path / "-work-demo").mkdir(parents=True)
    (path / "-work-demo" / f"{OTHER}.jsonl").write_bytes(
        b"".join(line(i, OTHER) + b"\n" for i in range(3))
    )
    return path


def project(root: Path) -> Path:
    return root / "-work-demo"


def query(db: Path, sql: str, *params):
    conn = sqlite3.connect(db)
    register_lines(conn)
    try:
        return conn.execute(sql, params).fetchall()
    finally:
        conn.close()


def raws(db: Path, session: str | None = None) -> list[bytes]:
    sql = "SELECT raw_bytes(raw) FROM events"
    if session:
        return [r[0] for r in query(db, sql + " WHERE session_id = ? ORDER BY id", session)]
    return [r[0] for r in query(db, sql + " ORDER BY id")]


def cli_sync(root: Path, db: Path, *extra: str):
    result = CliRunner().invoke(cli, ["sync", "--projects", str(root), "--db", str(db), *extra])
    assert result.exception is None or isinstance(result.exception, SystemExit), result.output
    return result


def as_process(*args: str, **kw) -> subprocess.CompletedProcess:
    command = [sys.executable, "-c", "from ingest.cli import cli; cli(prog_name='claude-sessions')"]
    return subprocess.run([*command, *args], capture_output=True, text=True, **kw)


# -- 1. quarantine, not abort ------------------------------------------------------------


@pytest.mark.parametrize(
    "bad",
    [
        pytest.param(b"[" * 2000, id="deep-array"),
        pytest.param(b'{"a": ' + b"[" * 5000 + b"]" * 5000 + b"}", id="deep-valid-json"),
        pytest.param(big_int_line("usage"), id="int-2^63-in-usage"),
        pytest.param(big_int_line("tool"), id="int-2^63-tool-name"),
        pytest.param(
            b'{"type": "assistant", "sessionId": "' + SESSION.encode() + b'", "uuid": Infinity}',
            id="Infinity-is-not-JSON",
        ),
    ],
)
def test_a_line_that_cannot_be_stored_as_parsed_is_quarantined(root, db_path, bad):
    path = project(root) / f"{SESSION}.jsonl"
    path.write_bytes(line(0) + b"\n" + bad + b"\n" + line(2) + b"\n")
    result = cli_sync(root, db_path)
    assert result.exit_code == 0, result.output
    # every line of the file, the bad one byte-exact, and the other file's too
    assert raws(db_path) and bad in raws(db_path)
    assert len(raws(db_path)) == 6
    errors = query(
        db_path,
        "SELECT x.line_number, raw_bytes(e.raw) FROM ingest_errors x "
        "JOIN events e ON e.id = x.event_id",
    )
    assert errors == [(2, bad)]
    out = db_path.parent / "export"
    export_files(db_path, out)
    assert (out / "-work-demo" / path.name).read_bytes() == path.read_bytes()
    # the next pass has nothing to do and does not fail
    again = cli_sync(root, db_path)
    assert again.exit_code == 0 and "0 new lines" in again.output


def test_a_symlink_loop_is_listed_and_the_rest_archived(root, db_path):
    os.symlink("x.jsonl", project(root) / "x.jsonl")
    (project(root) / f"{SESSION}.jsonl").write_bytes(line(0) + b"\n")
    result = cli_sync(root, db_path)
    assert result.exit_code == 0, result.output
    assert len(raws(db_path)) == 4
    assert "x.jsonl" in result.output and "symbolic links" in result.output
    status = CliRunner().invoke(
        cli, ["status", "--db", str(db_path), "--projects", str(root), "--json"]
    )
    assert status.exit_code == 0, status.output
    unreadable = orjson.loads(status.output)["unreadable"]
    assert [u["path"] for u in unreadable] == [str(project(root) / "x.jsonl")]
    assert "symbolic links" in unreadable[0]["reason"]


def test_a_fifo_is_never_opened_and_is_listed(root, db_path):
    fifo = project(root) / "f.jsonl"
    os.mkfifo(fifo)
    (project(root) / f"{SESSION}.jsonl").write_bytes(line(0) + b"\n")
    # watch's changed paths name the FIFO: the pass must not block on it
    proc = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import sys; from ingest.sync import run_pass; "
            "r = run_pass(sys.argv[1], [sys.argv[2]], paths=[sys.argv[3], sys.argv[4]]); "
            "print(r.unreadable)",
            str(db_path),
            str(root),
            str(fifo),
            str(project(root) / f"{SESSION}.jsonl"),
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        out, err = proc.communicate(timeout=20)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.communicate()
        pytest.fail("the pass blocked on the FIFO")
    assert proc.returncode == 0, err
    assert "f.jsonl" in out and "FIFO" in out
    assert raws(db_path, SESSION) == [line(0)]


def without_root_powers() -> list[str]:
    """A command prefix that drops root's power over file modes (nothing when not root)."""
    if os.geteuid() != 0:
        return []
    setpriv = shutil.which("setpriv")
    if setpriv is None:
        pytest.skip("setpriv is needed to drop root's permissions")
    powers = "-dac_override,-dac_read_search,-fowner"
    return [setpriv, f"--inh-caps={powers}", f"--bounding-set={powers}"]


def test_an_unreadable_folder_is_reported_not_deleted(root, db_path):
    hidden = root / "-work-hidden"
    hidden.mkdir()
    (hidden / f"{SESSION}.jsonl").write_bytes(line(0) + b"\n")
    run_pass(db_path, [root])
    prefix = without_root_powers()
    command = [*prefix, sys.executable, "-c", "from ingest.cli import cli; cli()"]
    os.chmod(hidden, 0)
    try:
        synced = subprocess.run(
            [*command, "sync", "--db", str(db_path), "--projects", str(root)],
            capture_output=True,
            text=True,
            timeout=60,
        )
        shown = subprocess.run(
            [*command, "status", "--json", "--db", str(db_path), "--projects", str(root)],
            capture_output=True,
            text=True,
            timeout=60,
        )
    finally:
        os.chmod(hidden, 0o755)
    assert synced.returncode == 0, synced.stderr
    assert "-work-hidden" in synced.stdout and "ermission denied" in synced.stdout
    assert query(db_path, "SELECT count(deleted_at) FROM sync_files") == [(0,)]
    assert shown.returncode == 0, shown.stderr
    info = orjson.loads(shown.stdout)
    assert info["deleted_files"] == 0
    assert [u["path"] for u in info["unreadable"]] == [str(hidden)]


def test_a_non_utf8_file_name_is_archived_and_exported_under_its_bytes(root, db_path, tmp_path):
    name = b"\xff\xfe-caf\xe9.jsonl"
    folder = os.fsencode(project(root))
    with open(folder + b"/" + name, "wb") as f:
        f.write(line(7) + b"\n")
    result = cli_sync(root, db_path)
    assert result.exit_code == 0, result.output
    assert line(7) in raws(db_path)
    out = tmp_path / "export"
    export_files(db_path, out)
    exported = os.listdir(os.fsencode(out / "-work-demo"))
    assert name in exported
    with open(os.fsencode(out / "-work-demo") + b"/" + name, "rb") as f:
        assert f.read() == line(7) + b"\n"
    assert cli_sync(root, db_path).output.count("0 new lines") == 1
    verified = CliRunner().invoke(cli, ["verify", "--db", str(db_path)])
    assert verified.exit_code == 0 and "0 differ" in verified.output, verified.output
    # another machine's archive holding the same name merges, and exports apart
    other = tmp_path / "other.db"
    run_pass(other, [root], host="desktop")
    merged = CliRunner().invoke(cli, ["merge", str(other), "--db", str(db_path)])
    assert merged.exit_code == 0, merged.output
    both = tmp_path / "both"
    exported = CliRunner().invoke(cli, ["export", "--all", "-o", str(both), "--db", str(db_path)])
    assert exported.exit_code == 0, exported.output
    found = [name for _, _, names in os.walk(os.fsencode(both)) for name in names]
    assert found.count(name) == 2


# -- 3. changes in place -----------------------------------------------------------------


def test_a_same_size_rewrite_past_the_head_starts_a_new_generation(root, db_path, tmp_path):
    path = project(root) / f"{SESSION}.jsonl"
    lines = [line(i, content_pad="x" * 300) for i in range(40)]  # > 4 KiB
    path.write_bytes(b"".join(x + b"\n" for x in lines))
    run_pass(db_path, [root])
    data = bytearray(path.read_bytes())
    at = data.rindex(b"line 39")
    data[at : at + 7] = b"LINE 39"  # same size, past the first 4 KiB
    path.write_bytes(bytes(data))
    st = path.stat()
    os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns + 5_000_000_000))
    run_pass(db_path, [root])
    out = tmp_path / "export"
    export_files(db_path, out)
    assert (out / "-work-demo" / path.name).read_bytes() == bytes(data)
    assert query(db_path, "SELECT generation FROM sync_files WHERE path = ?", str(path)) == [(1,)]


# -- 5. merge and export never corrupt ---------------------------------------------------


def test_merging_a_further_copy_of_this_archive_never_jams_sync(root, db_path, tmp_path):
    path = project(root) / f"{SESSION}.jsonl"
    path.write_bytes(b"".join(line(i) + b"\n" for i in range(3)))
    run_pass(db_path, [root])
    copy = tmp_path / "copy.db"
    shutil.copy(db_path, copy)
    with open(path, "ab") as f:
        f.write(b"".join(line(i) + b"\n" for i in range(3, 6)))
    run_pass(copy, [root])
    merged = CliRunner().invoke(cli, ["merge", str(copy), "--db", str(db_path)])
    assert merged.exit_code == 0, merged.output
    with open(path, "ab") as f:
        f.write(line(6) + b"\n")
    result = cli_sync(root, db_path)
    assert result.exit_code == 0, result.output
    assert raws(db_path, SESSION) == [line(i) for i in range(7)]
    assert query(db_path, "SELECT events FROM sessions WHERE session_id = ?", SESSION) == [(7,)]
    out = tmp_path / "export"
    export_files(db_path, out)
    assert (out / "-work-demo" / path.name).read_bytes() == path.read_bytes()


@pytest.mark.parametrize("change", ["rewritten", "older-copy"])
def test_merging_copies_of_this_archive_counts_no_line_twice(root, db_path, tmp_path, change):
    """The copy saw the file truncated and rewritten (a new generation), or the copy is
    older than the archive: merge, then sync, and every line is there once."""
    path = project(root) / f"{SESSION}.jsonl"
    path.write_bytes(b"".join(line(i) + b"\n" for i in range(4)))
    run_pass(db_path, [root])
    copy = tmp_path / "copy.db"
    shutil.copy(db_path, copy)
    if change == "rewritten":
        path.write_bytes(line(0) + b"\n" + line(1) + b"\n" + line(9) + b"\n")
        run_pass(copy, [root])
    else:
        path.write_bytes(line(0) + b"\n" + line(8) + b"\n")
        run_pass(db_path, [root])
    merged = CliRunner().invoke(cli, ["merge", str(copy), "--db", str(db_path)])
    assert merged.exit_code == 0, merged.output
    with open(path, "ab") as f:
        f.write(line(20) + b"\n")
    assert cli_sync(root, db_path).exit_code == 0
    if change == "rewritten":
        rows = (
            "SELECT generation, byte_offset, raw_bytes(raw) FROM events "
            "WHERE session_id = ? ORDER BY 1, 2"
        )
        got = query(db_path, rows, SESSION)
        assert len(got) == len({(g, o) for g, o, _ in got})
        # generation 1 is the file as it is now; generation 0 keeps only what it lost
        assert [r for g, _, r in got if g == 1] == [line(0), line(1), line(9), line(20)]
        assert [r for g, _, r in got if g == 0] == [line(2), line(3)]
    else:
        assert [r for r in raws(db_path, SESSION)].count(line(0)) == 1
    out = tmp_path / "export"
    export_files(db_path, out)
    assert (out / "-work-demo" / path.name).read_bytes() == path.read_bytes()
    sessions = query(db_path, "SELECT events FROM sessions WHERE session_id = ?", SESSION)
    assert sessions == [(len(raws(db_path, SESSION)),)]


def test_export_all_never_writes_two_files_to_one_path(tmp_path, db_path):
    roots = []
    for name in ("one", "two"):
        r = tmp_path / name / "projects"
        (r / "-work-demo").mkdir(parents=True)
        (r / "-work-demo" / f"{SESSION}.jsonl").write_bytes(line(0, note=name) + b"\n")
        roots.append(r)
    run_pass(db_path, roots)
    out = tmp_path / "export"
    result = CliRunner().invoke(cli, ["export", "--all", "-o", str(out), "--db", str(db_path)])
    assert result.exit_code in (0, 1), result.output
    files = sorted(p for p in out.rglob("*.jsonl")) if out.exists() else []
    if result.exit_code == 0:
        contents = sorted(p.read_bytes() for p in files)
        assert contents == sorted(line(0, note=n) + b"\n" for n in ("one", "two"))
    else:
        assert f"-work-demo/{SESSION}.jsonl" in result.output and files == []


# -- 6. one writer per archive file ------------------------------------------------------


def test_the_lock_is_keyed_on_the_real_file(tmp_path, db_path):
    from ingest.lock import LockBusy, WriterLock

    run_pass(db_path, [tmp_path])
    link = tmp_path / "link.db"
    link.symlink_to(db_path)
    held = WriterLock(db_path)
    held.acquire(False)
    try:
        with pytest.raises(LockBusy):
            WriterLock(link).acquire(False)
    finally:
        held.release()
    folder_link = tmp_path / "folder-link"
    folder_link.symlink_to(tmp_path)
    with WriterLock(folder_link / "link.db"):
        with pytest.raises(LockBusy):
            WriterLock(db_path).acquire(0.1)


# -- 7. read-only opens leave nothing behind; --wait N waits about N seconds -------------


def test_status_on_a_read_only_archive_leaves_nothing_that_blocks_a_writer(root, db_path):
    (project(root) / f"{SESSION}.jsonl").write_bytes(line(0) + b"\n")
    run_pass(db_path, [root])
    for suffix in ("-wal", "-shm"):
        Path(f"{db_path}{suffix}").unlink(missing_ok=True)
    os.chmod(db_path, 0o444)
    prefix = without_root_powers()
    command = [*prefix, sys.executable, "-c", "from ingest.cli import cli; cli()"]
    shown = subprocess.run(
        [*command, "status", "--db", str(db_path)], capture_output=True, text=True, timeout=60
    )
    assert shown.returncode == 0, shown.stderr
    os.chmod(db_path, 0o644)
    with open(project(root) / f"{SESSION}.jsonl", "ab") as f:
        f.write(line(1) + b"\n")
    synced = subprocess.run(
        [*command, "sync", "--db", str(db_path), "--projects", str(root)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert synced.returncode == 0, synced.stderr
    assert raws(db_path, SESSION) == [line(0), line(1)]


def test_wait_n_waits_about_n_seconds(root, db_path):
    (project(root) / f"{SESSION}.jsonl").write_bytes(line(0) + b"\n")
    run_pass(db_path, [root])
    (project(root) / f"{SESSION}.jsonl").write_bytes(line(0) + b"\n" + line(1) + b"\n")
    holder = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import sqlite3, sys, time; c = sqlite3.connect(sys.argv[1], isolation_level=None); "
            "c.execute('BEGIN IMMEDIATE'); print('held', flush=True); time.sleep(60)",
            str(db_path),
        ],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert holder.stdout.readline().strip() == "held"
        started = time.monotonic()
        result = as_process(
            "sync", "--db", str(db_path), "--projects", str(root), "--wait", "2", timeout=60
        )
        waited = time.monotonic() - started
    finally:
        holder.kill()
        holder.wait()
    assert result.returncode == 1
    assert "Traceback" not in result.stderr
    assert "2 s" in result.stderr, result.stderr
    assert waited < 2 + 4, waited


def test_keep_tries_once_under_wait_n(root, db_path):
    """The files beside the transcripts are written with the pass's patience too: under
    --wait N one try of the busy timeout, never six (counted, not timed)."""
    from ingest.keep import keep_pass

    (project(root) / f"{SESSION}.jsonl").write_bytes(line(0) + b"\n")
    run_pass(db_path, [root])
    folder = project(root) / SESSION / "tool-results"
    folder.mkdir(parents=True)
    (folder / "out.txt").write_bytes(b"a tool output kept beside the transcript\n")
    holder = sqlite3.connect(db_path, isolation_level=None)
    register_lines(holder)
    holder.execute("BEGIN IMMEDIATE")
    try:
        for attempts, expected in ((1, 1), (3, 3)):
            conn = sqlite3.connect(db_path, isolation_level=None)
            register_lines(conn)
            conn.execute("PRAGMA busy_timeout = 10")
            begins: list[str] = []
            conn.set_trace_callback(
                lambda sql, begins=begins: "BEGIN" in sql and begins.append(sql)
            )
            with pytest.raises(sqlite3.OperationalError, match="locked"):
                keep_pass(conn, [str(root)], host="h", attempts=attempts)
            conn.close()
            assert len(begins) == expected, begins
    finally:
        holder.rollback()
        holder.close()
    conn = sqlite3.connect(db_path, isolation_level=None)
    register_lines(conn)
    kept = keep_pass(conn, [str(root)], host="h", attempts=1)
    conn.close()
    assert kept.files_read == 1


# -- 3. verify and backup ----------------------------------------------------------------


def test_verify_finds_a_changed_byte_and_repair_fixes_it(root, db_path, tmp_path):
    path = project(root) / f"{SESSION}.jsonl"
    path.write_bytes(b"".join(line(i) + b"\n" for i in range(3)))
    run_pass(db_path, [root])
    ok = CliRunner().invoke(cli, ["verify", "--db", str(db_path)])
    assert ok.exit_code == 0, ok.output
    data = bytearray(path.read_bytes())
    st = path.stat()
    data[data.index(b"line 1")] = ord("L")
    path.write_bytes(bytes(data))
    os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns))  # a rewrite that hides in stat
    bad = CliRunner().invoke(cli, ["verify", "--db", str(db_path)])
    assert bad.exit_code == 1
    assert path.name in bad.output and "differ" in bad.output
    fixed = CliRunner().invoke(cli, ["verify", "--repair", "--db", str(db_path)])
    assert fixed.exit_code == 0, fixed.output
    out = tmp_path / "export"
    export_files(db_path, out)
    assert (out / "-work-demo" / path.name).read_bytes() == bytes(data)
    again = CliRunner().invoke(cli, ["verify", "--db", str(db_path)])
    assert again.exit_code == 0, again.output


def test_backup_checks_its_copy(root, db_path, tmp_path):
    (project(root) / f"{SESSION}.jsonl").write_bytes(line(0) + b"\n")
    run_pass(db_path, [root])
    result = CliRunner().invoke(cli, ["backup", str(tmp_path / "copy.db"), "--db", str(db_path)])
    assert result.exit_code == 0, result.output
    assert "quick_check ok" in result.output
    assert stat.S_ISREG(os.stat(tmp_path / "copy.db").st_mode)


def test_quick_check_reports_a_damaged_copy(root, db_path, tmp_path):
    from ingest.cli_sync import quick_check

    path = project(root) / f"{SESSION}.jsonl"
    path.write_bytes(b"".join(line(i, content_pad="z" * 2000) + b"\n" for i in range(300)))
    run_pass(db_path, [root])
    copy = tmp_path / "copy.db"
    result = CliRunner().invoke(cli, ["backup", str(copy), "--db", str(db_path)])
    assert result.exit_code == 0 and quick_check(copy) == "ok"
    data = bytearray(copy.read_bytes())
    page = 16384
    for at in range(2 * page, len(data) - page, 3 * page):
        data[at : at + 12] = b"\x5a" * 12  # scribble over page headers
    copy.write_bytes(bytes(data))
    assert quick_check(copy) != "ok"
    verified = CliRunner().invoke(cli, ["verify", "--db", str(copy)])
    assert verified.exit_code == 1


def test_a_pass_over_named_files_finds_non_utf8_names(root, db_path):
    """watch names the files that changed: one whose name is not UTF-8 is read again
    from where it stopped (its row is found), also when its folder is named."""
    folder = os.fsencode(project(root))
    name = folder + b"/agent-\xff.jsonl"
    with open(name, "wb") as f:
        f.write(line(0) + b"\n")
    path = os.fsdecode(name)
    run_pass(db_path, [root], paths=[path])
    with open(name, "ab") as f:
        f.write(line(1) + b"\n")
    run_pass(db_path, [root], paths=[path])
    with open(name, "ab") as f:
        f.write(line(2) + b"\n")
    run_pass(db_path, [root], paths=[project(root)])
    assert raws(db_path, SESSION) == [line(0), line(1), line(2)]
    assert query(db_path, "SELECT count(*) FROM sync_files WHERE typeof(path) = 'blob'") == [(1,)]
