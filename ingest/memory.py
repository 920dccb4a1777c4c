"""glibc memory tricks: keep the heap from growing after huge lines, and give freed
memory back to the OS (see batch.HUGE_BYTES)."""

from __future__ import annotations

import sqlite3
import sys

STATEMENT_CACHE = 128  # sqlite3.connect's default cached_statements
# Blocks at least this large are mapped and unmapped on their own (glibc's M_MMAP_THRESHOLD)
MMAP_BYTES = 512 << 10
_glibc: object | None | bool = False  # False: not looked up yet


def glibc():
    """The C library when it is glibc (malloc_trim, mallopt), else None."""
    global _glibc
    if _glibc is False:
        _glibc = None
        if sys.platform == "linux":
            import ctypes

            try:
                lib = ctypes.CDLL(None)
                if hasattr(lib, "malloc_trim") and hasattr(lib, "mallopt"):
                    _glibc = lib
            except OSError:  # no glibc (musl and others)
                pass
    return _glibc


def limit_heap() -> None:
    """Have glibc map blocks of MMAP_BYTES or more on their own, so that freeing one (a
    huge line, SQLite's copy of it) gives its memory back to the OS at once.

    By default glibc raises that threshold each time such a block is freed, up to 32 MB:
    after the first huge line, the next ones were carved from the heap, and the heap
    only grew (a 100 MB sync peaked 6 MB higher)."""
    lib = glibc()
    if lib is not None:
        lib.mallopt(-3, MMAP_BYTES)  # M_MMAP_THRESHOLD


def release_memory(conn: sqlite3.Connection) -> None:
    """Give the memory freed after a huge line back to the OS.

    glibc keeps freed blocks for reuse, so without this the peak RSS ratchets up with
    every line of several MB (SQLite's copy of the record and its FTS entry, the parsed
    object); malloc_trim returns them.  Elsewhere (no glibc) this only asks SQLite."""
    # A prepared statement keeps the buffers of its largest row (the record of a 5 MB
    # line: some 10 MB) until it is finalized, and sqlite3 caches every statement (128,
    # least recently used first out): running 128 other statements finalizes them.
    for i in range(STATEMENT_CACHE):
        conn.execute(f"SELECT {i}")
    conn.execute("PRAGMA shrink_memory")
    lib = glibc()
    if lib is not None:
        lib.malloc_trim(0)
