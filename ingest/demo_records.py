"""The demo generator's record writers: the shared state of a run, the file writer, and
the half of a transcript thread that writes records (envelopes, usage, messages)."""

from __future__ import annotations

import bisect
import math
import os
import random
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson

from .demo_words import (
    B62,
    CLASSES,
    DAY,
    DEPS,
    DUMPS_OPTION,
    ERRORS,
    FEATURES,
    IDENTS,
    MIXES,
    MODULES,
    SENTENCES,
    SPAN_DAYS,
    THINGS,
    Mix,
    iso,
    version_tuple,
)


@dataclass
class _Shared:
    """State of one generate() call shared by every writer."""

    rng: random.Random
    root: Path
    now: float
    progress: Callable[[int], None] | None
    code: dict[str, tuple[list[str], list[int]]]  # lines, and where each ends (pool twice)
    blob: str  # base64 text for images and signatures
    mix: Mix = MIXES["default"]
    files: int = 0
    sessions: int = 0
    lines: int = 0
    bytes: int = 0
    subagents: int = 0
    pending: int = 0
    leaves: dict[str, list[str]] = field(default_factory=dict)  # project -> leaf uuids
    replayable: dict[str, list[tuple[list[dict], float]]] = field(default_factory=dict)
    shown: set[str] = field(default_factory=set)

    def wrote(self, n: int) -> None:
        self.bytes += n
        if self.progress is not None:
            self.pending += n
            if self.pending >= 1 << 20:
                self.progress(self.pending)
                self.pending = 0

    def want(self, feature: str, p: float) -> bool:
        """True with probability p, and always the first time: small corpora show it all."""
        if feature not in self.shown:
            self.shown.add(feature)
            return True
        return self.rng.random() < p


class _Writer:
    """One JSONL file being written; counts bytes and remembers the last record time."""

    def __init__(self, shared: _Shared, path: Path):
        path.parent.mkdir(parents=True, exist_ok=True)
        self.shared = shared
        self.path = path
        self.fp = open(path, "wb", buffering=1 << 20)
        self.bytes = 0
        self.last_t = shared.now - SPAN_DAYS * DAY
        shared.files += 1

    def write(self, rec: dict[str, Any], t: float | None = None) -> int:
        data = orjson.dumps(rec, option=DUMPS_OPTION)
        self.fp.write(data)
        n = len(data)
        self.bytes += n
        self.shared.lines += 1
        self.shared.wrote(n)
        if t is not None and t > self.last_t:
            self.last_t = t
        return n

    def close(self) -> None:
        self.fp.close()
        os.utime(self.path, (self.last_t, self.last_t))


class _Records:
    """One transcript's writer of records: ids, time, usage, user/assistant/system lines."""

    """A conversation being written: the main thread of a session or a subagent."""

    def __init__(
        self,
        shared: _Shared,
        writer: _Writer,
        *,
        project: dict[str, Any],
        session_id: str,
        version: str,
        model: str,
        t: float,
        t_end: float,
        branch: str,
        slug: str | None,
        agent_id: str | None = None,
    ):
        self.s = shared
        self.rng = shared.rng
        self.w = writer
        self.project = project
        self.cwd = project["cwd"]
        self.session_id = session_id
        self.version = version
        self.v = version_tuple(version)
        self.model = model
        self.t = t
        self.t_end = t_end
        self.branch = branch
        self.slug = slug
        self.agent_id = agent_id
        self.sidechain = agent_id is not None
        self.last: str | None = None  # uuid of the last record in the chain
        self.ctx = self.rng.randint(11_000, 22_000)  # context tokens, drives usage numbers
        self.budget = 0  # bytes this thread may still write
        self.replay: list[dict] = []  # first records, kept for a later resume
        self.replay_ok = True
        self.replay_turns = 0  # records in self.replay that end a complete turn
        self.tool_uses = 0
        self.output_tokens = 0
        self.final_text = ""
        self.last_prompt = ""

    # -- ids, time, text ---------------------------------------------------------------

    def uuid(self) -> str:
        return str(uuid.UUID(int=self.rng.getrandbits(128), version=4))

    def b62(self, prefix: str, n: int) -> str:
        return prefix + "".join(self.rng.choices(B62, k=n))

    def tick(self, lo: float, hi: float) -> str:
        """Advance the clock by lo..hi seconds (less when close to t_end)."""
        dt = self.rng.uniform(lo, hi)
        cap = (self.t_end - self.t) / max(50, self.budget / 1500)  # leave room for the rest
        if dt > cap:
            dt = max(cap, 0.001)
        self.t += dt
        return iso(self.t)

    def fill(self, template: str) -> str:
        r = self.rng
        files = self.project["files"]
        thing = r.choice(THINGS)
        error = r.choice(ERRORS)
        return template.format(
            file=r.choice(files),
            test=r.choice(self.project["tests"]),
            dir=r.choice(self.project["dirs"]),
            module=r.choice(MODULES),
            module2=r.choice(MODULES),
            module_cap=r.choice(MODULES).capitalize(),
            thing=thing,
            thing_cap=thing[0].upper() + thing[1:],
            feature=r.choice(FEATURES),
            ident=r.choice(IDENTS),
            ident2=r.choice(IDENTS),
            cls=r.choice(CLASSES),
            error=error,
            error_short=error.split(":")[0],
            branch=self.branch or "main",
            dep=r.choice(DEPS),
            n=r.randint(2, 40),
        )

    def prose(self, n: int) -> str:
        return " ".join(self.fill(self.rng.choice(SENTENCES)) for _ in range(n))

    def code_lines(self, n_bytes: int) -> list[str]:
        """Consecutive lines of the code pool (wrapping around) adding up to n_bytes."""
        pool, ends = self.s.code[self.project["lang"]]
        whole, n_bytes = divmod(n_bytes, ends[len(pool) - 1])
        start = self.rng.randrange(len(pool))
        offset = ends[start - 1] if start else 0
        stop = bisect.bisect_left(ends, offset + n_bytes) + 1
        doubled = pool + pool if stop > len(pool) else pool
        return pool * whole + doubled[start:stop]

    def b64(self, n: int) -> str:
        n -= n % 4
        blob = self.s.blob
        start = self.rng.randrange(0, len(blob) - n, 4) if n < len(blob) else 0
        return blob[start : start + n]

    def lognormal(self, median: float, sigma: float, cap: float) -> int:
        return int(min(cap, median * math.exp(self.rng.gauss(0, sigma))))

    # -- records ---------------------------------------------------------------------

    def envelope(self, parent: str | None) -> dict[str, Any]:
        rec: dict[str, Any] = {
            "parentUuid": parent,
            "isSidechain": self.sidechain,
            "userType": "external",
            "cwd": self.cwd,
            "sessionId": self.session_id,
            "version": self.version,
            "gitBranch": self.branch,
        }
        if self.agent_id:
            rec["agentId"] = self.agent_id
        if self.slug:
            rec["slug"] = self.slug
        return rec

    def emit(self, rec: dict[str, Any], chain: bool = True) -> int:
        """Write a record; conversation records become the new end of the chain."""
        n = self.w.write(rec, self.t)
        self.budget -= n
        if chain and "uuid" in rec:
            self.last = rec["uuid"]
        if self.replay_ok and not self.sidechain:
            if n < 20_000 and len(self.replay) < 40:
                self.replay.append(rec)
            else:
                self.replay_ok = False
        return n

    def usage(self, output: int, split_5m: bool) -> dict[str, Any]:
        r = self.rng
        write = r.randint(50, 3000) if r.random() < 0.8 else r.randint(3000, 20_000)
        u: dict[str, Any] = {
            "input_tokens": r.randint(1, 12),
            "cache_creation_input_tokens": write,
            "cache_read_input_tokens": self.ctx,
            "cache_creation": {
                "ephemeral_5m_input_tokens": write if split_5m else 0,
                "ephemeral_1h_input_tokens": 0 if split_5m else write,
            },
            "output_tokens": output,
            "service_tier": "standard",
        }
        if self.v >= (2, 1, 42):
            u["inference_geo"] = "not_available"
        self.ctx += write
        return u

    def user(self, content: Any, **extra: Any) -> str:
        rec = self.envelope(self.last)
        rec["type"] = "user"
        rec["message"] = {"role": "user", "content": content}
        uid = rec["uuid"] = self.uuid()
        rec["timestamp"] = self.tick(0.05, 0.4)
        rec.update(extra)
        self.emit(rec)
        return uid

    def assistant(self, blocks: list[dict[str, Any]], stop_reason: str | None) -> list[str]:
        """One API response, one line per content block, sharing id/requestId/usage."""
        r = self.rng
        msg_id = self.b62("msg_01", 22)
        req_id = self.b62("req_011C", 20)
        final_output = sum(
            len(str(b.get("text") or b.get("thinking") or b.get("input"))) for b in blocks
        )
        final_output = max(1, final_output // 4 + r.randint(0, 40))
        split_5m = self.sidechain or self.v < (2, 1)
        usage = self.usage(1, split_5m)
        early = r.choice((1, 1, 2, 3, 12, 25))
        grows = r.random() < 0.7  # else every line repeats the same (final) usage
        uuids = []
        for i, block in enumerate(blocks):
            last = i == len(blocks) - 1
            u = dict(usage)
            u["output_tokens"] = final_output if (last or not grows) else early
            rec = self.envelope(self.last)
            rec["message"] = {
                "model": self.model,
                "id": msg_id,
                "type": "message",
                "role": "assistant",
                "content": [block],
                "stop_reason": stop_reason if last else None,
                "stop_sequence": None,
                "usage": u,
            }
            rec["requestId"] = req_id
            rec["type"] = "assistant"
            rec["uuid"] = self.uuid()
            rec["timestamp"] = self.tick(0.3, 4.0)
            self.emit(rec)
            uuids.append(rec["uuid"])
        self.output_tokens += final_output
        self.ctx += final_output
        return uuids

    def synthetic(self, text: str, **extra: Any) -> None:
        rec = self.envelope(self.last)
        rec["message"] = {
            "id": self.uuid(),
            "container": None,
            "model": "<synthetic>",
            "role": "assistant",
            "stop_reason": "stop_sequence",
            "stop_sequence": "",
            "type": "message",
            "usage": {
                "input_tokens": 0,
                "output_tokens": 0,
                "cache_creation_input_tokens": 0,
                "cache_read_input_tokens": 0,
                "server_tool_use": {"web_search_requests": 0, "web_fetch_requests": 0},
                "service_tier": None,
                "cache_creation": {"ephemeral_1h_input_tokens": 0, "ephemeral_5m_input_tokens": 0},
            },
            "content": [{"type": "text", "text": text}],
        }
        rec["type"] = "assistant"
        rec["uuid"] = self.uuid()
        rec["timestamp"] = self.tick(0.1, 1.0)
        rec.update(extra)
        self.emit(rec)

    def system(self, subtype: str | None, parent: str | None, **fields: Any) -> str:
        rec = self.envelope(parent)
        rec["type"] = "system"
        if subtype:
            rec["subtype"] = subtype
        rec.update(fields)
        rec["timestamp"] = self.tick(0.01, 0.3)
        rec["uuid"] = self.uuid()
        self.emit(rec)
        return rec["uuid"]

    def progress_hook(self, event: str, name: str, tool_use_id: str, parent: str | None) -> None:
        rec = self.envelope(parent)
        rec["type"] = "progress"
        rec["data"] = {
            "type": "hook_progress",
            "hookEvent": event,
            "hookName": name,
            "command": '"${CLAUDE_PLUGIN_ROOT}/scripts/notify.sh" ' + event.lower(),
        }
        rec["parentToolUseID"] = tool_use_id
        rec["toolUseID"] = tool_use_id
        rec["timestamp"] = self.tick(0.01, 0.2)
        rec["uuid"] = self.uuid()
        self.emit(rec, chain=parent is None)

    def meta(self, rtype: str, **fields: Any) -> None:
        """A metadata record (no uuid, not part of the chain)."""
        self.emit({"type": rtype, **fields}, chain=False)

    # -- tools -----------------------------------------------------------------------
