"""Benchmark the ingest engine on a generated demo corpus and print a table of figures.

    python bench/bench_ingest.py --mb 100            # the README figures
    python bench/bench_ingest.py --mb 1000 --json    # also writes bench/out/ingest.json
    python bench/bench_ingest.py --mb 100 --profile  # + cProfile of a sync, bench/out/

Everything happens in a temporary folder (removed afterwards unless --keep): the corpus
is written by ``ingest.demo.generate`` and every subprocess gets HOME,
CLAUDE_CONFIG_DIR, CLAUDE_SESSIONS_DB and XDG_DATA_HOME pointing inside it, so the real
~/.claude and the real archive are never touched.

What is measured (one run each, no warm-up unless said):

- initial ``claude-sessions sync`` of the corpus: wall time of the real CLI process
  (start-up included) and its peak RSS (``/usr/bin/time -v``, else ``os.wait4``);
- an append pass: 10 lines appended to one session file, then one pass, timed both
  in-process (``run_pass`` only, the engine's own cost) and as CLI wall time;
- a no-change pass over the whole tree and over a separate tree of about 1,000 small
  files (in-process ``run_pass``, median of 5, after one warm pass; CLI wall once);
- the same bytes through a floor (read every file line by line and ``orjson.loads``
  each line, no database) and through ``sqlite-utils insert tmp.db rows FILE --nl``.
  sqlite-utils takes JSON objects only, so lines that are not objects are left out of
  its input file (the demo corpus has none); the time to build that file is not counted.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

import orjson

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))

from ingest.demo import generate  # noqa: E402

TARGETS = {
    "initial_sync_s_100mb": 5.0,
    "peak_rss_mb_100mb": 50.0,
    "peak_rss_mb_1gb": 60.0,
    "append_pass_ms": 50.0,
    "nochange_1000_files_ms": 100.0,
}


def isolated_env(work: Path) -> dict[str, str]:
    home = work / "home"
    home.mkdir(exist_ok=True)
    return {
        **os.environ,
        "HOME": str(home),
        "CLAUDE_CONFIG_DIR": str(home / ".claude"),
        "CLAUDE_SESSIONS_DB": str(work / "archive.db"),
        "XDG_DATA_HOME": str(home / ".local" / "share"),
    }


def run_measured(cmd: list[str], env: dict[str, str]) -> tuple[float, float, str]:
    """Run cmd; return (wall seconds, peak RSS in MB, output).  Raises on failure."""
    time_bin = shutil.which("time", path="/usr/bin")
    if time_bin:
        started = time.perf_counter()
        proc = subprocess.run([time_bin, "-v", *cmd], env=env, capture_output=True, text=True)
        wall = time.perf_counter() - started
        if proc.returncode != 0:
            raise SystemExit(f"{' '.join(cmd)} failed:\n{proc.stdout}{proc.stderr}")
        kb = int(re.search(r"Maximum resident set size \(kbytes\): (\d+)", proc.stderr)[1])
        return wall, kb / 1024, proc.stdout
    started = time.perf_counter()
    child = subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    out = child.stdout.read().decode()
    _, status, usage = os.wait4(child.pid, 0)
    wall = time.perf_counter() - started
    if os.waitstatus_to_exitcode(status) != 0:
        raise SystemExit(f"{' '.join(cmd)} failed:\n{out}")
    return wall, usage.ru_maxrss / 1024, out


def cli(*args: str) -> list[str]:
    exe = shutil.which("claude-sessions")
    if exe:
        return [exe, *args]
    return [sys.executable, "-c", "from ingest.cli import cli; cli()", *args]


def in_process_pass(db: Path, roots: list[Path]) -> float:
    from ingest.sync import run_pass

    started = time.perf_counter()
    run_pass(db, roots, trigger="cli")
    return time.perf_counter() - started


def append_lines(path: Path, n: int = 10) -> int:
    """Append n new records to a session file: copies of its small records with new
    uuids chained after its last one.  Returns the bytes appended."""
    recs = [orjson.loads(line) for line in path.read_bytes().splitlines() if len(line) < 20_000]
    recs = [r for r in recs if r.get("type") in ("user", "assistant")]
    parent = recs[-1]["uuid"]
    out = bytearray()
    for rec in recs[-n:]:
        rec = dict(rec)
        rec["parentUuid"] = parent
        rec["uuid"] = parent = str(uuid.uuid4())
        out += orjson.dumps(rec) + b"\n"
    with open(path, "ab") as f:
        f.write(out)
    return len(out)


def jsonl_files(root: Path) -> list[Path]:
    return sorted(root.rglob("*.jsonl"))


def parse_floor(root: Path) -> tuple[float, int, int]:
    """Seconds to read every line and orjson.loads it; (seconds, lines, non-objects)."""
    started = time.perf_counter()
    lines = non_objects = 0
    loads = orjson.loads
    for path in jsonl_files(root):
        with open(path, "rb") as f:
            for line in f:
                lines += 1
                if not isinstance(loads(line), dict):
                    non_objects += 1
    return time.perf_counter() - started, lines, non_objects


def sqlite_utils_insert(root: Path, work: Path, env: dict[str, str]) -> tuple[float, float, str]:
    """(seconds, peak RSS MB, note) of sqlite-utils insert --nl over all object lines."""
    exe = shutil.which("sqlite-utils")
    if not exe:
        return float("nan"), float("nan"), "sqlite-utils not installed"
    concatenated = work / "all.jsonl"
    dropped = 0
    with open(concatenated, "wb") as out:
        for path in jsonl_files(root):
            for line in path.read_bytes().splitlines():
                if line.strip().startswith(b"{"):
                    out.write(line + b"\n")
                else:
                    dropped += 1
    db = work / "sqlite-utils.db"
    note = f"{dropped} non-object lines dropped"
    try:
        wall, rss, _ = run_measured(
            [exe, "insert", str(db), "rows", str(concatenated), "--nl"], env
        )
    except SystemExit:
        db.unlink(missing_ok=True)
        wall, rss, _ = run_measured(
            [exe, "insert", str(db), "rows", str(concatenated), "--nl", "--alter"], env
        )
        note += "; needed --alter (new keys after the first batch)"
    concatenated.unlink()
    return wall, rss, note


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--mb", type=float, default=100, help="corpus size (default 100)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--json", action="store_true", help="also write bench/out/ingest.json")
    parser.add_argument("--profile", action="store_true", help="cProfile an in-process sync")
    parser.add_argument("--keep", action="store_true", help="keep the temporary folder")
    args = parser.parse_args()

    work = Path(tempfile.mkdtemp(prefix="bench-ingest-"))
    env = isolated_env(work)
    os.environ.update({k: env[k] for k in ("HOME", "CLAUDE_CONFIG_DIR", "CLAUDE_SESSIONS_DB")})
    os.environ["XDG_DATA_HOME"] = env["XDG_DATA_HOME"]
    projects = work / "projects"
    db = work / "archive.db"
    fig: dict[str, object] = {"mb": args.mb, "seed": args.seed}
    try:
        print(f"Generating a {args.mb:g} MB demo corpus in {projects} …", flush=True)
        summary = generate(projects, mb=args.mb, seed=args.seed)
        size_mb = summary["bytes"] / 1e6
        fig.update(
            corpus_bytes=summary["bytes"],
            corpus_files=summary["files"],
            corpus_lines=summary["lines"],
            generate_s=summary["seconds"],
        )

        print("Initial sync (claude-sessions sync) …", flush=True)
        fig["cli_startup_s"] = run_measured(cli("--help"), env)[0]
        wall, rss, _ = run_measured(cli("sync", "--projects", str(projects), "--db", str(db)), env)
        fig.update(initial_sync_s=wall, initial_sync_mb_s=size_mb / wall, initial_sync_rss_mb=rss)
        fig["db_mb"] = sum(p.stat().st_size for p in work.glob("archive.db*")) / 1e6

        print("Append and no-change passes …", flush=True)
        in_process_pass(db, [projects])  # warm: imports, schema check, page cache
        sessions = [p for p in projects.glob("*/*.jsonl") if p.stat().st_size > 20_000]
        target = sorted(sessions, key=lambda p: p.stat().st_size)[len(sessions) // 2]
        append_lines(target)
        fig["append_pass_ms"] = in_process_pass(db, [projects]) * 1000
        append_lines(target)
        fig["append_pass_cli_s"] = run_measured(
            cli("sync", "--projects", str(projects), "--db", str(db), "-q"), env
        )[0]
        fig["nochange_tree_files"] = summary["files"]
        fig["nochange_tree_ms"] = (
            statistics.median(in_process_pass(db, [projects]) for _ in range(5)) * 1000
        )
        fig["nochange_tree_cli_s"] = run_measured(
            cli("sync", "--projects", str(projects), "--db", str(db), "-q"), env
        )[0]

        small = work / "projects-1000"
        small_summary = generate(small, mb=15, seed=args.seed + 1, sessions=900)
        small_db = work / "small.db"
        in_process_pass(small_db, [small])
        in_process_pass(small_db, [small])
        fig["nochange_1000_files"] = small_summary["files"]
        fig["nochange_1000_files_ms"] = (
            statistics.median(in_process_pass(small_db, [small]) for _ in range(5)) * 1000
        )
        fig["nochange_1000_files_cli_s"] = run_measured(
            cli("sync", "--projects", str(small), "--db", str(small_db), "-q"), env
        )[0]

        print("Floor (read + orjson.loads) and sqlite-utils insert --nl …", flush=True)
        floor_s, lines, non_objects = parse_floor(projects)
        fig.update(floor_s=floor_s, floor_mb_s=size_mb / floor_s, floor_lines=lines)
        su_s, su_rss, su_note = sqlite_utils_insert(projects, work, env)
        fig.update(sqlite_utils_s=su_s, sqlite_utils_rss_mb=su_rss, sqlite_utils_note=su_note)
        fig["ratio_vs_floor"] = fig["initial_sync_s"] / floor_s
        fig["ratio_vs_sqlite_utils"] = fig["initial_sync_s"] / su_s

        if args.profile:
            profile_sync(projects, work)
    finally:
        if args.keep:
            print(f"Kept {work}")
        else:
            shutil.rmtree(work, ignore_errors=True)

    print_table(fig)
    if args.json:
        out = HERE / "out"
        out.mkdir(exist_ok=True)
        fig["python"] = platform.python_version()
        fig["machine"] = f"{platform.machine()}, {os.cpu_count()} CPUs"
        (out / "ingest.json").write_text(json.dumps(fig, indent=2) + "\n")
        print(f"Wrote {out / 'ingest.json'}")


def profile_sync(projects: Path, work: Path) -> None:
    """cProfile one in-process initial sync into bench/out/profile-sync.txt."""
    import cProfile
    import io
    import pstats

    from ingest.sync import run_pass

    db = work / "profile.db"
    profiler = cProfile.Profile()
    profiler.enable()
    run_pass(db, [projects], trigger="cli")
    profiler.disable()
    text = io.StringIO()
    stats = pstats.Stats(profiler, stream=text)
    stats.sort_stats("cumulative").print_stats(40)
    stats.sort_stats("tottime").print_stats(25)
    out = HERE / "out"
    out.mkdir(exist_ok=True)
    (out / "profile-sync.txt").write_text(text.getvalue())
    print(f"Wrote {out / 'profile-sync.txt'}")


def print_table(f: dict) -> None:
    mb = f["corpus_bytes"] / 1e6
    big = mb > 500
    rss_target = TARGETS["peak_rss_mb_1gb" if big else "peak_rss_mb_100mb"]

    def verdict(ok: bool) -> str:
        return "ok" if ok else "MISSED"

    sync_target = TARGETS["initial_sync_s_100mb"] * mb / 100
    rows = [
        (
            "Corpus",
            f"{mb:,.1f} MB, {f['corpus_files']:,} files, {f['corpus_lines']:,} lines",
            "",
            "",
        ),
        ("  generated in", f"{f['generate_s']:.2f} s", "", ""),
        ("CLI start-up (claude-sessions --help)", f"{f['cli_startup_s']:.2f} s", "", ""),
        (
            "Initial sync, CLI wall",
            f"{f['initial_sync_s']:.2f} s  ({f['initial_sync_mb_s']:.1f} MB/s)",
            f"<= {sync_target:.1f} s (5 s per 100 MB)",
            verdict(f["initial_sync_s"] <= sync_target),
        ),
        (
            "Initial sync, peak RSS",
            f"{f['initial_sync_rss_mb']:.1f} MB",
            f"<= {rss_target:.0f} MB",
            verdict(f["initial_sync_rss_mb"] <= rss_target),
        ),
        ("Archive size (db + wal)", f"{f['db_mb']:.1f} MB", "", ""),
        (
            "Append 10 lines, run_pass (in-process)",
            f"{f['append_pass_ms']:.1f} ms",
            f"<= {TARGETS['append_pass_ms']:.0f} ms",
            verdict(f["append_pass_ms"] <= TARGETS["append_pass_ms"]),
        ),
        ("Append 10 lines, CLI wall", f"{f['append_pass_cli_s']:.2f} s", "", ""),
        (
            f"No change, {f['nochange_tree_files']:,} files, run_pass",
            f"{f['nochange_tree_ms']:.1f} ms",
            "",
            "",
        ),
        (
            f"No change, {f['nochange_tree_files']:,} files, CLI wall",
            f"{f['nochange_tree_cli_s']:.2f} s",
            "",
            "",
        ),
        (
            f"No change, {f['nochange_1000_files']:,} small files, run_pass",
            f"{f['nochange_1000_files_ms']:.1f} ms",
            f"<= {TARGETS['nochange_1000_files_ms']:.0f} ms",
            verdict(f["nochange_1000_files_ms"] <= TARGETS["nochange_1000_files_ms"]),
        ),
        (
            f"No change, {f['nochange_1000_files']:,} small files, CLI wall",
            f"{f['nochange_1000_files_cli_s']:.2f} s",
            "",
            "",
        ),
        (
            "Floor: read + orjson.loads, in-process",
            f"{f['floor_s']:.2f} s  ({f['floor_mb_s']:.0f} MB/s)",
            "",
            "",
        ),
        (
            "sqlite-utils insert --nl, wall",
            f"{f['sqlite_utils_s']:.2f} s, peak RSS {f['sqlite_utils_rss_mb']:.0f} MB",
            "",
            "",
        ),
        ("  note", f["sqlite_utils_note"], "", ""),
        ("Initial sync / floor", f"{f['ratio_vs_floor']:.1f}x", "", ""),
        (
            "Initial sync / sqlite-utils insert",
            f"{f['ratio_vs_sqlite_utils']:.2f}x",
            "<= 1.0x",
            verdict(f["ratio_vs_sqlite_utils"] <= 1.0),
        ),
    ]
    widths = [max(len(r[i]) for r in rows) for i in range(4)]
    header = ("Measure", "Figure", "Target", "")
    print()
    print("  ".join(h.ljust(w) for h, w in zip(header, widths, strict=True)).rstrip())
    print("  ".join("-" * w for w in widths))
    for row in rows:
        print("  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)).rstrip())


if __name__ == "__main__":
    main()
