"""The figures ``claude-sessions status`` prints and the status page shows, counted once.

Both read the archive through these functions, so a figure means the same in the
terminal, on the page and in their JSON.
"""

from __future__ import annotations

from datetime import datetime

from .blocks import current_block
from .usage import unpriced_models


def usage(conn, now: datetime | None = None) -> dict:
    """JSON-ready usage figures: the running 5-hour block (ingest.blocks) and the models
    without a price (empty when the archive has no api_calls table yet).  The block's
    ``start``/``end`` are its block_start/block_end and ``tokens`` its total_tokens."""
    exists = conn.execute(
        "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'api_calls'"
    ).fetchone()
    if not exists:
        return {"current_block": None, "unpriced_models": []}
    block = current_block(conn, now)
    if block is not None:
        block = {
            "start": block["block_start"],
            "end": block["block_end"],
            "calls": block["calls"],
            "tokens": block["total_tokens"],
            "cost_usd": block["cost_usd"],
            "unpriced_calls": block["unpriced_calls"],
            "first_call": block["first_call"],
            "last_call": block["last_call"],
            "tokens_per_hour": block["tokens_per_hour"],
            "cost_per_hour": block["cost_per_hour"],
            "active": block["active"],
            "projected_cost_usd": block["projected_cost_usd"],
        }
    return {"current_block": block, "unpriced_models": unpriced_models(conn)}
