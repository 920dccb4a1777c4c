"""`claude-sessions share`: one planted value of each secret kind in each kind of field
(prompts, answers, thinking, tool input and results, titles, summaries, git branch, the
working directory, subagent meta files, kept tool-results and file-history files,
history.jsonl) is gone from the whole file's bytes and from the full-text index, every
session is still there, and the archive itself is unchanged."""

from __future__ import annotations

import hashlib
import json
import random
import sqlite3
import string
from pathlib import Path

import pytest
import zstandard
from click.testing import CliRunner

from ingest.cli import cli
from ingest.lines import register as register_lines
from ingest.redact import ZSTD_MAGIC as ZSTD
from ingest.sync import run_pass

from .pages_helpers import write_jsonl

SID = "5ea7e000-0000-4000-8000-000000000001"
SID2 = "5ea7e000-0000-4000-8000-000000000002"
AGENT = "a5ecret1"


def secrets(seed: int) -> dict[str, tuple[str, str]]:
    """kind -> (text as it appears, the secret value in it).  Fresh values per seed."""
    rnd = random.Random(seed)

    def chars(n, alphabet=string.ascii_letters + string.digits):
        return "".join(rnd.choice(alphabet) for _ in range(n))

    upper = string.ascii_uppercase + string.digits
    aws_secret = chars(40, string.ascii_letters + string.digits + "/+")
    pem_body = chars(64, string.ascii_letters + string.digits + "+/")
    jwt = "eyJhbGciOiJIUzI1NiJ9.eyJ" + chars(30) + "." + chars(43)
    values = {
        "anthropic-key": "sk-ant-api03-" + chars(90),
        "openai-key": "sk-proj-" + chars(60),
        "aws-key-id": "AKIA" + chars(16, upper),
        "github-token": "ghp_" + chars(36),
        "gitlab-token": "glpat-" + chars(20),
        "slack-token": f"xoxb-{chars(12, string.digits)}-{chars(13, string.digits)}-{chars(24)}",
        "stripe-key": "sk_live_" + chars(24),
        "google-api-key": "AIza" + chars(35),
        "jwt": jwt,
    }
    found = {kind: (value, value) for kind, value in values.items()}
    found["aws-secret-key"] = (f"AWS_SECRET_ACCESS_KEY={aws_secret}", aws_secret)
    found["private-key"] = (
        f"-----BEGIN RSA PRIVATE KEY-----\n{pem_body}\n-----END RSA PRIVATE KEY-----",
        pem_body,
    )
    password = chars(14)
    found["password-in-url"] = (f"postgres://admin:{password}@db.internal:5432/app", password)
    env = chars(18)
    found["env-secret"] = (f"DB_PASSWORD={env}", env)
    return found


def planted(tag: str, seed: int) -> tuple[str, dict]:
    kinds = secrets(seed)
    # Each on a line of its own (.env-style lines only count at the start of a line).
    text = f"{tag}:\n" + "\n".join(f"{shown}\n({kind})" for kind, (shown, _) in kinds.items())
    return text, kinds


class Plants:
    def __init__(self):
        self.values: dict[str, str] = {}
        self.seed = 0

    def __call__(self, tag: str) -> str:
        self.seed += 1
        text, kinds = planted(tag, self.seed)
        for kind, (_, value) in kinds.items():
            self.values[f"{tag}/{kind}"] = value
        return text


def transcript(plant: Plants, session_id: str, home: Path) -> list[dict]:
    def env(uuid, parent, second, **extra):
        return {
            "uuid": uuid,
            "parentUuid": parent,
            "sessionId": session_id,
            "cwd": f"{home}/work/app",
            "gitBranch": plant(f"{session_id}/branch"),
            "version": "2.1.0",
            "timestamp": f"2025-09-0{1 + int(session_id[-1])}T10:00:{second:02d}.000Z",
            **extra,
        }

    def assistant(uuid, parent, second, content):
        return {
            "type": "assistant",
            "requestId": f"req_{session_id}{uuid}",
            "message": {
                "id": f"msg_{session_id}{uuid}",
                "role": "assistant",
                "model": "claude-sonnet-4-5-20250929",
                "content": content,
                "usage": {"input_tokens": 10, "output_tokens": 5},
            },
            **env(uuid, parent, second),
        }

    def user(uuid, parent, second, content, **extra):
        return {
            "type": "user",
            "message": {"role": "user", "content": content},
            **env(uuid, parent, second),
            **extra,
        }

    s = session_id
    return [
        user("u1", None, 1, plant(f"{s}/prompt")),
        assistant("u2", "u1", 2, [{"type": "thinking", "thinking": plant(f"{s}/thinking")}]),
        assistant("u3", "u2", 3, [{"type": "text", "text": plant(f"{s}/answer")}]),
        assistant(
            "u4",
            "u3",
            4,
            [
                {
                    "type": "tool_use",
                    "id": f"toolu_{s[-1]}1",
                    "name": "Bash",
                    "input": {"command": plant(f"{s}/input")},
                },
                {
                    "type": "tool_use",
                    "id": f"toolu_{s[-1]}2",
                    "name": "Task",
                    "input": {"prompt": "go", "description": "sub"},
                },
            ],
        ),
        user(
            "u5",
            "u4",
            5,
            [
                {
                    "type": "tool_result",
                    "tool_use_id": f"toolu_{s[-1]}1",
                    "content": plant(f"{s}/result"),
                }
            ],
            toolUseResult={"stdout": plant(f"{s}/toolUseResult")},
        ),
        {"type": "custom-title", "customTitle": plant(f"{s}/title"), "sessionId": s},
        {"type": "summary", "summary": plant(f"{s}/summary"), "leafUuid": "u5"},
    ]


@pytest.fixture
def archive(tmp_path):
    home = tmp_path / "home" / "alice"
    claude = home / ".claude"
    projects = claude / "projects"
    folder = projects / "-home-alice-work-app"
    plant = Plants()
    for sid in (SID, SID2):
        write_jsonl(folder / f"{sid}.jsonl", transcript(plant, sid, home))
    agents = folder / SID / "subagents"
    write_jsonl(
        agents / f"agent-{AGENT}.jsonl",
        [
            {
                "type": "user",
                "uuid": "a1",
                "parentUuid": None,
                "sessionId": SID,
                "agentId": AGENT,
                "isSidechain": True,
                "cwd": str(home),
                "timestamp": "2025-09-02T10:00:09.000Z",
                "message": {"role": "user", "content": plant("agent/prompt")},
            }
        ],
    )
    (agents / f"agent-{AGENT}.meta.json").write_text(
        json.dumps({"agentType": "general", "description": plant("agent/meta")})
    )
    results = folder / SID / "tool-results"
    results.mkdir(parents=True)
    (results / "toolu_big.txt").write_text(plant("kept/tool-results") * 3)
    history = claude / "file-history" / SID
    history.mkdir(parents=True)
    (history / "abc@v1").write_text(plant("kept/file-history"))
    (claude / "history.jsonl").write_text(
        json.dumps({"display": plant("history/display"), "project": str(home), "timestamp": 1})
        + "\n"
    )
    db = tmp_path / "archive.db"
    run_pass(db, [projects], trigger="cli", claude_dirs=[claude])
    return db, plant.values, home


def file_digest(path: Path) -> tuple[str, float]:
    return hashlib.sha256(path.read_bytes()).hexdigest(), path.stat().st_mtime


def share(*args) -> CliRunner:
    return CliRunner().invoke(cli, ["share", *map(str, args)])


def test_planted_secrets_are_gone_and_sessions_stay(archive, tmp_path, monkeypatch):
    db, values, home = archive
    monkeypatch.setenv("HOME", str(home))
    raw = db.read_bytes() + (Path(f"{db}-wal").read_bytes() if Path(f"{db}-wal").exists() else b"")
    # The archive holds every planted value (else this test proves nothing).
    conn = sqlite3.connect(db)
    register_lines(conn)
    archived = "\n".join(
        str(v)
        for table in ("events", "tool_calls", "sessions", "subagents", "history", "file_contents")
        for row in conn.execute(f"SELECT * FROM {table}")
        for v in row
    ) + "\n".join(r[0] for r in conn.execute("SELECT raw_json(raw) FROM events"))
    unpacked = b"".join(
        zstandard.ZstdDecompressor().decompress(blob) if blob[:4] == ZSTD else blob
        for (blob,) in conn.execute("SELECT data FROM kept_blobs")
    )
    conn.close()
    for where, value in values.items():
        assert value in archived or value.encode() in raw or value.encode() in unpacked, where
    before = file_digest(db)

    dest = tmp_path / "share.db"
    result = share(dest, "--db", db)
    assert result.exit_code == 0, result.output
    assert file_digest(db) == before  # the archive is only read
    assert not Path(f"{dest}-wal").exists() and not Path(f"{dest}-journal").exists()

    data = dest.read_bytes()
    conn = sqlite3.connect(f"file:{dest}?mode=ro", uri=True)
    register_lines(conn)
    left = [where for where, value in values.items() if value.encode() in data]
    assert left == [], left
    # Nothing compressed holds one either.
    for (blob,) in conn.execute("SELECT data FROM kept_blobs"):
        plain = zstandard.ZstdDecompressor().decompress(blob) if blob[:4] == ZSTD else blob
        assert not [w for w, v in values.items() if v.encode() in plain]
    # The full-text indexes know none of them (their terms are stored prefix-compressed,
    # so the bytes alone would not tell), and do know the markers.
    for fts in ("events_fts", "history_fts"):
        for where, value in values.items():
            phrase = '"' + value.replace('"', "") + '"'
            assert conn.execute(
                f"SELECT count(*) FROM {fts} WHERE {fts} MATCH ?", (phrase,)
            ).fetchone() == (0,), (fts, where)
    assert (
        conn.execute(
            "SELECT count(*) FROM events_fts WHERE events_fts MATCH 'REDACTED'"
        ).fetchone()[0]
        > 0
    )
    # Every session is there, and home folders are ~.
    assert sorted(r[0] for r in conn.execute("SELECT session_id FROM sessions")) == [SID, SID2]
    encoded = "".join(c if c.isalnum() else "-" for c in str(home))
    assert str(home).encode() not in data and encoded.encode() not in data
    assert conn.execute("SELECT cwd FROM events WHERE cwd IS NOT NULL LIMIT 1").fetchone() == (
        "~/work/app",
    )
    # Redacted raw lines are still JSON.
    for (line,) in conn.execute("SELECT raw FROM events"):
        json.loads(line)
    conn.close()
    # The report names each kind.
    for kind in secrets(0):
        assert kind in result.output, kind
    assert "Home folders shown as ~" in result.output


def test_export_refuses_a_share_copy(archive, tmp_path):
    db, _, _ = archive
    dest = tmp_path / "share.db"
    assert share(dest, "--db", db).exit_code == 0
    result = CliRunner().invoke(
        cli, ["export", "--all", "-o", str(tmp_path / "out"), "--db", str(dest)]
    )
    assert result.exit_code == 1
    assert "is a share copy" in result.output and "byte for byte" in result.output
    again = share(tmp_path / "again.db", "--db", dest)
    assert again.exit_code == 1 and "already a share copy" in again.output


def test_a_share_copy_reads_in_plain_sqlite(archive, tmp_path):
    """The archive works events.text out from raw with a function of its own; a share
    copy stores it, so plain SQLite reads every column."""
    db, _, _ = archive
    dest = tmp_path / "plain.db"
    assert share(dest, "--db", db, "--keep-paths").exit_code == 0
    conn = sqlite3.connect(dest)  # no functions registered
    rows = conn.execute("SELECT * FROM events").fetchall()
    hidden = {row[1]: row[6] for row in conn.execute("PRAGMA table_xinfo(events)")}
    texts = conn.execute("SELECT count(*) FROM events WHERE text IS NOT NULL").fetchone()[0]
    conn.close()
    assert rows and not [name for name, kind in hidden.items() if kind in (2, 3)]
    assert texts > len(rows) / 3


def test_choosing_and_dropping(archive, tmp_path):
    db, values, home = archive
    dest = tmp_path / "one.db"
    result = share(
        dest,
        "--db",
        db,
        "--session",
        SID,
        "--drop",
        "thinking",
        "--drop",
        "tool-results",
        "--drop",
        "file-history",
        "--keep-paths",
    )
    assert result.exit_code == 0, result.output
    conn = sqlite3.connect(dest)
    register_lines(conn)
    assert [r[0] for r in conn.execute("SELECT session_id FROM sessions")] == [SID]
    assert conn.execute("SELECT count(*) FROM events WHERE session_id = ?", (SID2,)).fetchone() == (
        0,
    )
    assert conn.execute(
        "SELECT count(*) FROM api_calls WHERE session_id = ?", (SID2,)
    ).fetchone() == (0,)
    assert conn.execute("SELECT count(*) FROM history").fetchone() == (0,)  # no session: left out
    assert conn.execute(
        "SELECT count(*) FROM kept_files WHERE area IN ('tool-results', 'file-history')"
    ).fetchone() == (0,)
    assert conn.execute(
        "SELECT count(*) FROM events WHERE kind = 'thinking' AND text IS NOT NULL"
    ).fetchone() == (0,)
    thinking = conn.execute("SELECT raw FROM events WHERE kind = 'thinking'").fetchone()[0]
    assert "[DROPPED]" in thinking
    assert conn.execute("SELECT count(*) FROM tool_calls WHERE result IS NOT NULL").fetchone() == (
        0,
    )
    assert str(home) in conn.execute("SELECT group_concat(cwd) FROM events").fetchone()[0]
    conn.close()
    assert not [v for v in values.values() if v.encode() in dest.read_bytes()]
    raw = tmp_path / "noraw.db"
    assert share(raw, "--db", db, "--drop", "raw").exit_code == 0
    conn = sqlite3.connect(raw)
    register_lines(conn)
    assert conn.execute("SELECT count(*) FROM events WHERE raw != ''").fetchone() == (0,)
    conn.close()


@pytest.mark.parametrize(
    "args, message",
    [
        (["--session", "ffffffff"], "No archived session matches"),
        (["--since", "July"], "is not a date"),
        (["--drop", "everything"], "Invalid value for '--drop'"),
    ],
)
def test_bad_requests_are_one_sentence(archive, tmp_path, args, message):
    db, _, _ = archive
    result = share(tmp_path / "x.db", "--db", db, *args)
    assert result.exit_code == 2 if "Invalid" in message or "date" in message else 1
    assert message in result.output and "Traceback" not in result.output
    assert not (tmp_path / "x.db").exists() and not (tmp_path / "x.db.partial").exists()


def test_dest_must_be_new(archive, tmp_path):
    db, _, _ = archive
    (tmp_path / "taken.db").write_text("x")
    result = share(tmp_path / "taken.db", "--db", db)
    assert result.exit_code == 1 and "already exists" in result.output


def test_without_pyarrow_the_same_copy(archive, tmp_path, monkeypatch):
    """pyarrow only speeds the look for candidates up: without it, the same redaction."""
    db, values, _ = archive
    fast, slow = tmp_path / "fast.db", tmp_path / "slow.db"
    assert share(fast, "--db", db).exit_code == 0
    monkeypatch.setitem(__import__("sys").modules, "pyarrow", None)
    monkeypatch.setitem(__import__("sys").modules, "pyarrow.compute", None)
    assert share(slow, "--db", db).exit_code == 0
    query = "SELECT id, text, raw FROM events ORDER BY id"
    a, b = sqlite3.connect(fast), sqlite3.connect(slow)
    assert a.execute(query).fetchall() == b.execute(query).fetchall()
    a.close()
    b.close()
    assert not [v for v in values.values() if v.encode() in slow.read_bytes()]
