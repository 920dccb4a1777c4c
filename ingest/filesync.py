"""One changed file into the archive: a transcript read from its stored position, batch
by batch, or a meta.json stored whole (see sync.py for the pass around it).

A file that was replaced (new inode), truncated, or rewritten (its first HEAD_BYTES
changed, or the same size with other bytes) gets a new ``generation`` and is read again
from the start; lines identical to an archived line at the same offset are moved to the
new generation instead of being inserted twice.
"""

from __future__ import annotations

import os
import sqlite3
import time
from typing import TYPE_CHECKING

from . import quarantine
from .batch import BATCH_LINES, WRITE_BYTES, Batch, Huge, batch_bytes, read_lines
from .clock import now_iso
from .digest import sha1
from .memory import release_memory
from .parse import HUGE_BYTES, tail_is_complete
from .sources import HEAD_BYTES, Source, db_name, head_hash, not_regular, text_name

if TYPE_CHECKING:  # annotations only
    from .sync import Pass

# An unterminated last line that is not valid JSON is archived (as an error) once the
# file has not changed for this long: the writer is gone and will not finish it.
STALE_TAIL_SECONDS = 3600


class FileSync:
    """Reads one changed file into the archive, batch by batch."""

    def __init__(self, sync: Pass, source: Source, row: sqlite3.Row | None):
        self.sync = sync
        self.conn = sync.conn
        self.source = source
        self.row = row
        self.file_id = row["id"] if row else None  # None until its row is inserted
        # the id its events rows carry: a new file's row gets it when first written
        self.row_id = self.file_id if row else sync.new_file_id()
        self.session_id = (row["session_id"] if row else None) or text_name(source.session_id)
        self.agent_id = text_name(source.agent_id)

    def run(self) -> None:
        path = self.source.path
        try:
            # never blocks (a FIFO that appeared since the walk), and no regular file: no read
            fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)
        except (FileNotFoundError, NotADirectoryError):
            return  # gone since the walk; the next pass marks it deleted
        except OSError as e:
            self.sync.cannot_read(path, e.strerror or str(e))
            return  # tried again next pass
        with open(fd, "rb", buffering=0) as f:
            st = os.fstat(fd)
            why = not_regular(st.st_mode)
            if why is not None:
                self.sync.cannot_read(path, why)
                return
            self.fd = fd
            self.stat = st
            try:
                if self.source.kind == "meta":
                    self.sync_meta(f, st)
                else:
                    self.sync_jsonl(f, st)
            except OSError as e:  # an I/O error reading it: what was queued is consistent
                self.sync.cannot_read(path, f"read failed: {e.strerror or e}")

    # -- sync_files bookkeeping -----------------------------------------------------

    def ensure_file_row(self) -> None:
        """Insert the sync_files row (inside the first batch's transaction)."""
        if self.file_id is not None:
            return
        s = self.source
        self.file_id = self.conn.execute(
            "INSERT INTO sync_files (id, path, root, rel_path, project_dir, kind, session_id, "
            "agent_id, host, device, inode, first_seen) "
            "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (
                self.row_id,
                db_name(s.path),
                db_name(s.root),
                db_name(s.rel_path),
                text_name(s.project_dir),
                s.kind,
                self.session_id,
                self.agent_id,
                self.sync.host,
                self.stat.st_dev,
                self.stat.st_ino,
                now_iso(),
            ),
        ).lastrowid

    def update_file_row(self, final: bool = True, **values) -> None:
        """Store the file's state.  Until its last batch is in, ``size`` stays at the
        position reached, so a pass that dies mid-file is never mistaken for a file
        that is fully read (and skipped) by the next pass."""
        st = self.stat
        values.update(
            device=st.st_dev,
            inode=st.st_ino,
            size=st.st_size if final else values["position"],
            mtime=st.st_mtime,
            last_synced=now_iso(),
            deleted_at=None,
            session_id=self.session_id,
        )
        sets = ", ".join(f"{k} = ?" for k in values)
        self.conn.execute(
            f"UPDATE sync_files SET {sets} WHERE id = ?", (*values.values(), self.file_id)
        )

    # -- meta.json ------------------------------------------------------------------

    def sync_meta(self, f, st: os.stat_result) -> None:
        content = f.read()
        digest = sha1(content).hexdigest()
        conn = self.conn

        def write():
            self.ensure_file_row()
            conn.execute(
                "INSERT OR IGNORE INTO file_contents (file_id, sha1, content, read_at) "
                "VALUES (?, ?, ?, ?)",
                (self.file_id, digest, content, now_iso()),
            )
            self.update_file_row(position=len(content))
            return {self.session_id}, {self.agent_id}

        self.sync.queue(len(content), write)

    # -- JSONL ----------------------------------------------------------------------

    def sync_jsonl(self, f, st: os.stat_result) -> None:
        row = self.row
        generation = row["generation"] if row else 0
        position = row["position"] if row else 0
        tail_flag = row["tail_unterminated"] if row else 0
        head_len = row["head_len"] if row else 0
        rewritten = False
        if row is not None:
            if (row["device"], row["inode"]) != (st.st_dev, st.st_ino) or st.st_size < position:
                rewritten = True
            elif head_len and head_hash(os.pread(self.fd, head_len, 0)) != row["head_hash"]:
                rewritten = True
            elif position and st.st_mtime != row["mtime"] and st.st_size <= row["size"]:
                # Changed but not grown: rewritten in place?  Its archived bytes are
                # compared in full (a changed byte past the head is a new generation).
                from .verify import compare_lines  # (lazy: rarely needed)

                if compare_lines(self.conn, self.file_id, generation, position, tail_flag, f):
                    rewritten = True
            elif tail_flag and st.st_size > position:
                if os.pread(self.fd, 1, position) == b"\n":
                    position += 1  # the newline the archived tail was waiting for
                else:
                    rewritten = True  # the "complete" tail went on: read the file again
        if rewritten:
            generation += 1
            position = 0
        self.generation = generation
        self.dedup_until = -1
        if generation > 0:
            # Offsets up to which older generations hold rows that may repeat.
            self.dedup_until = self.conn.execute(
                "SELECT max(byte_offset) FROM events WHERE file_id = ? AND generation < ?",
                (self.file_id, generation),
            ).fetchone()[0]
            if self.dedup_until is None:
                self.dedup_until = -1
        self.line_number = 1
        if position > 0:
            last = self.conn.execute(
                "SELECT line_number FROM events WHERE file_id = ? AND generation = ? "
                "ORDER BY byte_offset DESC LIMIT 1",
                (self.file_id, generation),
            ).fetchone()
            self.line_number = (last[0] if last else 0) + 1
        self.clear_flag = bool(tail_flag) and not rewritten
        self.reset_generation = rewritten
        self.last_committed = position
        self.tail_flag = 0 if self.clear_flag or rewritten else tail_flag
        self.committed = False
        self.partial = False

        size = st.st_size
        f.seek(position)
        batch = Batch(self)
        limit = min(WRITE_BYTES, batch_bytes())
        for offset, line in read_lines(f, position, size):
            length = len(line)
            if length >= HUGE_BYTES:
                # A huge line goes in a batch of its own, with as little memory in use as
                # can be: what came before is written and its memory released.
                if batch.rows:
                    self.commit(batch, offset, 0, final=False)
                    batch = Batch(self)
                release_memory(self.conn)
                line = Huge(line)  # the batch frees the bytes once they are written
            batch.add(offset, line, terminated=True)
            line = None
            if batch.nbytes >= limit or len(batch.rows) >= BATCH_LINES or length >= HUGE_BYTES:
                self.commit(batch, offset + length + 1, 0, final=False)
                batch = Batch(self)
        position = batch.end if batch.rows else self.last_committed
        tail_flag = 0 if batch.rows else self.tail_flag
        if position < size:
            stale = time.time() - st.st_mtime >= STALE_TAIL_SECONDS
            end = os.pread(self.fd, min(64, size - position), size - min(64, size - position))
            if stale or end.rstrip()[-1:] in (b"}", b"]"):  # else: surely incomplete
                tail = os.pread(self.fd, size - position, position)
                if stale or tail_is_complete(tail):
                    batch.add(position, tail, terminated=False)
                    position = size
                    tail_flag = 1
        if batch.rows or position != self.last_committed or self.partial:
            self.commit(batch, position, tail_flag)
        elif not self.committed and (
            self.file_id is None or self.clear_flag or self.reset_generation or self.stat_changed()
        ):
            self.commit(batch, position, tail_flag)

    def stat_changed(self) -> bool:
        row, st = self.row, self.stat
        return (
            row is None
            or row["deleted_at"] is not None
            or (row["size"], row["mtime"], row["inode"], row["device"])
            != (st.st_size, st.st_mtime, st.st_ino, st.st_dev)
        )

    def commit(self, batch: Batch, position: int, tail_flag: int, final: bool = True) -> None:
        """Queue the batch and the file's new state for the pass's next transaction."""
        conn = self.conn
        sync = self.sync
        head_len = min(HEAD_BYTES, position)
        head = os.pread(self.fd, head_len, 0) if head_len else b""

        def write():
            self.ensure_file_row()
            if batch.rows:
                quarantine.write_rows(conn, batch, self.file_id, sync.careful)
            values = dict(
                position=position,
                generation=self.generation,
                tail_unterminated=tail_flag,
                head_len=len(head),
                head_hash=head_hash(head) if head else None,
            )
            self.update_file_row(final, **values)
            events = batch.new_events
            touched = {self.session_id}
            if self.source.kind != "journal" and events:
                touched |= quarantine.derive_rows(conn, events, batch, self.file_id, sync.careful)
            if batch.rows:
                conn.execute(
                    "UPDATE sync_files SET lines = lines + ?, errors = errors + ? WHERE id = ?",
                    (batch.inserted, len(batch.errors) + batch.quarantined, self.file_id),
                )
            return touched, {self.agent_id if self.source.kind == "agent" else None}

        sync.next_id = batch.next_id
        sync.queue(batch.nbytes, write)
        if batch.longest >= HUGE_BYTES:
            batch.rows, batch.fts, batch.new_events = [], [], []  # written: free them now
            release_memory(conn)
        self.last_committed = position
        self.tail_flag = tail_flag
        self.committed = True
        self.partial = not final
        result = sync.result
        result.lines_added += batch.inserted
        result.errors += len(batch.errors) + batch.quarantined
