"""Export the archive as Parquet, one folder per table, for engines past one machine.

``claude-sessions export --format parquet -o DIR`` writes::

    DIR/events/host=<host>/day=<YYYY-MM-DD>/part-<N>.parquet
    DIR/api_calls/…   DIR/tool_calls/…   DIR/sessions/…   DIR/subagents/…
    DIR/_claude_sessions_export.json      (the watermark)

Hive-style partitions (``host=…/day=…``, values URL-quoted; a row without a day is in
``day=__HIVE_DEFAULT_PARTITION__``, which DuckDB, Spark, Trino and ClickHouse read as
NULL).  ``host`` and ``day`` are in the folder names only, not in the files.

Incremental: the watermark file records, for every export into the folder, the largest
``events.id`` it covered.  A later export into the same folder writes ``part-<N+1>``
files with only what is new, so a row is never written twice:

- ``events``: rows with ``id`` above the last watermark (the archive's ids only grow);
- ``api_calls``: rows whose counted line (``event_id``) is above the last watermark and
  whose ``dedup_key`` no earlier export wrote (when a later line of the same response
  wins the deduplication, the row already exported stays);
- ``tool_calls``: a call is written once it is complete (its call and its result are
  archived), in the export whose window holds the later of the two lines; a call still
  incomplete at the export after the one that first saw it (an interrupted call, a
  result whose call was never archived) is written then, as it is, and its result, if
  it ever comes, is not written again;
- ``sessions`` and ``subagents`` are small and their rows change as sessions go on:
  every export rewrites them whole (``part-0.parquet`` per partition).

pyarrow is imported lazily: it is the ``parquet`` extra
(``pip install 'datasette-claude-sessions[parquet]'``).
"""

from __future__ import annotations

import json
import os
import shutil
import sqlite3
import time
from array import array
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from urllib.parse import quote

from .archive import connect_readonly

STATE_FILE = "_claude_sessions_export.json"
STATE_VERSION = 1
DEFAULT_PARTITION = "__HIVE_DEFAULT_PARTITION__"
TABLES = ("events", "api_calls", "tool_calls", "sessions", "subagents")
BATCH_BYTES = 8 << 20  # flush a row group once its rows hold about this many bytes
BATCH_ROWS = 20_000
BUFFERED_BYTES = 32 << 20  # and the largest buffer whenever all partitions hold more
CHUNK_ROWS = 1000  # rows read from SQLite, and turned into Arrow, at a time
COMPRESSION = "zstd"

INSTALL_HINT = (
    "The Parquet export needs pyarrow: pip install 'datasette-claude-sessions[parquet]' "
    "(or pip install pyarrow)."
)


class ParquetExportError(Exception):
    """A request the Parquet export cannot satisfy (one sentence)."""


def _pyarrow():
    try:
        import pyarrow
        import pyarrow.parquet
    except ImportError:
        raise ParquetExportError(INSTALL_HINT) from None
    return pyarrow, pyarrow.parquet


# Columns of each table: (name, SQL expression, Arrow type name).  host and day are the
# partition keys, selected first as "_host" and "_day".
_EVENTS = [
    ("id", "e.id", "int64"),
    ("file_id", "e.file_id", "int64"),
    ("rel_path", "f.rel_path", "string"),
    ("generation", "e.generation", "int64"),
    ("byte_offset", "e.byte_offset", "int64"),
    ("line_number", "e.line_number", "int64"),
    ("type", "e.type", "string"),
    ("subtype", "e.subtype", "string"),
    ("kind", "e.kind", "string"),
    ("uuid", "e.uuid", "string"),
    ("parent_uuid", "e.parent_uuid", "string"),
    ("session_id", "e.session_id", "string"),
    ("agent_id", "e.agent_id", "string"),
    ("is_sidechain", "e.is_sidechain", "int64"),
    ("is_meta", "e.is_meta", "int64"),
    ("timestamp", "e.timestamp", "string"),
    ("cwd", "e.cwd", "string"),
    ("git_branch", "e.git_branch", "string"),
    ("version", "e.version", "string"),
    ("role", "e.role", "string"),
    ("model", "e.model", "string"),
    ("message_id", "e.message_id", "string"),
    ("request_id", "e.request_id", "string"),
    ("stop_reason", "e.stop_reason", "string"),
    ("text", "e.text", "string"),
]
_API_CALLS = [
    ("id", "a.id", "int64"),
    ("event_id", "a.event_id", "int64"),
    ("dedup_key", "a.dedup_key", "string"),
    ("message_id", "a.message_id", "string"),
    ("request_id", "a.request_id", "string"),
    ("session_id", "a.session_id", "string"),
    ("agent_id", "a.agent_id", "string"),
    ("project", "a.project", "string"),
    ("is_sidechain", "a.is_sidechain", "int64"),
    ("model", "a.model", "string"),
    ("timestamp", "a.timestamp", "string"),
    ("input_tokens", "a.input_tokens", "int64"),
    ("output_tokens", "a.output_tokens", "int64"),
    ("cache_creation_5m_tokens", "a.cache_creation_5m_tokens", "int64"),
    ("cache_creation_1h_tokens", "a.cache_creation_1h_tokens", "int64"),
    ("cache_read_tokens", "a.cache_read_tokens", "int64"),
    ("total_tokens", "a.total_tokens", "int64"),
    ("web_search_requests", "a.web_search_requests", "int64"),
    ("speed", "a.speed", "string"),
    ("cost_usd", "a.cost_usd", "float64"),
    ("priced", "a.priced", "int64"),
]
_TOOL_CALLS = [
    ("tool_use_id", "t.tool_use_id", "string"),
    ("session_id", "t.session_id", "string"),
    ("agent_id", "t.agent_id", "string"),
    ("name", "t.name", "string"),
    ("input", "t.input", "string"),
    ("event_id", "t.event_id", "int64"),
    ("result_event_id", "t.result_event_id", "int64"),
    (
        "result",
        "coalesce(t.result, (SELECT text FROM events WHERE id = t.result_event_id))",
        "string",
    ),
    ("is_error", "t.is_error", "int64"),
    ("started_at", "t.started_at", "string"),
    ("finished_at", "t.finished_at", "string"),
    ("duration_ms", "t.duration_ms", "int64"),
]
_SESSIONS = [
    ("session_id", "s.session_id", "string"),
    ("project_path", "s.project_path", "string"),
    ("project_dir", "s.project_dir", "string"),
    ("title", "s.title", "string"),
    ("title_source", "s.title_source", "string"),
    ("first_prompt", "s.first_prompt", "string"),
    ("first_timestamp", "s.first_timestamp", "string"),
    ("last_timestamp", "s.last_timestamp", "string"),
    ("events", "s.events", "int64"),
    ("prompts", "s.prompts", "int64"),
    ("assistant_messages", "s.assistant_messages", "int64"),
    ("tool_calls", "s.tool_calls", "int64"),
    ("subagents", "s.subagents", "int64"),
    ("models", "s.models", "string"),
    ("git_branch", "s.git_branch", "string"),
    ("version", "s.version", "string"),
    ("sources_exist", "s.sources_exist", "int64"),
]
_SUBAGENTS = [
    ("agent_id", "g.agent_id", "string"),
    ("session_id", "g.session_id", "string"),
    ("tool_use_id", "g.tool_use_id", "string"),
    ("agent_type", "g.agent_type", "string"),
    ("description", "g.description", "string"),
    ("first_timestamp", "g.first_timestamp", "string"),
    ("last_timestamp", "g.last_timestamp", "string"),
    ("events", "g.events", "int64"),
]


def _select(columns: list[tuple[str, str, str]], host: str, day: str, rest: str) -> str:
    cols = ", ".join(expr for _, expr, _ in columns)
    return f"SELECT {host} AS _host, {day} AS _day, {cols} {rest}"


_EVENT_DAY = "coalesce(date(e.timestamp), date(f.mtime, 'unixepoch'))"
# Which partition each new event goes to (a first pass that reads no text nor raw).
_EVENT_PARTITIONS_SQL = (
    f"SELECT f.host, {_EVENT_DAY}, e.id FROM events e JOIN sync_files f ON f.id = e.file_id "
    "WHERE e.id > ? AND e.id <= ?"
)


def _events_sql(raw: bool) -> tuple[list, str]:
    """The columns of events, and the SELECT of the events whose ids a JSON array lists."""
    columns = list(_EVENTS)
    if raw:
        columns.append(("raw", "raw_json(e.raw)", "raw"))  # (ingest.lines)
    sql = _select(
        columns,
        "f.host",
        _EVENT_DAY,
        "FROM events e JOIN sync_files f ON f.id = e.file_id "
        "WHERE e.id IN (SELECT value FROM json_each(?)) ORDER BY e.id",
    )
    return columns, sql


_API_SQL = _select(
    _API_CALLS,
    "a.host",
    "date(a.timestamp)",
    "FROM api_calls a WHERE a.event_id > ? AND a.event_id <= ? ORDER BY a.event_id",
)
# A tool call's host: the file of its call line, else of its result line.
_TOOL_HOST = (
    "(SELECT f.host FROM events e JOIN sync_files f ON f.id = e.file_id "
    "WHERE e.id = coalesce(t.event_id, t.result_event_id))"
)
_TOOL_DAY = "date(coalesce(t.started_at, t.finished_at))"
# complete calls whose later line is in the window and that were not written as
# incomplete before (first line at or below the watermark before last); incomplete
# calls whose first line was already there at the last export.
_TOOL_WHERE = """
    (t.event_id IS NOT NULL AND t.result_event_id IS NOT NULL
        AND max(t.event_id, t.result_event_id) > :w1
        AND max(t.event_id, t.result_event_id) <= :w
        AND min(t.event_id, t.result_event_id) > :w2)
    OR ((t.event_id IS NULL OR t.result_event_id IS NULL)
        AND coalesce(t.event_id, t.result_event_id) > :w2
        AND coalesce(t.event_id, t.result_event_id) <= :w1)"""
_TOOL_PARTITIONS_SQL = (
    f"SELECT {_TOOL_HOST}, {_TOOL_DAY}, t.rowid FROM tool_calls t WHERE {_TOOL_WHERE}"
)
_TOOL_SQL = _select(
    _TOOL_CALLS,
    _TOOL_HOST,
    _TOOL_DAY,
    "FROM tool_calls t WHERE t.rowid IN (SELECT value FROM json_each(?)) ORDER BY t.rowid",
)
_SESSIONS_SQL = _select(
    _SESSIONS, "s.host", "date(s.first_timestamp)", "FROM sessions s ORDER BY s.session_id"
)
_SUBAGENTS_SQL = _select(
    _SUBAGENTS,
    "coalesce((SELECT host FROM sync_files WHERE id = g.file_id), "
    "(SELECT host FROM sessions WHERE session_id = g.session_id))",
    "date(g.first_timestamp)",
    "FROM subagents g ORDER BY g.agent_id",
)


def _partitions(conn: sqlite3.Connection, sql: str, params) -> list[tuple[tuple, array]]:
    """The ids of the new rows (sql selects host, day, id) by partition, in order."""
    partitions: dict[tuple, array] = {}
    for host, day, row_id in conn.execute(sql, params):
        ids = partitions.get((host, day))
        if ids is None:
            ids = partitions[(host, day)] = array("q")
        ids.append(row_id)
    return sorted(partitions.items(), key=lambda item: tuple(str(v) for v in item[0]))


def _write_by_partition(conn, writers, partitions, sql: str, progress=None) -> None:
    """Rows of each partition in turn (sql selects the rows whose ids a JSON array
    lists), closing its file before the next: one file open at a time.  Rows arrive in
    id order, so a day's rows come from many files synced at different times, and with
    every day's file open at once a 1 GB export peaked at 290-340 MB."""
    for key, ids in partitions:
        for start in range(0, len(ids), CHUNK_ROWS):
            chunk = json.dumps(ids[start : start + CHUNK_ROWS].tolist())
            rows = conn.execute(sql, (chunk,)).fetchall()
            writers.add_many(rows)
            if progress is not None:
                progress(len(rows))
        writers.finish(key)
    writers.close()


def _partition_dir(table_dir: Path, host, day) -> Path:
    h = quote(str(host), safe="") if host not in (None, "") else DEFAULT_PARTITION
    d = quote(str(day), safe="") if day not in (None, "") else DEFAULT_PARTITION
    return table_dir / f"host={h}" / f"day={d}"


class _Writers:
    """One ParquetWriter per partition of one table, row groups flushed by size.

    Rows arrive in chunks (``CHUNK_ROWS`` from SQLite at a time); each chunk becomes an
    Arrow batch at once, split by partition, and those pieces wait for their row group.
    Kept as Python rows until then (a tuple and a str per value), the same bytes took
    twice the memory, and the heap they came from stayed the process's (the export of a
    1 GB archive peaked at 290-330 MB)."""

    def __init__(self, pa, pq, table_dir: Path, columns, name: str):
        self.pa = pa
        self.pq = pq
        self.table_dir = table_dir
        self.name = name
        types = {"int64": pa.int64(), "float64": pa.float64(), "string": pa.string()}
        self.names = [c[0] for c in columns]
        self.raw = [i for i, c in enumerate(columns) if c[2] == "raw"]
        self.schema = pa.schema([(n, types["string" if t == "raw" else t]) for n, _, t in columns])
        self.open: dict[tuple, list] = {}  # (host, day) -> [writer, pieces, bytes, rows]
        self.buffered = 0
        self.rows = 0
        self.files: list[Path] = []

    def add_many(self, rows: list[tuple]) -> None:
        """Buffer rows (``(host, day, *values)``), writing a row group wherever enough
        waits."""
        if not rows:
            return
        pa = self.pa
        columns = list(zip(*rows, strict=True))
        keys = list(zip(columns[0], columns[1], strict=True))
        values = columns[2:]
        for i in self.raw:
            values[i] = [None if v is None else _raw_text(v) for v in values[i]]
        batch = pa.record_batch(
            [pa.array(col, type=f.type) for col, f in zip(values, self.schema, strict=True)],
            schema=self.schema,
        )
        del columns, values
        groups: dict[tuple, list[int]] = {}
        for i, key in enumerate(keys):
            groups.setdefault(key, []).append(i)
        for key, indices in groups.items():
            piece = batch if len(groups) == 1 else batch.take(pa.array(indices))
            entry = self.open.get(key)
            if entry is None:
                entry = self.open[key] = [None, [], 0, 0]
            size = piece.nbytes
            entry[1].append(piece)
            entry[2] += size
            entry[3] += piece.num_rows
            self.buffered += size
            if entry[2] >= BATCH_BYTES or entry[3] >= BATCH_ROWS:
                self._flush(key, entry)
        self.rows += len(rows)
        while self.buffered >= BUFFERED_BYTES:  # many partitions at once: bound the memory
            biggest = max(self.open, key=lambda k: self.open[k][2])
            self._flush(biggest, self.open[biggest])

    def _flush(self, key, entry) -> None:
        if not entry[1]:
            return
        if entry[0] is None:
            folder = _partition_dir(self.table_dir, *key)
            folder.mkdir(parents=True, exist_ok=True)
            path = folder / self.name
            entry[0] = self.pq.ParquetWriter(path, self.schema, compression=COMPRESSION)
            self.files.append(path)
        entry[0].write_table(self.pa.Table.from_batches(entry[1], schema=self.schema))
        self.buffered -= entry[2]
        entry[1] = []
        entry[2] = 0
        entry[3] = 0

    def finish(self, key) -> None:
        """Write what waits for partition ``key`` and close its file (no more rows for
        it): an open ParquetWriter keeps about 1.7 MB of buffers, for each partition."""
        entry = self.open.pop(key, None)
        if entry is not None:
            self._flush(key, entry)
            if entry[0] is not None:
                entry[0].close()

    def close(self) -> None:
        for key, entry in self.open.items():
            self._flush(key, entry)
            if entry[0] is not None:
                entry[0].close()
        self.open = {}
        if not any(self.table_dir.glob("*/*/*.parquet")):
            # An empty table still gets a file (no rows, NULL host and day), so that
            # readers find its columns and a glob over the folder matches.
            folder = _partition_dir(self.table_dir, None, None)
            folder.mkdir(parents=True, exist_ok=True)
            self.pq.write_table(self.schema.empty_table(), folder / "part-0.parquet")


def _raw_text(value) -> str:
    """A line's raw bytes as text (invalid UTF-8 replaced: `export` gives the exact bytes)."""
    if isinstance(value, str):
        return value
    return bytes(value).decode("utf-8", errors="replace")


def _chunks(conn: sqlite3.Connection, sql: str, params) -> Iterator[list[tuple]]:
    cur = conn.execute(sql, params)
    while True:
        rows = cur.fetchmany(CHUNK_ROWS)
        if not rows:
            return
        yield rows


def read_state(out: Path) -> dict | None:
    path = out / STATE_FILE
    if not path.exists():
        return None
    try:
        state = json.loads(path.read_text())
        if state.get("version") != STATE_VERSION or not isinstance(state.get("exports"), list):
            raise ValueError
    except (ValueError, OSError):
        raise ParquetExportError(
            f"{path} is not a watermark this version of claude-sessions wrote; "
            "export into a new folder."
        ) from None
    return state


def archive_id(conn: sqlite3.Connection) -> str:
    """What identifies an archive across exports: its first event and first file."""
    row = conn.execute(
        "SELECT (SELECT path FROM sync_files ORDER BY id LIMIT 1), "
        "(SELECT uuid FROM events ORDER BY id LIMIT 1)"
    ).fetchone()
    return json.dumps(list(row))


def export_parquet(
    db_path: str | os.PathLike,
    out_dir: str | os.PathLike,
    *,
    raw: bool = True,
    progress: Callable[[int], None] | None = None,
) -> dict:
    """Write the new rows of every table under out_dir (see the module docstring).

    ``progress`` is called with numbers of events written.  Returns a summary: rows per
    table, files, bytes written, seconds, the export's sequence number and watermark.
    """
    pa, pq = _pyarrow()
    started = time.perf_counter()
    out = Path(out_dir)
    state = read_state(out)
    conn = connect_readonly(db_path)
    try:
        ident = archive_id(conn)
        if state is None:
            state = {"version": STATE_VERSION, "archive": ident, "raw": raw, "exports": []}
        else:
            if state.get("archive") != ident:
                raise ParquetExportError(
                    f"{out} holds the export of another archive; export into a new folder."
                )
            if state.get("raw") != raw:
                was = "with" if state.get("raw") else "without"
                raise ParquetExportError(
                    f"{out} was exported {was} raw; use the same choice "
                    f"({'drop' if state.get('raw') else 'add'} --no-raw) or a new folder."
                )
        exports = state["exports"]
        seq = len(exports) + 1
        w1 = exports[-1]["events_max_id"] if exports else 0
        w2 = exports[-2]["events_max_id"] if len(exports) > 1 else 0
        w = conn.execute("SELECT coalesce(max(id), 0) FROM events").fetchone()[0]
        out.mkdir(parents=True, exist_ok=True)
        part = f"part-{seq}.parquet"
        for table in TABLES[:3]:  # what an interrupted export with this number left
            for leftover in (out / table).glob(f"*/*/{part}"):
                leftover.unlink()
        counts: dict[str, int] = {}
        files: list[Path] = []

        ev_columns, ev_sql = _events_sql(raw)
        writers = _Writers(pa, pq, out / "events", ev_columns, part)
        partitions = _partitions(conn, _EVENT_PARTITIONS_SQL, (w1, w))
        _write_by_partition(conn, writers, partitions, ev_sql, progress)
        counts["events"], files = writers.rows, files + writers.files

        seen_keys = _exported_keys(pa, out / "api_calls") if exports else set()
        writers = _Writers(pa, pq, out / "api_calls", _API_CALLS, part)
        key_index = 2 + [c[0] for c in _API_CALLS].index("dedup_key")
        for rows in _chunks(conn, _API_SQL, (w1, w)):
            writers.add_many(
                [r for r in rows if r[key_index] is None or r[key_index] not in seen_keys]
            )
        writers.close()
        counts["api_calls"], files = writers.rows, files + writers.files

        writers = _Writers(pa, pq, out / "tool_calls", _TOOL_CALLS, part)
        partitions = _partitions(conn, _TOOL_PARTITIONS_SQL, {"w": w, "w1": w1, "w2": w2})
        _write_by_partition(conn, writers, partitions, _TOOL_SQL)
        counts["tool_calls"], files = writers.rows, files + writers.files

        for table, columns, sql in (
            ("sessions", _SESSIONS, _SESSIONS_SQL),
            ("subagents", _SUBAGENTS, _SUBAGENTS_SQL),
        ):
            fresh = out / f".{table}.new"
            shutil.rmtree(fresh, ignore_errors=True)
            writers = _Writers(pa, pq, fresh, columns, "part-0.parquet")
            for rows in _chunks(conn, sql, ()):
                writers.add_many(rows)
            writers.close()
            fresh.mkdir(exist_ok=True)
            old = out / f".{table}.old"
            shutil.rmtree(old, ignore_errors=True)
            if (out / table).exists():
                (out / table).rename(old)
            fresh.rename(out / table)
            shutil.rmtree(old, ignore_errors=True)
            counts[table] = writers.rows
            files += [out / table / p.relative_to(fresh) for p in writers.files]
    finally:
        conn.close()

    exports.append(
        {
            "seq": seq,
            "at": datetime.now(UTC).isoformat(timespec="seconds").replace("+00:00", "Z"),
            "events_max_id": w,
            "rows": counts,
        }
    )
    tmp = out / (STATE_FILE + ".tmp")
    tmp.write_text(json.dumps(state, indent=2) + "\n")
    os.replace(tmp, out / STATE_FILE)
    return {
        "seq": seq,
        "watermark": w,
        "rows": counts,
        "files": len(files),
        "bytes": sum(p.stat().st_size for p in files),
        "seconds": round(time.perf_counter() - started, 2),
    }


def _exported_keys(pa, table_dir: Path) -> set[str]:
    """The dedup_keys of the api_calls rows earlier exports wrote."""
    if not table_dir.exists():
        return set()
    import pyarrow.dataset as ds

    dataset = ds.dataset(table_dir, format="parquet", partitioning="hive")
    keys = dataset.to_table(columns=["dedup_key"]).column("dedup_key")
    return {k for k in keys.to_pylist() if k is not None}


def export_parquet_command(session_id, export_all, output, force, replaced, no_raw, db_path):
    """`claude-sessions export --format parquet`: checks, progress bar, summary line."""
    import sys

    import click

    from . import archive
    from .archive import database_errors
    from .paths import default_db_path

    if session_id:
        raise click.ClickException(
            "--format parquet exports the whole archive; leave out SESSION_ID (filter by "
            "session_id in the query engine instead)."
        )
    if replaced:
        raise click.ClickException("--replaced goes with --format files.")
    db = (db_path or default_db_path()).expanduser()
    archive.open_read(db).close()
    output = output.expanduser()
    if output.exists() and not output.is_dir():
        raise click.ClickException(f"{output} is not a folder.")
    if (
        output.exists()
        and not (output / STATE_FILE).exists()
        and any(output.iterdir())
        and not force
    ):
        raise click.ClickException(
            f"{output} is not empty and holds no earlier Parquet export; pass --force to "
            "write into it."
        )
    try:
        _pyarrow()
        with database_errors(db):
            total = archive.connect_readonly(db)
            try:
                events = total.execute("SELECT coalesce(max(id), 0) FROM events").fetchone()[0]
            finally:
                total.close()
            state = read_state(output)
            since = state["exports"][-1]["events_max_id"] if state and state["exports"] else 0
            if sys.stderr.isatty():
                with click.progressbar(
                    length=max(events - since, 0), label="events", file=sys.stderr
                ) as bar:
                    summary = export_parquet(db, output, raw=not no_raw, progress=bar.update)
            else:
                summary = export_parquet(db, output, raw=not no_raw)
    except ParquetExportError as e:
        raise click.ClickException(str(e)) from None
    except OSError as e:
        raise click.ClickException(f"Cannot write to {output}: {e.strerror or e}.") from None
    rows = ", ".join(f"{n:,} {table}" for table, n in summary["rows"].items())
    click.echo(
        f"Export {summary['seq']} to {output}: {rows} "
        f"({summary['files']:,} files, {summary['bytes'] / 1e6:,.1f} MB) in "
        f"{summary['seconds']:g} s."
    )
