"""Conversation order of a session's events, from the ``uuid`` / ``parentUuid`` tree.

Rules (see FORMAT.md §2.6, §3.4, §3.5):
- a record whose parent is missing from the set (first prompt, compaction boundary,
  dangling parent, parent in another session) is a root;
- the order is a topological order of the tree that always takes, among the records
  whose parent is already placed, the one with the smallest ``(timestamp, id)``.  A
  linear chain comes out as the chain; parallel tool calls, whose calls and results
  branch off each other, come out in the order they happened instead of one branch
  after the other; a rewound branch comes after the branch it replaced;
- a record counts as no earlier than its parent (one without a timestamp takes its
  parent's);
- records caught in a parent cycle are freed as roots, earliest first, one per cycle;
- records without a uuid (summaries, titles, snapshots, queue operations) follow the
  nearest earlier record of their own file that has one, in file order; those before
  any such record are roots placed by their own timestamp.
"""

from __future__ import annotations

import heapq
from collections.abc import Iterable


def conversation_order(rows: Iterable[tuple]) -> list[int]:
    """Ordered event ids from ``(id, uuid, parent_uuid, timestamp, file_id)`` rows.

    Rows must come in ``id`` order (the order lines were read, so file order per file).
    """
    rows = list(rows)
    by_uuid: dict[str, int] = {}
    timestamps: dict[int, str] = {}
    followers: dict[int, list[int]] = {}
    last_with_uuid: dict[int, int] = {}
    loose: list[int] = []  # events without uuid before any uuid event of their file
    nodes: list[tuple[int, str, str | None]] = []
    for event_id, uuid, parent_uuid, timestamp, file_id in rows:
        timestamps[event_id] = timestamp or ""
        if uuid:
            by_uuid.setdefault(uuid, event_id)
            nodes.append((event_id, uuid, parent_uuid))
            last_with_uuid[file_id] = event_id
        elif file_id in last_with_uuid:
            followers.setdefault(last_with_uuid[file_id], []).append(event_id)
        else:
            loose.append(event_id)

    children: dict[int, list[int]] = {}
    has_parent: set[int] = set()
    for event_id, _uuid, parent_uuid in nodes:
        parent = by_uuid.get(parent_uuid) if parent_uuid else None
        if parent is not None and parent != event_id:
            children.setdefault(parent, []).append(event_id)
            has_parent.add(event_id)

    roots = [event_id for event_id, _uuid, _parent in nodes if event_id not in has_parent]
    reached: set[int] = set()

    def reach(start: int) -> None:
        stack = [start]
        while stack:
            node = stack.pop()
            if node not in reached:
                reached.add(node)
                stack.extend(children.get(node, ()))

    for root in roots:
        reach(root)
    if len(reached) < len(nodes):
        # What is left hangs off a parent cycle: free its earliest member, repeat.
        for _stamp, event_id in sorted((timestamps[e], e) for e, _u, _p in nodes):
            if event_id not in reached:
                roots.append(event_id)
                reach(event_id)

    heap = [(timestamps[e], e) for e in roots] + [(timestamps[e], e) for e in loose]
    heapq.heapify(heap)
    order: list[int] = []
    placed: set[int] = set()
    while heap:
        stamp, event_id = heapq.heappop(heap)
        if event_id in placed:
            continue
        placed.add(event_id)
        order.append(event_id)
        order.extend(followers.get(event_id, ()))
        for child in children.get(event_id, ()):
            if child not in placed:
                heapq.heappush(heap, (max(timestamps[child], stamp), child))
    return order
