"""`claude-sessions cost --json-format ccusage`: the report in ccusage's JSON shapes.

Tools built on ``ccusage daily|weekly|monthly|session|blocks --json`` read these
unchanged: the same top-level keys (``daily``, ``weekly``, ``monthly``, ``sessions``,
``blocks``, ``totals``), the same camelCase fields, ``modelBreakdowns`` per row, and for
blocks ccusage's gap blocks, burn rate and projection.  Shapes as in ccusage 16-20
(``src/commands/*.ts``, ``calculate-cost.ts``, ``_session-blocks.ts``).

Differences that remain: a call without a price counts $0 here (ccusage's fields are
numbers, never null; the plain ``--json`` keeps them apart), and session rows are
sessions (``sessionId``), subagent files folded into their parent session.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from .blocks import BLOCK_HOURS
from .clock import parse_ts, parse_ts_or_none

TOP_KEYS = {"day": "daily", "week": "weekly", "month": "monthly", "session": "sessions"}
PERIOD_FIELD = {"day": "date", "week": "week", "month": "month"}
SUPPORTED = ("day", "week", "month", "session", "block")


def _cost(value) -> float:
    return value or 0.0


def _tokens(row: dict) -> dict:
    return {
        "inputTokens": row["input_tokens"],
        "outputTokens": row["output_tokens"],
        "cacheCreationTokens": row["cache_creation_tokens"],
        "cacheReadTokens": row["cache_read_tokens"],
    }


def _breakdowns(row: dict) -> list[dict]:
    return [
        {
            "modelName": m["model"],
            **_tokens(m),
            "cost": _cost(m["cost_usd"]),
        }
        for m in row.get("models", [])
        if m["model"]
    ]


def _models_used(row: dict) -> list[str]:
    return [m["model"] for m in row.get("models", []) if m["model"]]


def _totals(rows: list[dict]) -> dict:
    out = {
        "inputTokens": sum(r["input_tokens"] for r in rows),
        "outputTokens": sum(r["output_tokens"] for r in rows),
        "cacheCreationTokens": sum(r["cache_creation_tokens"] for r in rows),
        "cacheReadTokens": sum(r["cache_read_tokens"] for r in rows),
        "totalCost": sum(_cost(r["cost_usd"]) for r in rows),
    }
    out["totalTokens"] = (
        out["inputTokens"] + out["outputTokens"] + out["cacheCreationTokens"]
    ) + out["cacheReadTokens"]
    return out


def _period_row(by: str, row: dict) -> dict:
    tokens = _tokens(row)
    return {
        PERIOD_FIELD[by]: row[by],
        **tokens,
        "totalTokens": sum(tokens.values()),
        "totalCost": _cost(row["cost_usd"]),
        "modelsUsed": _models_used(row),
        "modelBreakdowns": _breakdowns(row),
    }


def _session_row(row: dict, clock) -> dict:
    tokens = _tokens(row)
    last = row.get("last_call")
    return {
        "sessionId": row["session"],
        **tokens,
        "totalTokens": sum(tokens.values()),
        "totalCost": _cost(row["cost_usd"]),
        "lastActivity": clock.local(moment).date().isoformat()
        if (moment := parse_ts_or_none(last))
        else None,
        "modelsUsed": _models_used(row),
        "modelBreakdowns": _breakdowns(row),
        "projectPath": row.get("project_dir") or "Unknown Project",
    }


def _iso(ts: datetime) -> str:
    """JavaScript's Date.toISOString(): milliseconds and Z."""
    return ts.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.") + f"{ts.microsecond // 1000:03d}Z"


def _block(row: dict, now: datetime) -> dict:
    start, end = parse_ts(row["block_start"]), parse_ts(row["block_end"])
    first, last = parse_ts(row["first_call"]), parse_ts(row["last_call"])
    counts = {
        "inputTokens": row["input_tokens"],
        "outputTokens": row["output_tokens"],
        "cacheCreationInputTokens": row["cache_creation_tokens"],
        "cacheReadInputTokens": row["cache_read_tokens"],
    }
    total = sum(counts.values())
    cost = _cost(row["cost_usd"])
    active = start <= now < end and (now - last) < timedelta(hours=BLOCK_HOURS)
    burn = projection = None
    minutes = (last - first).total_seconds() / 60
    if active and minutes > 0:
        burn = {
            "tokensPerMinute": total / minutes,
            "tokensPerMinuteForIndicator": (row["input_tokens"] + row["output_tokens"]) / minutes,
            "costPerHour": cost / minutes * 60,
        }
        remaining = max(0.0, (end - now).total_seconds() / 60)
        projection = {
            "totalTokens": round(total + burn["tokensPerMinute"] * remaining),
            "totalCost": round((cost + burn["costPerHour"] / 60 * remaining) * 100) / 100,
            "remainingMinutes": round(remaining),
        }
    return {
        "id": _iso(start),
        "startTime": _iso(start),
        "endTime": _iso(end),
        "actualEndTime": _iso(last),
        "isActive": active,
        "isGap": False,
        "entries": row["calls"],
        "tokenCounts": counts,
        "totalTokens": total,
        "costUSD": cost,
        "models": _models_used(row),
        "burnRate": burn,
        "projection": projection,
    }


def _gap(after: dict, before: dict) -> dict | None:
    """ccusage's gap block between two blocks more than 5 hours apart."""
    last, nxt = parse_ts(after["last_call"]), parse_ts(before["first_call"])
    if nxt - last <= timedelta(hours=BLOCK_HOURS):
        return None
    start = last + timedelta(hours=BLOCK_HOURS)
    zero = {
        "inputTokens": 0,
        "outputTokens": 0,
        "cacheCreationInputTokens": 0,
        "cacheReadInputTokens": 0,
    }
    return {
        "id": f"gap-{_iso(start)}",
        "startTime": _iso(start),
        "endTime": _iso(nxt),
        "actualEndTime": None,
        "isActive": False,
        "isGap": True,
        "entries": 0,
        "tokenCounts": zero,
        "totalTokens": 0,
        "costUSD": 0,
        "models": [],
        "burnRate": None,
        "projection": None,
    }


def render(by: str, rows: list[dict], clock, order: str | None = None) -> object:
    """The JSON value ccusage prints for this report."""
    # ccusage leaves out entries whose timestamp is not a time; so do these rows (the
    # archive's own reports show them as a "(none)" period or their text as a block)
    if by == "block":
        now = datetime.now(UTC)
        times = ("block_start", "block_end", "first_call", "last_call")
        rows = [r for r in rows if all(parse_ts_or_none(r[k]) for k in times)]
        ordered = sorted(rows, key=lambda r: r["block_start"])
        out = []
        for i, row in enumerate(ordered):
            if i:
                gap = _gap(ordered[i - 1], row)
                if gap:
                    out.append(gap)
            out.append(_block(row, now))
        if order == "desc":
            out.reverse()
        return {"blocks": out}
    if by in PERIOD_FIELD:
        rows = [r for r in rows if r[by] is not None]
    if not rows:
        return []  # what ccusage prints when it finds no usage
    if by == "session":
        items = [_session_row(r, clock) for r in rows]
    else:
        items = [_period_row(by, r) for r in rows]
    return {TOP_KEYS[by]: items, "totals": _totals(rows)}
