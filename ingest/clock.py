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


def parse_ts_or_none(value) -> datetime | None:
    """parse_ts, or None for what is not a timestamp: a line's timestamp is whatever text
    it holds (hostile or damaged lines included)."""
    if not isinstance(value, str):
        return None
    try:
        return parse_ts(value)
    except ValueError:
        return None
