"""Whether a ``sync_heartbeat`` row means a watch sidecar is archiving into *this* file.

The row is copied with everything else by ``backup``, ``merge`` or a plain ``cp``, so its
pid and a fresh ``beat_at`` prove nothing about a copy.  The sidecar therefore writes the
archive file's own identity (device and inode of the database file it opened) with every
beat; a sidecar counts as alive only when

- its last beat is fresh and its state is not ``stopped``;
- it beat on this machine and its pid is alive here;
- the identity it wrote is this file's (a copy has another inode).

A row written before the identity existed (``archive`` NULL) is judged by the rest.
"""

from __future__ import annotations

import datetime as dt
import os
import socket

FRESH_SECONDS = 10.0


def archive_identity(db_path: str | os.PathLike) -> str | None:
    """``<st_dev>:<st_ino>`` of the database file, or None when it cannot be stat'ed."""
    try:
        st = os.stat(db_path)
    except OSError:
        return None
    return f"{st.st_dev}:{st.st_ino}"


def database_file(conn) -> str:
    """The file a sqlite3 connection's main database is (\'\' for an in-memory one)."""
    for _seq, name, path in conn.execute("PRAGMA database_list"):
        if name == "main":
            return path or ""
    return ""


def pid_alive(pid: int | None) -> bool:
    if not pid:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    except OSError:
        return False
    return True


def _age(beat_at: str | None, now: dt.datetime) -> float | None:
    if not beat_at:
        return None
    try:
        moment = dt.datetime.fromisoformat(beat_at.replace("Z", "+00:00"))
    except ValueError:
        return None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=dt.UTC)
    return (now - moment).total_seconds()


def judge(beat: dict | None, db_path: str | os.PathLike, now: dt.datetime | None = None) -> dict:
    """``alive`` (bool), ``age_seconds`` and ``why`` (a short reason when not alive) for a
    heartbeat row (a dict with pid, host, beat_at, state and, when present, archive)."""
    if not beat:
        return {"alive": False, "age_seconds": None, "why": "no sidecar has run on this archive"}
    now = now or dt.datetime.now(dt.UTC)
    age = _age(beat.get("beat_at"), now)
    why = None
    if beat.get("state") == "stopped":
        why = "it stopped"
    elif age is None or age > FRESH_SECONDS:
        why = "no heartbeat for a while"
    elif beat.get("host") != socket.gethostname():
        why = f"the heartbeat was written on another machine ({beat.get('host')})"
    elif not pid_alive(beat.get("pid")):
        why = f"no process {beat.get('pid')} on this machine"
    elif beat.get("archive") and beat["archive"] != archive_identity(db_path):
        why = "the heartbeat was copied from another archive file (a backup, merge or copy)"
    return {"alive": why is None, "age_seconds": age, "why": why}


def died(why: str | None) -> bool:
    """Whether a verdict's reason means the sidecar was killed or crashed (it could not
    say "stopped"), rather than that the row is someone else's."""
    return bool(why) and why.startswith(("no heartbeat", "no process"))
