"""Where transcripts are found: walk the roots, and say what each file is.

``discover`` walks a root with os.scandir; ``classify`` names a file by its path relative
to its root (session, agent, journal, meta.json, other); a ``Source`` is one file found.

Nothing found on disk stops a walk (issue 8): a folder that cannot be listed, a name that
cannot be stat'ed (a symlink loop, a symlink into a folder one may not enter) and a
FIFO, socket or device named like a transcript are reported to ``unreadable`` with the
reason, and the walk goes on.  File names that are not UTF-8 are kept: ``db_name`` is
the value stored for a path (the text, or the exact bytes when they are not UTF-8).
"""

from __future__ import annotations

import os
import re
import stat as stat_module
from collections.abc import Callable, Iterator
from pathlib import Path

from .digest import blake2b

# (path, reason) for something a pass could not read: it is retried on later passes.
Unreadable = Callable[[str, str], None]

FILE_KINDS = {
    stat_module.S_IFIFO: "a FIFO",
    stat_module.S_IFSOCK: "a socket",
    stat_module.S_IFCHR: "a character device",
    stat_module.S_IFBLK: "a block device",
}


def not_regular(mode: int) -> str | None:
    """Why a file of this st_mode is not read (None for a regular file or a folder)."""
    if stat_module.S_ISREG(mode) or stat_module.S_ISDIR(mode):
        return None
    kind = FILE_KINDS.get(stat_module.S_IFMT(mode), "not a regular file")
    return f"not a regular file ({kind}); never opened" if kind.startswith("a ") else kind


def db_name(path: str) -> str | bytes:
    """A path as stored in the archive: the text, or its bytes when it is not UTF-8 (a
    name made of other bytes, decoded by Python with surrogate escapes)."""
    if path.isascii():
        return path
    try:
        path.encode("utf-8")
    except UnicodeEncodeError:
        return os.fsencode(path)
    return path


def os_name(value: str | bytes) -> str:
    """A stored path back as the str Python's os functions take."""
    return os.fsdecode(value) if isinstance(value, bytes) else value


def text_name(value: str | None) -> str | None:
    """A name for a text column (ids, project folders): undecodable bytes as U+FFFD."""
    if value is None or value.isascii():
        return value
    return value.encode("utf-8", "surrogateescape").decode("utf-8", "replace")


# A file whose first HEAD_BYTES changed was rewritten, not appended to: read it again.
HEAD_BYTES = 4096
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


def discover(
    root: Path, unreadable: Unreadable | None = None, under: str | None = None
) -> Iterator[Source]:
    """Every archivable file under root, at any depth; what cannot be listed or is not
    a regular file goes to ``unreadable(path, reason)``.  ``under``: the projects root
    the files belong to when root is a folder inside it (default: root)."""
    root_str = str(root)
    base = under or root_str
    stack = [root_str]
    while stack:
        folder = stack.pop()
        try:
            entries = list(os.scandir(folder))
        except (FileNotFoundError, NotADirectoryError):
            continue  # gone since it was seen (or a root that is not there)
        except OSError as e:
            if unreadable is not None:
                unreadable(folder, f"folder cannot be listed: {e.strerror or e}")
            continue
        for entry in entries:
            try:
                if entry.is_dir(follow_symlinks=False):
                    stack.append(entry.path)
                    continue
            except OSError:
                pass  # then it is looked at as a file below
            name = entry.name
            if not (name.endswith(".jsonl") or name.endswith(".meta.json")):
                continue
            try:
                st = entry.stat()  # follows a symlink, as opening the file would
            except FileNotFoundError:
                continue  # deleted since the listing, or a dangling symlink
            except OSError as e:
                if unreadable is not None:
                    unreadable(entry.path, e.strerror or str(e))
                continue
            why = not_regular(st.st_mode)
            if why is not None:
                if unreadable is not None and not stat_module.S_ISDIR(st.st_mode):
                    unreadable(entry.path, why)
                continue
            if stat_module.S_ISDIR(st.st_mode):
                continue  # a symlink to a folder named like a transcript
            source = make_source(base, entry.path, st)
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


def head_hash(data: bytes) -> str:
    """The fingerprint of a file's first bytes (sync_files.head_hash)."""
    return blake2b(data, digest_size=16).hexdigest()
