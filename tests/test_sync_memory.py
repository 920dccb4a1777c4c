"""The sync engine's memory savers on real files and real archives: huge lines parsed
from a skeleton, long lines read again in one piece, checkpoints on a thread of their
own, 16 KiB pages, foreign keys checked after the fact, sha1/blake2b without OpenSSL."""

from __future__ import annotations

import hashlib
import json
import os
import random
import shutil
import sqlite3
import subprocess
import sys
import threading
from pathlib import Path

import orjson
import pytest

from ingest import batch as batch_module
from ingest import digest, schema
from ingest import sync as sync_module
from ingest.batch import read_lines
from ingest.lines import register as register_lines
from ingest.parse import HUGE_BYTES, KEEP_BYTES, skeleton
from ingest.sync import run_pass

from .conftest import FIXTURES
from .test_sync import SESSION, assert_export_matches, query, record, session_file

OTHER_SESSIONS = [f"cccccccc-0000-4000-8000-00000000000{i}" for i in range(1, 4)]


@pytest.fixture
def root(tmp_path) -> Path:
    path = tmp_path / "projects"
    (path / "-work-demo").mkdir(parents=True)
    return path


def events(db: Path) -> list[tuple[int, int, str | None, str, bytes]]:
    """(line_number, byte_offset, kind, typeof(raw), raw bytes) of every events row."""
    return query(
        db,
        "SELECT line_number, byte_offset, kind, typeof(raw), raw_bytes(raw) FROM events "
        "ORDER BY file_id, byte_offset",
    )


def expected_rows(lines: list[bytes]) -> list[tuple[int, int, bytes]]:
    """(line_number, byte_offset, raw) of newline-terminated lines written in a row."""
    rows, offset = [], 0
    for number, line in enumerate(lines, 1):
        rows.append((number, offset, line))
        offset += len(line) + 1
    return rows


# -- parse.skeleton --------------------------------------------------------------------

PIECES = [
    "a",
    "b",
    "Z",
    " ",
    "é",
    "中",
    "😀",
    '"',
    "\\",
    "\n",
    "\t",
    "\x01",
    "/",
    "\ud83d",
    "\ude00",
]


# Lone surrogates are valid JSON only escaped (\\ud83d): written raw they are not UTF-8.
SURROGATES = ("\ud83d", "\ude00")
UTF8_PIECES = [p for p in PIECES if p not in SURROGATES]


def random_string(rng: random.Random, pieces: list[str]) -> str:
    length = rng.choice([0, 1, 2, 5, 10, 20, 40, 80])
    return "".join(rng.choice(pieces) for _ in range(rng.randint(0, length)))


def random_value(rng: random.Random, pieces: list[str], depth: int = 0):
    choice = rng.random()
    if depth < 3 and choice < 0.25:
        return {
            random_string(rng, pieces): random_value(rng, pieces, depth + 1)
            for _ in range(rng.randint(0, 4))
        }
    if depth < 3 and choice < 0.4:
        return [random_value(rng, pieces, depth + 1) for _ in range(rng.randint(0, 4))]
    if choice < 0.85:
        return random_string(rng, pieces)
    return rng.choice([0, -7, 3.5, 1e100, True, False, None])


def encode(obj, ensure_ascii: bool, compact: bool) -> bytes:
    separators = (",", ":") if compact else (", ", ": ")
    text = json.dumps(obj, ensure_ascii=ensure_ascii, separators=separators)
    return text.encode("utf-8", "surrogatepass")


def load(line: bytes):
    """The line as Python values, objects as ("object", [(key, value), ...]) so that
    keys cut to the same prefix stay apart."""
    return json.loads(
        line.decode("utf-8", "surrogatepass"), object_pairs_hook=lambda p: ("object", p)
    )


def encoded_len(s: str, ensure_ascii: bool) -> int:
    """Bytes of the string's contents between its quotes in a line from encode()."""
    return len(json.dumps(s, ensure_ascii=ensure_ascii).encode("utf-8", "surrogatepass")) - 2


def compare(cut, whole, keep: int, ensure_ascii: bool) -> int:
    """Assert cut is whole with every long string cut to a prefix; count the cut ones."""
    if isinstance(whole, str):
        assert isinstance(cut, str)
        assert whole.startswith(cut), (cut, whole)
        size = encoded_len(whole, ensure_ascii)
        if size <= keep:
            assert cut == whole
            return 0
        assert max(0, keep - 12) <= encoded_len(cut, ensure_ascii) <= keep, (cut, whole, keep)
        return 1
    if isinstance(whole, tuple):  # an object
        assert isinstance(cut, tuple) and len(cut[1]) == len(whole[1])
        return sum(
            compare(ck, wk, keep, ensure_ascii) + compare(cv, wv, keep, ensure_ascii)
            for (ck, cv), (wk, wv) in zip(cut[1], whole[1], strict=True)
        )
    if isinstance(whole, list):
        assert isinstance(cut, list) and len(cut) == len(whole)
        return sum(compare(c, w, keep, ensure_ascii) for c, w in zip(cut, whole, strict=True))
    assert cut == whole and type(cut) is type(whole)
    return 0


def test_skeleton_cuts_every_long_string_to_a_prefix():
    rng = random.Random(20261125)
    cuts = identities = 0
    for _ in range(3000):
        ensure_ascii = rng.random() < 0.5
        pieces = PIECES if ensure_ascii else UTF8_PIECES
        obj = {
            random_string(rng, pieces): random_value(rng, pieces) for _ in range(rng.randint(1, 5))
        }
        line = encode(obj, ensure_ascii, compact=rng.random() < 0.5)
        keep = rng.randint(0, 60)
        small = skeleton(line, keep)
        n = compare(load(small), load(line), keep, ensure_ascii)
        if n == 0:
            assert small is line
            identities += 1
        else:
            assert small is not line and len(small) < len(line)
            cuts += n
    assert cuts > 1000 and identities > 100  # both paths were taken, often


@pytest.mark.parametrize("ensure_ascii", [True, False])
@pytest.mark.parametrize("char", ["😀", "é", "中", "\n", "\\", '"', "\ud83d", "\ude00"])
def test_skeleton_every_cut_position(char, ensure_ascii):
    # a run of one character: the cut falls at every offset inside its encoding
    whole = "x" * 3 + char * 20
    line = encode({"key": whole, "n": 1}, ensure_ascii, compact=True)
    for keep in range(0, encoded_len(whole, ensure_ascii) + 2):
        if char in SURROGATES and not ensure_ascii:
            # raw surrogates are not UTF-8: never cut away, the parser must see them
            assert skeleton(line, keep) is line
        else:
            compare(load(skeleton(line, keep)), load(line), keep, ensure_ascii)


@pytest.mark.parametrize("bad", [b"\xff\xfe", b"\xed\xa0\xbd", b"\x01", b"\\x", b"\\u12G4", b"\\"])
def test_skeleton_never_cuts_away_what_is_not_json(bad):
    # bad UTF-8, a raw surrogate, a control character, bad escapes: left in the line, so
    # that the parser reports them (a cut part is checked, the kept part is parsed)
    line = b'{"a": "' + b"k" * 50 + bad + b"m" * 50 + b'", "b": "' + b"z" * 100 + b'"}'
    assert skeleton(line, 20) is line
    fine = line.replace(bad, b"\\n")
    assert json.loads(skeleton(fine, 20)) == {"a": "k" * 20, "b": "z" * 20}


def test_skeleton_identity_without_long_strings():
    line = record(1, message={"role": "user", "content": 'é😀 \\ " short'})
    assert skeleton(line, 1000) is line
    assert skeleton(b"", 0) == b""
    assert skeleton(b"[1, 2, true, null]", 0) == b"[1, 2, true, null]"
    assert skeleton(b'{"": ""}', 0) == b'{"": ""}'


def test_skeleton_unterminated_string_is_left_to_the_parser():
    line = b'{"type": "user", "content": "' + b"x" * 500
    assert skeleton(line, 10) is line
    escaped_quote = b'{"type": "user", "content": "' + b"x" * 500 + b'\\"'
    assert skeleton(escaped_quote, 10) is escaped_quote
    # a long string cut before it: still not JSON
    after_a_cut = b'{"a": "' + b"y" * 500 + b'", "b": "' + b"x" * 500
    small = skeleton(after_a_cut, 10)
    with pytest.raises(ValueError):
        json.loads(small)
    assert small.endswith(b'"b": "' + b"x" * 500)


# -- batch.read_lines -------------------------------------------------------------------


def reference_lines(data: bytes, position: int, end: int) -> list[tuple[int, bytes]]:
    """Complete lines of data[position:end], at their offsets; no trailing partial line."""
    out, offset = [], position
    for part in data[position:end].split(b"\n")[:-1]:
        out.append((offset, part))
        offset += len(part) + 1
    return out


class ReadRecorder:
    """A file opened like FileSync opens it, recording the size of each read()."""

    def __init__(self, path: Path, position: int):
        self.f = open(path, "rb", buffering=0)  # noqa: SIM115 (closed by close())
        self.f.seek(position)
        self.sizes: list[int] = []

    def read(self, n: int) -> bytes:
        self.sizes.append(n)
        return self.f.read(n)

    def fileno(self) -> int:
        return self.f.fileno()

    def close(self) -> None:
        self.f.close()


def check_read_lines(path: Path, position: int, end: int, chunk: int) -> None:
    data = path.read_bytes()
    f = ReadRecorder(path, position)
    try:
        got = list(read_lines(f, position, end))
    finally:
        f.close()
    assert got == reference_lines(data, position, end)
    assert all(0 < n <= chunk for n in f.sizes)
    assert bool(f.sizes) == (end > position)


def line_starts(data: bytes) -> list[int]:
    return [0] + [i + 1 for i, b in enumerate(data) if b == 0x0A]


def test_read_lines_around_small_chunks(tmp_path, monkeypatch):
    chunk = 64
    monkeypatch.setattr(batch_module, "CHUNK_BYTES", chunk)
    rng = random.Random(7)
    sizes = [0, 1, 5, 62, 63, 64, 65, 66, 127, 128, 129, 130, 191, 192, 193, 500, 1000]
    for trial in range(40):
        lengths = [rng.choice(sizes) for _ in range(rng.randint(1, 12))]
        data = b"".join(bytes([97 + trial % 26]) * n + b"\n" for n in lengths)
        if trial % 3 == 0:
            data += b"partial line" * rng.randint(1, 12)  # not yielded: no newline
        path = tmp_path / f"lines-{trial}.jsonl"
        path.write_bytes(data)
        for position in line_starts(data):
            check_read_lines(path, position, len(data), chunk)
        # a pass reads up to the size it saw: lines after it are not yielded
        check_read_lines(path, 0, len(data) // 2, chunk)


def test_read_lines_each_line_length_at_every_chunk_offset(tmp_path, monkeypatch):
    chunk = 64
    monkeypatch.setattr(batch_module, "CHUNK_BYTES", chunk)
    for length in (chunk - 1, chunk, chunk + 1, 2 * chunk, 5 * chunk + 3):
        for lead in range(chunk + 1):  # the long line starts at every offset of a chunk
            data = b"a" * max(lead - 1, 0) + b"\n" * (lead > 0) + b"L" * length + b"\nz\n"
            path = tmp_path / "line.jsonl"
            path.write_bytes(data)
            check_read_lines(path, 0, len(data), chunk)


def test_read_lines_multi_mb_lines_with_the_real_chunk(tmp_path):
    chunk = batch_module.CHUNK_BYTES
    assert chunk == 1 << 20
    lines = [
        b"short",
        b"x" * (chunk - 1),
        b"",
        b"y" * chunk,
        b"z" * (chunk + 1),
        b"first after",
        b"w" * (3 * chunk + 12345),
        b"v" * (chunk // 2),
        b"u" * (chunk - 7),  # straddles the chunk boundaries of the lines above
        b"last",
    ]
    data = b"\n".join(lines) + b"\n" + b"tail without newline"
    path = tmp_path / "big.jsonl"
    path.write_bytes(data)
    starts = line_starts(data)
    for position in (0, starts[1], starts[3], starts[6], starts[8], starts[-1]):
        check_read_lines(path, position, len(data), chunk)


# -- huge lines through a pass ---------------------------------------------------------


def tool_use_line(command: str) -> bytes:
    """An assistant Bash call, as json.dumps writes it (lone surrogates escaped)."""
    obj = {
        "type": "assistant",
        "uuid": "aaaaaaaa-a1",
        "sessionId": SESSION,
        "timestamp": "2026-01-01T00:00:01.000Z",
        "message": {
            "id": "msg_1",
            "role": "assistant",
            "model": "claude-sonnet-4-5-20250929",
            "content": [
                {"type": "tool_use", "id": "toolu_S", "name": "Bash", "input": {"command": command}}
            ],
        },
    }
    return json.dumps(obj).encode("ascii")


def test_huge_line_with_a_lone_surrogate_in_its_skeleton(root, db_path, tmp_path):
    command = "echo \ud83d cut emoji " + "é long output 😀 " * (HUGE_BYTES // 10)
    huge = tool_use_line(command)
    assert len(huge) >= HUGE_BYTES and b"\\ud83d cut" in huge
    with pytest.raises(orjson.JSONDecodeError):
        orjson.loads(skeleton(huge, KEEP_BYTES))  # so the pass falls back to json
    lines = [record(0), huge, record(2)]
    session_file(root).write_bytes(b"".join(line + b"\n" for line in lines))

    result = run_pass(db_path, [root])

    assert (result.lines_added, result.errors) == (3, 0)
    rows = events(db_path)
    assert [(n, o, raw) for n, o, _, _, raw in rows] == expected_rows(lines)
    assert rows[1][2:4] == ("tool_use", "blob")
    assert query(db_path, "SELECT count(*) FROM ingest_errors") == [(0,)]
    assert query(db_path, "SELECT name, session_id FROM tool_calls") == [("Bash", SESSION)]
    assert_export_matches(db_path, root, tmp_path)


def test_huge_line_truncated_inside_a_long_string(root, db_path, tmp_path):
    content = "opening " + "x" * (2 * HUGE_BYTES)
    whole = record(1, message={"role": "user", "content": content})
    truncated = whole[: len(whole) // 2]  # inside the long string, then a newline
    lines = [record(0), truncated, record(2)]
    session_file(root).write_bytes(b"".join(line + b"\n" for line in lines))

    result = run_pass(db_path, [root])

    assert (result.lines_added, result.errors) == (3, 1)
    rows = events(db_path)
    assert [(n, o, raw) for n, o, _, _, raw in rows] == expected_rows(lines)
    assert [row[2:4] for row in rows] == [("prompt", "blob"), ("error", "blob"), ("prompt", "blob")]
    (error,) = query(db_path, "SELECT line_number, byte_offset, error FROM ingest_errors")
    assert error[:2] == (2, len(lines[0]) + 1) and "invalid JSON" in error[2]
    assert query(db_path, "SELECT lines, errors FROM sync_files") == [(3, 1)]
    assert_export_matches(db_path, root, tmp_path)


def invalid_beyond_the_skeleton(bad: bytes) -> bytes:
    """A huge prompt line that is not JSON (or not UTF-8) only past KEEP_BYTES of its
    long string: the skeleton cuts the bad bytes away."""
    content = b"k" * (KEEP_BYTES + 100) + bad + b"m" * HUGE_BYTES
    return record(1).replace(b'"prompt number 1"', b'"' + content + b'"')


def test_huge_line_invalid_utf8_past_the_skeleton_is_an_error(root, db_path, tmp_path):
    bad = invalid_beyond_the_skeleton(b"\xff\xfe")
    lines = [record(0), bad, record(2)]
    session_file(root).write_bytes(b"".join(line + b"\n" for line in lines))
    result = run_pass(db_path, [root])
    assert (result.lines_added, result.errors) == (3, 1)
    assert [row[2:4] for row in events(db_path)][1] == ("error", "blob")
    (error,) = query(db_path, "SELECT line_number, error FROM ingest_errors")
    assert error[0] == 2 and "invalid UTF-8" in error[1]
    assert_export_matches(db_path, root, tmp_path)


@pytest.mark.parametrize("bad", [b"\x01", b"\\x"], ids=["control-char", "bad-escape"])
def test_huge_line_invalid_json_past_the_skeleton_is_an_error(root, db_path, tmp_path, bad):
    line = invalid_beyond_the_skeleton(bad)
    with pytest.raises(ValueError):
        json.loads(line)
    session_file(root).write_bytes(line + b"\n")
    result = run_pass(db_path, [root])
    assert (result.lines_added, result.errors) == (1, 1)
    assert [row[2:4] for row in events(db_path)] == [("error", "blob")]
    assert_export_matches(db_path, root, tmp_path)


def huge_record(i: int, size: int) -> bytes:
    """A tool_result line of at least ``size`` bytes (the output twice, like real ones)."""
    output = f'output {i} é 😀 \\ " ' + "0123456789abcdef\n" * (size // 34)
    result = {"type": "tool_result", "tool_use_id": f"toolu_{i}", "content": output}
    return record(i, message={"role": "user", "content": [result]}, toolUseResult=output)


def test_two_huge_lines_in_a_row_then_small_ones(root, db_path, tmp_path):
    lines = [
        record(0),
        huge_record(1, 3 * HUGE_BYTES),
        huge_record(2, HUGE_BYTES),
        record(3),
        b"",
        record(4),
    ]
    assert all(len(line) >= HUGE_BYTES for line in lines[1:3])
    session_file(root).write_bytes(b"".join(line + b"\n" for line in lines))

    result = run_pass(db_path, [root])

    assert (result.lines_added, result.errors) == (len(lines), 0)
    rows = events(db_path)
    assert [(n, o, raw) for n, o, _, _, raw in rows] == expected_rows(lines)
    kinds = ["prompt", "tool_result", "tool_result", "prompt", None, "prompt"]
    assert [row[2] for row in rows] == kinds
    assert {row[3] for row in rows} == {"blob"}  # zstd frames (ingest.lines)
    assert query(db_path, "SELECT lines, errors FROM sync_files") == [(len(lines), 0)]
    assert_export_matches(db_path, root, tmp_path)

    # appended: a huge last line, then a small one, each read from the position reached
    for more in (huge_record(5, HUGE_BYTES + 1), record(6)):
        with open(session_file(root), "ab") as f:
            f.write(more + b"\n")
        assert run_pass(db_path, [root]).lines_added == 1
        lines.append(more)
        rows = events(db_path)
        assert [(n, o, raw) for n, o, _, _, raw in rows] == expected_rows(lines)
        assert query(db_path, "SELECT position, size FROM sync_files") == [
            (rows[-1][1] + len(more) + 1,) * 2
        ]
    assert_export_matches(db_path, root, tmp_path)


def test_huge_lines_of_a_replaced_file_move_to_the_new_generation(root, db_path, tmp_path):
    path = session_file(root)
    lines = [record(0), huge_record(1, HUGE_BYTES), record(2)]
    body = b"".join(line + b"\n" for line in lines)
    path.write_bytes(body)
    run_pass(db_path, [root])
    replacement = path.with_suffix(".tmp")
    replacement.write_bytes(body + huge_record(3, HUGE_BYTES) + b"\n")
    os.replace(replacement, path)

    result = run_pass(db_path, [root])

    assert result.lines_added == 1
    assert query(db_path, "SELECT DISTINCT generation FROM events") == [(1,)]
    rows = events(db_path)
    assert [(n, o, raw) for n, o, _, _, raw in rows] == expected_rows(
        [*lines, huge_record(3, HUGE_BYTES)]
    )
    assert_export_matches(db_path, root, tmp_path)


def test_huge_complete_last_line_without_newline(root, db_path, tmp_path):
    lines = [record(0), huge_record(1, HUGE_BYTES)]
    session_file(root).write_bytes(lines[0] + b"\n" + lines[1])
    result = run_pass(db_path, [root])
    assert (result.lines_added, result.errors) == (2, 0)
    rows = events(db_path)
    assert [(n, o, raw) for n, o, _, _, raw in rows] == expected_rows(lines)
    assert rows[1][2:4] == ("tool_result", "blob")
    assert query(db_path, "SELECT tail_unterminated FROM sync_files") == [(1,)]
    assert_export_matches(db_path, root, tmp_path)


# -- foreign keys ----------------------------------------------------------------------


def add_fixtures(projects: Path) -> int:
    """Copy the fixtures into the projects tree, each in a project directory of its own
    (a folder fixture is a project directory's contents).  Returns the files copied."""
    if not FIXTURES.exists():
        pytest.skip(f"fixtures not found at {FIXTURES}")
    for entry in sorted(FIXTURES.iterdir()):
        dest = projects / f"-fixtures-{entry.name.removesuffix('.jsonl')}"
        if entry.is_dir():
            shutil.copytree(entry, dest)
        else:
            dest.mkdir(parents=True)
            shutil.copy2(entry, dest / entry.name)
    return sum(1 for p in FIXTURES.rglob("*") if p.is_file())


def test_foreign_keys_hold_after_syncing_samples_and_fixtures(real_projects, db_path):
    copied = add_fixtures(real_projects)
    result = run_pass(db_path, [real_projects])
    assert result.files_scanned >= 31 + copied - 5  # all but non-transcript files, if any
    conn = sqlite3.connect(db_path)
    register_lines(conn)
    try:
        assert conn.execute("PRAGMA foreign_keys").fetchone() == (0,)  # a fresh connection
        for table in ("events", "sessions", "tool_calls", "subagents", "ingest_errors"):
            assert conn.execute(f"SELECT count(*) FROM {table}").fetchone()[0] > 0, table
        assert conn.execute("PRAGMA foreign_key_check").fetchall() == []
        assert conn.execute("PRAGMA integrity_check").fetchall() == [("ok",)]
    finally:
        conn.close()
    # a second pass (nothing new) and a pass after an append keep them
    with open(real_projects / "-fixtures-dag_simple" / "dag_simple.jsonl", "ab") as f:
        f.write(record(9, session=OTHER_SESSIONS[0]) + b"\n")
    run_pass(db_path, [real_projects])
    assert query(db_path, "PRAGMA foreign_key_check") == []


# -- page size and WAL -----------------------------------------------------------------


def pragma(db: Path, name: str):
    return query(db, f"PRAGMA {name}")[0][0]


def test_new_archive_has_16_kib_pages_and_wal(root, db_path):
    assert schema.PAGE_SIZE == 16384
    session_file(root).write_bytes(record(0) + b"\n")
    run_pass(db_path, [root])
    assert pragma(db_path, "page_size") == schema.PAGE_SIZE
    assert pragma(db_path, "journal_mode") == "wal"
    assert query(db_path, "SELECT count(*) FROM events") == [(1,)]


def test_existing_archive_with_4_kib_pages_keeps_them(root, db_path, tmp_path):
    conn = sqlite3.connect(db_path)
    register_lines(conn)
    conn.execute("PRAGMA page_size=4096")
    assert conn.execute("PRAGMA journal_mode=WAL").fetchone() == ("wal",)
    conn.close()
    assert pragma(db_path, "page_size") == 4096

    lines = [record(i) for i in range(50)]
    session_file(root).write_bytes(b"".join(line + b"\n" for line in lines))
    first = run_pass(db_path, [root])
    assert (first.lines_added, first.errors) == (50, 0)
    with open(session_file(root), "ab") as f:
        f.write(huge_record(50, HUGE_BYTES) + b"\n")
    assert run_pass(db_path, [root]).lines_added == 1

    assert pragma(db_path, "page_size") == 4096
    assert pragma(db_path, "journal_mode") == "wal"
    assert query(db_path, "SELECT count(*) FROM events") == [(51,)]
    assert query(db_path, "PRAGMA integrity_check") == [("ok",)]
    assert_export_matches(db_path, root, tmp_path)


# -- the checkpointer ------------------------------------------------------------------


class SpyCheckpointer(sync_module.Checkpointer):
    """The real checkpointer, counting what the writer asks of it."""

    instances: list[SpyCheckpointer] = []

    def __init__(self, db_path: str):
        self.requests = self.waits = 0
        super().__init__(db_path)
        SpyCheckpointer.instances.append(self)

    def request(self) -> None:
        self.requests += 1
        super().request()

    def wait(self) -> None:
        self.waits += 1
        super().wait()


@pytest.fixture
def spy(monkeypatch):
    SpyCheckpointer.instances = []
    monkeypatch.setattr(sync_module, "Checkpointer", SpyCheckpointer)
    monkeypatch.setenv("CLAUDE_SESSIONS_BATCH_BYTES", str(16 << 10))
    return SpyCheckpointer.instances


def write_sessions(root: Path) -> dict[str, list[bytes]]:
    """Three sessions of some 100 KB each."""
    files = {}
    for session in OTHER_SESSIONS:
        lines = [
            record(i, session=session, message={"role": "user", "content": f"p{i} " * 60})
            for i in range(300)
        ]
        session_file(root, session).write_bytes(b"".join(line + b"\n" for line in lines))
        files[session] = lines
    assert sum(session_file(root, s).stat().st_size for s in files) > 250_000
    return files


def assert_checkpointed_pass(root: Path, db_path: Path, tmp_path: Path, spy) -> SpyCheckpointer:
    files = write_sessions(root)

    result = run_pass(db_path, [root])

    assert (result.lines_added, result.errors) == (900, 0)
    for session, lines in files.items():
        rows = query(
            db_path,
            "SELECT line_number, byte_offset, raw_bytes(raw) FROM events "
            "WHERE session_id = ? ORDER BY byte_offset",
            session,
        )
        assert rows == expected_rows(lines)
    assert query(db_path, "SELECT count(*) FROM sessions") == [(3,)]
    (checkpointer,) = spy
    assert checkpointer.requests >= 5  # the pass committed several times
    assert not checkpointer.thread.is_alive()
    assert not [t for t in threading.enumerate() if t.name == "checkpointer"]
    wal = Path(f"{db_path}-wal")
    assert not wal.exists() or wal.stat().st_size == 0
    assert query(db_path, "PRAGMA integrity_check") == [("ok",)]
    assert_export_matches(db_path, root, tmp_path)
    return checkpointer


def test_checkpointer_thread_during_a_long_pass(root, db_path, tmp_path, spy):
    checkpointer = assert_checkpointed_pass(root, db_path, tmp_path, spy)
    assert checkpointer.waits == 0  # the WAL stayed far below WAL_LIMIT


def test_writer_waiting_for_the_checkpointer_before_each_transaction(
    root, db_path, tmp_path, spy, monkeypatch
):
    monkeypatch.setattr(sync_module, "WAL_LIMIT", 0)
    checkpointer = assert_checkpointed_pass(root, db_path, tmp_path, spy)
    assert checkpointer.waits >= 5


def test_small_pass_starts_no_checkpointer(root, db_path, spy, monkeypatch):
    monkeypatch.delenv("CLAUDE_SESSIONS_BATCH_BYTES")
    session_file(root).write_bytes(record(0) + b"\n")
    assert run_pass(db_path, [root]).lines_added == 1
    assert spy == []  # one transaction: committed and checkpointed by the writer itself


# -- sha1 and blake2b ------------------------------------------------------------------


@pytest.mark.parametrize("data", [b"", b"abc", "é😀".encode(), os.urandom(100_000)])
def test_digests_match_hashlib(data):
    assert digest.sha1(data).hexdigest() == hashlib.sha1(data).hexdigest()
    assert digest.blake2b(data).hexdigest() == hashlib.blake2b(data).hexdigest()
    assert (
        digest.blake2b(data, digest_size=16).hexdigest()
        == hashlib.blake2b(data, digest_size=16).hexdigest()
    )
    streamed = digest.sha1()
    streamed.update(data[:7])
    streamed.update(data[7:])
    assert streamed.hexdigest() == hashlib.sha1(data).hexdigest()


def python(code: str, cwd: Path) -> str:
    done = subprocess.run(
        [sys.executable, "-c", code],
        env=dict(os.environ),
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    return done.stdout.strip()


def test_hashlib_stays_openssl_for_later_importers(tmp_path):
    plain = python("import hashlib; print(hashlib.sha256.__name__)", tmp_path)
    if plain != "openssl_sha256":
        pytest.skip(f"hashlib is not backed by OpenSSL on this Python ({plain})")
    out = python(
        "import sys\n"
        "from ingest import migrations\n"
        "print('hashlib' in sys.modules)\n"
        "migrations._sqlite_utils()\n"
        "print('sqlite_utils' in sys.modules)\n"
        "import hashlib\n"
        "print(hashlib.sha256.__name__)\n",
        tmp_path,
    )
    assert out.splitlines() == ["False", "True", "openssl_sha256"]


def test_a_pass_loads_no_openssl(tmp_path):
    (tmp_path / "projects" / "-work-demo").mkdir(parents=True)
    session_file(tmp_path / "projects").write_bytes(record(0) + b"\n")
    out = python(
        "import sys\n"
        "from ingest.sync import run_pass\n"
        "result = run_pass('archive.db', ['projects'])\n"
        "print(result.lines_added, '_hashlib' in sys.modules)\n",
        tmp_path,
    )
    assert out == "1 False"
