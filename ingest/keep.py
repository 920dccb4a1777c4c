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

The rooms: ``keep_walk`` finds the files and reads one whole, ``keep_blobs`` stores and
reads contents by hash, ``keep_history`` reads history.jsonl's new lines, ``keep_copy``
writes kept files out (export) and copies them in (merge); this module runs a pass.
"""

from __future__ import annotations

import os
import sqlite3
import stat as stat_module
import time
from collections.abc import Iterable
from dataclasses import dataclass, field

from .clock import now_iso
from .db import retry_busy
from .keep_blobs import store_blob
from .keep_history import STALE_TAIL_SECONDS, HistoryReader
from .keep_walk import (
    Found,
    Skip,
    find_in_claude_dir,
    find_in_projects,
    kind_of,
    printable,
    read_whole,
    session_folders,
)
from .sources import db_name, os_name

# A transaction is committed once it holds this many bytes of kept contents.
COMMIT_BYTES = 32 << 20


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
