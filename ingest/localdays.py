"""Local dates in SQL: ``claude_sessions_day(timestamp)`` and
``claude_sessions_midnight(day)`` for one time zone.

The web app's dashboard and canned queries bucket days with these, so a day starts at
local midnight in the plugin setting ``timezone`` (UTC by default), as
`claude-sessions cost` does in its own zone.  Timestamps are the archive's ISO 8601 UTC
strings; a day is ``YYYY-MM-DD``.
"""

from __future__ import annotations

from datetime import UTC, datetime
from functools import lru_cache
from zoneinfo import ZoneInfo


def functions(zone: str | None):
    """(day, midnight) for ``zone`` (None or "UTC": UTC)."""
    tz = None if zone in (None, "", "UTC") else ZoneInfo(zone)

    @lru_cache(maxsize=65536)
    def day_of_minute(prefix: str) -> str | None:
        try:
            ts = datetime.fromisoformat(prefix).replace(tzinfo=UTC)
        except ValueError:
            return None
        return (ts.astimezone(tz) if tz else ts).date().isoformat()

    def day(timestamp):
        if not isinstance(timestamp, str) or len(timestamp) < 10:
            return None
        if tz is None:
            return day_of_minute(timestamp[:10])
        return day_of_minute(timestamp[:16])  # offsets are whole minutes

    @lru_cache(maxsize=4096)
    def midnight(value):
        """The UTC instant local ``value`` (a date) starts, as a timestamp prefix."""
        if not isinstance(value, str):
            return None
        try:
            start = datetime.fromisoformat(value[:10])
        except ValueError:
            return None
        if tz is not None:
            start = start.replace(tzinfo=tz).astimezone(UTC)
        return start.strftime("%Y-%m-%dT%H:%M:%S")

    return day, midnight


def register(conn, zone: str | None) -> None:
    day, midnight = functions(zone)
    conn.create_function("claude_sessions_day", 1, day, deterministic=True)
    conn.create_function("claude_sessions_midnight", 1, midnight, deterministic=True)
