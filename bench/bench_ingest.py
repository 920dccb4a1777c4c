"""Benchmark the ingest engine on a generated demo corpus and print a table of figures.

    python bench/bench_ingest.py --mb 100 --repeat 5 # docs/benchmarks.md, every mix
    python bench/bench_ingest.py --mb 100 --mix small  # one mix
    python bench/bench_ingest.py --mb 20 --repeat 1  # a quick check
    python bench/bench_ingest.py --mb 1000 --json    # also writes bench/out/ingest.json
    python bench/bench_ingest.py --mb 100 --profile  # + cProfile of a sync, bench/out/

Everything happens in a temporary folder (removed afterwards unless --keep): the corpus
is written by ``ingest.demo.generate`` and every subprocess gets HOME,
CLAUDE_CONFIG_DIR, CLAUDE_SESSIONS_DB and XDG_DATA_HOME pointing inside it, so the real
~/.claude and the real archive are never touched.

Every mix that ``claude-sessions demo --mix`` generates is measured (``--mix all``, the
default; or name one or more, comma-separated): the head-to-head below and the archive
size run on each mix, the passes after it on the first one only.  At the end a table
shows every mix side by side.

What is measured (one run each unless said):

- head to head, the initial ``claude-sessions sync`` of the corpus and
  ``sqlite-utils insert tmp.db rows FILE --nl`` of the same bytes, each the real CLI
  process (start-up included): wall time, CPU time and peak RSS (``/usr/bin/time -v``,
  else ``os.wait4``).  The machine's speed drifts, so each side runs --repeat times
  (default 3), interleaved (sync, sqlite-utils, sync, ...), each into a fresh database
  after an ``os.sync()`` (so the previous run's dirty pages are not written back during
  the next one).  Reported: the median wall and median CPU time of each side, every
  wall time, and the largest peak RSS of each side; ratios are median / median.
  sqlite-utils takes JSON objects only, so lines that are not objects are left out of
  its input file (the demo corpus has none); building that file is not timed.  Plain
  ``--nl`` is tried on the first run; if it fails, every run uses ``--alter``.  Both
  run from byte code compiled by one untimed run of each first (see ``warm_up``).  The
  last sync's archive is the one the passes below work on;
- an append pass: 10 lines appended to one session file, then one pass over the whole
  tree, timed in-process (``run_pass`` only: the engine's own cost, tree walk included;
  median of 3) and as CLI wall time; and with ``run_pass(paths=[file])``, what watch
  does (median of 3);
- a no-change pass over the whole tree and over a separate tree of about 1,000 small
  files (in-process ``run_pass``, median of 5 after a warm pass; CLI wall time once);
- the same bytes through a floor: read every file line by line and ``orjson.loads``
  each line, no database, in-process.

The machine's load average is printed with the figures: wall times on a busy machine
are worth little, CPU times less so.
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
from dataclasses import dataclass
from pathlib import Path

import orjson

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))

from ingest.demo import MIXES, generate  # noqa: E402

TARGETS = {
    "initial_sync_s_per_100mb": 5.0,
    "peak_rss_mb_100mb": 50.0,
    "peak_rss_mb_1gb": 60.0,
    "append_pass_ms": 50.0,
    "nochange_1000_files_ms": 100.0,
}


# The figures only the first mix has (the passes after the head-to-head).
TABLE_KEYS = (
    "append_pass_ms", "append_pass_file_ms", "append_pass_cli_s", "nochange_tree_files",
    "nochange_tree_ms", "nochange_tree_cli_s", "nochange_1000_files", "nochange_1000_files_ms",
    "nochange_1000_files_cli_s", "floor_s", "floor_mb_s", "ratio_vs_floor",
)  # fmt: skip


@dataclass
class Run:
    wall: float  # seconds
    cpu: float  # user + system seconds
    rss: float  # peak resident set size, MB (2^20 bytes)


class CommandFailed(Exception):
    pass


def isolated_env(work: Path) -> dict[str, str]:
    """The environment of every measured process: HOME and the rest inside work/, and
    a byte-code cache of its own (see warm_up)."""
    home = work / "home"
    home.mkdir(exist_ok=True)
    env = {
        **os.environ,
        "HOME": str(home),
        "CLAUDE_CONFIG_DIR": str(home / ".claude"),
        "CLAUDE_SESSIONS_DB": str(work / "archive.db"),
        "XDG_DATA_HOME": str(home / ".local" / "share"),
        "PYTHONPYCACHEPREFIX": str(work / "pycache"),
    }
    env.pop("PYTHONDONTWRITEBYTECODE", None)
    return env


def warm_up(commands: list[list[str]], env: dict[str, str]) -> None:
    """Run each command once, untimed, so that both sides start from compiled byte code.

    An installed program runs from byte code (pip compiles it; an editable install
    writes it on first import), but with PYTHONDONTWRITEBYTECODE set (as in some
    sandboxes) a sync compiled its own modules from source in every run, some 0.05 s
    of CPU, while sqlite-utils, installed by pip, read its compiled ones.  Both now
    read byte code from work/pycache (PYTHONPYCACHEPREFIX), written by these runs."""
    for cmd in commands:
        subprocess.run(cmd, env=env, capture_output=True, check=False)


def run_measured(cmd: list[str], env: dict[str, str]) -> Run:
    """Run cmd and measure it; raise CommandFailed with its output when it fails."""
    time_bin = shutil.which("time", path="/usr/bin")
    if time_bin:
        started = time.perf_counter()
        proc = subprocess.run([time_bin, "-v", *cmd], env=env, capture_output=True, text=True)
        wall = time.perf_counter() - started
        if proc.returncode != 0:
            raise CommandFailed(f"{' '.join(cmd)} failed:\n{proc.stdout}{proc.stderr}")

        def field(name: str) -> float:
            return float(re.search(rf"{re.escape(name)}: ([\d.]+)", proc.stderr)[1])

        cpu = field("User time (seconds)") + field("System time (seconds)")
        return Run(wall, cpu, field("Maximum resident set size (kbytes)") / 1024)
    started = time.perf_counter()
    child = subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    out = child.stdout.read().decode()
    _, status, usage = os.wait4(child.pid, 0)
    wall = time.perf_counter() - started
    if os.waitstatus_to_exitcode(status) != 0:
        raise CommandFailed(f"{' '.join(cmd)} failed:\n{out}")
    return Run(wall, usage.ru_utime + usage.ru_stime, usage.ru_maxrss / 1024)


def cli(*args: str) -> list[str]:
    exe = shutil.which("claude-sessions")
    if exe:
        return [exe, *args]
    return [sys.executable, "-c", "from ingest.cli import cli; cli()", *args]


def in_process_pass(db: Path, roots: list[Path], paths: list[Path] | None = None) -> float:
    """Seconds of one run_pass in this process (paths: only those files, as watch does)."""
    from ingest.sync import run_pass

    started = time.perf_counter()
    run_pass(db, roots, trigger="cli", paths=paths)
    return time.perf_counter() - started


def append_lines(path: Path, n: int = 10) -> None:
    """Append n new records to a session file: copies of its small user/assistant
    records with new uuids, chained after its last record."""
    recs = [orjson.loads(line) for line in path.read_bytes().splitlines() if len(line) < 20_000]
    recs = [r for r in recs if r.get("type") in ("user", "assistant")]
    parent = recs[-1]["uuid"]
    out = bytearray()
    for rec in recs[-n:]:
        rec = dict(rec, parentUuid=parent, uuid=str(uuid.uuid4()))
        parent = rec["uuid"]
        out += orjson.dumps(rec) + b"\n"
    with open(path, "ab") as f:
        f.write(out)


def jsonl_files(root: Path) -> list[Path]:
    return sorted(root.rglob("*.jsonl"))


def parse_floor(root: Path) -> tuple[float, int]:
    """Read every line of every file and orjson.loads it: (seconds, lines)."""
    started = time.perf_counter()
    lines = 0
    loads = orjson.loads
    for path in jsonl_files(root):
        with open(path, "rb") as f:
            for line in f:
                loads(line)
                lines += 1
    return time.perf_counter() - started, lines


def concatenate_objects(root: Path, out_path: Path) -> int:
    """Write every line of root's .jsonl files that is a JSON object to out_path (the
    input sqlite-utils takes); return how many lines were left out."""
    dropped = 0
    with open(out_path, "wb") as out:
        for path in jsonl_files(root):
            for line in path.read_bytes().splitlines():
                try:
                    is_object = isinstance(orjson.loads(line), dict)
                except orjson.JSONDecodeError:
                    is_object = False
                if is_object:
                    out.write(line + b"\n")
                else:
                    dropped += 1
    return dropped


def remove_db(db: Path) -> None:
    """Delete a database file and its companions (-wal, -shm, .lock)."""
    for path in db.parent.glob(f"{db.name}*"):
        path.unlink()


def head_to_head(
    projects: Path, work: Path, env: dict[str, str], repeat: int
) -> tuple[list[Run], list[Run], str]:
    """Initial sync and sqlite-utils insert --nl of the same bytes, interleaved, repeat
    times each, every run into a fresh database after an os.sync(): (sync runs,
    sqlite-utils runs, a note).  The last sync's archive stays in work/archive.db."""
    exe = shutil.which("sqlite-utils")
    if not exe:
        raise SystemExit("sqlite-utils is not installed (pip install sqlite-utils).")
    db = work / "archive.db"
    su_db = work / "sqlite-utils.db"
    concatenated = work / "all.jsonl"
    dropped = concatenate_objects(projects, concatenated)
    note = f"{dropped} non-object lines left out of its input"
    sync_cmd = cli("sync", "--projects", str(projects), "--db", str(db))
    su_cmd = [exe, "insert", str(su_db), "rows", str(concatenated), "--nl"]

    def fresh(path: Path) -> None:
        remove_db(path)
        os.sync()

    empty = work / "warm-up"
    (empty / "projects").mkdir(parents=True, exist_ok=True)
    sample = empty / "one.jsonl"
    sample.write_bytes(b'{"type": "user"}\n')
    warm_up(
        [
            cli("sync", "--projects", str(empty / "projects"), "--db", str(empty / "a.db")),
            [exe, "insert", str(empty / "b.db"), "rows", str(sample), "--nl"],
        ],
        env,
    )
    shutil.rmtree(empty)

    syncs: list[Run] = []
    sus: list[Run] = []
    for i in range(repeat):
        print(f"  run {i + 1} of {repeat} …", flush=True)
        fresh(db)
        syncs.append(run_measured(sync_cmd, env))
        fresh(su_db)
        if i == 0:
            try:
                sus.append(run_measured(su_cmd, env))
                continue
            except CommandFailed:
                su_cmd.append("--alter")
                note += "; plain --nl fails (new keys after the first batch), timed with --alter"
                fresh(su_db)
        sus.append(run_measured(su_cmd, env))
    remove_db(su_db)
    concatenated.unlink()
    return syncs, sus, note


def profile_sync(projects: Path, work: Path) -> None:
    """cProfile one in-process initial sync into bench/out/profile-sync.txt."""
    import cProfile
    import io
    import pstats

    from ingest.sync import run_pass

    profiler = cProfile.Profile()
    profiler.enable()
    run_pass(work / "profile.db", [projects], trigger="cli")
    profiler.disable()
    text = io.StringIO()
    stats = pstats.Stats(profiler, stream=text)
    stats.sort_stats("cumulative").print_stats(40)
    stats.sort_stats("tottime").print_stats(25)
    out = HERE / "out"
    out.mkdir(exist_ok=True)
    (out / "profile-sync.txt").write_text(text.getvalue())
    print(f"Wrote {out / 'profile-sync.txt'}")


def measure(args: argparse.Namespace, work: Path, mix: str, passes: bool) -> dict:
    """The figures of one mix; the append and no-change passes only if ``passes``."""
    env = isolated_env(work)
    for key in ("HOME", "CLAUDE_CONFIG_DIR", "CLAUDE_SESSIONS_DB", "XDG_DATA_HOME"):
        os.environ[key] = env[key]  # in-process passes too stay inside work/
    projects = work / "projects"
    db = work / "archive.db"
    fig: dict = {"mb": args.mb, "seed": args.seed, "mix": mix}
    fig["load_before"] = [round(x, 2) for x in os.getloadavg()]

    print(f"Generating a {args.mb:g} MB demo corpus, mix {mix}, in {projects} …", flush=True)
    summary = generate(projects, mb=args.mb, seed=args.seed, mix=mix)
    size_mb = summary["bytes"] / 1e6
    fig.update(
        corpus_bytes=summary["bytes"],
        corpus_files=summary["files"],
        corpus_lines=summary["lines"],
        generate_s=summary["seconds"],
    )

    startup = run_measured(cli("--help"), env)
    fig.update(cli_startup_s=startup.wall, cli_startup_rss_mb=startup.rss)
    print(
        f"Initial sync (claude-sessions sync) and sqlite-utils insert --nl, interleaved, "
        f"{args.repeat} runs each …",
        flush=True,
    )
    syncs, sus, note = head_to_head(projects, work, env, args.repeat)
    fig["repeat"] = args.repeat
    sync_s = statistics.median(r.wall for r in syncs)
    fig.update(
        initial_sync_s=sync_s,
        initial_sync_cpu_s=statistics.median(r.cpu for r in syncs),
        initial_sync_mb_s=size_mb / sync_s,
        initial_sync_rss_mb=max(r.rss for r in syncs),
        initial_sync_runs_s=[round(r.wall, 3) for r in syncs],
        sqlite_utils_s=statistics.median(r.wall for r in sus),
        sqlite_utils_cpu_s=statistics.median(r.cpu for r in sus),
        sqlite_utils_rss_mb=max(r.rss for r in sus),
        sqlite_utils_runs_s=[round(r.wall, 3) for r in sus],
        sqlite_utils_note=note,
    )
    fig["db_mb"] = sum(p.stat().st_size for p in work.glob("archive.db*")) / 1e6
    fig["db_ratio"] = fig["db_mb"] * 1e6 / summary["bytes"]
    fig["ratio_vs_sqlite_utils"] = fig["initial_sync_s"] / fig["sqlite_utils_s"]
    fig["ratio_cpu_vs_sqlite_utils"] = fig["initial_sync_cpu_s"] / fig["sqlite_utils_cpu_s"]
    if not passes:
        fig["load_after"] = [round(x, 2) for x in os.getloadavg()]
        return fig

    print("Append and no-change passes …", flush=True)
    quiet_sync = cli("sync", "--projects", str(projects), "--db", str(db), "-q")
    in_process_pass(db, [projects])  # warm: imports, schema check, page cache
    sessions = [p for p in projects.glob("*/*.jsonl") if p.stat().st_size > 20_000]
    target = sorted(sessions, key=lambda p: p.stat().st_size)[len(sessions) // 2]
    whole, single = [], []
    for _ in range(3):
        append_lines(target)
        whole.append(in_process_pass(db, [projects]))
        append_lines(target)
        single.append(in_process_pass(db, [projects], paths=[target]))
    fig["append_pass_ms"] = statistics.median(whole) * 1000
    fig["append_pass_file_ms"] = statistics.median(single) * 1000
    append_lines(target)
    fig["append_pass_cli_s"] = run_measured(quiet_sync, env).wall
    fig["nochange_tree_files"] = summary["files"]
    passes = [in_process_pass(db, [projects]) for _ in range(5)]
    fig["nochange_tree_ms"] = statistics.median(passes) * 1000
    fig["nochange_tree_cli_s"] = run_measured(quiet_sync, env).wall

    small = work / "projects-1000"
    small_summary = generate(small, mb=15, seed=args.seed + 1, sessions=900)
    small_db = work / "small.db"
    in_process_pass(small_db, [small])
    in_process_pass(small_db, [small])
    fig["nochange_1000_files"] = small_summary["files"]
    passes = [in_process_pass(small_db, [small]) for _ in range(5)]
    fig["nochange_1000_files_ms"] = statistics.median(passes) * 1000
    small_sync = cli("sync", "--projects", str(small), "--db", str(small_db), "-q")
    fig["nochange_1000_files_cli_s"] = run_measured(small_sync, env).wall

    print("Floor (read + orjson.loads) …", flush=True)
    floor_s, _ = parse_floor(projects)
    fig.update(floor_s=floor_s, floor_mb_s=size_mb / floor_s)
    fig["ratio_vs_floor"] = fig["initial_sync_s"] / floor_s
    fig["load_after"] = [round(x, 2) for x in os.getloadavg()]

    if args.profile:
        profile_sync(projects, work)
    return fig


def walls_text(median: float, runs: list[float]) -> str:
    """ "2.25 s wall median of 3 (2.21, 2.25, 2.31)", or "2.25 s wall" for one run."""
    if len(runs) == 1:
        return f"{median:.2f} s wall"
    return f"{median:.2f} s wall median of {len(runs)} ({', '.join(f'{w:.2f}' for w in runs)})"


def print_table(f: dict) -> None:
    passes = "append_pass_ms" in f
    if not passes:  # zeros for the rows left out below
        keys = ("append_pass", "nochange", "floor", "ratio_vs_floor")
        f = {**{k: 0 for k in TABLE_KEYS if k.startswith(keys)}, **f}
    mb = f["corpus_bytes"] / 1e6
    rss_target = TARGETS["peak_rss_mb_1gb" if mb > 500 else "peak_rss_mb_100mb"]
    sync_target = TARGETS["initial_sync_s_per_100mb"] * mb / 100

    def verdict(ok: bool) -> str:
        return "ok" if ok else "MISSED"

    repeated = f["repeat"] > 1
    median = " median" if repeated else ""
    largest = f" (largest of {f['repeat']} runs)" if repeated else ""
    medians = " (median / median)" if repeated else ""

    rows = [
        (
            "Corpus",
            f"{mb:,.1f} MB, mix {f['mix']}, {f['corpus_files']:,} files, "
            f"{f['corpus_lines']:,} lines",
        ),
        ("  generated in", f"{f['generate_s']:.2f} s"),
        (
            "CLI start-up (claude-sessions --help)",
            f"{f['cli_startup_s']:.2f} s, peak RSS {f['cli_startup_rss_mb']:.1f} MB",
        ),
        (
            "Initial sync, CLI",
            f"{walls_text(f['initial_sync_s'], f['initial_sync_runs_s'])}, "
            f"{f['initial_sync_mb_s']:.1f} MB/s, {f['initial_sync_cpu_s']:.2f} s CPU{median}",
            f"<= {sync_target:.1f} s",
            verdict(f["initial_sync_s"] <= sync_target),
        ),
        (
            "Initial sync, peak RSS",
            f"{f['initial_sync_rss_mb']:.1f} MB{largest}",
            f"<= {rss_target:.0f} MB",
            verdict(f["initial_sync_rss_mb"] <= rss_target),
        ),
        ("Archive size (db + wal)", f"{f['db_mb']:.1f} MB ({f['db_ratio']:.2f}x the sources)"),
        (
            "Append 10 lines: run_pass in-process",
            f"{f['append_pass_ms']:.1f} ms",
            f"<= {TARGETS['append_pass_ms']:.0f} ms",
            verdict(f["append_pass_ms"] <= TARGETS["append_pass_ms"]),
        ),
        ("Append 10 lines: run_pass(paths=[file])", f"{f['append_pass_file_ms']:.1f} ms"),
        ("Append 10 lines: CLI wall", f"{f['append_pass_cli_s']:.2f} s"),
        (
            f"No change, {f['nochange_tree_files']:,} files: run_pass",
            f"{f['nochange_tree_ms']:.1f} ms",
        ),
        (
            f"No change, {f['nochange_tree_files']:,} files: CLI wall",
            f"{f['nochange_tree_cli_s']:.2f} s",
        ),
        (
            f"No change, {f['nochange_1000_files']:,} small files: run_pass",
            f"{f['nochange_1000_files_ms']:.1f} ms",
            f"<= {TARGETS['nochange_1000_files_ms']:.0f} ms",
            verdict(f["nochange_1000_files_ms"] <= TARGETS["nochange_1000_files_ms"]),
        ),
        (
            f"No change, {f['nochange_1000_files']:,} small files: CLI wall",
            f"{f['nochange_1000_files_cli_s']:.2f} s",
        ),
        (
            "Floor: read + orjson.loads, in-process",
            f"{f['floor_s']:.2f} s ({f['floor_mb_s']:.0f} MB/s)",
        ),
        (
            "sqlite-utils insert --nl",
            f"{walls_text(f['sqlite_utils_s'], f['sqlite_utils_runs_s'])}, "
            f"{f['sqlite_utils_cpu_s']:.2f} s CPU{median}, "
            f"peak RSS {f['sqlite_utils_rss_mb']:.0f} MB{largest}",
        ),
        ("  note", f["sqlite_utils_note"]),
        ("Initial sync / floor (wall)", f"{f['ratio_vs_floor']:.1f}x"),
        (
            "Initial sync / sqlite-utils (wall)",
            f"{f['ratio_vs_sqlite_utils']:.2f}x{medians}",
            "<= 1.0x",
            verdict(f["ratio_vs_sqlite_utils"] <= 1.0),
        ),
        ("Initial sync / sqlite-utils (CPU)", f"{f['ratio_cpu_vs_sqlite_utils']:.2f}x{medians}"),
        ("Load average before / after", f"{f['load_before']} / {f['load_after']}"),
    ]
    if not passes:  # a mix measured head to head only
        drop = ("Append", "No change", "Floor", "Initial sync / floor")
        rows = [r for r in rows if not r[0].startswith(drop)]
    rows = [(*row, "", "")[:4] for row in rows]
    widths = [max(len(r[i]) for r in rows) for i in range(4)]
    print()
    for row in [("Measure", "Figure", "Target", ""), tuple("-" * w for w in widths), *rows]:
        print("  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)).rstrip())


def print_mixes(figs: list[dict]) -> None:
    """One line per mix: the head-to-head and the archive size."""
    rows = [
        (
            "Mix",
            "Corpus",
            "Lines",
            "Sync (median)",
            "sqlite-utils (median)",
            "Ratio wall",
            "Ratio CPU",
            "Peak RSS",
            "Archive",
            "Archive/sources",
        )
    ]
    for f in figs:
        rows.append(
            (
                f["mix"],
                f"{f['corpus_bytes'] / 1e6:,.1f} MB",
                f"{f['corpus_lines']:,}",
                f"{f['initial_sync_s']:.2f} s",
                f"{f['sqlite_utils_s']:.2f} s",
                f"{f['ratio_vs_sqlite_utils']:.2f}x",
                f"{f['ratio_cpu_vs_sqlite_utils']:.2f}x",
                f"{f['initial_sync_rss_mb']:.1f} MB",
                f"{f['db_mb']:.1f} MB",
                f"{f['db_ratio']:.2f}x",
            )
        )
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    print(f"\nEvery mix (medians of {figs[0]['repeat']} alternating runs, whole processes):")
    for row in [rows[0], tuple("-" * w for w in widths), *rows[1:]]:
        print("  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)).rstrip())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--mb", type=float, default=100, help="corpus size in MB (default 100)")
    parser.add_argument("--seed", type=int, default=0, help="corpus seed (default 0)")
    parser.add_argument(
        "--repeat",
        type=int,
        default=3,
        help="runs of the initial sync and of sqlite-utils, interleaved; medians are "
        "reported (default 3)",
    )
    parser.add_argument(
        "--mix",
        default="all",
        help=f"demo mixes to measure, comma-separated, or all (default): {', '.join(MIXES)}",
    )
    parser.add_argument("--json", action="store_true", help="also write bench/out/ingest.json")
    parser.add_argument("--profile", action="store_true", help="cProfile an in-process sync")
    parser.add_argument("--keep", action="store_true", help="keep the temporary folder")
    args = parser.parse_args()
    if args.repeat < 1:
        parser.error("--repeat must be 1 or more")
    mixes = list(MIXES) if args.mix == "all" else [m.strip() for m in args.mix.split(",")]
    unknown = [m for m in mixes if m not in MIXES]
    if unknown:
        parser.error(f"unknown mix {unknown[0]!r}; one of: {', '.join(MIXES)}, all")

    figs = []
    for i, mix in enumerate(mixes):
        work = Path(tempfile.mkdtemp(prefix=f"bench-ingest-{mix}-"))
        try:
            fig = measure(args, work, mix, passes=i == 0)
        except CommandFailed as e:
            raise SystemExit(str(e)) from None
        finally:
            if args.keep:
                print(f"Kept {work}")
            else:
                shutil.rmtree(work, ignore_errors=True)
        print_table(fig)
        figs.append(fig)
    print_mixes(figs)
    if args.json:
        out = HERE / "out"
        out.mkdir(exist_ok=True)
        meta = {
            "python": platform.python_version(),
            "machine": f"{platform.machine()}, {os.cpu_count()} CPUs",
        }
        for fig in figs:
            fig.update(meta)
        data = figs[0] if len(figs) == 1 else {"mixes": figs}
        (out / "ingest.json").write_text(json.dumps(data, indent=2) + "\n")
        print(f"Wrote {out / 'ingest.json'}")


if __name__ == "__main__":
    main()
