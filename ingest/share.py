"""`claude-sessions share DEST`: a redacted copy of the archive, for publishing.

The archive is only read (a consistent snapshot, SQLite's VACUUM INTO).  The copy is then
changed in place, table by table, driven by the schema rather than by a list of tables,
so a table or column added later is covered without touching this module:

1. **Choose** (--project, --session, --since, --until): rows of every table with a
   ``session_id`` column (but events) outside the chosen sessions go, then every row
   whose foreign key points at a row that went (events follow sync_files, api_calls
   follow events, and so on, until nothing changes); blobs no version uses go.
2. **Drop** (--drop raw, thinking, tool-results, file-history).
3. **Redact** every TEXT, BLOB and untyped column of every table (zstd frames are
   decompressed and compressed again): secrets become ``[REDACTED:<kind>]`` (see
   redact.py) and home directories ``~`` (unless --keep-paths).  With pyarrow installed
   (the parquet extra) values are first looked at with RE2, so only the few that may
   hold a secret or a home folder go through the Python rules.
4. **Rebuild** the full-text indexes from the redacted text, record the share in the
   ``share_copy`` table (``export`` refuses such a copy), and VACUUM INTO DEST (the
   scratch copy is deleted), so nothing of the
   original text survives in free pages; the copy has no -wal file.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import re
import sqlite3
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

from . import usage_sums
from .archive import connect_readonly
from .lines import is_packed, line_bytes
from .lines import register as register_lines
from .redact import ZSTD_MAGIC, Redactor

BATCH_ROWS = 5000
SHARE_TABLE = "share_copy"
DROPS = ("raw", "thinking", "tool-results", "file-history")
TEXT_AFFINITY = re.compile(r"CHAR|CLOB|TEXT|BLOB|JSON", re.I)
SKIP_TABLES = {"_sqlite_migrations", SHARE_TABLE}
# RE2 (pyarrow): a value that may hold a secret: each rule of redact.py, loosened (no
# look-around, shorter runs), so every value a rule matches matches this too.
MAY_HOLD_SECRET = "|".join(
    [
        r"sk-ant-[A-Za-z0-9_-]{20}",
        r"sk-(?:proj|svcacct|admin)-[A-Za-z0-9_-]{20}",
        r"T3BlbkFJ",
        r"sk-[A-Za-z0-9]{48}",
        r"(?:A3T[A-Z0-9]|ABIA|ACCA|AKIA|ASIA)[0-9A-Z]{16}",
        r"(?i:aws_?secret_?access_?key|aws_?secret_?key|secretaccesskey)",
        r"(?:ghp|gho|ghu|ghs|ghr)_[A-Za-z0-9_]{36}",
        r"github_pat_",
        r"(?:glpat|gldt|glft|glsoat|glrt|glcbt|glimt|glptt|glagent|gloas)-[A-Za-z0-9_-]{20}",
        r"GR1348941[A-Za-z0-9_-]{20}",
        r"xox[abposr]-[A-Za-z0-9-]{10}",
        r"hooks\.slack\.com/services/",
        r"[rsp]k_(?:test|live)_[0-9a-zA-Z]{24}",
        r"AIza[0-9A-Za-z_-]{35}",
        r"pypi-AgE",
        r"SG\.[a-zA-Z0-9_-]{22}\.",
        r"AccountKey=",
        r"[MNO][a-zA-Z\d_-]{23,25}\.[a-zA-Z\d_-]{6}\.",
        r"PRIVATE KEY|PuTTY-User-Key",
        r"eyJ[A-Za-z0-9_-]{8,}\.eyJ",
        r"://[^:/?#\[\]@!$&'()*+,;=\s]+:[^:/?#\[\]@!$&'()*+,;=\s]+@",
        r"(?:SECRET|TOKEN|PASSW(?:OR)?D|PASSPHRASE|API_?KEY|ACCESS_?KEY|PRIVATE_?KEY|"
        r"AUTH_?KEY|CREDENTIALS?|_PWD|DSN)[A-Z0-9_]*=",
    ]
)
MAY_HOLD_HOME = r"/home/|/Users/|/root|\\Users|-home-|-Users-"


class ShareError(Exception):
    """A request share cannot satisfy (one sentence)."""


@dataclass
class Options:
    projects: tuple[str, ...] = ()
    sessions: tuple[str, ...] = ()
    since: str | None = None
    until: str | None = None
    drop: tuple[str, ...] = ()
    keep_paths: bool = False


@dataclass
class Result:
    sessions: int = 0
    counts: Counter = field(default_factory=Counter)
    seconds: float = 0.0
    size: int = 0


def share(source: Path, dest: Path, options: Options, progress=None) -> Result:
    """Write the redacted copy of ``source`` to ``dest`` (which must not exist)."""
    started = time.monotonic()
    partial = dest.with_name(dest.name + ".partial")
    vacuumed = dest.with_name(dest.name + ".vacuumed")
    scratch = (partial, Path(f"{partial}-journal"), vacuumed)
    for leftover in scratch:
        leftover.unlink(missing_ok=True)
    conn = connect_readonly(source)
    try:
        if not _has_table(conn, "sync_files"):
            raise ShareError(f"{source} is not a claude-sessions archive (no sync_files table).")
        if _has_table(conn, SHARE_TABLE):
            raise ShareError(f"{source} is already a share copy; share the archive itself.")
        conn.execute("VACUUM INTO ?", (str(partial),))
    finally:
        conn.close()
    try:
        result = _make_share(partial, vacuumed, options, progress)
        os.replace(vacuumed, dest)
    finally:
        for leftover in scratch:
            leftover.unlink(missing_ok=True)
    result.seconds = time.monotonic() - started
    result.size = dest.stat().st_size
    return result


def _make_share(path: Path, out: Path, options: Options, progress) -> Result:
    """Change the scratch copy ``path``, then write it compacted to ``out`` (VACUUM INTO:
    a new file without free pages, so nothing of the original text is left in it)."""
    conn = sqlite3.connect(path, isolation_level=None)
    try:
        conn.execute("PRAGMA journal_mode = OFF")  # a scratch file until it is renamed
        conn.execute("PRAGMA synchronous = OFF")
        conn.execute("PRAGMA foreign_keys = OFF")
        conn.execute("BEGIN")
        unpack_lines(conn)
        chosen = choose(conn, options)
        drop(conn, options.drop)
        triggers = _drop_triggers(conn)
        redactor = Redactor(keep_paths=options.keep_paths)
        redact_tables(conn, redactor, progress)
        for sql in triggers:
            conn.execute(sql)
        rehash_blobs(conn)
        rebuild_fts(conn)
        if _has_table(conn, "usage_sums"):
            # the sums of the api_calls left (and redacted), not of the whole archive
            usage_sums.rebuild(conn)
        mark(conn, options, redactor.counts)
        sessions = conn.execute("SELECT count(*) FROM sessions").fetchone()[0]
        conn.execute("COMMIT")
        conn.execute("VACUUM INTO ?", (str(out),))
    finally:
        conn.close()
    del chosen
    return Result(sessions=sessions, counts=redactor.counts)


# --- the schema -----------------------------------------------------------------------------


def _has_table(conn, name: str) -> bool:
    return bool(
        conn.execute(
            "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = ?", (name,)
        ).fetchone()
    )


def tables(conn) -> list[str]:
    """Ordinary tables: no views, FTS tables and their shadow tables, or SQLite's own."""
    found = []
    virtual = [
        name
        for (name,) in conn.execute(
            "SELECT name FROM sqlite_master WHERE type = 'table' AND sql LIKE 'CREATE VIRTUAL%'"
        )
    ]
    for (name,) in conn.execute(
        "SELECT name FROM sqlite_master WHERE type = 'table' ORDER BY name"
    ):
        if name.startswith("sqlite_") or name in SKIP_TABLES or name in virtual:
            continue
        if any(name.startswith(v + "_") for v in virtual):
            continue
        found.append(name)
    return found


def unpack_lines(conn) -> None:
    """events.raw as the lines themselves (TEXT when UTF-8, else a BLOB), and no zstd
    dictionary: one trained on the archive's lines holds pieces of them, secrets too
    (ingest.lines).  The copy's lines are then redacted like any other text."""
    if not _has_table(conn, "events"):
        return
    register_lines(conn)
    last = 0
    while True:
        rows = conn.execute(
            "SELECT id, raw FROM events WHERE id > ? ORDER BY id LIMIT ?", (last, BATCH_ROWS)
        ).fetchall()
        if not rows:
            break
        last = rows[-1][0]
        updates = []
        for event_id, raw in rows:
            if is_packed(raw):
                data = line_bytes(raw, conn)
                try:
                    updates.append((data.decode("utf-8"), event_id))
                except UnicodeDecodeError:
                    updates.append((data, event_id))
        conn.executemany("UPDATE events SET raw = ? WHERE id = ?", updates)
    if _has_table(conn, "raw_dictionaries"):
        conn.execute("DELETE FROM raw_dictionaries")
    _store_text(conn)


def _store_text(conn) -> None:
    """events.text as a stored column again (the archive works it out from raw when read,
    with a function plain SQLite lacks): the copy reads anywhere, its text is redacted
    like any column, and --drop raw keeps it."""
    hidden = {row[1]: row[6] for row in conn.execute("PRAGMA table_xinfo(events)")}
    if not hidden.get("text"):
        return
    view = conn.execute(
        "SELECT sql FROM sqlite_master WHERE type = 'view' AND name = 'tool_calls_with_result'"
    ).fetchone()
    conn.execute("DROP VIEW IF EXISTS tool_calls_with_result")
    conn.execute("ALTER TABLE events ADD COLUMN text_stored TEXT")
    conn.execute("UPDATE events SET text_stored = text")
    conn.execute("ALTER TABLE events DROP COLUMN text")
    conn.execute("ALTER TABLE events RENAME COLUMN text_stored TO text")
    if view:
        conn.execute(view[0])


def columns(conn, table: str) -> list[tuple[str, str, bool, int]]:
    """(name, declared type, not null, pk position) of each column."""
    return [
        (name, ctype or "", bool(notnull), pk)
        for _, name, ctype, notnull, _, pk in conn.execute(f"PRAGMA table_info([{table}])")
    ]


def text_columns(conn, table: str) -> list[str]:
    """Columns that may hold text: TEXT, BLOB, JSON or no declared type."""
    return [
        name
        for name, ctype, _, _ in columns(conn, table)
        if not ctype or TEXT_AFFINITY.search(ctype)
    ]


def _rowid_key(conn, table: str) -> str:
    sql = conn.execute("SELECT sql FROM sqlite_master WHERE name = ?", (table,)).fetchone()[0]
    if "WITHOUT ROWID" in sql.upper():
        keys = [name for name, _, _, pk in sorted(columns(conn, table), key=lambda c: c[3]) if pk]
        return ", ".join(f"[{k}]" for k in keys)
    return "rowid"


# --- 1. choose ------------------------------------------------------------------------------


def choose(conn, options: Options) -> set[str] | None:
    """Keep the chosen sessions (None: all) and what belongs to them."""
    if not (options.projects or options.sessions or options.since or options.until):
        return None
    where, params = [], []
    if options.projects:
        marks = ", ".join("?" * len(options.projects))
        where.append(
            f"(s.project_path IN ({marks}) OR s.project_dir IN ({marks}) "
            f"OR s.project_path IN (SELECT path FROM projects WHERE name IN ({marks})))"
        )
        params += [*options.projects] * 3
    if options.sessions:
        ors = " OR ".join("s.session_id LIKE ? || '%'" for _ in options.sessions)
        where.append(f"({ors})")
        params += list(options.sessions)
    if options.since:
        where.append("s.last_timestamp >= ?")
        params.append(options.since)
    if options.until:
        where.append("s.first_timestamp < date(?, '+1 day')")
        params.append(options.until)
    chosen = {
        sid
        for (sid,) in conn.execute(
            f"SELECT s.session_id FROM sessions s WHERE {' AND '.join(where)}", params
        )
    }
    if not chosen:
        raise ShareError("No archived session matches --project/--session/--since/--until.")
    conn.execute("CREATE TEMP TABLE chosen (session_id TEXT PRIMARY KEY)")
    conn.executemany("INSERT INTO chosen VALUES (?)", [(s,) for s in chosen])
    for table in tables(conn):
        if table == "events":
            continue  # follows sync_files (lines of a file without a sessionId stay)
        if "session_id" in [c[0] for c in columns(conn, table)]:
            conn.execute(
                f"DELETE FROM [{table}] WHERE session_id IS NULL "
                "OR session_id NOT IN (SELECT session_id FROM chosen)"
            )
    prune(conn)
    return chosen


def prune(conn) -> None:
    """Delete rows whose foreign key points at a row that is gone, until none is left;
    then the projects without a session and the blobs without a version."""
    changed = True
    while changed:
        changed = False
        for table in tables(conn):
            for fk in conn.execute(f"PRAGMA foreign_key_list([{table}])").fetchall():
                parent, column, parent_column = fk[2], fk[3], fk[4]
                if not _has_table(conn, parent):
                    continue
                parent_column = parent_column or "rowid"
                cursor = conn.execute(
                    f"DELETE FROM [{table}] WHERE [{column}] IS NOT NULL AND [{column}] NOT IN "
                    f"(SELECT [{parent_column}] FROM [{parent}])"
                )
                changed = changed or cursor.rowcount > 0
    if _has_table(conn, "projects"):
        conn.execute(
            "DELETE FROM projects WHERE path NOT IN "
            "(SELECT project_path FROM sessions WHERE project_path IS NOT NULL)"
        )
    if _has_table(conn, "kept_blobs") and _has_table(conn, "kept_versions"):
        conn.execute("DELETE FROM kept_blobs WHERE hash NOT IN (SELECT hash FROM kept_versions)")


# --- 2. drop --------------------------------------------------------------------------------


def drop(conn, what: tuple[str, ...]) -> None:
    if "raw" in what:
        for table in tables(conn):
            for name, _, notnull, _ in columns(conn, table):
                if name == "raw":
                    empty = "''" if notnull else "NULL"
                    conn.execute(f"UPDATE [{table}] SET raw = {empty}")
    if "thinking" in what:
        _blank_events(conn, "thinking", _drop_thinking)
    if "tool-results" in what:
        _blank_events(conn, "tool_result", _drop_tool_results)
        if "result" in [c[0] for c in columns(conn, "tool_calls")]:
            conn.execute("UPDATE tool_calls SET result = NULL")
        _drop_kept(conn, "tool-results")
    if "file-history" in what:
        _drop_kept(conn, "file-history")
    prune(conn)


def _drop_kept(conn, area: str) -> None:
    if _has_table(conn, "kept_files"):
        conn.execute("DELETE FROM kept_files WHERE area = ?", (area,))


def _blank_events(conn, kind: str, edit) -> None:
    """events of one kind: text emptied, raw rewritten by ``edit`` (a JSON object)."""
    names = [c[0] for c in columns(conn, "events")]
    if "text" in names:
        conn.execute("UPDATE events SET text = NULL WHERE kind = ?", (kind,))
    if "raw" not in names:
        return
    updates = []
    for rowid, raw in conn.execute("SELECT id, raw FROM events WHERE kind = ?", (kind,)):
        new = _edit_json(raw, edit)
        if new is not None:
            updates.append((new, rowid))
    conn.executemany("UPDATE events SET raw = ? WHERE id = ?", updates)


def _edit_json(raw, edit):
    compressed = isinstance(raw, bytes) and raw[:4] == b"\x28\xb5\x2f\xfd"
    if compressed:
        import zstandard

        raw = zstandard.ZstdDecompressor().decompress(raw)
    try:
        record = json.loads(raw)
    except (TypeError, ValueError):
        return None
    edit(record)
    text = json.dumps(record, ensure_ascii=False, separators=(",", ":"))
    if compressed:
        import zstandard

        return zstandard.ZstdCompressor(level=3).compress(text.encode())
    return text.encode() if isinstance(raw, bytes) else text


def _content(record) -> list:
    message = record.get("message") if isinstance(record, dict) else None
    content = message.get("content") if isinstance(message, dict) else None
    return content if isinstance(content, list) else []


def _drop_thinking(record) -> None:
    for block in _content(record):
        if isinstance(block, dict) and block.get("type") in ("thinking", "redacted_thinking"):
            block["thinking"] = "[DROPPED]"
            block.pop("signature", None)
            block.pop("data", None)


def _drop_tool_results(record) -> None:
    for block in _content(record):
        if isinstance(block, dict) and block.get("type") == "tool_result":
            block["content"] = "[DROPPED]"
    if isinstance(record, dict):
        record.pop("toolUseResult", None)


# --- 3. redact ------------------------------------------------------------------------------


def _drop_triggers(conn) -> list[str]:
    """Drop every trigger (the FTS ones would index each change; the index is rebuilt
    once instead) and return their SQL to create them again."""
    found = conn.execute(
        "SELECT name, sql FROM sqlite_master WHERE type = 'trigger' AND sql IS NOT NULL"
    ).fetchall()
    for name, _ in found:
        conn.execute(f"DROP TRIGGER [{name}]")
    return [sql for _, sql in found]


def redact_tables(conn, redactor: Redactor, progress=None) -> None:
    work = [(t, text_columns(conn, t)) for t in tables(conn)]
    work = [(t, c) for t, c in work if c]
    if progress is not None:
        progress.length = sum(
            conn.execute(f"SELECT count(*) FROM [{t}]").fetchone()[0] for t, _ in work
        )
    for table, names in work:
        key = _rowid_key(conn, table)
        select = ", ".join(f"[{n}]" for n in names)
        sets = ", ".join(f"[{n}] = ?" for n in names)
        keyed = key == "rowid"
        if keyed:
            last = None
            while True:
                rows = conn.execute(
                    f"SELECT rowid, {select} FROM [{table}] "
                    + ("WHERE rowid > ? " if last is not None else "")
                    + f"ORDER BY rowid LIMIT {BATCH_ROWS}",
                    (last,) if last is not None else (),
                ).fetchall()
                if not rows:
                    break
                last = rows[-1][0]
                _redact_rows(conn, redactor, table, names, sets, "rowid = ?", rows, 1)
                if progress is not None:
                    progress.update(len(rows))
        else:
            keys = key.split(", ")
            rows = conn.execute(f"SELECT {key}, {select} FROM [{table}]").fetchall()
            where = " AND ".join(f"{k} = ?" for k in keys)
            _redact_rows(conn, redactor, table, names, sets, where, rows, len(keys))
            if progress is not None:
                progress.update(len(rows))


def _redact_rows(conn, redactor, table, names, sets, where, rows, nkeys) -> None:
    new_columns = [
        redact_column(redactor, [row[nkeys + i] for row in rows]) for i in range(len(names))
    ]
    for j, row in enumerate(rows):
        old = row[nkeys:]
        new = [column[j] for column in new_columns]
        if all(n is o for n, o in zip(new, old, strict=True)):
            continue
        key = row[:nkeys]
        try:
            conn.execute(f"UPDATE [{table}] SET {sets} WHERE {where}", (*new, *key))
        except sqlite3.IntegrityError:
            # Two values became one (two home folders -> ~): both rows stay, told apart.
            tag = " #" + "-".join(map(str, key))
            new = [
                n + tag if isinstance(n, str) and n is not o else n
                for n, o in zip(new, old, strict=True)
            ]
            conn.execute(f"UPDATE [{table}] SET {sets} WHERE {where}", (*new, *key))


def redact_column(redactor: Redactor, values: list) -> list:
    """The redacted values of one column (the same object where nothing changed)."""
    probes = [_probe(v) for v in values]
    if not any(probes):
        return values
    try:
        import pyarrow as pa
        import pyarrow.compute as pc
    except ImportError:  # no RE2 look: every value goes through the rules' anchors
        return [_redact_value(redactor, v, True, True) for v in values]
    array = pa.array(probes, pa.large_string())
    suspect = pc.match_substring_regex(array, MAY_HOLD_SECRET).to_pylist()
    if redactor.keep_paths:
        homes = [False] * len(values)
    else:
        look = MAY_HOLD_HOME
        if redactor.home:
            look += "|" + re.escape(redactor.home) + "|" + re.escape(redactor.encoded_home)
        homes = pc.match_substring_regex(array, look).to_pylist()
    out = []
    for value, secret, home in zip(values, suspect, homes, strict=True):
        if secret or home:
            new = _redact_value(redactor, value, secret, home)
            out.append(value if new == value else new)
        else:
            out.append(value)
    return out


def _redact_value(redactor: Redactor, value, secret: bool, home: bool):
    if not isinstance(value, str):
        return redactor.value(value)  # bytes: decoded, zstd frames decompressed
    if secret:
        value = redactor.secrets(value)
    return redactor.paths(value) if home else value


def _probe(value) -> str | None:
    """The text of a value for the RE2 look (bytes decoded, zstd frames decompressed)."""
    if isinstance(value, str):
        return value
    if isinstance(value, bytes):
        if value[:4] == ZSTD_MAGIC:
            import zstandard

            value = zstandard.ZstdDecompressor().decompress(value)
        return value.decode("utf-8", "replace")
    return None


def rehash_blobs(conn) -> None:
    """kept_blobs is content-addressed: a redacted blob gets the hash (and size) of its
    new content, and the versions follow, so no hash of the original text is left."""
    if not (_has_table(conn, "kept_blobs") and _has_table(conn, "kept_versions")):
        return
    import zstandard

    from .digest import blake2b

    changes = []
    for digest, compression, data in conn.execute(
        "SELECT hash, compression, data FROM kept_blobs"
    ).fetchall():
        plain = zstandard.ZstdDecompressor().decompress(data) if compression == "zstd" else data
        if isinstance(plain, str):
            plain = plain.encode()
        new = blake2b(plain, digest_size=32).hexdigest()
        if new != digest:
            changes.append((new, len(plain), digest))
    for new, size, old in changes:
        if conn.execute("SELECT 1 FROM kept_blobs WHERE hash = ?", (new,)).fetchone():
            conn.execute("DELETE FROM kept_blobs WHERE hash = ?", (old,))
        else:
            conn.execute(
                "UPDATE kept_blobs SET hash = ?, size = ? WHERE hash = ?", (new, size, old)
            )
        conn.execute("UPDATE kept_versions SET hash = ?, size = ? WHERE hash = ?", (new, size, old))


# --- 4. rebuild and mark --------------------------------------------------------------------


def rebuild_fts(conn) -> None:
    """Rebuild each FTS5 index from its (redacted) content table; an FTS table that
    keeps its own copy of the text is redacted like any table and optimized."""
    for name, sql in conn.execute(
        "SELECT name, sql FROM sqlite_master WHERE type = 'table' AND sql LIKE 'CREATE VIRTUAL%'"
    ).fetchall():
        if "fts5" not in sql.lower():
            continue
        if re.search(r"content\s*=\s*(?!''|\"\")", sql, re.I):
            conn.execute(f"INSERT INTO [{name}]([{name}]) VALUES ('rebuild')")
        else:
            conn.execute(f"INSERT INTO [{name}]([{name}]) VALUES ('delete-all')")
            raise ShareError(
                f"The full-text table {name} keeps its own text; share cannot copy it."
            )


def mark(conn, options: Options, counts: Counter) -> None:
    conn.execute(
        f"CREATE TABLE {SHARE_TABLE} (id INTEGER PRIMARY KEY CHECK (id = 1), created_at TEXT, "
        "options TEXT, replaced TEXT)"
    )
    conn.execute(
        f"INSERT INTO {SHARE_TABLE} VALUES (1, ?, ?, ?)",
        (
            dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
            json.dumps(
                {
                    "projects": list(options.projects),
                    "sessions": list(options.sessions),
                    "since": options.since,
                    "until": options.until,
                    "drop": list(options.drop),
                    "keep_paths": options.keep_paths,
                }
            ),
            json.dumps(dict(sorted(counts.items()))),
        ),
    )


def is_share_copy(conn) -> bool:
    return _has_table(conn, SHARE_TABLE)
