"""Timestamps as the archive writes them: ISO 8601 UTC with milliseconds and a Z, the
spelling Claude Code uses, so they sort and compare as strings."""

from __future__ import annotations

from datetime import UTC, datetime


def now_iso() -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def parse_ts(value: str) -> datetime:
    """An ISO-8601 timestamp as an aware UTC datetime."""
    ts = datetime.fromisoformat(value.replace("Z", "+00:00"))
    return ts.replace(tzinfo=UTC) if ts.tzinfo is None else ts.astimezone(UTC)
