"""What keeping the files beside the transcripts (ingest/keep.py) costs, on the demo corpus.

    python bench/bench_keep.py --mb 100            # the figures in docs/keep.md
    python bench/bench_keep.py --mb 20 --repeat 1  # a quick check

Everything happens in a temporary folder (removed afterwards unless --keep-dir), and
HOME, CLAUDE_CONFIG_DIR and CLAUDE_SESSIONS_DB point inside it: the real ~/.claude and
archive are never touched.  The corpus is ``claude-sessions demo --full``: the
transcripts, and tool-results/, file-history/, plans/, todos/ and history.jsonl made
from them (ingest/demo_keep.py), seeded.

Measured, in-process (``run_pass``), --repeat times each (default 3), alternating, each
into a fresh database after ``os.sync()``; medians:

- **initial sync without keeping** (``ingest.sync.keep_pass`` replaced by a no-op: the
  engine alone, the files beside the transcripts ignored) and **with keeping**
  (``claude_dirs=[the Claude directory]``): wall and CPU time (the process's, all
  threads), and the archive's size once
  checkpointed;
- the **no-change pass** (a second pass over the unchanged tree, CPU time, median of 5),
  both ways:
  what the extra walk costs the watch sidecar's rescan;
- an **append pass**: 10 prompts appended to history.jsonl and one new tool-results file,
  then one pass (CPU time, median of 3);
- **zstd levels**: every distinct kept content compressed at each level, in one
  process: total size and MB/s (what chose ingest.keep_blobs.ZSTD_LEVEL).

The machine's load average is printed with the figures.
"""

from __future__ import annotations

import argparse
import os
import shutil
import sqlite3
import statistics
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))

from ingest import db as db_module  # noqa: E402
from ingest import demo, keep_blobs, keep_walk, sync  # noqa: E402
from ingest.demo_keep import add_claude_dir_files  # noqa: E402
from ingest.keep import KeepResult  # noqa: E402

LEVELS = (1, 3, 6, 9, 12, 19)


def no_keep(*args, **kwargs) -> KeepResult:
    return KeepResult()


def fresh(db: Path) -> None:
    for suffix in ("", "-wal", "-shm", ".lock"):
        Path(f"{db}{suffix}").unlink(missing_ok=True)
    db_module._schema_ready.clear()  # the engine migrates a path once per process
    os.sync()


def archive_size(db: Path) -> int:
    conn = sqlite3.connect(db)
    conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    conn.close()
    return db.stat().st_size


def timed_pass(db: Path, root: Path, keeping: bool) -> tuple[float, float, object]:
    """(wall seconds, CPU seconds of the process, result) of one pass."""
    original = sync.keep_pass
    if not keeping:
        sync.keep_pass = no_keep
    try:
        started, cpu = time.perf_counter(), time.process_time()
        result = sync.run_pass(db, [root / "projects"], claude_dirs=[root] if keeping else [])
        return time.perf_counter() - started, time.process_time() - cpu, result
    finally:
        sync.keep_pass = original


def tree_bytes(root: Path) -> dict[str, tuple[int, int]]:
    """(files, bytes) per area: transcripts, and the kept areas."""
    out: dict[str, list[int]] = {}
    for folder, _dirs, names in os.walk(root):
        for name in names:
            path = Path(folder) / name
            rel = path.relative_to(root).as_posix()
            if rel.startswith("projects/"):
                if keep_walk.is_transcript(name):
                    area = "transcripts"
                else:
                    area = keep_walk.project_area(rel[len("projects/") :])[0]
            else:
                area = rel.split("/")[0] if "/" in rel else rel
            entry = out.setdefault(area, [0, 0])
            entry[0] += 1
            entry[1] += path.stat().st_size
    return {k: (v[0], v[1]) for k, v in out.items()}


def zstd_levels(root: Path) -> list[tuple[int, int, int, float]]:
    """(level, raw bytes, compressed bytes, seconds) over every distinct kept content."""
    import zstandard

    contents = {}
    for folder, _dirs, names in os.walk(root):
        for name in names:
            path = Path(folder) / name
            rel = path.relative_to(root).as_posix()
            if keep_walk.is_transcript(name) or rel == "history.jsonl":
                continue
            data = path.read_bytes()
            contents[keep_blobs.content_hash(data)] = data
    raw = sum(len(d) for d in contents.values())
    rows = []
    for level in LEVELS:
        compressor = zstandard.ZstdCompressor(level=level)
        started = time.perf_counter()
        packed = sum(min(len(compressor.compress(d)), len(d)) for d in contents.values())
        rows.append((level, raw, packed, time.perf_counter() - started))
    return rows


def append(root: Path) -> None:
    with open(root / "history.jsonl", "ab") as f:
        for i in range(10):
            f.write(
                b'{"display":"one more prompt %d","pastedContents":{},"timestamp":%d,'
                b'"project":"/work"}\n' % (i, int(time.time() * 1000))
            )
    session = next((root / "projects").glob("*/*/tool-results"), None)
    folder = session or next((root / "projects").iterdir())
    (folder / f"toolu_bench_{time.time_ns()}.txt").write_text("output line\n" * 5000)


def measure(args: argparse.Namespace, work: Path) -> None:
    root = work / "claude"
    started = time.perf_counter()
    summary = demo.generate(root / "projects", mb=args.mb, seed=args.seed, now=1780000000)
    extra = add_claude_dir_files(root, seed=args.seed)
    print(
        f"corpus: demo --full --mb {args.mb:g} --seed {args.seed}: {summary['sessions']:,} "
        f"sessions, {extra['files']:,} files beside the transcripts, {extra['moved']} tool "
        f"outputs moved to tool-results/ ({time.perf_counter() - started:.1f} s)"
    )
    areas = tree_bytes(root)
    total = sum(b for _, b in areas.values())
    print("\nsource bytes by area:")
    for area, (files, size) in sorted(areas.items(), key=lambda kv: -kv[1][1]):
        print(f"  {area:14} {files:6,} files {size / 1e6:9.2f} MB ({100 * size / total:4.1f}%)")
    kept_bytes = total - areas["transcripts"][1]
    print(
        f"  {'total':14} {'':13}{total / 1e6:9.2f} MB; beside the transcripts: "
        f"{kept_bytes / 1e6:.2f} MB"
    )

    db = work / "archive.db"
    times = {False: [], True: []}
    cpus = {False: [], True: []}
    sizes = {}
    results = {}
    for _ in range(args.repeat):
        for keeping in (False, True):
            fresh(db)
            seconds, cpu, result = timed_pass(db, root, keeping)
            times[keeping].append(seconds)
            cpus[keeping].append(cpu)
            sizes[keeping] = archive_size(db)
            results[keeping] = result
            noop = [timed_pass(db, root, keeping)[1] for _ in range(5)]
            results[(keeping, "noop")] = statistics.median(noop)
    base, kept = statistics.median(times[False]), statistics.median(times[True])
    cpu_base, cpu_kept = statistics.median(cpus[False]), statistics.median(cpus[True])
    print(f"\ninitial sync ({args.repeat} runs each, alternating; medians):")
    print(
        f"  without keeping: {base:6.2f} s ({cpu_base:.2f} s CPU)  archive {sizes[False] / 1e6:8.2f} MB   "
        f"runs: {', '.join(f'{t:.2f}' for t in times[False])}"
    )
    print(
        f"  with keeping:    {kept:6.2f} s ({cpu_kept:.2f} s CPU)  archive {sizes[True] / 1e6:8.2f} MB   "
        f"runs: {', '.join(f'{t:.2f}' for t in times[True])}"
    )
    added = sizes[True] - sizes[False]
    print(
        f"  cost: {kept - base:+.2f} s wall ({100 * (kept - base) / base:+.1f}%), "
        f"{cpu_kept - cpu_base:+.2f} s CPU ({100 * (cpu_kept - cpu_base) / cpu_base:+.1f}%), "
        f"+{added / 1e6:.2f} MB of archive for {kept_bytes / 1e6:.2f} MB kept "
        f"({added / kept_bytes:.2f}x their size; archive/sources "
        f"{sizes[False] / areas['transcripts'][1]:.2f}x -> {sizes[True] / total:.2f}x)"
    )
    r = results[True].kept
    print(
        f"  kept: {r.files_read:,} files read, {r.blobs_added:,} distinct contents, "
        f"{r.blob_bytes / 1e6:.2f} MB stored, {r.history_lines:,} history lines"
    )
    print(
        f"\nno-change pass (CPU, median of 5): without keeping "
        f"{1000 * results[(False, 'noop')]:.1f} ms, with {1000 * results[(True, 'noop')]:.1f} ms"
    )
    appends = []
    for _ in range(3):
        append(root)
        appends.append(timed_pass(db, root, True)[1])
    print(
        f"append pass (10 history lines + one 60 KB tool output; CPU, median of 3): "
        f"{1000 * statistics.median(appends):.1f} ms"
    )
    print("\nzstd level over every distinct kept content (one process):")
    print("  level   stored MB   ratio    MB/s")
    for level, raw, packed, seconds in zstd_levels(root):
        print(
            f"  {level:5}   {packed / 1e6:9.2f}   {raw / packed:5.2f}   {raw / 1e6 / seconds:6.0f}"
        )
    print(
        f"\nload average: {', '.join(f'{x:.2f}' for x in os.getloadavg())}; {os.cpu_count()} CPUs"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--mb", type=float, default=100, help="corpus size in MB (default 100)")
    parser.add_argument("--seed", type=int, default=0, help="corpus seed (default 0)")
    parser.add_argument("--repeat", type=int, default=3, help="runs of each side (default 3)")
    parser.add_argument("--keep-dir", action="store_true", help="keep the temporary folder")
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="bench-keep-"))
    os.environ.update(
        HOME=str(work),
        CLAUDE_CONFIG_DIR=str(work / "claude"),
        CLAUDE_SESSIONS_DB=str(work / "archive.db"),
        XDG_DATA_HOME=str(work / "share"),
    )
    try:
        measure(args, work)
    finally:
        if args.keep_dir:
            print(f"kept {work}")
        else:
            shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
