"""Timestamps as the archive writes them: ISO 8601 UTC with milliseconds and a Z, the
spelling Claude Code uses, so they sort and compare as strings."""

from __future__ import annotations

from datetime import UTC, datetime


def now_iso() -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")
