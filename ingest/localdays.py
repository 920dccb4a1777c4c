"""Local days: the one rule for which day (week, month) a call falls on, in one time zone.

- A timestamp is a time when its first 16 characters are ``YYYY-MM-DDTHH:MM`` (ASCII
  digits) naming a real date and time; it is read as UTC (the archive's timestamps are
  ISO 8601 UTC strings, as Claude Code writes them).  Anything else (a line's timestamp is
  whatever text it holds) falls on no day.  ``quarter()`` gives the UTC quarter hour a
  time starts in: the engine sums the calls per quarter hour (``usage_sums.slot``).
- A local day starts at local midnight in the zone.  Every zone in use today is offset
  from UTC by a whole number of quarter hours, so a quarter hour lies in one local day:
  ``day_of()`` of a quarter hour (or of any timestamp) is exact.
- ``midnight_utc()`` is where a local day starts, as a UTC timestamp prefix
  (``YYYY-MM-DDTHH:MM``) that compares with timestamps and quarter hours as strings.

In SQL: ``claude_sessions_day(timestamp_or_slot)`` and ``claude_sessions_midnight(day)``
(``register``), which the usage_by_day/week/month views, the dashboard and the local
canned queries use; the plugin registers them in its setting ``timezone`` (UTC by
default), every connection of the CLI in UTC.  `claude-sessions cost` folds the same
quarter hours into days with the same functions (``ingest/cost_report.py``).
"""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta, tzinfo
from functools import lru_cache

# (No zoneinfo or re at import: the status line imports this module and counts its
# milliseconds.)
QUARTER = timedelta(minutes=15)
# Minutes 00-59 (ASCII digits) and the quarter hour each starts in.
_QUARTER_OF = {f"{m:02d}": f"{m // 15 * 15:02d}" for m in range(60)}


@lru_cache(maxsize=65536)
def _hour_is_time(hour: str) -> bool:
    """Whether ``YYYY-MM-DDTHH`` (ASCII digits) names a real date and hour."""
    if hour[4] != "-" or hour[7] != "-" or hour[10] != "T":
        return False
    digits = hour[:4] + hour[5:7] + hour[8:10] + hour[11:13]
    if not (digits.isascii() and digits.isdigit()):
        return False
    try:
        datetime(int(hour[:4]), int(hour[5:7]), int(hour[8:10]), int(hour[11:13]))
    except ValueError:
        return False
    return True


def minute(timestamp) -> datetime | None:
    """The UTC minute a timestamp starts with (an aware datetime), None if not a time."""
    if quarter(timestamp) is None:
        return None
    return datetime.fromisoformat(timestamp[:16]).replace(tzinfo=UTC)


def quarter(timestamp) -> str | None:
    """The UTC quarter hour a timestamp falls in, ``YYYY-MM-DDTHH:MM`` (minutes 00, 15,
    30 or 45), or None when it is not a time (the sync engine calls it for every API
    call: the date and hour are checked once per hour)."""
    if type(timestamp) is not str or len(timestamp) < 16 or timestamp[13] != ":":
        return None
    q = _QUARTER_OF.get(timestamp[14:16])
    if q is None or not _hour_is_time(timestamp[:13]):
        return None
    return timestamp[:14] + q


def next_quarter(slot: str) -> str:
    """The quarter hour after ``slot``, spelled like it."""
    start = datetime.fromisoformat(slot)
    return (start + QUARTER).strftime("%Y-%m-%dT%H:%M")


# The machine's own zone when its IANA name is unknown (the C library's rules).
SYSTEM = "system"


def zone(name: str | None) -> tzinfo | None:
    """The zone of an IANA name; None for UTC (None, "" or "UTC")."""
    if name in (None, "", "UTC"):
        return None
    from zoneinfo import ZoneInfo

    return ZoneInfo(name)


def local_time(moment: datetime, tz) -> datetime:
    """An aware moment in ``tz`` (None: UTC; SYSTEM: the machine's zone)."""
    if tz is SYSTEM:
        return moment.astimezone()
    return moment.astimezone(tz or UTC)


def local_date(moment: datetime, tz) -> date:
    """The date of an aware moment in ``tz`` (None: UTC; SYSTEM: the machine's zone)."""
    return local_time(moment, tz).date()


def midnight_utc(day: date, tz) -> str:
    """The UTC instant local ``day`` starts in ``tz`` (None: UTC; SYSTEM: the machine's
    zone), as ``YYYY-MM-DDTHH:MM``: a timestamp (or quarter hour) is on that day or later
    iff it compares >= as a string."""
    if tz is SYSTEM:
        start = datetime(day.year, day.month, day.day).astimezone()
    else:
        start = datetime(day.year, day.month, day.day, tzinfo=tz or UTC)
    return start.astimezone(UTC).strftime("%Y-%m-%dT%H:%M")


def functions(zone_name: str | None):
    """(day, midnight) SQL functions for a zone (None or "UTC": UTC)."""
    tz = zone(zone_name)

    @lru_cache(maxsize=65536)
    def day_of_minute(head: str) -> str | None:
        moment = minute(head)
        return None if moment is None else local_date(moment, tz).isoformat()

    def day(timestamp):
        if not isinstance(timestamp, str) or len(timestamp) < 16:
            return None
        return day_of_minute(timestamp[:16])

    @lru_cache(maxsize=4096)
    def midnight(value):
        """Where local ``value`` (a date, YYYY-MM-DD) starts, as a UTC prefix."""
        if not isinstance(value, str):
            return None
        try:
            return midnight_utc(date.fromisoformat(value[:10]), tz)
        except ValueError:
            return None

    return day, midnight


def register(conn, zone_name: str | None) -> None:
    day, midnight = functions(zone_name)
    conn.create_function("claude_sessions_day", 1, day, deterministic=True)
    conn.create_function("claude_sessions_midnight", 1, midnight, deterministic=True)
