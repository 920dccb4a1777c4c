"""Finding the files ingest.keep keeps, and reading one whole (see ingest/keep.py).

The walk never stops on an odd entry: a folder it cannot list, a file it cannot open, a
FIFO, socket or device, a symlink loop: each is skipped with a reason and tried again next
pass, and the folders that could not be listed are named so that their files are not taken
for deleted.  Sources are opened read-only and never changed.
"""

from __future__ import annotations

import os
import re
import stat as stat_module
from collections.abc import Iterable, Iterator
from dataclasses import dataclass

# Files larger than this are not kept (listed as skipped): they are read in one piece.
MAX_FILE_BYTES = 256 << 20
HISTORY = "history.jsonl"
CLAUDE_DIR_AREAS = ("file-history", "plans", "todos")
UUID_RE = re.compile(r"[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}")


@dataclass
class Found:
    path: str
    root: str
    base: str  # projects | claude
    rel_path: str
    area: str
    session_id: str | None
    st: os.stat_result


def printable(path: str) -> str:
    """A path as text for messages, whatever bytes its name holds."""
    return os.fsencode(path).decode("utf-8", "replace")


def is_transcript(name: str) -> bool:
    """A file the sync engine archives line by line (ingest.sync.discover)."""
    return name.endswith(".jsonl") or name.endswith(".meta.json")


def project_area(rel_path: str) -> tuple[str, str | None]:
    """(area, session_id) of a kept file under a projects directory."""
    parts = rel_path.split("/")
    session_id = parts[1] if len(parts) >= 3 and UUID_RE.fullmatch(parts[1]) else None
    if len(parts) >= 4 and parts[2] == "tool-results":
        return "tool-results", session_id
    return ("session" if session_id else "project"), session_id


def claude_area(rel_path: str) -> tuple[str, str | None]:
    """(area, session_id) of a kept file under the Claude directory."""
    parts = rel_path.split("/")
    area = parts[0]
    match = UUID_RE.match(parts[1]) if len(parts) > 1 else None
    return area, match.group(0) if match else None


# -- the walk -----------------------------------------------------------------------------


def walk(
    folder: str, skipped: list[str], unlisted: list[str], ignore=None
) -> Iterator[tuple[str, os.stat_result]]:
    """(path, stat) of every regular file under folder (symlinked files followed, symlinked
    folders not), never raising: what cannot be listed or stat'ed is skipped with a reason;
    folders that could not be listed are added to ``unlisted``; names ``ignore`` says
    True of are passed over."""
    stack = [folder]
    while stack:
        current = stack.pop()
        try:
            with os.scandir(current) as it:
                entries = list(it)
        except FileNotFoundError:
            continue
        except OSError as e:
            skipped.append(f"{printable(current)}: cannot list the folder: {e.strerror}")
            unlisted.append(current)
            continue
        for entry in entries:
            try:
                if entry.is_dir(follow_symlinks=False):
                    stack.append(entry.path)
                    continue
                if ignore is not None and ignore(entry.name):
                    continue  # (not even stat'ed: the transcripts are the engine's)
                st = entry.stat()  # follows a symlink
            except FileNotFoundError as e:
                if entry.is_symlink():
                    skipped.append(f"{printable(entry.path)}: broken symlink")
                elif e.filename is None:
                    pass  # gone since the listing
                continue
            except OSError as e:
                skipped.append(f"{printable(entry.path)}: {e.strerror}")
                continue
            if stat_module.S_ISDIR(st.st_mode):
                continue  # a symlink to a folder: not followed (loops)
            if not stat_module.S_ISREG(st.st_mode):
                skipped.append(
                    f"{printable(entry.path)}: {kind_of(st.st_mode)}, not a regular file"
                )
                continue
            yield entry.path, st


def kind_of(mode: int) -> str:
    if stat_module.S_ISFIFO(mode):
        return "a FIFO"
    if stat_module.S_ISSOCK(mode):
        return "a socket"
    if stat_module.S_ISCHR(mode) or stat_module.S_ISBLK(mode):
        return "a device"
    return "a special file"


def rel(root: str, path: str) -> str:
    return path[len(root) :].lstrip(os.sep).replace(os.sep, "/")


def find_in_projects(
    root: str, skipped: list[str], unlisted: list[str], folder: str | None = None
) -> Iterator[Found]:
    """The kept files under a projects directory (or one of its folders)."""
    for path, st in walk(folder or root, skipped, unlisted, is_transcript):
        rel_path = rel(root, path)
        if "/" not in rel_path:
            continue  # a file beside the project folders is no project's
        area, session_id = project_area(rel_path)
        yield Found(path, root, "projects", rel_path, area, session_id, st)


def find_in_claude_dir(claude_dir: str, skipped: list[str], unlisted: list[str]) -> Iterator[Found]:
    """history.jsonl, file-history/, plans/ and todos/ of a Claude directory."""
    history = os.path.join(claude_dir, HISTORY)
    try:
        st = os.stat(history)
    except FileNotFoundError:
        pass
    except OSError as e:
        skipped.append(f"{printable(history)}: {e.strerror}")
    else:
        if stat_module.S_ISREG(st.st_mode):
            yield Found(history, claude_dir, "claude", HISTORY, "history", None, st)
        else:
            skipped.append(f"{printable(history)}: {kind_of(st.st_mode)}, not a regular file")
    for area in CLAUDE_DIR_AREAS:
        for path, st in walk(os.path.join(claude_dir, area), skipped, unlisted):
            rel_path = rel(claude_dir, path)
            area_name, session_id = claude_area(rel_path)
            yield Found(path, claude_dir, "claude", rel_path, area_name, session_id, st)


# -- reading --------------------------------------------------------------------------------


class Skip(Exception):
    """A file that cannot be kept now; the message says why."""


def read_whole(path: str, expected: os.stat_result) -> bytes | None:
    """The file's bytes, or None when it changed while being read (tried next pass).

    Opened read-only and non-blocking (a FIFO swapped in since the walk does not block);
    raises Skip for anything that is not a regular file or cannot be read."""
    if expected.st_size > MAX_FILE_BYTES:
        raise Skip(f"larger than {MAX_FILE_BYTES >> 20} MiB, not kept")
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | getattr(os, "O_CLOEXEC", 0))
    except FileNotFoundError:
        return None
    except OSError as e:
        raise Skip(e.strerror or str(e)) from None
    try:
        st = os.fstat(fd)
        if not stat_module.S_ISREG(st.st_mode):
            raise Skip(f"{kind_of(st.st_mode)}, not a regular file")
        pieces = []
        total = 0
        while True:
            piece = os.read(fd, max(1 << 16, st.st_size - total + 1))
            if not piece:
                break
            pieces.append(piece)
            total += len(piece)
            if total > MAX_FILE_BYTES:
                raise Skip(f"larger than {MAX_FILE_BYTES >> 20} MiB, not kept")
        after = os.fstat(fd)
    except OSError as e:
        raise Skip(e.strerror or str(e)) from None
    finally:
        os.close(fd)
    if total != after.st_size or after.st_mtime_ns != st.st_mtime_ns:
        return None
    if (st.st_size, st.st_mtime) != (expected.st_size, expected.st_mtime):
        return None  # changed since the walk: the next pass sees the new stat
    return b"".join(pieces) if len(pieces) != 1 else pieces[0]


def session_folders(roots: Iterable[str], paths: Iterable[str]) -> list[tuple[str, str]]:
    """(root, folder) pairs: the session folders of the transcripts (and the folders) a
    watch pass was given, where their tool results are written."""
    out = []
    seen = set()
    roots = list(roots)
    for path in paths:
        path = str(path)
        root = next((r for r in roots if path.startswith(r.rstrip(os.sep) + os.sep)), None)
        if root is None:
            continue
        parts = rel(root, path).split("/")
        if len(parts) < 2:
            continue
        stem = parts[1][: -len(".jsonl")] if parts[1].endswith(".jsonl") else parts[1]
        folder = os.path.join(root, parts[0], stem)
        if folder not in seen and os.path.isdir(folder):
            seen.add(folder)
            out.append((root, folder))
    return out
