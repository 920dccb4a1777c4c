"""Everything Claude Code's cleanup deletes besides the transcripts, kept in the archive.

What is kept (issue 8, point 8):

- under every projects directory, each file the sync engine does not read as a transcript
  (anything but ``*.jsonl`` and ``*.meta.json``): above all
  ``<project>/<session>/tool-results/``, the full output of tool calls too large to stay
  in the transcript (which then holds only a ``<persisted-output>`` marker and a
  preview), and the rest of the session folders (``workflows/*.json``, ...);
- in the Claude directory (``--claude-dir``): ``file-history/`` (files as they were
  before each edit), ``plans/``, ``todos/``, and ``history.jsonl`` (the prompts typed in
  every project).

How:

- A file is read only when its size or mtime differ from what the archive saw last
  (``kept_files``); it is read in one piece, and kept only if its size and mtime did not
  move meanwhile (else the next pass tries again).  Sources are opened read-only and
  never changed.
- Contents are stored once each, by their blake2b-256 hash (``kept_blobs``), compressed
  with zstd when that makes them smaller (ZSTD_LEVEL, chosen by measurement: see
  docs/keep.md).  ``kept_files.hash`` is a file's current content, ``kept_versions``
  every content it has had.  A file that disappears keeps its rows and gets
  ``deleted_at``.
- ``history.jsonl`` is append-only: it is read from where the last pass stopped, one
  ``history`` row per line (exact bytes in ``raw``) with its prompt in ``history_fts``.
  A rewritten file (shorter, or its first 4 KiB changed) starts a new generation.
- The walk never stops on an odd entry: a folder it cannot list, a file it cannot open,
  a FIFO, socket or device, a symlink loop: each is skipped with a reason (``skipped``)
  and tried again next pass, and files under a folder that could not be listed are not
  taken for deleted.
"""

from __future__ import annotations

import os
import re
import sqlite3
import stat as stat_module
import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime

import orjson

from .clock import now_iso
from .db import retry_busy
from .digest import blake2b
from .sources import HEAD_BYTES, db_name, head_hash, os_name

# zstd level for kept contents, measured on the kept files of the 100 MB demo corpus
# (bench/bench_keep.py, docs/keep.md): level 3 stores them 5.2x smaller at ~100 MB/s, as
# fast as level 1 (4.8x); level 6 saves 5% more at a quarter of the speed, level 9 10%
# at a fifth.
ZSTD_LEVEL = 3
# Files larger than this are not kept (listed as skipped): they are read in one piece.
MAX_FILE_BYTES = 256 << 20
# A transaction is committed once it holds this many bytes of kept contents.
COMMIT_BYTES = 32 << 20
HISTORY = "history.jsonl"
HISTORY_CHUNK = 4 << 20
STALE_TAIL_SECONDS = 3600
CLAUDE_DIR_AREAS = ("file-history", "plans", "todos")
UUID_RE = re.compile(r"[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}")


@dataclass
class KeepResult:
    files_seen: int = 0
    files_read: int = 0  # new or changed files read
    bytes_read: int = 0
    blobs_added: int = 0
    blob_bytes: int = 0  # bytes the new blobs take in the archive
    history_lines: int = 0
    deleted: int = 0
    skipped: list[str] = field(default_factory=list)  # "path: reason", tried again next pass


@dataclass
class Found:
    path: str
    root: str
    base: str  # projects | claude
    rel_path: str
    area: str
    session_id: str | None
    st: os.stat_result


def printable(path: str) -> str:
    """A path as text for messages, whatever bytes its name holds."""
    return os.fsencode(path).decode("utf-8", "replace")


def is_transcript(name: str) -> bool:
    """A file the sync engine archives line by line (ingest.sync.discover)."""
    return name.endswith(".jsonl") or name.endswith(".meta.json")


def project_area(rel_path: str) -> tuple[str, str | None]:
    """(area, session_id) of a kept file under a projects directory."""
    parts = rel_path.split("/")
    session_id = parts[1] if len(parts) >= 3 and UUID_RE.fullmatch(parts[1]) else None
    if len(parts) >= 4 and parts[2] == "tool-results":
        return "tool-results", session_id
    return ("session" if session_id else "project"), session_id


def claude_area(rel_path: str) -> tuple[str, str | None]:
    """(area, session_id) of a kept file under the Claude directory."""
    parts = rel_path.split("/")
    area = parts[0]
    match = UUID_RE.match(parts[1]) if len(parts) > 1 else None
    return area, match.group(0) if match else None


# -- the walk -----------------------------------------------------------------------------


def walk(
    folder: str, skipped: list[str], unlisted: list[str], ignore=None
) -> Iterator[tuple[str, os.stat_result]]:
    """(path, stat) of every regular file under folder (symlinked files followed, symlinked
    folders not), never raising: what cannot be listed or stat'ed is skipped with a reason;
    folders that could not be listed are added to ``unlisted``; names ``ignore`` says
    True of are passed over."""
    stack = [folder]
    while stack:
        current = stack.pop()
        try:
            with os.scandir(current) as it:
                entries = list(it)
        except FileNotFoundError:
            continue
        except OSError as e:
            skipped.append(f"{printable(current)}: cannot list the folder: {e.strerror}")
            unlisted.append(current)
            continue
        for entry in entries:
            try:
                if entry.is_dir(follow_symlinks=False):
                    stack.append(entry.path)
                    continue
                if ignore is not None and ignore(entry.name):
                    continue  # (not even stat'ed: the transcripts are the engine's)
                st = entry.stat()  # follows a symlink
            except FileNotFoundError as e:
                if entry.is_symlink():
                    skipped.append(f"{printable(entry.path)}: broken symlink")
                elif e.filename is None:
                    pass  # gone since the listing
                continue
            except OSError as e:
                skipped.append(f"{printable(entry.path)}: {e.strerror}")
                continue
            if stat_module.S_ISDIR(st.st_mode):
                continue  # a symlink to a folder: not followed (loops)
            if not stat_module.S_ISREG(st.st_mode):
                skipped.append(
                    f"{printable(entry.path)}: {kind_of(st.st_mode)}, not a regular file"
                )
                continue
            yield entry.path, st


def kind_of(mode: int) -> str:
    if stat_module.S_ISFIFO(mode):
        return "a FIFO"
    if stat_module.S_ISSOCK(mode):
        return "a socket"
    if stat_module.S_ISCHR(mode) or stat_module.S_ISBLK(mode):
        return "a device"
    return "a special file"


def rel(root: str, path: str) -> str:
    return path[len(root) :].lstrip(os.sep).replace(os.sep, "/")


def find_in_projects(
    root: str, skipped: list[str], unlisted: list[str], folder: str | None = None
) -> Iterator[Found]:
    """The kept files under a projects directory (or one of its folders)."""
    for path, st in walk(folder or root, skipped, unlisted, is_transcript):
        rel_path = rel(root, path)
        if "/" not in rel_path:
            continue  # a file beside the project folders is no project's
        area, session_id = project_area(rel_path)
        yield Found(path, root, "projects", rel_path, area, session_id, st)


def find_in_claude_dir(claude_dir: str, skipped: list[str], unlisted: list[str]) -> Iterator[Found]:
    """history.jsonl, file-history/, plans/ and todos/ of a Claude directory."""
    history = os.path.join(claude_dir, HISTORY)
    try:
        st = os.stat(history)
    except FileNotFoundError:
        pass
    except OSError as e:
        skipped.append(f"{printable(history)}: {e.strerror}")
    else:
        if stat_module.S_ISREG(st.st_mode):
            yield Found(history, claude_dir, "claude", HISTORY, "history", None, st)
        else:
            skipped.append(f"{printable(history)}: {kind_of(st.st_mode)}, not a regular file")
    for area in CLAUDE_DIR_AREAS:
        for path, st in walk(os.path.join(claude_dir, area), skipped, unlisted):
            rel_path = rel(claude_dir, path)
            area_name, session_id = claude_area(rel_path)
            yield Found(path, claude_dir, "claude", rel_path, area_name, session_id, st)


# -- reading --------------------------------------------------------------------------------


class Skip(Exception):
    """A file that cannot be kept now; the message says why."""


def read_whole(path: str, expected: os.stat_result) -> bytes | None:
    """The file's bytes, or None when it changed while being read (tried next pass).

    Opened read-only and non-blocking (a FIFO swapped in since the walk does not block);
    raises Skip for anything that is not a regular file or cannot be read."""
    if expected.st_size > MAX_FILE_BYTES:
        raise Skip(f"larger than {MAX_FILE_BYTES >> 20} MiB, not kept")
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | getattr(os, "O_CLOEXEC", 0))
    except FileNotFoundError:
        return None
    except OSError as e:
        raise Skip(e.strerror or str(e)) from None
    try:
        st = os.fstat(fd)
        if not stat_module.S_ISREG(st.st_mode):
            raise Skip(f"{kind_of(st.st_mode)}, not a regular file")
        pieces = []
        total = 0
        while True:
            piece = os.read(fd, max(1 << 16, st.st_size - total + 1))
            if not piece:
                break
            pieces.append(piece)
            total += len(piece)
            if total > MAX_FILE_BYTES:
                raise Skip(f"larger than {MAX_FILE_BYTES >> 20} MiB, not kept")
        after = os.fstat(fd)
    except OSError as e:
        raise Skip(e.strerror or str(e)) from None
    finally:
        os.close(fd)
    if total != after.st_size or after.st_mtime_ns != st.st_mtime_ns:
        return None
    if (st.st_size, st.st_mtime) != (expected.st_size, expected.st_mtime):
        return None  # changed since the walk: the next pass sees the new stat
    return b"".join(pieces) if len(pieces) != 1 else pieces[0]


# -- blobs ----------------------------------------------------------------------------------

_compressor = None


def compress(data: bytes) -> bytes:
    global _compressor
    if _compressor is None:
        import zstandard

        _compressor = zstandard.ZstdCompressor(level=ZSTD_LEVEL)
    return _compressor.compress(data)


def decompress(data: bytes, size: int) -> bytes:
    import zstandard

    return zstandard.ZstdDecompressor().decompress(data, max_output_size=size)


def content_hash(data: bytes) -> str:
    return blake2b(data, digest_size=32).hexdigest()


def store_blob(conn: sqlite3.Connection, data: bytes) -> tuple[str, int]:
    """Store data once (by its hash); returns (hash, bytes added to the archive: 0 when the
    content was there already)."""
    digest = content_hash(data)
    if conn.execute("SELECT 1 FROM kept_blobs WHERE hash = ?", (digest,)).fetchone():
        return digest, 0
    packed = compress(data) if data else data
    if len(packed) < len(data):
        conn.execute(
            "INSERT INTO kept_blobs (hash, size, compression, data) VALUES (?, ?, 'zstd', ?)",
            (digest, len(data), packed),
        )
        return digest, len(packed)
    conn.execute(
        "INSERT INTO kept_blobs (hash, size, compression, data) VALUES (?, ?, NULL, ?)",
        (digest, len(data), data),
    )
    return digest, len(data)


def blob_bytes(conn: sqlite3.Connection, digest: str) -> bytes | None:
    """The content stored under digest, as it was read."""
    row = conn.execute(
        "SELECT size, compression, data FROM kept_blobs WHERE hash = ?", (digest,)
    ).fetchone()
    if row is None:
        return None
    size, compression, data = row
    data = bytes(data) if not isinstance(data, bytes) else data
    if compression == "zstd":
        return decompress(data, size)
    return data


# -- the pass -------------------------------------------------------------------------------


class Keeper:
    """One pass over the kept files, writing in transactions of its own (the caller holds
    the writer lock and has no transaction open)."""

    def __init__(self, conn: sqlite3.Connection, host: str, attempts: int = 6):
        self.conn = conn
        self.host = host
        self.attempts = attempts  # retry_busy's tries: 1 under --wait N (N s, not 6 N)
        self.result = KeepResult()
        self.pending = 0
        self.unlisted: list[str] = []

    # transactions
    def begin(self) -> None:
        if not self.conn.in_transaction:
            retry_busy(lambda: self.conn.execute("BEGIN IMMEDIATE"), attempts=self.attempts)

    def done(self, nbytes: int) -> None:
        self.pending += nbytes
        if self.pending >= COMMIT_BYTES:
            self.commit()

    def commit(self) -> None:
        if self.conn.in_transaction:
            self.conn.execute("COMMIT")
        self.pending = 0

    def run(
        self,
        roots: Iterable[str],
        claude_dirs: Iterable[str],
        folders: Iterable[tuple[str, str]] | None = None,
    ) -> KeepResult:
        """Keep what changed under ``roots`` (projects directories) and ``claude_dirs``;
        ``folders``: (root, folder) pairs to look at instead of all of it (no deletions
        are recorded then)."""
        conn = self.conn
        result = self.result
        try:
            if folders is not None:
                found = []
                for root, folder in folders:
                    found += find_in_projects(root, result.skipped, self.unlisted, folder)
                self.keep_all(found, self.known_rows(None))
            else:
                roots = list(roots)
                claude_dirs = list(claude_dirs)
                places = [(r, "projects") for r in roots] + [(c, "claude") for c in claude_dirs]
                known = self.known_rows(places)
                found = []
                for root in roots:
                    found += find_in_projects(root, result.skipped, self.unlisted)
                for claude_dir in claude_dirs:
                    found += find_in_claude_dir(claude_dir, result.skipped, self.unlisted)
                self.keep_all(found, known)
                self.mark_deleted(found, known, claude_dirs)
            self.commit()
        except BaseException:
            if conn.in_transaction:
                conn.execute("ROLLBACK")
            raise
        return result

    def known_rows(self, places: list[tuple[str, str]] | None) -> dict[str, sqlite3.Row]:
        conn = self.conn
        conn.row_factory = sqlite3.Row
        try:
            if places is None:
                rows = conn.execute("SELECT * FROM kept_files WHERE base = 'projects'")
            else:
                # rows under the root's path only: another machine's files merged in are
                # stored under <host>:<path> (merge_kept) and are never this walk's
                rows = []
                for root, base in places:
                    prefix = root.rstrip(os.sep) + os.sep
                    rows += [
                        row
                        for row in conn.execute(
                            "SELECT * FROM kept_files WHERE root = ? AND base = ?",
                            (db_name(root), base),
                        )
                        if os_name(row["path"]).startswith(prefix)
                    ]
            return {os_name(row["path"]): row for row in rows}
        finally:
            conn.row_factory = None

    def keep_all(self, found: list[Found], known: dict[str, sqlite3.Row]) -> None:
        result = self.result
        for item in found:
            result.files_seen += 1
            row = known.get(item.path)
            st = item.st
            if (
                row is not None
                and row["deleted_at"] is None
                and row["size"] == st.st_size
                and row["mtime"] == st.st_mtime
            ):
                if item.area != "history" or row["position"] >= st.st_size:
                    continue
                if time.time() - st.st_mtime < STALE_TAIL_SECONDS:
                    continue  # an unfinished last line, not stale yet
            try:
                if item.area == "history":
                    self.keep_history(item, row)
                else:
                    self.keep_file(item, row)
            except Skip as e:
                result.skipped.append(f"{printable(item.path)}: {e}")

    def keep_file(self, item: Found, row: sqlite3.Row | None) -> None:
        data = read_whole(item.path, item.st)
        if data is None:
            return
        conn = self.conn
        result = self.result
        result.files_read += 1
        result.bytes_read += len(data)
        self.begin()
        digest, added = store_blob(conn, data)
        if added:
            result.blobs_added += 1
            result.blob_bytes += added
        stamp = now_iso()
        st = item.st
        if row is None:
            file_id = self.insert_row(item, digest, stamp)
        else:
            file_id = row["id"]
            conn.execute(
                "UPDATE kept_files SET size = ?, mtime = ?, hash = ?, last_synced = ?, "
                "deleted_at = NULL WHERE id = ?",
                (st.st_size, st.st_mtime, digest, stamp, file_id),
            )
        if row is None or row["hash"] != digest:
            conn.execute(
                "INSERT INTO kept_versions (file_id, hash, size, mtime, seen_at) "
                "VALUES (?, ?, ?, ?, ?)",
                (file_id, digest, len(data), st.st_mtime, stamp),
            )
        self.done(len(data))

    def insert_row(self, item: Found, digest: str | None, stamp: str) -> int:
        return self.conn.execute(
            "INSERT INTO kept_files (path, root, base, rel_path, area, session_id, host, "
            "size, mtime, hash, first_seen, last_synced) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, "
            "?, ?, ?)",
            (
                db_name(item.path),
                db_name(item.root),
                item.base,
                db_name(item.rel_path),
                item.area,
                item.session_id,
                self.host,
                item.st.st_size if digest else 0,
                item.st.st_mtime if digest else None,
                digest,
                stamp,
                stamp,
            ),
        ).lastrowid

    # history.jsonl ------------------------------------------------------------------------

    def keep_history(self, item: Found, row: sqlite3.Row | None) -> None:
        try:
            fd = os.open(item.path, os.O_RDONLY | os.O_NONBLOCK | getattr(os, "O_CLOEXEC", 0))
        except FileNotFoundError:
            return
        except OSError as e:
            raise Skip(e.strerror or str(e)) from None
        try:
            st = os.fstat(fd)
            if not stat_module.S_ISREG(st.st_mode):
                raise Skip(f"{kind_of(st.st_mode)}, not a regular file")
            HistoryReader(self, item, row, fd, st).run()
        except OSError as e:
            raise Skip(e.strerror or str(e)) from None
        finally:
            os.close(fd)

    def was_skipped(self, path: str) -> bool:
        prefix = printable(path) + ": "
        return any(reason.startswith(prefix) for reason in self.result.skipped)

    def mark_deleted(
        self, found: list[Found], known: dict[str, sqlite3.Row], claude_dirs: list[str]
    ) -> None:
        """Rows of files this walk did not find, and could have: not under a folder it
        could not list, nor skipped (a file that cannot be stat'ed is not gone)."""
        seen = {item.path for item in found}
        unlisted = tuple(u.rstrip(os.sep) + os.sep for u in self.unlisted)
        gone = [
            row["id"]
            for path, row in known.items()
            if row["deleted_at"] is None
            and path not in seen
            and not (unlisted and path.startswith(unlisted))
            and not self.was_skipped(path)
        ]
        if gone:
            self.begin()
            stamp = now_iso()
            self.conn.executemany(
                "UPDATE kept_files SET deleted_at = ? WHERE id = ?", [(stamp, i) for i in gone]
            )
            self.result.deleted += len(gone)


class HistoryReader:
    """Reads history.jsonl's new lines into ``history`` (see the module docstring)."""

    def __init__(self, keeper: Keeper, item: Found, row, fd: int, st: os.stat_result):
        self.keeper = keeper
        self.conn = keeper.conn
        self.item = item
        self.row = row
        self.fd = fd
        self.st = st

    def run(self) -> None:
        keeper, conn, row, fd, st = self.keeper, self.conn, self.row, self.fd, self.st
        position = row["position"] if row else 0
        generation = row["generation"] if row else 0
        tail = row["tail_unterminated"] if row else 0
        rewritten = False
        if row is not None:
            head_len = min(HEAD_BYTES, position)
            if st.st_size < position:
                rewritten = True
            elif head_len and head_hash(os.pread(fd, head_len, 0)) != row["head_hash"]:
                rewritten = True
            elif tail and st.st_size > position:
                if os.pread(fd, 1, position) == b"\n":
                    position += 1
                    tail = 0
                else:
                    rewritten = True
        if rewritten:
            generation += 1
            position = 0
            tail = 0
        dedup_until = -1
        if generation > 0 and row is not None:
            found = conn.execute(
                "SELECT max(byte_offset) FROM history WHERE file_id = ? AND generation < ?",
                (row["id"], generation),
            ).fetchone()[0]
            dedup_until = -1 if found is None else found
        keeper.begin()
        file_id = row["id"] if row else keeper.insert_row(self.item, None, now_iso())
        size = st.st_size
        offset = position
        carry = b""
        while offset + len(carry) < size:
            start = offset + len(carry)
            chunk = os.pread(fd, min(HISTORY_CHUNK, size - start), start)
            if not chunk:
                break
            data = carry + chunk if carry else chunk
            end = data.rfind(b"\n")
            if end < 0:
                carry = data
                continue
            lines = data[:end].split(b"\n")
            carry = data[end + 1 :]
            rows = []
            for line in lines:
                rows.append((offset, line))
                offset += len(line) + 1
            self.write_lines(file_id, generation, rows, dedup_until)
            keeper.result.bytes_read += end + 1
            keeper.done(end + 1)
            keeper.begin()
        if carry and time.time() - st.st_mtime >= STALE_TAIL_SECONDS:
            # the writer is long gone: the unterminated last line is kept as it is
            self.write_lines(file_id, generation, [(offset, carry)], dedup_until)
            keeper.result.bytes_read += len(carry)
            offset += len(carry)
            tail = 1
        head = os.pread(fd, min(HEAD_BYTES, offset), 0) if offset else b""
        conn.execute(
            "UPDATE kept_files SET size = ?, mtime = ?, position = ?, generation = ?, "
            "head_hash = ?, tail_unterminated = ?, last_synced = ?, deleted_at = NULL "
            "WHERE id = ?",
            (
                size,
                st.st_mtime,
                offset,
                generation,
                head_hash(head) if head else None,
                tail,
                now_iso(),
                file_id,
            ),
        )
        keeper.result.files_read += 1

    def write_lines(
        self, file_id: int, generation: int, lines: list[tuple[int, bytes]], dedup_until: int
    ) -> None:
        conn = self.conn
        inserts = []
        moves = []
        for offset, line in lines:
            if offset <= dedup_until:
                old = conn.execute(
                    "SELECT id FROM history WHERE file_id = ? AND generation < ? "
                    "AND byte_offset = ? AND CAST(raw AS BLOB) = ?",
                    (file_id, generation, offset, line),
                ).fetchone()
                if old is not None:
                    moves.append((generation, old[0]))
                    continue
            inserts.append((file_id, generation, offset, *history_columns(line)))
        if moves:
            conn.executemany("UPDATE history SET generation = ? WHERE id = ?", moves)
        for values in inserts:
            rowid = conn.execute(
                "INSERT INTO history (file_id, generation, byte_offset, timestamp, project, "
                "session_id, display, raw) VALUES (?, ?, ?, ?, ?, ?, ?, "
                "CASE WHEN ? THEN CAST(? AS TEXT) ELSE ? END)",
                (*values[:-2], values[-1], values[-2], values[-2]),
            ).lastrowid
            if values[6]:
                conn.execute(
                    "INSERT INTO history_fts (rowid, display) VALUES (?, ?)", (rowid, values[6])
                )
        self.keeper.result.history_lines += len(inserts)


def history_columns(line: bytes) -> tuple:
    """(timestamp, project, session_id, display, raw, raw is UTF-8) of a history line; the
    parsed fields are None when the line is not the JSON object expected."""
    timestamp = project = session_id = display = None
    utf8 = True
    try:
        obj = orjson.loads(line)
    except orjson.JSONDecodeError:
        obj = None
        try:
            line.decode("utf-8")
        except UnicodeDecodeError:
            utf8 = False
    if isinstance(obj, dict):
        display = text_or_none(obj.get("display"))
        project = text_or_none(obj.get("project"))
        session_id = text_or_none(obj.get("sessionId"))
        ms = obj.get("timestamp")
        if isinstance(ms, int | float) and not isinstance(ms, bool):
            try:
                timestamp = (
                    datetime.fromtimestamp(ms / 1000, UTC)
                    .isoformat(timespec="milliseconds")
                    .replace("+00:00", "Z")
                )
            except (OverflowError, OSError, ValueError):
                timestamp = None
    return timestamp, project, session_id, display, line, utf8


def text_or_none(value) -> str | None:
    return value if isinstance(value, str) else None


def session_folders(roots: Iterable[str], paths: Iterable[str]) -> list[tuple[str, str]]:
    """(root, folder) pairs: the session folders of the transcripts (and the folders) a
    watch pass was given, where their tool results are written."""
    out = []
    seen = set()
    roots = list(roots)
    for path in paths:
        path = str(path)
        root = next((r for r in roots if path.startswith(r.rstrip(os.sep) + os.sep)), None)
        if root is None:
            continue
        parts = rel(root, path).split("/")
        if len(parts) < 2:
            continue
        stem = parts[1][: -len(".jsonl")] if parts[1].endswith(".jsonl") else parts[1]
        folder = os.path.join(root, parts[0], stem)
        if folder not in seen and os.path.isdir(folder):
            seen.add(folder)
            out.append((root, folder))
    return out


def keep_pass(
    conn: sqlite3.Connection,
    roots: Iterable[str | os.PathLike],
    claude_dirs: Iterable[str | os.PathLike] = (),
    *,
    host: str,
    paths: Iterable[str | os.PathLike] | None = None,
    attempts: int = 6,
) -> KeepResult:
    """Keep what is new under ``roots`` (projects directories, real paths) and
    ``claude_dirs``; with ``paths`` (a watch pass), only the session folders they name."""
    roots = [str(r) for r in roots]
    keeper = Keeper(conn, host, attempts)
    if paths is not None:
        return keeper.run(roots, (), session_folders(roots, [str(p) for p in paths]))
    return keeper.run(roots, [os.path.realpath(c) for c in claude_dirs])


# -- export ---------------------------------------------------------------------------------


def export_kept(
    conn: sqlite3.Connection,
    out: os.PathLike | str,
    session_id: str | None,
    taken: set[str],
    apart: bool = False,
) -> list[str]:
    """Write the kept files (every one, or one session's) under ``out`` at their rel_path,
    byte for byte: files of the session folders beside the transcripts, the Claude
    directory's files (history.jsonl, file-history/, plans/, todos/) at the top.
    ``taken``: relative paths export writes already (the transcripts).  ``apart``: the
    transcripts were written under <host>/<projects folder>/ (ingest.export) because
    several share a path; the kept files then are too (a Claude directory's under
    <host>/<its folder>/), as they are when two of them share a path.  A kept file that
    would still land on another file's path is an ExportError naming them."""
    from .archive import ExportError, root_folder, safe_name

    columns = "id, rel_path, area, hash, generation, tail_unterminated, host, root"
    if session_id is None:
        rows = conn.execute(
            f"SELECT {columns} FROM kept_files ORDER BY base DESC, rel_path"
        ).fetchall()
    else:
        rows = conn.execute(
            f"SELECT {columns} FROM kept_files WHERE session_id = ? AND area != 'history' "
            "ORDER BY rel_path",
            (session_id,),
        ).fetchall()
    plain = [os_name(row[1]) for row in rows]
    if not apart and (len(set(plain)) < len(plain) or taken.intersection(plain)):
        apart = True
    names = plain
    if apart:
        names = [
            f"{safe_name(row[6])}/{root_folder(os_name(row[7]))}/{rel_path}"
            for row, rel_path in zip(rows, plain, strict=True)
        ]
    seen: set[str] = set()
    clashes = []
    for name in names:
        if name in taken or name in seen:
            clashes.append(name)
        seen.add(name)
    if clashes:
        shown = ", ".join(printable(c) for c in clashes[:3])
        more = f" and {len(clashes) - 3} more" if len(clashes) > 3 else ""
        raise ExportError(
            f"Several archived files would be written to the same place: {shown}{more}; "
            "nothing was written."
        )
    rows = [(row[0], name, *row[2:6]) for row, name in zip(rows, names, strict=True)]
    out = os.path.abspath(out)
    written = []
    for file_id, rel_path, area, digest, generation, tail in rows:
        target = os.path.join(out, *rel_path.split("/"))
        if not os.path.realpath(target).startswith(os.path.realpath(out) + os.sep):
            raise ExportError(f"Refusing to write {printable(rel_path)} outside {printable(out)}.")
        if area == "history":
            os.makedirs(os.path.dirname(target), exist_ok=True)
            with open(target, "wb") as f:
                write_history(conn, file_id, generation, tail, f)
        else:
            data = blob_bytes(conn, digest) if digest else None
            if data is None:
                continue
            os.makedirs(os.path.dirname(target), exist_ok=True)
            with open(target, "wb") as f:
                f.write(data)
        written.append(target)
    return written


def write_history(conn: sqlite3.Connection, file_id: int, generation: int, tail: int, f) -> None:
    previous = None
    for (raw,) in conn.execute(
        "SELECT raw FROM history WHERE file_id = ? AND generation = ? ORDER BY byte_offset",
        (file_id, generation),
    ):
        if previous is not None:
            f.write(previous)
            f.write(b"\n")
        previous = raw.encode("utf-8") if isinstance(raw, str) else bytes(raw)
    if previous is not None:
        f.write(previous)
        if not tail:
            f.write(b"\n")


# -- merge ----------------------------------------------------------------------------------

KEPT_FILE_STATE = (
    "size",
    "mtime",
    "hash",
    "position",
    "generation",
    "head_hash",
    "tail_unterminated",
    "last_synced",
    "deleted_at",
)


def merge_kept(conn: sqlite3.Connection) -> int:
    """Copy the kept files of the archive attached as ``other`` (ingest.merge, inside its
    transaction): contents by hash, files matched by host and path (another machine's
    new ones stored under ``<host>:<path>``, as sync_files does), versions and history
    lines not present yet.  Returns how many kept files were added."""
    has = conn.execute(
        "SELECT 1 FROM other.sqlite_master WHERE type = 'table' AND name = 'kept_files'"
    ).fetchone()
    if not has:
        return 0
    conn.execute("INSERT OR IGNORE INTO kept_blobs SELECT * FROM other.kept_blobs")
    conn.execute("CREATE TEMP TABLE IF NOT EXISTS kept_map (other_id INTEGER PRIMARY KEY, id INT)")
    conn.execute("DELETE FROM temp.kept_map")
    conn.row_factory = sqlite3.Row
    try:
        rows = conn.execute("SELECT * FROM other.kept_files").fetchall()
    finally:
        conn.row_factory = None
    added = 0
    for row in rows:
        host, path = row["host"] or "unknown", row["path"]
        prefix = f"{host}:"
        if isinstance(path, bytes):
            foreign = path if path.startswith(prefix.encode()) else prefix.encode() + path
        else:
            foreign = path if path.startswith(prefix) else prefix + path
        found = conn.execute(
            "SELECT id, last_synced FROM kept_files WHERE host = ? AND path IN (?, ?)",
            (host, path, foreign),
        ).fetchone()
        if found:
            file_id = found[0]
            if (row["last_synced"] or "") > (found[1] or ""):
                sets = ", ".join(f"{c} = ?" for c in KEPT_FILE_STATE)
                conn.execute(
                    f"UPDATE kept_files SET {sets} WHERE id = ?",
                    (*(row[c] for c in KEPT_FILE_STATE), file_id),
                )
        else:
            names = [k for k in row.keys() if k != "id"]  # noqa: SIM118 (sqlite3.Row)
            values = [foreign if k == "path" else row[k] for k in names]
            values[names.index("host")] = host
            file_id = conn.execute(
                f"INSERT INTO kept_files ({', '.join(names)}) "
                f"VALUES ({', '.join('?' for _ in names)})",
                values,
            ).lastrowid
            added += 1
        conn.execute("INSERT INTO temp.kept_map VALUES (?, ?)", (row["id"], file_id))
    conn.execute(
        "INSERT INTO kept_versions (file_id, hash, size, mtime, seen_at) "
        "SELECT m.id, v.hash, v.size, v.mtime, v.seen_at FROM other.kept_versions v "
        "JOIN temp.kept_map m ON m.other_id = v.file_id WHERE NOT EXISTS ("
        "SELECT 1 FROM kept_versions k WHERE k.file_id = m.id AND k.hash = v.hash "
        "AND k.seen_at = v.seen_at) ORDER BY v.id"
    )
    last = conn.execute("SELECT coalesce(max(id), 0) FROM history").fetchone()[0]
    conn.execute(
        "INSERT OR IGNORE INTO history (file_id, generation, byte_offset, timestamp, project, "
        "session_id, display, raw) SELECT m.id, h.generation, h.byte_offset, h.timestamp, "
        "h.project, h.session_id, h.display, h.raw FROM other.history h "
        "JOIN temp.kept_map m ON m.other_id = h.file_id ORDER BY h.id"
    )
    conn.execute(
        "INSERT INTO history_fts (rowid, display) SELECT id, display FROM history "
        "WHERE id > ? AND display IS NOT NULL",
        (last,),
    )
    return added
