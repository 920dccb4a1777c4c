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
- records without a uuid (summaries, titles, snapshots, queue operations) that have a
  timestamp are placed by it (a file-history snapshot is written after the answer it
  belongs to may already be on screen); those without one follow the nearest earlier
  record of their own file that has a uuid, in file order, or are roots when there is
  none.
"""

from __future__ import annotations

import heapq
from collections.abc import Iterable


def conversation_order(rows: Iterable[tuple]) -> list[int]:
    """Ordered event ids from ``(id, uuid, parent_uuid, timestamp, file_id)`` rows.

    Rows must come in ``id`` order (the order lines were read, so file order per file).
    Records are addressed by their position in ``rows`` below, so ties between equal
    timestamps go to the smaller id.
    """
    rows = list(rows)
    ids = [row[0] for row in rows]
    stamps = [row[3] or "" for row in rows]
    position: dict[str, int] = {}
    for i, row in enumerate(rows):
        if row[1] and row[1] not in position:
            position[row[1]] = i

    children: dict[int, list[int]] = {}
    followers: dict[int, list[int]] = {}
    last_with_uuid: dict[int, int] = {}
    nodes: list[int] = []
    roots: list[int] = []
    for i, (_id, uuid, parent_uuid, _stamp, file_id) in enumerate(rows):
        if not uuid:
            # Summaries, titles, snapshots, queue operations: by their timestamp when
            # they have one, else at their file position.
            if not stamps[i] and file_id in last_with_uuid:
                followers.setdefault(last_with_uuid[file_id], []).append(i)
            else:
                roots.append(i)
            continue
        nodes.append(i)
        last_with_uuid[file_id] = i
        parent = position.get(parent_uuid) if parent_uuid else None
        if parent is None or parent == i:
            roots.append(i)
        else:
            children.setdefault(parent, []).append(i)

    order, placed = _walk(ids, stamps, roots, children, followers)
    if len(order) < len(rows):
        # Some records hang off a parent cycle: free the earliest of each, then redo the
        # walk so they still come at their time.
        order, placed = _walk(
            ids, stamps, roots + _cycle_roots(nodes, stamps, placed, children), children, followers
        )
    return order


def _walk(ids, stamps, roots, children, followers) -> tuple[list[int], bytearray]:
    """Topological order by smallest (timestamp, position) among placeable records."""
    heap = [(stamps[i], i) for i in roots]
    heapq.heapify(heap)
    placed = bytearray(len(ids))
    order: list[int] = []
    while heap:
        stamp, i = heapq.heappop(heap)
        while not placed[i]:
            placed[i] = 1
            order.append(ids[i])
            for j in followers.get(i, ()):
                placed[j] = 1
                order.append(ids[j])
            kids = children.get(i)
            if not kids:
                break
            if len(kids) == 1:
                # A plain chain: go straight on unless something queued comes first.
                child = kids[0]
                key = stamps[child] if stamps[child] > stamp else stamp
                if not placed[child] and (not heap or (key, child) <= heap[0]):
                    stamp, i = key, child
                    continue
            for child in kids:
                if not placed[child]:
                    key = stamps[child] if stamps[child] > stamp else stamp
                    heapq.heappush(heap, (key, child))
            break
    return order, placed


def _cycle_roots(nodes, stamps, placed, children) -> list[int]:
    """The earliest unplaced record of each group hanging off a cycle."""
    freed: list[int] = []
    reached = set()
    for i in sorted((i for i in nodes if not placed[i]), key=lambda i: (stamps[i], i)):
        if i in reached:
            continue
        freed.append(i)
        stack = [i]
        while stack:
            node = stack.pop()
            if node not in reached:
                reached.add(node)
                stack.extend(children.get(node, ()))
    return freed
