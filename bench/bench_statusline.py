"""Benchmark `claude-sessions statusline` as a whole process, and `ccusage statusline`.

    claude-sessions demo /tmp/big/projects --mb 1000
    claude-sessions sync --projects /tmp/big/projects --db /tmp/big/archive.db
    python bench/bench_statusline.py --db /tmp/big/archive.db --projects /tmp/big/projects \\
        [--ccusage /path/to/node_modules/.bin/ccusage] [--rounds 21]

The archive and corpus are yours to make (they take minutes); the script never touches
~/.claude: HOME, CLAUDE_CONFIG_DIR and CLAUDE_SESSIONS_DB point into a temporary folder.
It writes one session file of its own next to the corpus (in a folder of the temporary
directory; ``--events N`` lines long) and appends one assistant line to it before each
"new line" run.

Rounds alternate between the variants (so a slow minute hurts all of them alike) and
medians are printed with the minimum and maximum:

- ``python -c pass``: the interpreter's own start-up, the floor of any Python command;
- ``statusline, nothing new``: the transcript is unchanged since the archive read it (the
  watch sidecar runs, or Claude Code wrote nothing since the last call): no pass;
- ``statusline, 1 new line``: one line appended first, archived by an incremental pass
  of that one file, then the figures;
- ``ccusage statusline --offline --no-cache`` (with ``--ccusage``): the same input, each
  call computing from the transcripts; and with ccusage's default cache, the second of
  two calls within its refresh interval.

The command runs as the console script does: ``python -c "from ingest.entry import
main; main()" statusline ...``, from bytecode compiled once into the temporary folder
(``PYTHONPYCACHEPREFIX``), as an installed copy runs; ``--no-bytecode`` compiles every
module at every start instead.  Wall and CPU times (user + system of each process) are
printed: on a loaded machine the CPU times are the ones to compare.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
ENTRY = [sys.executable, "-c", "from ingest.entry import main; main()", "statusline"]


def assistant_line(session: str, n: int, seconds_ago: float = 0) -> str:
    now = (datetime.now(UTC) - timedelta(seconds=seconds_ago)).strftime("%Y-%m-%dT%H:%M:%S.%f")[
        :-3
    ] + "Z"
    return json.dumps(
        {
            "type": "assistant",
            "sessionId": session,
            "timestamp": now,
            "uuid": str(uuid.uuid4()),
            # Ids of this run only: the archive counts a (message, request) pair once.
            "requestId": f"req_{session}_{n}",
            "message": {
                "id": f"msg_{session}_{n}",
                "role": "assistant",
                "model": "claude-sonnet-4-20250514",
                "content": [{"type": "text", "text": f"answer {n}"}],
                "usage": {
                    "input_tokens": 10,
                    "output_tokens": 200,
                    "cache_creation_input_tokens": 1000,
                    "cache_read_input_tokens": 20000,
                },
            },
        }
    )


CPU: dict[str, list[float]] = {}  # label -> CPU seconds (user + system) of each run


def children_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def timed(cmd, data: bytes, env, label: str | None = None) -> tuple[float, str]:
    """Wall seconds and stdout of one run; its CPU time goes to CPU[label]."""
    cpu = children_cpu()
    start = time.perf_counter()
    # (cwd: a folder without an ingest/ of its own, which `python -c` would import first)
    result = subprocess.run(
        cmd, input=data, capture_output=True, env=env, timeout=600, cwd=tempfile.gettempdir()
    )
    elapsed = time.perf_counter() - start
    if label:
        CPU.setdefault(label, []).append(children_cpu() - cpu)
    if result.returncode != 0:
        raise SystemExit(f"{cmd[0]} failed: {result.stderr.decode(errors='replace')[-2000:]}")
    return elapsed, result.stdout.decode(errors="replace").strip()


def summary(values: list[float]) -> str:
    ms = sorted(v * 1000 for v in values)
    return (
        f"{statistics.median(ms):7.1f} ms median  (min {ms[0]:.1f}, max {ms[-1]:.1f}, n={len(ms)})"
    )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--db", type=Path, required=True, help="a synced archive")
    parser.add_argument("--projects", type=Path, required=True, help="its projects tree")
    parser.add_argument("--ccusage", help="path to the ccusage executable (optional)")
    parser.add_argument("--rounds", type=int, default=21)
    parser.add_argument("--ccusage-rounds", type=int, default=3)
    parser.add_argument(
        "--events",
        type=int,
        default=1,
        help="lines the bench's own session starts with (default 1; 500 a day, a minute "
        "apart): a one-file pass refreshes the session's row from all of its lines, so a "
        "long session costs more",
    )
    parser.add_argument(
        "--no-bytecode",
        action="store_true",
        help="compile every module at every start (as with PYTHONDONTWRITEBYTECODE=1)",
    )
    args = parser.parse_args()
    if not args.db.exists():
        raise SystemExit(f"No archive at {args.db}: sync the corpus first (see --help).")
    work = Path(tempfile.mkdtemp(prefix="bench-statusline-"))
    try:
        home = work / "home"
        home.mkdir()
        env = {
            **os.environ,
            "HOME": str(home),
            "CLAUDE_CONFIG_DIR": str(home / ".claude"),
            "CLAUDE_SESSIONS_DB": str(args.db),
            "PYTHONPATH": str(ROOT),
        }
        if not args.no_bytecode:
            # Run from bytecode, as an installed copy does (pip compiles it at install):
            # compiled once into a folder of our own, whatever PYTHONDONTWRITEBYTECODE
            # says (this sandbox sets it, and compiling every module at every start
            # tripled the time of a pass).
            env.pop("PYTHONDONTWRITEBYTECODE", None)
            env["PYTHONPYCACHEPREFIX"] = str(work / "pycache")
        print(f"Bytecode: {'not written (--no-bytecode)' if args.no_bytecode else 'cached'}")
        # A session of our own, in a projects root beside the corpus.
        side = work / "projects"
        session = str(uuid.uuid4())
        transcript = side / "-bench-statusline" / f"{session}.jsonl"
        transcript.parent.mkdir(parents=True)
        with open(transcript, "w") as f:
            # (a long session as people work: 500 lines a day, a minute apart, over the
            # past days; its last line now)
            for n in range(args.events):
                back = args.events - 1 - n
                ago = back // 500 * 86_400 + back % 500 * 60
                f.write(assistant_line(session, n - args.events, ago) + "\n")
        payload = json.dumps(
            {
                "hook_event_name": "Status",
                "session_id": session,
                "transcript_path": str(transcript),
                "cwd": "/bench",
                "model": {"id": "claude-sonnet-4-20250514", "display_name": "Sonnet 4"},
                "workspace": {"current_dir": "/bench", "project_dir": "/bench"},
                "version": "1.0.80",
            }
        ).encode()
        ours = [*ENTRY, "--db", str(args.db), "--projects", str(side)]
        size = args.db.stat().st_size + (
            Path(f"{args.db}-wal").stat().st_size if Path(f"{args.db}-wal").exists() else 0
        )
        print(f"Archive: {args.db} ({size / 1e9:.2f} GB); the session: {args.events:,} lines")
        print(f"Load average before: {os.getloadavg()}")
        _, line = timed(ours, payload, env)  # archive the new file once (and compile)
        timed([sys.executable, "-c", "pass"], b"", env)
        print(f"Our line: {line}")
        results: dict[str, list[float]] = {"floor": [], "unchanged": [], "new": []}
        n = 0
        for _ in range(args.rounds):
            results["floor"].append(timed([sys.executable, "-c", "pass"], b"", env, "floor")[0])
            results["unchanged"].append(timed(ours, payload, env, "unchanged")[0])
            n += 1
            with open(transcript, "a") as f:
                f.write(assistant_line(session, n) + "\n")
            results["new"].append(timed(ours, payload, env, "new")[0])
        print()
        print("Wall time (includes waiting for the CPU on a loaded machine):")
        print(f"python -c pass (interpreter start-up) {summary(results['floor'])}")
        print(f"statusline, nothing new              {summary(results['unchanged'])}")
        print(f"statusline, 1 new line (one-file pass) {summary(results['new'])}")
        print("CPU time (user + system of the process; steadier under load):")
        print(f"python -c pass (interpreter start-up) {summary(CPU['floor'])}")
        print(f"statusline, nothing new              {summary(CPU['unchanged'])}")
        print(f"statusline, 1 new line (one-file pass) {summary(CPU['new'])}")
        if args.ccusage:
            # ccusage reads CLAUDE_CONFIG_DIR/projects: the corpus plus our session, as
            # hard links (it does not follow symlinked folders; links cost no copy).
            config = work / "ccusage-config"
            for source_root in (args.projects, side):
                for path in source_root.rglob("*.jsonl"):
                    target = config / "projects" / path.relative_to(source_root)
                    target.parent.mkdir(parents=True, exist_ok=True)
                    try:
                        os.link(path, target)
                    except OSError:
                        shutil.copy2(path, target)
            cc_env = {**env, "CLAUDE_CONFIG_DIR": str(config)}
            version = subprocess.run(
                [args.ccusage, "--version"], capture_output=True, env=cc_env
            ).stdout.decode()
            cold, cached = [], []
            cc_line = ""
            for _ in range(args.ccusage_rounds):
                elapsed, cc_line = timed(
                    [args.ccusage, "statusline", "--offline", "--no-cache"], payload, cc_env
                )
                cold.append(elapsed)
                timed([args.ccusage, "statusline", "--offline"], payload, cc_env)
                cached.append(timed([args.ccusage, "statusline", "--offline"], payload, cc_env)[0])
            print(f"{version.strip()} line: {cc_line}")
            print(f"ccusage statusline --offline --no-cache {summary(cold)}")
            print(f"ccusage statusline, cached (2nd call)   {summary(cached)}")
        print(f"Load average after: {os.getloadavg()}")
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
