"""`claude-sessions export --format markdown|html --redact`: the readable exports drawn
from a share copy (ingest/share.py's redaction).  Every secret planted by test_share's
archive that the plain export shows (prompt, thinking, answer, tool input and result,
...) is gone from the redacted files, which still
hold the conversation and the redaction markers; home folders become ~; the archive is
only read and no scratch copy is left behind."""

from __future__ import annotations

import html
import tempfile
from pathlib import Path

import pytest
from click.testing import CliRunner

from ingest.cli import cli

from .test_share import SID, SID2, archive, file_digest  # noqa: F401  (archive: a fixture)


def export(*args) -> CliRunner:
    return CliRunner().invoke(cli, ["export", *map(str, args)])


def shown(text: str, values: dict[str, str]) -> set[str]:
    """The planted values the text holds, as they are or HTML-escaped."""
    return {w for w, v in values.items() if v in text or html.escape(v) in text}


def scratch_dirs() -> set[str]:
    return {
        p.name for p in Path(tempfile.gettempdir()).glob("claude-sessions-redact-*") if p.is_dir()
    }


@pytest.mark.parametrize("fmt,suffix", [("markdown", ".md"), ("html", ".html")])
def test_redacted_export_shows_no_planted_secret(archive, tmp_path, monkeypatch, fmt, suffix):  # noqa: F811
    db, values, home = archive
    monkeypatch.setenv("HOME", str(home))
    before = file_digest(db)
    scratch_before = scratch_dirs()

    plain_dir, redacted_dir = tmp_path / "plain", tmp_path / "redacted"
    result = export(SID, "--format", fmt, "-o", plain_dir, "--db", db)
    assert result.exit_code == 0, result.output
    plain = (plain_dir / f"{SID}{suffix}").read_text()
    # The plain export shows secrets of every kind from many fields (else this proves
    # nothing): prompt, thinking, answer, tool input, tool result.
    leaked = shown(plain, values)
    fields = {w.rsplit("/", 1)[0].removeprefix(f"{SID}/") for w in leaked}
    assert {"prompt", "thinking", "answer", "input", "result"} <= fields, fields
    assert len(leaked) >= 5 * 13
    assert str(home) in plain

    result = export(SID, "--format", fmt, "--redact", "-o", redacted_dir, "--db", db)
    assert result.exit_code == 0, result.output
    assert "redacted:" in result.output and "secrets replaced" in result.output
    files = sorted(p.name for p in redacted_dir.iterdir())
    assert files == [f"{SID}{suffix}"]
    redacted = (redacted_dir / files[0]).read_text()
    assert shown(redacted, values) == set()
    assert str(home) not in redacted and "~/work/app" in redacted
    assert "[REDACTED:anthropic-key]" in redacted and "[REDACTED:private-key]" in redacted
    # Still the conversation: the other session is not in it, the tool call is.
    assert SID2 not in redacted and "Bash" in redacted
    assert file_digest(db) == before  # the archive is only read
    assert scratch_dirs() == scratch_before  # the share copy is gone


def test_redacted_static_site(archive, tmp_path, monkeypatch):  # noqa: F811
    db, values, home = archive
    monkeypatch.setenv("HOME", str(home))
    out = tmp_path / "site"
    result = export("--all", "--format", "html", "--redact", "-o", out, "--db", db)
    assert result.exit_code == 0, result.output
    assert sorted(p.name for p in out.iterdir()) == sorted(
        ["index.html", f"{SID}.html", f"{SID2}.html"]
    )
    for page in out.iterdir():
        text = page.read_text()
        assert shown(text, values) == set(), page.name
        assert str(home) not in text
    # The titles on the index were planted with secrets too: shown redacted.
    assert "[REDACTED:" in (out / "index.html").read_text()


@pytest.mark.parametrize(
    "args,message",
    [
        (["--all", "--redact"], "--redact goes with --format markdown or html"),
        (["--all", "--format", "parquet", "--redact"], "--redact goes with --format markdown"),
        (["nosuchsession", "--format", "html", "--redact"], "No session nosuchsession in"),
    ],
)
def test_redact_bad_requests_are_one_sentence(archive, tmp_path, args, message):  # noqa: F811
    db, _, _ = archive
    result = export(*args, "-o", tmp_path / "out", "--db", db)
    assert result.exit_code == 1, result.output
    assert message in result.output and "Traceback" not in result.output
