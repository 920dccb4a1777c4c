"""Commands: cost, reprice, merge."""

from __future__ import annotations

import json
import os
import sqlite3
from datetime import date, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import click

from . import archive, schema, usage
from .blocks import MIN_RATE_MINUTES
from .cli import cli, db_option, resolve_db
from .cli_sync import plural
from .cost_report import GROUPINGS, Clock, DateError, Source, parse_day, report, totals
from .lock import LockBusy, WriterLock
from .paths import default_db_path
from .usage import METRICS

COST_SQL = (
    "call_cost(model, input_tokens, output_tokens, cache_creation_5m_tokens, "
    "cache_creation_1h_tokens, cache_read_tokens, speed)"
)


def parse_date(value: str | None, option: str) -> date | None:
    try:
        return parse_day(value)
    except DateError:
        raise click.BadParameter(
            f"must be a date like 2025-01-31 or 20250131, not {value!r}.", param_hint=option
        ) from None


def open_archive(db_path: Path) -> sqlite3.Connection:
    """Open an existing archive for reading; one sentence when it is missing or foreign."""
    return archive.open_read(db_path, table="api_calls")


def money(value, unpriced) -> str:
    if value is None:
        return "n/a" if unpriced else "$0.00"
    return f"${value:,.2f}" + (" *" if unpriced else "")


KEY_HEADS = {"session": "session", "agent": "agent type", "project": "project"}


def _label(by: str, r: dict, id_width: int) -> str:
    if by == "session":
        if r["session"] is None:
            return "(none)"
        return f"{r['session'][:id_width]} {(r['title'] or '(untitled)')[:40]}"
    if by == "agent":
        agents = "" if r["agent_type"] == "main" else f" ({plural(r['agents'], 'agent')})"
        return f"{r['agent_type']}{agents}"
    value = r[by]
    return str(value) if value is not None else "(none)"


def _token_cells(r: dict) -> list[str]:
    return [f"{r[m]:,}" for m in METRICS[:5]] + [money(r["cost_usd"], r["unpriced_calls"])]


def render(
    by: str,
    rows: list[dict],
    total: dict,
    unpriced: list[dict],
    clock: Clock,
    id_width: int = 8,
    breakdown: bool = False,
) -> str:
    """The report as a text table; session ids shortened to ``id_width`` characters;
    ``breakdown``: a row per model under each row."""
    body: list[list[str]] = []
    if by == "block":
        head = ["block start (UTC)", "calls", "tokens", "cost", "$/hour", "projected"]
        for r in rows:
            body.append(
                [
                    r["block_start"] + (" (active)" if r["active"] else ""),
                    f"{r['calls']:,}",
                    f"{r['total_tokens']:,}",
                    money(r["cost_usd"], r["unpriced_calls"]),
                    "" if r["cost_per_hour"] is None else f"${r['cost_per_hour']:,.2f}",
                    "" if r["projected_cost_usd"] is None else f"${r['projected_cost_usd']:,.2f}",
                ]
            )
            if breakdown:
                for m in r["models"]:
                    body.append(
                        [f"  - {m['model'] or '(no model)'}", f"{m['calls']:,}"]
                        + [f"{m['total_tokens']:,}", money(m["cost_usd"], m["unpriced_calls"])]
                        + ["", ""]
                    )
        body.append(
            ["Total", f"{total['calls']:,}", f"{total['total_tokens']:,}"]
            + [money(total["cost_usd"], total["unpriced_calls"]), "", ""]
        )
    else:
        head = [KEY_HEADS.get(by, by), "calls", "input", "output", "cache write", "cache read"]
        head.append("cost")
        for r in rows:
            body.append([_label(by, r, id_width)] + _token_cells(r))
            if breakdown and by != "model":
                for m in r["models"]:
                    body.append([f"  - {m['model'] or '(no model)'}"] + _token_cells(m))
        body.append(["Total"] + _token_cells(total))
    widths = [max(len(str(x)) for x in col) for col in zip(head, *body, strict=True)]
    lines = [
        "  ".join(
            c.ljust(w) if i == 0 else c.rjust(w)
            for i, (c, w) in enumerate(zip(r, widths, strict=True))
        ).rstrip()
        for r in [head, *body]
    ]
    lines.insert(1, "  ".join("-" * w for w in widths))
    if by in ("day", "week", "month"):
        lines.append(f"Dates in {clock.description}.")
    if by == "block":
        lines.append(
            "$/hour: cost between a block's first and last call, per hour (blank when they "
            f"are less than {MIN_RATE_MINUTES} minutes apart). projected: for the "
            "active block only, its cost at the block's end if calls go on at that rate."
        )
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
    "agent type (the main thread and each subagent type), or 5-hour billing block (the "
    "usage_blocks view, with a Total row).",
)
@click.option("--since", help="First day to include: YYYY-MM-DD or YYYYMMDD (local date).")
@click.option("--until", help="Last day to include: YYYY-MM-DD or YYYYMMDD (local date).")
@click.option("--breakdown", is_flag=True, help="A row per model under each row (table and JSON).")
@click.option(
    "--order",
    type=click.Choice(["asc", "desc"]),
    help="Row order.  Default: oldest first for days, weeks, months, sessions (by last "
    "call) and blocks; most expensive first for projects, models and agent types.",
)
@click.option("--project", help="Only this project: its folder name under projects/, path or name.")
@click.option(
    "--host",
    help="Only calls of this machine: the name `sync --host` / `serve --machine` recorded "
    "(default there: the host name); see `merge`.",
)
@click.option(
    "--json", "as_json", is_flag=True, help="Print JSON instead of a table (see docs/cost.md)."
)
@click.option(
    "--json-format",
    type=click.Choice(["claude-sessions", "ccusage"]),
    help="JSON shape (implies --json): claude-sessions (default) or ccusage, the shape of "
    "`ccusage daily|weekly|monthly|session|blocks --json` for --by day, week, month, "
    "session and block.",
)
@click.option(
    "--pricing",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Price these calls with this JSON/TOML price file on top of the built-in "
    "table (this report only; `claude-sessions reprice` stores one).",
)
@click.option("--timezone", "tz_name", help="IANA time zone for days, e.g. Europe/Paris.")
@click.option("--utc", is_flag=True, help="Bucket days in UTC (same as --timezone UTC).")
def cost(
    db_path,
    by,
    since,
    until,
    breakdown,
    order,
    project,
    host,
    as_json,
    json_format,
    pricing,
    tz_name,
    utc,
):
    """Tokens and cost of your API calls, from the archive.

    Each API response is counted once (deduplicated across files as ccusage does); costs
    come from the built-in price table (ingest/prices.json) with any overrides stored by
    `claude-sessions reprice`. Calls of models without a price have no cost (never $0)
    and are listed under the table. Days are local dates unless --utc or --timezone.
    Projects are named like in the web app (the last part of their folder).

    \b
    Examples:
      claude-sessions cost                         cost per day
      claude-sessions cost --by session --since 20250601 --breakdown
      claude-sessions cost --by block              5-hour billing windows
      claude-sessions cost --by agent              main thread and subagent types
      claude-sessions cost --by month --json-format ccusage
    """
    start, end = parse_date(since, "--since"), parse_date(until, "--until")
    if start and end and start > end:
        raise click.ClickException(f"--since {since} is after --until {until}.")
    if json_format == "ccusage":
        from . import ccusage_format

        if by not in ccusage_format.SUPPORTED:
            raise click.ClickException(
                f"--json-format ccusage has no shape for --by {by}; use day, week, month, "
                "session or block."
            )
    as_json = as_json or json_format is not None
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
    # Closed with the command: the SQL functions registered on it refer to it (a cycle
    # only the garbage collector would break, holding its files open until then).
    click.get_current_context().call_on_close(conn.close)
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

    def filters(time: str) -> tuple[str, list]:
        """The WHERE clause of the options, on a table whose time column is ``time``."""
        where, params = ["1"], []
        if start:
            where.append(f"{time} >= ?")
            params.append(clock.midnight_utc(start))
        if end:
            where.append(f"{time} < ?")
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
        return " AND ".join(where), params

    where, params = filters(Source(cost_expr).time)
    rows = report(
        conn,
        by,
        where=where,
        params=params,
        clock=clock,
        cost=cost_expr,
        order=order,
        models=breakdown or json_format == "ccusage",
    )
    width = id_width(conn) if by == "session" and not as_json else 8
    total = totals(rows)
    unpriced = _unpriced(conn, *filters("timestamp"), cost_expr)
    if json_format == "ccusage":
        click.echo(json.dumps(ccusage_format.render(by, rows, clock, order), indent=2))
    elif as_json:
        if not breakdown:
            for row in rows:
                row.pop("models", None)
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
        click.echo(render(by, rows, total, unpriced, clock, width, breakdown))


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
        f"{plural(result.sessions_touched, 'session')} updated"
        + (f", {plural(result.kept_added, 'new kept file')}." if result.kept_added else ".")
    )
