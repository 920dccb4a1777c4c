"""A line's bytes in the archive: the one way to write and to read ``events.raw``.

Every line is stored compressed: ``raw`` is a zstd frame (a BLOB) of the line's exact
bytes, made with a dictionary trained on the archive's own lines (``raw_dictionaries``)
once the archive has enough of them, and without one before.  A frame names its
dictionary (zstd's dictionary id, which zstd derives from the dictionary's content), and
says the line's length, so each value is read on its own.  Transcript lines repeat the
same keys, ids, paths and versions line after line: with a dictionary a line takes a
quarter to a sixth of its bytes (bench/bench_size.py).

Readers never look at ``raw`` themselves:

- in Python, ``line_bytes(value, conn)`` gives the exact bytes of a ``raw`` value;
- in SQL (``register`` adds these to every connection the CLI and the web app open):
  ``raw_bytes(raw)`` the exact bytes (a BLOB), ``raw_json(raw)`` the line as text (its
  JSON; bytes that are not UTF-8 replaced by U+FFFD), ``raw_length(raw)`` its length in
  bytes, read from the frame's header without decompressing.  The ``events_json`` view
  shows each line's JSON.

Archives written before this (``raw`` the line itself: TEXT when UTF-8, else a BLOB)
are read the same way, and converted by migration m703.
"""

from __future__ import annotations

import os
import sqlite3
import threading
from collections.abc import Iterable

import zstandard

MAGIC = b"\x28\xb5\x2f\xfd"  # a zstd frame's first four bytes
LEVEL = 3  # zstd level: level 1 is 10% faster but 10% bigger, 6 three times slower
DICT_BYTES = 112 << 10  # zstd's own default size for a trained dictionary
# Lines a dictionary is trained on: the first SAMPLE_LINE_BYTES of each (the keys, ids
# and paths every line repeats), SAMPLE_BYTES in all; training then takes ~40 ms.
SAMPLE_BYTES = 2 << 20
SAMPLE_LINE_BYTES = 8 << 10
# Fewer bytes of lines than this: no dictionary yet (it would be trained on too little);
# lines are compressed without one and repacked when it is trained.
MIN_SAMPLE_BYTES = 256 << 10
MIN_SAMPLE_LINES = 64

_dicts: dict[int, bytes] = {}  # dictionary id -> its bytes (ids are content hashes)
_local = threading.local()  # .decompressors: {dictionary id: ZstdDecompressor} per thread


class MissingDictionary(ValueError):
    """A frame names a dictionary that no attached archive holds (a damaged archive)."""


def is_packed(value) -> bool:
    return isinstance(value, bytes) and value[:4] == MAGIC


def _dictionary(dict_id: int, conn: sqlite3.Connection | None) -> bytes:
    data = _dicts.get(dict_id)
    if data is None and conn is not None:
        for _, schema, _ in conn.execute("PRAGMA database_list").fetchall():
            try:
                row = conn.execute(
                    f"SELECT data FROM [{schema}].raw_dictionaries WHERE id = ?", (dict_id,)
                ).fetchone()
            except sqlite3.OperationalError:
                continue  # an archive from before raw_dictionaries
            if row is not None:
                data = _dicts[dict_id] = bytes(row[0])
                break
    if data is None:
        raise MissingDictionary(f"the archive has no zstd dictionary {dict_id} for a line")
    return data


def _decompressor(dict_id: int, conn) -> zstandard.ZstdDecompressor:
    # (zstandard's objects are not to be shared between threads: one set per thread)
    found = getattr(_local, "decompressors", None)
    if found is None:
        found = _local.decompressors = {}
    d = found.get(dict_id)
    if d is None:
        if dict_id:
            data = zstandard.ZstdCompressionDict(_dictionary(dict_id, conn))
            d = zstandard.ZstdDecompressor(dict_data=data)
        else:
            d = zstandard.ZstdDecompressor()
        found[dict_id] = d
    return d


def line_bytes(value, conn: sqlite3.Connection | None = None) -> bytes | None:
    """The exact bytes of a line from its ``raw`` value (None stays None).

    ``conn``: the connection the value was read from, where a dictionary the process has
    not met yet is looked up (in every attached archive)."""
    if value is None:
        return None
    if isinstance(value, str):  # an archive from before m703: a UTF-8 line as TEXT
        return value.encode("utf-8", "surrogatepass")
    value = bytes(value)
    if value[:4] != MAGIC:
        return value  # before m703: a line that is not UTF-8, as it was
    try:
        params = zstandard.get_frame_parameters(value)
    except zstandard.ZstdError:
        return value  # (before m703, a line that merely starts like a frame)
    try:
        return _decompressor(params.dict_id, conn).decompress(value)
    except zstandard.ZstdError:
        if params.dict_id and params.dict_id not in _dicts:
            raise
        return value


def line_text(value, conn: sqlite3.Connection | None = None) -> str | None:
    """The line as text: its JSON (bytes that are not UTF-8 replaced by U+FFFD)."""
    data = line_bytes(value, conn)
    return None if data is None else data.decode("utf-8", "replace")


def line_length(value) -> int | None:
    """The line's length in bytes, from the frame's header (no decompressing)."""
    if value is None:
        return None
    if isinstance(value, str):
        return len(value.encode("utf-8", "surrogatepass"))
    if bytes(value[:4]) == MAGIC:
        try:
            size = zstandard.get_frame_parameters(bytes(value[:18])).content_size
        except zstandard.ZstdError:
            size = -1
        if size >= 0:
            return size
    return len(value)


# Connections (by id) inserting events rows whose text the writer has just worked out
# itself (see writing_rows): SQLite works a virtual column out on INSERT too (and throws
# it away: no index or constraint reads events.text), so event_text skips it for them.
_writing: set[int] = set()


class writing_rows:
    """``with writing_rows(conn): conn.executemany(INSERT_EVENT, rows)``: while it lasts,
    ``event_text`` on this connection answers None at once instead of parsing the line
    (SQLite calls it for each inserted row and discards the value; the writer indexes
    the text it parsed itself).  Other connections, and this one afterwards, are not
    affected.  tests/test_text_from_raw.py checks that nothing reads the column's value
    on INSERT (no index, trigger or constraint on it)."""

    __slots__ = ("key",)

    def __init__(self, conn: sqlite3.Connection):
        self.key = id(conn)

    def __enter__(self) -> None:
        _writing.add(self.key)

    def __exit__(self, *exc) -> None:
        _writing.discard(self.key)


def event_text(value, kind, conn: sqlite3.Connection | None = None) -> str | None:
    """events.text, the searchable text of a line, worked out from its raw: the text the
    engine's parse gives (ingest.parse), None for an error row (kind 'error': a line that
    is no JSON object, or one stored without its columns) and for a blank line.

    events.text is a virtual column computed by this (SQL ``event_text(raw, kind)``):
    the text is not stored twice.  Any change to what parse puts in ``text`` must
    rebuild events_fts (its index was made from the text as it was)."""
    if kind == "error" or value is None:
        return None
    data = line_bytes(value, conn)
    if not data or data.isspace():
        return None
    from .parse import TEXT_INDEX, LineError, parse

    try:
        return parse(data)[1][TEXT_INDEX]
    except LineError:
        return None


def register(conn: sqlite3.Connection) -> None:
    """Add raw_bytes(raw), raw_json(raw), raw_length(raw) and event_text(raw, kind) (the
    events.text column's own expression) to a connection."""
    conn.create_function("raw_bytes", 1, lambda v: line_bytes(v, conn), deterministic=True)
    conn.create_function("raw_json", 1, lambda v: line_text(v, conn), deterministic=True)
    conn.create_function("raw_length", 1, line_length, deterministic=True)
    key = id(conn)

    def text(value, kind):
        if _writing and key in _writing:
            return None  # (an INSERT of the writer's own: see writing_rows)
        return event_text(value, kind, conn)

    conn.create_function("event_text", 2, text, deterministic=True)


# -- writing -------------------------------------------------------------------------


class Packer:
    """Compresses lines for one writer, with the archive's newest dictionary.

    ``pack`` compresses one line here and now; ``start`` hands a list of lines to the
    packing thread (see Packing), so that they are compressed while this thread writes
    the batch's search entries: zstd works without Python's lock."""

    def __init__(self, conn: sqlite3.Connection):
        row = None
        try:
            row = conn.execute(
                "SELECT id, data FROM raw_dictionaries ORDER BY rowid DESC LIMIT 1"
            ).fetchone()
        except sqlite3.OperationalError:
            pass  # (an archive being migrated)
        self.data: bytes | None = None
        if row is None:
            self.dict_id = 0
            self.compress = zstandard.ZstdCompressor(level=LEVEL).compress
        else:
            self.dict_id = row[0]
            self.data = _dicts.setdefault(row[0], bytes(row[1]))
            data = zstandard.ZstdCompressionDict(self.data)
            self.compress = zstandard.ZstdCompressor(level=LEVEL, dict_data=data).compress
        self.background: zstandard.ZstdCompressor | None = None  # (made on first use)

    def pack(self, line: bytes) -> bytes:
        return self.compress(line)

    def start(self, lines: list[bytes]) -> Packing:
        """Start compressing these lines on the packing thread; ``.frames()`` waits for
        them: the same frames ``pack`` makes, in the same order."""
        if self.background is None:
            # A compressor of its own (zstd's objects are not shared between threads),
            # with the dictionary digested once: multi_compress_to_buffer would load it
            # again for every list.
            if self.data is None:
                self.background = zstandard.ZstdCompressor(level=LEVEL)
            else:
                data = zstandard.ZstdCompressionDict(self.data)
                data.precompute_compress(level=LEVEL)
                self.background = zstandard.ZstdCompressor(level=LEVEL, dict_data=data)
        return Packing(self.background, lines)


def spare_core() -> bool:
    """Whether a core looks free for the packing thread: the load average of the last
    minute is below the number of cores less one half.

    On a free core the packing thread takes the compression (about 0.4 s of CPU per
    100 MB of lines) off the writer's path: in a 100 MB tool-heavy sync the writer's
    own thread went from 2.5-2.6 to 1.95 s of CPU for the same CPU in all.  On a busy
    machine (load 6-8 on 2 cores) the threads only waited on each other: 8% more CPU,
    and no shorter (docs/benchmarks.md)."""
    try:
        return os.getloadavg()[0] < (os.cpu_count() or 1) - 0.5
    except (AttributeError, OSError):  # (no load average on this system)
        return False


class Packing:
    """Lines being compressed on the packing thread (one per process, started on first
    use).  It compresses the whole list in one call of zstd's
    ``multi_compress_to_buffer``, which runs on a thread of zstd's own without Python's
    lock: the lock changes hands once per list, not once per line (line by line, the
    two threads spent more time handing it over than they saved)."""

    __slots__ = ("compressor", "lines", "done", "result", "error")

    def __init__(self, compressor: zstandard.ZstdCompressor, lines: list[bytes]):
        self.compressor = compressor
        self.lines: list[bytes] | None = lines
        self.done = threading.Event()
        self.result: list[bytes] | None = None
        self.error: BaseException | None = None
        _packing_queue().put(self)

    def run(self) -> None:
        try:
            found = self.compressor.multi_compress_to_buffer(self.lines, threads=1)
            self.result = [segment.tobytes() for segment in found]
        except BaseException as e:  # (MemoryError...): raised by frames(), in the writer
            self.error = e
        finally:
            self.lines = None
            self.done.set()

    def frames(self) -> list[bytes]:
        self.done.wait()
        if self.error is not None:
            raise self.error
        assert self.result is not None
        return self.result


_queue = None  # the packing thread's queue.SimpleQueue of Packing (None: not started)
_queue_lock = threading.Lock()


def _packing_queue():
    global _queue
    with _queue_lock:
        if _queue is None:
            import queue

            _queue = queue.SimpleQueue()
            thread = threading.Thread(target=_pack_forever, args=(_queue,), daemon=True)
            thread.start()
        return _queue


def _pack_forever(jobs) -> None:
    while True:
        jobs.get().run()


def _forget_packing_thread() -> None:
    global _queue, _queue_lock
    _queue, _queue_lock = None, threading.Lock()  # a forked child has no packing thread


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_forget_packing_thread)


def train(samples: list[bytes]) -> zstandard.ZstdCompressionDict | None:
    """A dictionary trained on these lines, or None when they are too few."""
    total = sum(map(len, samples))
    if total < MIN_SAMPLE_BYTES or len(samples) < MIN_SAMPLE_LINES:
        return None
    try:
        # fastcover with fixed parameters: ~40 ms for 2 MiB (the optimising search
        # zstd runs without them takes several times longer for a dictionary within 1%)
        return zstandard.train_dictionary(
            min(DICT_BYTES, total // 8), samples, k=1024, d=8, level=LEVEL
        )
    except zstandard.ZstdError:
        return None


def samples_of(lines: Iterable[bytes], budget: int = SAMPLE_BYTES) -> list[bytes]:
    """The first SAMPLE_LINE_BYTES of each line, until ``budget`` bytes."""
    out: list[bytes] = []
    total = 0
    for line in lines:
        if not line or line.isspace():
            continue
        piece = line[:SAMPLE_LINE_BYTES]
        out.append(piece)
        total += len(piece)
        if total >= budget:
            break
    return out


def has_dictionary(conn: sqlite3.Connection) -> bool:
    return conn.execute("SELECT 1 FROM raw_dictionaries LIMIT 1").fetchone() is not None


def store_dictionary(conn: sqlite3.Connection, trained: zstandard.ZstdCompressionDict) -> int:
    """Keep a trained dictionary (in the caller's transaction); returns its id."""
    from .clock import now_iso

    data = trained.as_bytes()
    dict_id = trained.dict_id()
    conn.execute(
        "INSERT OR IGNORE INTO raw_dictionaries (id, data, created_at) VALUES (?, ?, ?)",
        (dict_id, data, now_iso()),
    )
    _dicts[dict_id] = data
    return dict_id


def archive_samples(conn: sqlite3.Connection, budget: int = SAMPLE_BYTES) -> list[bytes]:
    """Samples from the lines already archived, newest first."""

    def lines():
        for (value,) in conn.execute("SELECT raw FROM events ORDER BY id DESC"):
            yield line_bytes(value, conn) or b""

    return samples_of(lines(), budget)


def repack(conn: sqlite3.Connection, packer: Packer, after_id: int = 0, chunk: int = 2000) -> int:
    """Compress again, with the packer's dictionary, the rows after ``after_id`` stored
    otherwise: as they are (before m703, or copied from such an archive by merge), or
    without a dictionary (before the archive had one).  Rows compressed with another
    dictionary the archive holds (merged from another archive) stay as they are."""
    done = 0
    while True:
        rows = conn.execute(
            "SELECT id, raw FROM events WHERE id > ? ORDER BY id LIMIT ?", (after_id, chunk)
        ).fetchall()
        if not rows:
            return done
        after_id = rows[-1][0]
        updates = []
        for event_id, value in rows:
            if is_packed(value) and (_frame_dict(value) != 0 or not packer.dict_id):
                continue
            updates.append((packer.pack(line_bytes(value, conn) or b""), event_id))
        conn.executemany("UPDATE events SET raw = ? WHERE id = ?", updates)
        done += len(updates)


def _frame_dict(value: bytes) -> int | None:
    try:
        return zstandard.get_frame_parameters(value).dict_id
    except zstandard.ZstdError:
        return None
