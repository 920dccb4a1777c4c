"""The rows of `claude-sessions cost`: usage summed per period, session, project, model,
agent type or 5-hour block, each with its per-model breakdown.

Every grouping sums ``usage_sums`` (the sums of api_calls the engine keeps; api_calls
itself for another cost expression) per (key, model) in SQL and folds the models into
the row in Python, so the row totals and the breakdown come from one query and always
agree.
Days, weeks and months are local dates in a ``Clock``'s zone: calls are summed per UTC
hour (per quarter hour in zones with a half- or quarter-hour offset) and the hours are
folded into local days.
"""

from __future__ import annotations

import os
import re
from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from . import blocks as five_hour
from . import localdays
from .usage import METRICS

GROUPINGS = ("day", "week", "month", "session", "project", "model", "agent", "block")
TIME_GROUPINGS = ("day", "week", "month", "session", "block")
TOKEN_SUMS = """count(*), sum(input_tokens), sum(output_tokens),
    sum(cache_creation_5m_tokens + cache_creation_1h_tokens), sum(cache_read_tokens),
    sum(total_tokens), sum({cost}), sum({cost} IS NULL)"""


class Source:
    """Where a report adds up the calls: ``usage_sums`` (the sums the engine keeps per UTC
    quarter hour, session, agent, model, project and host) for the stored costs, or
    ``api_calls`` (every call) for another cost expression (``--pricing``).  ``time`` is
    the column ``--since``/``--until`` compare with local midnights."""

    def __init__(self, cost: str = "cost_usd"):
        if cost == "cost_usd":
            self.table, self.time = "usage_sums", "slot"
            self.sums = """sum(calls), sum(input_tokens), sum(output_tokens),
    sum(cache_creation_5m_tokens + cache_creation_1h_tokens), sum(cache_read_tokens),
    sum(total_tokens), sum(cost_usd), sum(unpriced_calls)"""
            self.last = "max(last_call)"
            self.hour, self.quarter = "substr(slot, 1, 13) || ':00'", "slot"
        else:
            # (claude_sessions_quarter: the quarter hour by the one rule, ingest/localdays)
            self.table, self.time = "api_calls", "timestamp"
            self.sums = TOKEN_SUMS.format(cost=cost)
            self.last = "max(timestamp)"
            self.hour = "substr(claude_sessions_quarter(timestamp), 1, 13) || ':00'"
            self.quarter = "claude_sessions_quarter(timestamp)"
        self.cost = cost


# How a project is named wherever a person reads it (the web app, the dashboard, `cost`):
# the last component of its working directory, else the encoded folder name.
PROJECT_NAME_SQL = (
    "coalesce((SELECT name FROM projects p WHERE p.project_dir = {col} LIMIT 1), {col})"
)
MAIN_THREAD = "main"
_DATE = re.compile(r"^(\d{4})-?(\d{2})-?(\d{2})$")


class DateError(ValueError):
    pass


def parse_day(value: str | None) -> date | None:
    """A date given as YYYY-MM-DD (ISO) or YYYYMMDD (ccusage's form)."""
    if value is None:
        return None
    m = _DATE.match(value.strip())
    if not m or ("-" in value and value.count("-") != 2):
        raise DateError(value)
    try:
        return date(int(m[1]), int(m[2]), int(m[3]))
    except ValueError:
        raise DateError(value) from None


def local_zone_name() -> str | None:
    """This machine's IANA time zone name ($TZ, else /etc/localtime's target), if known."""
    name = os.environ.get("TZ", "").lstrip(":")
    if not name:
        target = os.path.realpath("/etc/localtime")
        name = target.split("/zoneinfo/", 1)[1] if "/zoneinfo/" in target else ""
    try:
        ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        return None
    return name


class Clock:
    """Turns UTC timestamps into local dates in one time zone (None: this machine's), by
    the one rule for days (ingest/localdays.py)."""

    def __init__(self, tz):
        self.tz = tz
        if tz is not None:
            self.zone = tz
            self.name = self.description = getattr(tz, "key", None) or str(tz)
            return
        # Not the abbreviation of today's offset ("PST" would be wrong for June dates).
        offset = datetime.now().astimezone().strftime("%z")
        known = local_zone_name()
        self.zone = ZoneInfo(known) if known else localdays.SYSTEM
        self.name = known or f"UTC{offset[:3]}:{offset[3:]}"
        self.description = f"local time ({self.name})"

    def local(self, ts: datetime) -> datetime:
        return localdays.local_time(ts, self.zone)

    def midnight_utc(self, day: date) -> str:
        """The UTC instant at which ``day`` starts here, as ``YYYY-MM-DDTHH:MM``."""
        return localdays.midnight_utc(day, self.zone)

    def today(self) -> date:
        return self.local(datetime.now(UTC)).date()


def bucket_label(by: str, day: date) -> str:
    if by == "week":
        return (day - timedelta(days=day.weekday())).isoformat()
    if by == "month":
        return day.strftime("%Y-%m")
    return day.isoformat()


def _zero() -> list:
    return [0, 0, 0, 0, 0, 0, None, 0]


def _add(acc: list, values) -> None:
    for i, value in enumerate(values):
        if value is None:
            continue
        acc[i] = value if acc[i] is None else acc[i] + value


class Rows:
    """Rows keyed in first-seen order, each with its sums and sums per model."""

    def __init__(self):
        self.rows: dict = {}

    def add(self, key, model, values) -> dict:
        row = self.rows.get(key)
        if row is None:
            row = self.rows[key] = {"acc": _zero(), "models": {}, "extra": {}}
        _add(row["acc"], values)
        _add(row["models"].setdefault(model, _zero()), values)
        return row


def _metrics(acc: list) -> dict:
    return dict(zip(METRICS, acc, strict=True))


def _breakdown(models: dict) -> list[dict]:
    """Per-model sums, most expensive first (then by tokens, then by name)."""
    items = [{"model": model, **_metrics(acc)} for model, acc in models.items()]
    items.sort(key=lambda m: (-(m["cost_usd"] or 0), -m["total_tokens"], m["model"] or ""))
    return items


def report(
    conn,
    by: str,
    *,
    where: str,
    params: list,
    clock: Clock,
    cost: str = "cost_usd",
    order: str | None = None,
    models: bool = True,
) -> list[dict]:
    """Rows of the report: key column(s), METRICS, ``models`` (per-model breakdown,
    most expensive first; empty unless ``models``: summing per model as well costs a
    sort), in ``order`` (asc/desc; default: oldest first for periods,
    sessions and blocks, most expensive first for project, model and agent).  ``where``
    filters the rows of ``Source(cost)`` (its time column is ``Source(cost).time``)."""
    source = Source(cost)
    five_hour.register_quarter(conn)
    # Summing per model as well costs a sort: only when the breakdown is wanted.
    model = "model" if models else "NULL"
    if by in ("day", "week", "month"):
        rows = _periods(conn, by, source, where, params, clock, model)
        sort_key = by
    elif by == "block":
        rows = _blocks(conn, source, where, params, model)
        sort_key = "block_start"
    elif by == "session":
        rows = _sessions(conn, source, where, params, model)
        sort_key = "last_call"
    elif by == "project":
        rows = _projects(conn, source, where, params, model)
        sort_key = None
    elif by == "agent":
        rows = _agents(conn, source, where, params, model)
        sort_key = None
    elif by == "model":
        rows = _simple(conn, "model", source, where, params, model)
        sort_key = None
    else:  # pragma: no cover - click restricts the choices
        raise ValueError(by)
    if sort_key is not None:
        rows.sort(key=lambda r: r[sort_key] or "", reverse=order == "desc")
    else:
        rows.sort(key=lambda r: (r["cost_usd"] or 0, r["total_tokens"]), reverse=order != "asc")
    return rows


def _grouped(conn, key_sql: str, source: Source, where: str, params, model: str) -> Rows:
    rows = Rows()
    sql = (
        f"SELECT {key_sql} AS k, {model} AS m, {source.sums}, {source.last} "
        f"FROM {source.table} WHERE {where} GROUP BY k, m"
    )
    for key, name, *values in conn.execute(sql, params):
        last = values.pop()
        row = rows.add(key, name, values)
        if last and (row["extra"].get("last_call") or "") < last:
            row["extra"]["last_call"] = last
    return rows


def _simple(conn, column: str, source, where, params, model) -> list[dict]:
    rows = _grouped(conn, column, source, where, params, model)
    return [
        {column: key, **_metrics(r["acc"]), "models": _breakdown(r["models"])}
        for key, r in rows.rows.items()
    ]


def _periods(conn, by, source, where, params, clock, model) -> list[dict]:
    rows = _fold(conn, by, source.hour, source, where, params, clock, model)
    if rows is None:  # a zone with a half- or quarter-hour offset
        rows = _fold(conn, by, source.quarter, source, where, params, clock, model, False)
    return [
        {by: label, **_metrics(r["acc"]), "models": _breakdown(r["models"])}
        for label, r in rows.rows.items()
    ]


def _fold(conn, by, slot, source, where, params, clock, model, whole_hours=True) -> Rows | None:
    """Per-slot sums folded into labelled buckets; None when a slot straddles two days.
    Calls whose timestamp is not a time go under no period (None), as in the views."""
    sql = (
        f"SELECT {slot} AS slot, {model} AS m, {source.sums} FROM {source.table} "
        f"WHERE {where} GROUP BY slot, m ORDER BY slot"
    )
    rows = Rows()
    labels: dict[str, str] = {}
    for start, name, *values in conn.execute(sql, params):
        label = labels.get(start)
        if start not in labels:
            moment = localdays.minute(start)
            if moment is None:  # not a time: no period, as in the usage_by_* views
                labels[start] = None
            else:
                local = clock.local(moment)
                if whole_hours and local.minute:
                    return None
                labels[start] = bucket_label(by, local.date())
            label = labels[start]
        rows.add(label, name, values)
    return rows


def _sessions(conn, source, where, params, model) -> list[dict]:
    rows = _grouped(conn, "session_id", source, where, params, model)
    info: dict = {}
    ids = [k for k in rows.rows if k is not None]
    for start in range(0, len(ids), 500):
        chunk = ids[start : start + 500]
        marks = ", ".join("?" * len(chunk))
        for sid, title, project, name in conn.execute(
            f"SELECT s.session_id, s.title, s.project_dir, p.name FROM sessions s "
            f"LEFT JOIN projects p ON p.path = s.project_path WHERE s.session_id IN ({marks})",
            chunk,
        ):
            info[sid] = (title, project, name)
    projects = dict(
        conn.execute(
            f"SELECT session_id, min(project) FROM {source.table} WHERE {where} "
            "GROUP BY session_id",
            params,
        ).fetchall()
    )
    out = []
    for sid, r in rows.rows.items():
        title, project_dir, name = info.get(sid, (None, None, None))
        project_dir = project_dir or projects.get(sid)
        out.append(
            {
                "session": sid,
                "title": title,
                "project": name or project_dir,
                "project_dir": project_dir,
                "last_call": r["extra"].get("last_call"),
                **_metrics(r["acc"]),
                "models": _breakdown(r["models"]),
            }
        )
    return out


def _projects(conn, source, where, params, model) -> list[dict]:
    rows = _grouped(conn, "project", source, where, params, model)
    names = dict(conn.execute("SELECT project_dir, name FROM projects").fetchall())
    out = []
    for project_dir, r in rows.rows.items():
        out.append(
            {
                "project": names.get(project_dir) or project_dir,
                "project_dir": project_dir,
                **_metrics(r["acc"]),
                "models": _breakdown(r["models"]),
            }
        )
    # Two folders with the same name (git worktrees, the same name in two places) keep
    # apart: the folder is added to the name.
    seen: dict[str, int] = {}
    for row in out:
        seen[row["project"]] = seen.get(row["project"], 0) + 1
    for row in out:
        if row["project"] and seen[row["project"]] > 1 and row["project"] != row["project_dir"]:
            row["project"] = f"{row['project']} ({row['project_dir']})"
    return out


def _agents(conn, source, where, params, model) -> list[dict]:
    """Per agent type: the main thread, then each subagent type (from the Task call or
    the agent's meta.json; ``unknown`` when neither names it)."""
    key = (
        f"CASE WHEN a.agent_id IS NULL THEN '{MAIN_THREAD}' "
        "ELSE coalesce(s.agent_type, 'unknown') END"
    )
    joined = (
        f"(SELECT * FROM {source.table} WHERE {where}) a LEFT JOIN subagents s "
        "ON s.agent_id = a.agent_id"
    )
    # The token columns and the cost expression name no column subagents also has.
    agents = dict(
        conn.execute(
            f"SELECT {key} AS k, count(DISTINCT a.agent_id) FROM {joined} GROUP BY k", params
        ).fetchall()
    )
    rows = Rows()
    model = "a.model" if model == "model" else "NULL"
    sql = f"SELECT {key} AS k, {model} AS m, {source.sums} FROM {joined} GROUP BY k, m"
    for agent_type, name, *values in conn.execute(sql, params):
        rows.add(agent_type, name, values)
    return [
        {
            "agent_type": agent_type,
            "agents": agents.get(agent_type, 0),
            **_metrics(r["acc"]),
            "models": _breakdown(r["models"]),
        }
        for agent_type, r in rows.rows.items()
    ]


def _blocks(conn, source, where, params, model) -> list[dict]:
    """usage_blocks rows (the one 5-hour block rule), each with its models."""
    found = five_hour.blocks(conn, where, tuple(params), source.cost)
    blocks = [block_row(b) for b in found]
    if not blocks or model == "NULL":
        for block in blocks:
            block["models"] = []
        return blocks
    hour = source.hour.replace(" || ':00'", "")
    sql = (
        f"SELECT {hour} AS hour, model, {source.sums} FROM {source.table} "
        f"WHERE {hour} IS NOT NULL AND ({where}) GROUP BY hour, model ORDER BY hour"
    )
    i = 0
    per_block: list[dict] = [{} for _ in blocks]
    for hour, name, *values in conn.execute(sql, params):
        stamp = hour + ":00:00Z"
        if stamp < blocks[0]["block_start"]:
            continue  # (an hour that is not a time: in no block)
        while i + 1 < len(blocks) and stamp >= blocks[i]["block_end"]:
            i += 1
        if stamp >= blocks[i]["block_end"]:
            continue
        _add(per_block[i].setdefault(name, _zero()), values)
    for block, models in zip(blocks, per_block, strict=True):
        block["models"] = _breakdown(models)
    return blocks


BLOCK_EXTRAS = (
    "first_call",
    "last_call",
    "tokens_per_hour",
    "cost_per_hour",
    "active",
    "projected_cost_usd",
)


def block_row(block: dict) -> dict:
    """A blocks() row as a report row: METRICS plus the block's times and burn rate,
    and for the running block the cost at its end if calls go on at that rate."""
    row = {"block_start": block["block_start"], "block_end": block["block_end"]}
    row.update({m: block[m] for m in METRICS})
    for key in BLOCK_EXTRAS:
        row[key] = block[key]
    return row


def totals(rows: list[dict]) -> dict:
    acc = _zero()
    for row in rows:
        _add(acc, [row.get(m) for m in METRICS])
    return _metrics(acc)
