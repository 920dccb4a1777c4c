"""Commands: cost, reprice, merge."""

from __future__ import annotations

import json
import os
import re
import sqlite3
from datetime import UTC, date, datetime, time, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import click

from . import archive, schema, usage
from .cli import cli, db_option, resolve_db
from .cli_sync import plural
from .lock import LockBusy, WriterLock
from .paths import default_db_path
from .usage import METRICS

GROUPINGS = ("day", "week", "month", "session", "project", "model", "block")
TOKEN_SUMS = """count(*), sum(input_tokens), sum(output_tokens),
    sum(cache_creation_5m_tokens + cache_creation_1h_tokens), sum(cache_read_tokens),
    sum(total_tokens), sum({cost}), sum({cost} IS NULL)"""
COST_SQL = (
    "call_cost(model, input_tokens, output_tokens, cache_creation_5m_tokens, "
    "cache_creation_1h_tokens, cache_read_tokens, speed)"
)
DATE_RE = re.compile(r"^\d{4}-\d{2}-\d{2}$")


def parse_date(value: str | None, option: str) -> date | None:
    if value is None:
        return None
    try:
        if not DATE_RE.match(value):
            raise ValueError
        return date.fromisoformat(value)
    except ValueError:
        raise click.BadParameter(
            f"must be a date like 2025-01-31, not {value!r}.", param_hint=option
        ) from None


def open_archive(db_path: Path) -> sqlite3.Connection:
    """Open an existing archive for reading; one sentence when it is missing or foreign."""
    return archive.open_read(db_path, table="api_calls")


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
    """Turns UTC timestamps into local dates in one time zone (None: this machine's)."""

    def __init__(self, tz):
        self.tz = tz
        if tz is not None:
            self.name = self.description = getattr(tz, "key", None) or str(tz)
            return
        # Not the abbreviation of today's offset ("PST" would be wrong for June dates).
        offset = datetime.now().astimezone().strftime("%z")
        self.name = local_zone_name() or f"UTC{offset[:3]}:{offset[3:]}"
        self.description = f"local time ({self.name})"

    def local(self, ts: datetime) -> datetime:
        return ts.astimezone(self.tz) if self.tz else ts.astimezone()

    def midnight_utc(self, day: date) -> str:
        """The UTC instant at which ``day`` starts here, as a timestamp prefix."""
        start = datetime.combine(day, time())
        start = start.replace(tzinfo=self.tz) if self.tz else start.astimezone()
        return start.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S")


def bucket_label(by: str, day: date) -> str:
    if by == "week":
        return (day - timedelta(days=day.weekday())).isoformat()
    if by == "month":
        return day.strftime("%Y-%m")
    return day.isoformat()


def report(
    conn: sqlite3.Connection,
    by: str,
    *,
    where: str,
    params: list,
    clock: Clock,
    cost: str,
) -> list[dict]:
    """Rows of the report: a key column or two, then METRICS."""
    sums = TOKEN_SUMS.format(cost=cost)
    if by in ("day", "week", "month"):
        # Sum per UTC hour in SQL, then fold the hours into local days, weeks or months.
        # Zones with a half- or quarter-hour offset need quarter hours (every offset in
        # use is a multiple of 15 minutes).
        hour = "substr(timestamp, 1, 13) || ':00'"
        quarter = (
            "substr(timestamp, 1, 14) || "
            "printf('%02d', CAST(substr(timestamp, 15, 2) AS INTEGER) / 15 * 15)"
        )
        buckets = _fold(conn, by, hour, sums, where, params, clock)
        if buckets is None:
            buckets = _fold(conn, by, quarter, sums, where, params, clock, whole_hours=False)
        return [
            {by: label, **dict(zip(METRICS, acc, strict=True))} for label, acc in buckets.items()
        ]
    if by == "block":
        return [block_row(block) for block in usage.blocks(conn, where, tuple(params), cost)]
    if by == "session":
        # Filter api_calls before the join: sessions has a host column too.
        sql = f"""
            SELECT a.session_id, s.title, {sums}, max(a.timestamp) AS last
            FROM (SELECT * FROM api_calls WHERE {where}) a
            LEFT JOIN sessions s ON s.session_id = a.session_id
            GROUP BY a.session_id ORDER BY last"""
        return [
            {"session": sid, "title": title, **dict(zip(METRICS, values, strict=False))}
            for sid, title, *values in conn.execute(sql, params)
        ]
    column = {"project": "project", "model": "model"}[by]
    sql = f"SELECT {column}, {sums} FROM api_calls WHERE {where} GROUP BY {column} ORDER BY 8 DESC"
    return [
        {by: key, **dict(zip(METRICS, values, strict=True))}
        for key, *values in conn.execute(sql, params)
    ]


def block_row(block: dict) -> dict:
    """A usage_blocks row as a report row: METRICS plus the block's times and burn rate,
    and for the running block the cost at its end if calls go on at that rate."""
    row = {"block_start": block["block_start"], "block_end": block["block_end"]}
    row.update({m: block[m] for m in METRICS})
    row["cost_per_hour"] = block["cost_per_hour"]
    row["active"] = bool(block["is_active"])
    row["projected_cost_usd"] = None
    if row["active"]:
        remaining = usage.parse_ts(block["block_end"]) - datetime.now(UTC)
        hours = max(remaining.total_seconds(), 0) / 3600
        row["projected_cost_usd"] = block["cost_usd"]
        if block["cost_per_hour"] is not None:
            row["projected_cost_usd"] += block["cost_per_hour"] * hours
    return row


def _fold(conn, by, slot, sums, where, params, clock, whole_hours=True) -> dict | None:
    """Per-slot sums folded into labelled buckets; None when a slot straddles two days."""
    sql = (
        f"SELECT {slot} AS slot, {sums} FROM api_calls WHERE timestamp IS NOT NULL "
        f"AND {where} GROUP BY slot ORDER BY slot"
    )
    buckets: dict[str, list] = {}
    for start, *values in conn.execute(sql, params):
        local = clock.local(usage.parse_ts(start + ":00Z"))
        if whole_hours and local.minute:
            return None
        acc = buckets.setdefault(bucket_label(by, local.date()), [0, 0, 0, 0, 0, 0, None, 0])
        _add(acc, values)
    return buckets


def _add(acc: list, values) -> None:
    for i, value in enumerate(values):
        if value is None:
            continue
        acc[i] = value if acc[i] is None else acc[i] + value


def totals(rows: list[dict]) -> dict:
    acc = [0, 0, 0, 0, 0, 0, None, 0]
    for row in rows:
        _add(acc, [row.get(m) for m in METRICS])
    return dict(zip(METRICS, acc, strict=True))


def money(value, unpriced) -> str:
    if value is None:
        return "n/a" if unpriced else "$0.00"
    return f"${value:,.2f}" + (" *" if unpriced else "")


def render(
    by: str, rows: list[dict], total: dict, unpriced: list[dict], clock: Clock, id_width: int = 8
) -> str:
    """The report as a text table; session ids shortened to ``id_width`` characters."""
    if by == "block":
        head = ["block start (UTC)", "calls", "tokens", "cost", "$/hour", "projected"]
        body = [
            [
                r["block_start"] + (" (active)" if r["active"] else ""),
                f"{r['calls']:,}",
                f"{r['total_tokens']:,}",
                money(r["cost_usd"], r["unpriced_calls"]),
                "" if r["cost_per_hour"] is None else f"${r['cost_per_hour']:,.2f}",
                "" if r["projected_cost_usd"] is None else f"${r['projected_cost_usd']:,.2f}",
            ]
            for r in rows
        ]
        body.append(
            ["Total", f"{total['calls']:,}", f"{total['total_tokens']:,}"]
            + [money(total["cost_usd"], total["unpriced_calls"]), "", ""]
        )
    else:
        key = "session" if by == "session" else by
        head = [key, "calls", "input", "output", "cache write", "cache read", "cost"]
        body = []
        for r in rows:
            label = r[key] if r[key] is not None else "(none)"
            if by == "session" and r[key] is not None:
                label = f"{label[:id_width]} {(r['title'] or '(untitled)')[:40]}"
            body.append(
                [str(label)]
                + [f"{r[m]:,}" for m in METRICS[:2]]
                + [f"{r[m]:,}" for m in METRICS[2:5]]
                + [money(r["cost_usd"], r["unpriced_calls"])]
            )
        body.append(
            ["Total"]
            + [f"{total[m]:,}" for m in METRICS[:5]]
            + [money(total["cost_usd"], total["unpriced_calls"])]
        )
    widths = [max(len(str(x)) for x in col) for col in zip(head, *body, strict=True)]
    lines = [
        "  ".join(
            c.ljust(w) if i == 0 else c.rjust(w)
            for i, (c, w) in enumerate(zip(r, widths, strict=True))
        )
        for r in [head, *body]
    ]
    lines.insert(1, "  ".join("-" * w for w in widths))
    if by in ("day", "week", "month"):
        lines.append(f"Dates in {clock.description}.")
    if unpriced:
        names = ", ".join(
            f"{u['model'] or '(no model)'} ({plural(u['calls'], 'call')})" for u in unpriced
        )
        lines.append(
            f"* Not priced (no entry in the price table; cost counted as unknown): {names}"
        )
    return "\n".join(lines)


@cli.command()
@db_option
@click.option(
    "--by",
    type=click.Choice(GROUPINGS),
    default="day",
    show_default=True,
    help="Group by local day, week (starting Monday), month, session, project, model, "
    "or 5-hour billing block (the usage_blocks view, with a Total row).",
)
@click.option("--since", help="First day to include, YYYY-MM-DD (local date).")
@click.option("--until", help="Last day to include, YYYY-MM-DD (local date).")
@click.option("--project", help="Only this project: its folder name under projects/, path or name.")
@click.option(
    "--host",
    help="Only calls of this machine: the name `sync --host` / `serve --machine` recorded "
    "(default there: the host name); see `merge`.",
)
@click.option("--json", "as_json", is_flag=True, help="Print JSON instead of a table.")
@click.option(
    "--pricing",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Price these calls with this JSON/TOML price file on top of the built-in "
    "table (this report only; `claude-sessions reprice` stores one).",
)
@click.option("--timezone", "tz_name", help="IANA time zone for days, e.g. Europe/Paris.")
@click.option("--utc", is_flag=True, help="Bucket days in UTC (same as --timezone UTC).")
def cost(db_path, by, since, until, project, host, as_json, pricing, tz_name, utc):
    """Tokens and cost of your API calls, from the archive.

    Each API response is counted once (deduplicated across files as ccusage does); costs
    come from the built-in price table (ingest/prices.json) with any overrides stored by
    `claude-sessions reprice`. Calls of models without a price have no cost (never $0)
    and are listed under the table. Days are local dates unless --utc or --timezone.

    \b
    Examples:
      claude-sessions cost                         cost per day
      claude-sessions cost --by session --since 2025-06-01
      claude-sessions cost --by block              5-hour billing windows
    """
    start, end = parse_date(since, "--since"), parse_date(until, "--until")
    if start and end and start > end:
        raise click.ClickException(f"--since {since} is after --until {until}.")
    if utc:
        tz_name = "UTC"
    try:
        tz = ZoneInfo(tz_name) if tz_name else None
    except (ZoneInfoNotFoundError, ValueError):
        raise click.ClickException(
            f"Unknown time zone {tz_name!r}; use an IANA name like Europe/Paris."
        ) from None
    clock = Clock(tz)
    conn = open_archive((db_path or default_db_path()).expanduser())
    cost_expr = "cost_usd"
    if pricing:
        from .pricing import PriceTable, PricingError, read_price_file

        try:
            overrides = read_price_file(pricing)
        except PricingError as e:
            raise click.ClickException(str(e)) from None
        stored = conn.execute(
            "SELECT value FROM usage_settings WHERE key = 'price_overrides'"
        ).fetchone()
        base = json.loads(stored[0]) if stored and stored[0] else {"models": {}}
        merged = {**base, "models": {**base.get("models", {}), **overrides["models"]}}
        table = PriceTable.load(merged)
        usage.register_cost_function(conn, table)
        cost_expr = COST_SQL
    where, params = ["1"], []
    if start:
        where.append("timestamp >= ?")
        params.append(clock.midnight_utc(start))
    if end:
        where.append("timestamp < ?")
        params.append(clock.midnight_utc(end + timedelta(days=1)))
    if project:
        where.append(
            "(project = ? OR project IN (SELECT project_dir FROM projects "
            "WHERE path = ? OR name = ?))"
        )
        params += [project, project, project]
    if host:
        where.append("host = ?")
        params.append(host)
    rows = report(conn, by, where=" AND ".join(where), params=params, clock=clock, cost=cost_expr)
    width = id_width(conn) if by == "session" and not as_json else 8
    total = totals(rows)
    unpriced = _unpriced(conn, " AND ".join(where), params, cost_expr)
    if as_json:
        out = {
            "by": by,
            "timezone": clock.name,
            "rows": rows,
            "totals": total,
            "unpriced_models": unpriced,
        }
        click.echo(json.dumps(out, indent=2))
    elif not rows:
        click.echo("No API calls in the archive for these filters.")
    else:
        click.echo(render(by, rows, total, unpriced, clock, width))


def id_width(conn: sqlite3.Connection, minimum: int = 8) -> int:
    """Characters of a session id that tell every archived session apart, so the short
    ids of the table work as `claude-sessions export` arguments."""
    ids = sorted(
        r[0]
        for r in conn.execute(
            "SELECT session_id FROM sync_files WHERE session_id IS NOT NULL "
            "UNION SELECT session_id FROM sessions"
        )
    )
    width = minimum
    for a, b in zip(ids, ids[1:], strict=False):
        width = max(width, len(os.path.commonprefix([a, b])) + 1)
    return width


def _unpriced(conn, where: str, params: list, cost_expr: str) -> list[dict]:
    unpriced = "priced = 0" if cost_expr == "cost_usd" else f"{cost_expr} IS NULL"
    sql = (
        f"SELECT model, count(*), sum(total_tokens) FROM api_calls "
        f"WHERE {unpriced} AND {where} GROUP BY model ORDER BY 2 DESC"
    )
    return [{"model": m, "calls": n, "total_tokens": t} for m, n, t in conn.execute(sql, params)]


@cli.command()
@db_option
@click.option(
    "--pricing",
    type=click.Path(dir_okay=False, path_type=Path),
    help="A JSON/TOML price file to store with the archive (its models replace "
    "built-in entries of the same name).",
)
@click.option("--builtin", is_flag=True, help="Forget stored overrides; use the built-in table.")
def reprice(db_path, pricing, builtin):
    """Store price overrides in the archive and recompute the cost of every call.

    Without options, recomputes with the current built-in table and stored overrides
    (sync does this by itself when the built-in table changed).
    """
    if pricing and builtin:
        raise click.ClickException("Give --pricing or --builtin, not both.")
    from .pricing import PricingError, read_price_file, table_for

    try:
        overrides = read_price_file(pricing) if pricing else None
    except PricingError as e:
        raise click.ClickException(str(e)) from None
    path = resolve_db(db_path)
    open_archive(path).close()
    archive.check_writable(path)
    lock = WriterLock(path)
    try:
        lock.acquire(30)
    except LockBusy as e:
        raise click.ClickException(str(e)) from None
    try:
        conn = schema.connect(str(path))
        conn.execute("BEGIN IMMEDIATE")
        if pricing or builtin:
            table = usage.set_price_overrides(conn, overrides)
        else:
            table = usage.current_table(conn)
            usage.reprice(conn, table)
        conn.execute("COMMIT")
        calls, unpriced = conn.execute("SELECT count(*), sum(priced = 0) FROM api_calls").fetchone()
        conn.close()
    finally:
        lock.release()
    table_for.cache_clear()
    click.echo(f"Re-priced {plural(calls, 'call')}; {unpriced or 0:,} without a price.")


@cli.command()
@click.argument("other", type=click.Path(path_type=Path))
@db_option
def merge(other, db_path):
    """Merge another machine's archive OTHER into this one.

    Copies its files, lines, errors and file contents (lines already here are skipped),
    then updates sessions, tool calls and api_calls from the new lines: merging twice
    changes nothing and an API call present in both archives counts once. Files of the
    other machine are stored as HOST:PATH. Run `claude-sessions sync --host NAME` on each
    machine first; see docs/several-machines.md.
    """
    from . import merge as merge_module

    path = resolve_db(db_path)
    archive.check_writable(path)
    try:
        result = merge_module.merge(path, other, wait=30)
    except merge_module.MergeError as e:
        raise click.ClickException(str(e)) from None
    except LockBusy as e:
        raise click.ClickException(str(e)) from None
    except sqlite3.DatabaseError as e:
        raise click.ClickException(f"Cannot merge into {path}: {e}.") from None
    click.echo(
        f"Merged {other}: {plural(result.files_added, 'new file')}, "
        f"{result.files_matched:,} known, {plural(result.events_added, 'new line')}, "
        f"{plural(result.sessions_touched, 'session')} updated."
    )
