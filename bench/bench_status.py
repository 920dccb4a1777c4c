"""Benchmark the web app's live parts on a generated demo corpus and print the figures.

    python bench/bench_status.py --mb 1000     # status.json on a ~1 GB archive
    python bench/bench_status.py --mb 50 --work /tmp/bench-status   # reuse on the next run

Everything happens in a temporary folder (HOME, CLAUDE_CONFIG_DIR, CLAUDE_SESSIONS_DB
and XDG_DATA_HOME point inside it, for this process and its children).

What is measured:

- ``/-/claude-sessions/status.json`` through ``datasette.client`` (in-process, no
  network: the server's own time), median / p90 / max of 50 requests: ``first``, the
  cache of slow figures dropped before each (what only a server's first request pays:
  every scan and stat), and ``steady``, one request every 100 ms while those figures
  are refreshed in the background every 2 s;
  ``--archive`` times only this, on an existing archive;
- append -> row: one line appended to a session file while ``claude-sessions watch``
  runs, until its ``events`` row is visible to a reader (polled every 2 ms), 20 times;
- append -> SSE: the same, until ``/-/claude-sessions/live?session=`` of a real
  Datasette process delivers the line (includes the stream's poll interval).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import shutil
import signal
import socket
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
import uuid
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))

from isolation import isolate  # noqa: E402  (bench/isolation.py)

from ingest.demo import generate  # noqa: E402
from ingest.sync import run_pass  # noqa: E402


def summary(values: list[float]) -> str:
    values = sorted(values)
    p90 = values[int(len(values) * 0.9) - 1] if len(values) >= 10 else values[-1]
    return f"median {statistics.median(values):7.2f}  p90 {p90:7.2f}  max {values[-1]:7.2f} ms"


async def time_status_json(db: Path, requests: int) -> dict[str, list[float]]:
    from datasette.app import Datasette

    from datasette_claude_sessions import status

    ds = Datasette([str(db)])
    await ds.client.get("/-/claude-sessions/status.json")  # startup, schema caches
    timings: dict[str, list[float]] = {"first": [], "steady": []}
    for mode in ("first", "steady"):
        for _ in range(requests):
            if mode == "first":
                status.forget_cached_figures()
            else:
                await asyncio.sleep(0.1)  # spans several background refreshes
            started = time.perf_counter()
            response = await ds.client.get("/-/claude-sessions/status.json")
            timings[mode].append((time.perf_counter() - started) * 1000)
            assert response.status_code == 200, response.text
    return timings


def session_file(projects: Path) -> tuple[Path, str]:
    files = [p for p in projects.glob("*/*.jsonl") if not p.name.startswith("agent-")]
    path = max(files, key=lambda p: p.stat().st_mtime)
    return path, path.stem


def append_line(path: Path, session_id: str, text: str) -> None:
    line = json.dumps(
        {
            "type": "user",
            "sessionId": session_id,
            "uuid": str(uuid.uuid4()),
            "timestamp": time.strftime("%Y-%m-%dT%H:%M:%S.000Z", time.gmtime()),
            "message": {"role": "user", "content": text},
        }
    )
    with open(path, "a", encoding="utf-8") as f:
        f.write(line + "\n")


def cli(*args: str) -> list[str]:
    return [sys.executable, "-c", "from ingest.cli import cli; cli()", *args]


def wait_for(predicate, timeout: float = 60.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.05)
    raise SystemExit("timed out")


def append_to_row(db: Path, projects: Path, samples: int) -> list[float]:
    path, session_id = session_file(projects)
    conn = sqlite3.connect(db)
    timings = []
    for i in range(samples):
        last = conn.execute("select max(id) from events").fetchone()[0]
        text = f"bench append {i} {uuid.uuid4()}"
        started = time.perf_counter()
        append_line(path, session_id, text)
        while not conn.execute(
            "select 1 from events where id > ? and text = ?", (last, text)
        ).fetchone():
            time.sleep(0.002)
        timings.append((time.perf_counter() - started) * 1000)
        time.sleep(0.2 + random.random() * 0.3)
    conn.close()
    return timings


def append_to_sse(db: Path, projects: Path, work: Path, samples: int) -> list[float]:
    import httpx

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    metadata = work / "metadata.json"
    metadata.write_text(json.dumps({"plugins": {"datasette-claude-sessions": {}}}))
    server = subprocess.Popen(
        [sys.executable, "-m", "datasette", "serve", str(db), "-m", str(metadata)]
        + ["--port", str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    url = f"http://127.0.0.1:{port}"

    def up():
        try:
            with urllib.request.urlopen(url + "/-/versions.json", timeout=1):
                return True
        except OSError:
            return False

    try:
        wait_for(up)
        path, session_id = session_file(projects)
        timings = []
        with httpx.stream(
            "GET", f"{url}/-/claude-sessions/live?session={session_id}", timeout=30
        ) as response:
            lines = response.iter_lines()
            for line in lines:  # the first message: the sidecar's state
                if line == "":
                    break
            for i in range(samples):
                text = f"bench sse {i} {uuid.uuid4()}"
                started = time.perf_counter()
                append_line(path, session_id, text)
                for line in lines:
                    if line.startswith("data: ") and text in line:
                        timings.append((time.perf_counter() - started) * 1000)
                        break
                time.sleep(0.2 + random.random() * 0.3)  # no lock-step with the poll
        return timings
    finally:
        server.send_signal(signal.SIGINT)
        server.wait(timeout=30)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--mb", type=float, default=1000, help="Demo corpus size (10^6 bytes)")
    parser.add_argument("--requests", type=int, default=50)
    parser.add_argument("--samples", type=int, default=20)
    parser.add_argument("--keep", action="store_true", help="Keep the temporary folder")
    parser.add_argument(
        "--work", type=Path, help="Folder to use and keep (its corpus and archive are reused)"
    )
    parser.add_argument(
        "--archive",
        type=Path,
        help="Only time status.json on this existing archive (opened read-only)",
    )
    args = parser.parse_args()

    if args.archive:
        with tempfile.TemporaryDirectory(prefix="bench-status-") as home:
            isolate(Path(home))
            conn = sqlite3.connect(f"file:{args.archive}?mode=ro", uri=True)
            counts = [
                conn.execute(f"select count(*) from {table}").fetchone()[0]
                for table in ("events", "sync_files", "sessions")
            ]
            conn.close()
            size = args.archive.stat().st_size / 1e6
            print(
                f"archive: {counts[0]:,} lines, {counts[1]:,} files, {counts[2]:,} sessions, "
                f"{size:,.0f} MB"
            )
            timings = asyncio.run(time_status_json(args.archive, args.requests))
            for mode, values in timings.items():
                print(f"status.json {mode:6}: {summary(values)}")
        return

    work = args.work or Path(tempfile.mkdtemp(prefix="bench-status-"))
    work.mkdir(parents=True, exist_ok=True)
    isolate(work)
    try:
        projects, db = work / "projects", work / "archive.db"
        if not projects.exists():
            started = time.perf_counter()
            generate(projects, mb=args.mb, seed=1)
            print(f"corpus: {args.mb:g} MB written in {time.perf_counter() - started:.1f} s")
        started = time.perf_counter()
        result = run_pass(db, [projects], trigger="cli")
        size = sum(os.path.getsize(f"{db}{s}") for s in ("", "-wal") if os.path.exists(f"{db}{s}"))
        print(
            f"archive: {result.lines_added:,} lines, {result.files_changed:,} files, "
            f"{size / 1e6:,.0f} MB, synced in {time.perf_counter() - started:.1f} s"
        )

        timings = asyncio.run(time_status_json(db, args.requests))
        for mode, values in timings.items():
            print(f"status.json {mode:6}: {summary(values)}")

        watch = subprocess.Popen(
            cli("watch", "--db", str(db), "--projects", str(projects), "--quiet"),
        )
        try:
            conn = sqlite3.connect(db)
            wait_for(
                lambda: (
                    conn.execute(
                        "select state from sync_heartbeat where id = 1 and pid = ?", (watch.pid,)
                    ).fetchone()
                    == ("idle",)
                )
            )
            conn.close()
            print(f"append -> row:      {summary(append_to_row(db, projects, args.samples))}")
            print("append -> SSE:      " + summary(append_to_sse(db, projects, work, args.samples)))
        finally:
            watch.send_signal(signal.SIGTERM)
            watch.wait(timeout=30)
    finally:
        if args.keep or args.work:
            print(f"kept {work}")
        else:
            shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
