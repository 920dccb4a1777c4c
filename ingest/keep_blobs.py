"""Kept contents, stored once each by their blake2b-256 hash in ``kept_blobs``, compressed
with zstd when that makes them smaller (see ingest/keep.py and docs/keep.md)."""

from __future__ import annotations

import sqlite3

from .digest import blake2b

# zstd level for kept contents, measured on the kept files of the 100 MB demo corpus
# (bench/bench_keep.py, docs/keep.md): level 3 stores them 5.2x smaller at ~100 MB/s, as
# fast as level 1 (4.8x); level 6 saves 5% more at a quarter of the speed, level 9 10%
# at a fifth.
ZSTD_LEVEL = 3

_compressor = None


def compress(data: bytes) -> bytes:
    global _compressor
    if _compressor is None:
        import zstandard

        _compressor = zstandard.ZstdCompressor(level=ZSTD_LEVEL)
    return _compressor.compress(data)


def decompress(data: bytes, size: int) -> bytes:
    import zstandard

    return zstandard.ZstdDecompressor().decompress(data, max_output_size=size)


def content_hash(data: bytes) -> str:
    return blake2b(data, digest_size=32).hexdigest()


def store_blob(conn: sqlite3.Connection, data: bytes) -> tuple[str, int]:
    """Store data once (by its hash); returns (hash, bytes added to the archive: 0 when the
    content was there already)."""
    digest = content_hash(data)
    if conn.execute("SELECT 1 FROM kept_blobs WHERE hash = ?", (digest,)).fetchone():
        return digest, 0
    packed = compress(data) if data else data
    if len(packed) < len(data):
        conn.execute(
            "INSERT INTO kept_blobs (hash, size, compression, data) VALUES (?, ?, 'zstd', ?)",
            (digest, len(data), packed),
        )
        return digest, len(packed)
    conn.execute(
        "INSERT INTO kept_blobs (hash, size, compression, data) VALUES (?, ?, NULL, ?)",
        (digest, len(data), data),
    )
    return digest, len(data)


def blob_bytes(conn: sqlite3.Connection, digest: str) -> bytes | None:
    """The content stored under digest, as it was read."""
    row = conn.execute(
        "SELECT size, compression, data FROM kept_blobs WHERE hash = ?", (digest,)
    ).fetchone()
    if row is None:
        return None
    size, compression, data = row
    data = bytes(data) if not isinstance(data, bytes) else data
    if compression == "zstd":
        return decompress(data, size)
    return data
