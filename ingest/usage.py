"""Deduplicated API calls (api_calls) and their cost.  Filled in by issue #4."""

from __future__ import annotations


def on_batch(conn, batch) -> None:
    """Called by the sync engine in the batch's transaction with the new events."""
