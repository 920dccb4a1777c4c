"""How big the archive is against the sources it holds, and where the bytes go.

    python bench/bench_size.py                       # ../shared/samples/real
    python bench/bench_size.py --projects DIR        # any projects tree (read only)
    python bench/bench_size.py --mix tool-heavy --mb 100   # a generated demo corpus
    python bench/bench_size.py --db X.db --projects DIR    # an archive already synced

The tree is synced into a new archive in a temporary folder (HOME and the other
variables point inside it; the sources are only read), then the archive's size (file
plus -wal) is compared with the bytes of the files it holds (.jsonl and .meta.json), and
SQLite's dbstat table says how many bytes each table and index takes.
"""

from __future__ import annotations

import argparse
import os
import shutil
import sqlite3
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))

from ingest.demo import MIXES, generate  # noqa: E402

REAL = HERE.parent.parent / "shared" / "samples" / "real"


def source_bytes(root: Path) -> tuple[int, int]:
    files = [p for p in root.rglob("*") if p.is_file() and p.name.endswith((".jsonl", ".json"))]
    return len(files), sum(p.stat().st_size for p in files)


def archive_bytes(db: Path) -> int:
    return sum(p.stat().st_size for p in db.parent.glob(db.name + "*") if p.is_file())


def by_object(db: Path) -> list[tuple[str, str, int]]:
    """(name, table or index, bytes) of every b-tree, largest first."""
    conn = sqlite3.connect(db)
    kinds = dict(conn.execute("SELECT name, type FROM sqlite_master"))
    rows = conn.execute(
        "SELECT name, sum(pgsize) FROM dbstat GROUP BY name ORDER BY 2 DESC"
    ).fetchall()
    conn.close()
    return [(name, kinds.get(name, "table"), size) for name, size in rows]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--projects", type=Path, help=f"projects tree (default {REAL})")
    parser.add_argument("--mix", choices=list(MIXES), help="generate a demo corpus instead")
    parser.add_argument("--mb", type=float, default=100, help="demo corpus size (MB)")
    parser.add_argument("--db", type=Path, help="an archive already synced from --projects")
    args = parser.parse_args()

    work = Path(tempfile.mkdtemp(prefix="bench-size-"))
    home = work / "home"
    home.mkdir()
    os.environ.update(
        HOME=str(home),
        CLAUDE_CONFIG_DIR=str(home / ".claude"),
        CLAUDE_SESSIONS_DB=str(work / "archive.db"),
        XDG_DATA_HOME=str(home / ".local" / "share"),
    )
    try:
        if args.mix:
            projects = work / "projects"
            generate(projects, mb=args.mb, seed=0, mix=args.mix)
            label = f"demo corpus, mix {args.mix}"
        else:
            projects = (args.projects or REAL).resolve()
            label = str(projects)
        db = args.db
        seconds = None
        if db is None:
            from ingest.sync import run_pass

            db = work / "archive.db"
            started = time.perf_counter()
            run_pass(db, [projects], trigger="cli")
            seconds = time.perf_counter() - started
        files, sources = source_bytes(projects)
        size = archive_bytes(db)
        print(f"Sources: {label}: {files:,} files, {sources / 1e6:,.2f} MB")
        synced = f" (synced in {seconds:.1f} s)" if seconds is not None else ""
        print(f"Archive: {size / 1e6:,.2f} MB{synced}: {size / sources:.2f}x the sources\n")
        objects = by_object(db)
        width = max(len(name) for name, _, _ in objects)
        print(f"{'b-tree':<{width}}  {'kind':<5}  {'MB':>8}  {'share':>6}")
        for name, kind, nbytes in objects[:20]:
            print(f"{name:<{width}}  {kind:<5}  {nbytes / 1e6:8.2f}  {nbytes / size:6.1%}")
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
