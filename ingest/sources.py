"""Where transcripts are found: walk the roots, and say what each file is.

``discover`` walks a root with os.scandir; ``classify`` names a file by its path relative
to its root (session, agent, journal, meta.json, other); a ``Source`` is one file found.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterator
from pathlib import Path

UUID_RE = re.compile(
    r"^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$"
)


class Source:
    """A transcript file found on disk.

    A pass holds one per file of the tree (thousands), so it keeps only the path, its
    root, its kind and four stat fields; the rest is worked out when the file is read."""

    __slots__ = ("path", "root", "kind", "size", "mtime", "inode", "device")

    def __init__(self, path: str, root: str, kind: str, stat: os.stat_result):
        self.path = path
        self.root = root
        self.kind = kind
        self.size = stat.st_size
        self.mtime = stat.st_mtime
        self.inode = stat.st_ino
        self.device = stat.st_dev

    @property
    def rel_path(self) -> str:
        return self.path[len(self.root) :].lstrip(os.sep).replace(os.sep, "/")

    @property
    def project_dir(self) -> str | None:
        return classify(self.rel_path)[1]

    @property
    def session_id(self) -> str | None:
        return classify(self.rel_path)[2]

    @property
    def agent_id(self) -> str | None:
        return classify(self.rel_path)[3]


def classify(rel_path: str) -> tuple[str, str | None, str | None, str | None] | None:
    """(kind, project_dir, session_id, agent_id) for a path relative to its root, or
    None when the file is not one we archive."""
    parts = rel_path.split("/")
    name = parts[-1]
    if name.endswith(".meta.json"):
        kind = "meta"
        stem = name[: -len(".meta.json")]
    elif name.endswith(".jsonl"):
        stem = name[: -len(".jsonl")]
        if name == "journal.jsonl" and "workflows" in parts[:-1]:
            kind = "journal"
        elif stem.startswith("agent-"):
            kind = "agent"
        elif len(parts) == 2 and UUID_RE.match(stem):
            kind = "session"
        else:
            kind = "other"
    else:
        return None
    project_dir = parts[0] if len(parts) > 1 else None
    agent_id = stem[len("agent-") :] if stem.startswith("agent-") else None
    session_id = None
    if kind == "session":
        session_id = stem
    elif "subagents" in parts[:-1]:
        i = parts.index("subagents")
        if i >= 1:
            session_id = parts[i - 1]
    return kind, project_dir, session_id, agent_id


def discover(root: Path) -> Iterator[Source]:
    """Every archivable file under root, at any depth."""
    root_str = str(root)
    stack = [root_str]
    while stack:
        folder = stack.pop()
        try:
            entries = list(os.scandir(folder))
        except (FileNotFoundError, NotADirectoryError, PermissionError):
            continue
        for entry in entries:
            try:
                if entry.is_dir(follow_symlinks=False):
                    stack.append(entry.path)
                    continue
                if not entry.is_file():
                    continue
                name = entry.name
                if not (name.endswith(".jsonl") or name.endswith(".meta.json")):
                    continue
                source = make_source(root_str, entry.path, entry.stat())
            except FileNotFoundError:
                continue
            if source is not None:
                yield source


def make_source(root: str, path: str, stat: os.stat_result) -> Source | None:
    """The Source for a file at path under root (path starts with root)."""
    rel_path = path[len(root) :].lstrip(os.sep).replace(os.sep, "/")
    info = classify(rel_path)
    if info is None:
        return None
    return Source(path, root, info[0], stat)


def real_path(path: Path) -> Path:
    """path with its folders' symlinks resolved (a symlinked file stays itself; a file
    that is gone resolves too)."""
    path = path.expanduser().absolute()
    if path.is_dir():
        return Path(os.path.realpath(path))
    return Path(os.path.realpath(path.parent)) / path.name
