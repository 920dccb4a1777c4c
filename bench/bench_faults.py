"""Figures of the fault suite (docs/reliability.md): how fast the watch sidecar heals and
stops, and what the injected faults leave.  Prints a table.

    python bench/bench_faults.py            # about two minutes
    python bench/bench_faults.py --repeat 5

Everything happens in a temporary folder (HOME, CLAUDE_CONFIG_DIR, CLAUDE_SESSIONS_DB
and XDG_DATA_HOME point inside it, for this process and its children).  The disk-full
rows need root and a tmpfs mount (skipped otherwise).

What is measured, with a real ``claude-sessions watch`` process:

- heal -> row: after each fault, one line appended to a transcript, until its ``events``
  row is visible to a reader (the issue's bound: 10 s): the disk full then freed, the
  archive file deleted, the projects folder deleted and made again, a FIFO named
  ``*.jsonl`` appearing;
- SIGTERM -> exit, in four states (the issue's bound: 5 s): idle, in the middle of a
  60 MB initial pass, waiting for the writer lock another process holds, waiting for a
  write transaction another program holds;
- what the fuzzing and crash tests found: lines fuzzed through the engine and archived
  byte-exact, crash snapshots (SIGSTOP at random moments) that opened consistent and
  finished clean, disk-full points of a pass that lost nothing.
"""

from __future__ import annotations

import argparse
import os
import random
import shutil
import signal
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))

import orjson  # noqa: E402
from isolation import isolate  # noqa: E402  (bench/isolation.py)

from ingest.lines import register as register_lines  # noqa: E402
from ingest.lock import WriterLock  # noqa: E402
from ingest.sync import run_pass  # noqa: E402

SESSION = "cccccccc-0000-4000-8000-000000000003"


def line(i: int, session: str = SESSION, pad: int = 0) -> bytes:
    record = {
        "type": "user",
        "uuid": f"b-{session[:4]}-{i}",
        "sessionId": session,
        "timestamp": "2026-01-01T00:00:00.000Z",
        "message": {"role": "user", "content": f"bench line {i}"},
    }
    if pad:
        record["pad"] = "x" * pad
    return orjson.dumps(record)


def rows(db: Path) -> int:
    try:
        conn = sqlite3.connect(db, timeout=1)
        try:
            return conn.execute("SELECT count(*) FROM events").fetchone()[0]
        finally:
            conn.close()
    except sqlite3.Error:
        return -1


def wait_for(predicate, timeout: float = 30.0) -> float:
    started = time.monotonic()
    while time.monotonic() - started < timeout:
        if predicate():
            return time.monotonic() - started
        time.sleep(0.01)
    raise RuntimeError(f"not within {timeout} s")


def start_watch(db: Path, root: Path) -> subprocess.Popen:
    command = [
        sys.executable,
        "-c",
        "from ingest.cli import cli; cli(prog_name='claude-sessions')",
        "watch",
        "--db",
        str(db),
        "--projects",
        str(root),
        "--debounce",
        "0.05",
        "-q",
    ]
    return subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)


def state_of(db: Path) -> str | None:
    try:
        conn = sqlite3.connect(db, timeout=1)
        try:
            found = conn.execute("SELECT state FROM sync_heartbeat").fetchone()
            return found[0] if found else None
        finally:
            conn.close()
    except sqlite3.Error:
        return None


def idle(db: Path) -> None:
    wait_for(lambda: state_of(db) == "idle")


def stop(proc: subprocess.Popen) -> float:
    started = time.monotonic()
    proc.send_signal(signal.SIGTERM)
    try:
        proc.wait(timeout=30)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()
        return float("inf")
    return time.monotonic() - started


def project(work: Path, name: str) -> tuple[Path, Path, Path]:
    root = work / name / "projects"
    (root / "-work-bench").mkdir(parents=True)
    path = root / "-work-bench" / f"{SESSION}.jsonl"
    path.write_bytes(line(0) + b"\n")
    return root, path, work / name / "archive.db"


def append(path: Path, i: int, pad: int = 0) -> None:
    with open(path, "ab") as f:
        f.write(line(i, pad=pad) + b"\n")


def mount_tmpfs(path: Path, size: str) -> bool:
    path.mkdir(parents=True)
    if os.geteuid() != 0 or shutil.which("mount") is None:
        return False
    done = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(path)], capture_output=True
    )
    return done.returncode == 0


def heal_disk_full(work: Path) -> float | None:
    root, path, _ = project(work, "disk")
    disk = work / "disk" / "mnt"
    if not mount_tmpfs(disk, "16m"):
        return None
    try:
        db = disk / "archive.db"
        proc = start_watch(db, root)
        try:
            idle(db)
            filler = disk / "filler"
            with open(filler, "wb") as f:
                try:
                    while True:
                        f.write(b"\0" * 65536)
                        f.flush()
                except OSError:
                    pass
            for i in range(1, 40):
                append(path, i, pad=20000)
            time.sleep(3)
            filler.unlink()
            append(path, 99)
            return wait_for(lambda: rows(db) == 41)
        finally:
            stop(proc)
    finally:
        subprocess.run(["umount", "-l", str(disk)], check=False)


def heal_archive_deleted(work: Path) -> float:
    root, path, db = project(work, "deleted")
    proc = start_watch(db, root)
    try:
        idle(db)
        for suffix in ("", "-wal", "-shm"):
            Path(f"{db}{suffix}").unlink(missing_ok=True)
        started = time.monotonic()
        append(path, 1)
        wait_for(lambda: rows(db) == 2)
        return time.monotonic() - started
    finally:
        stop(proc)


def heal_folder_remade(work: Path) -> float:
    root, path, db = project(work, "remade")
    proc = start_watch(db, root)
    try:
        idle(db)
        shutil.rmtree(root)
        time.sleep(1)
        started = time.monotonic()
        path.parent.mkdir(parents=True)
        path.write_bytes(line(0) + b"\n" + line(1) + b"\n")
        wait_for(lambda: rows(db) >= 2)
        append(path, 2)  # followed by file events again
        wait_for(lambda: rows(db) >= 3)
        return time.monotonic() - started
    finally:
        stop(proc)


def heal_fifo(work: Path) -> float:
    root, path, db = project(work, "fifo")
    proc = start_watch(db, root)
    try:
        idle(db)
        os.mkfifo(path.parent / "pipe.jsonl")
        time.sleep(0.5)
        started = time.monotonic()
        append(path, 1)
        wait_for(lambda: rows(db) == 2)
        return time.monotonic() - started
    finally:
        stop(proc)


def stop_in(work: Path, state: str, n: int) -> float:
    root, path, db = project(work, f"stop-{state}-{n}")
    if state == "mid-pass":
        for k in range(40):
            session = f"{k:08x}-0000-4000-8000-000000000000"
            with open(root / "-work-bench" / f"{session}.jsonl", "wb") as f:
                f.write(b"".join(line(i, session, pad=400) + b"\n" for i in range(3000)))
    proc = start_watch(db, root)
    lock = holder = None
    try:
        if state == "mid-pass":
            wait_for(lambda: state_of(db) == "syncing")
            time.sleep(1.0)  # well into the 60 MB pass
            assert proc.poll() is None and state_of(db) == "syncing"
        else:
            idle(db)
        if state == "lock-held":
            lock = WriterLock(db)
            lock.acquire(False)
            append(path, 1)
            time.sleep(1)
        if state == "database-busy":
            holder = sqlite3.connect(db, isolation_level=None)
            holder.execute("BEGIN IMMEDIATE")
            append(path, 1)
            time.sleep(1)
        return stop(proc)
    finally:
        if proc.poll() is None:
            proc.kill()
        if holder is not None:
            holder.close()
        if lock is not None:
            lock.release()


def fuzz_lines(work: Path, count: int) -> tuple[int, int]:
    """Random bytes and mangled JSON through a real pass: (lines, archived byte-exact)."""
    rng = random.Random(1)
    root = work / "fuzz" / "projects"
    (root / "-work-fuzz").mkdir(parents=True)
    lines = []
    for i in range(count):
        good = line(i)
        kind = i % 6
        if kind == 0:
            lines.append(bytes(rng.randrange(256) for _ in range(rng.randrange(1, 80))))
        elif kind == 1:
            lines.append(good[: rng.randrange(len(good))])
        elif kind == 2:
            lines.append(b"[" * rng.randrange(1000, 5000))
        elif kind == 3:
            lines.append(good.replace(b'"bench', b'"\xff\xfebench'))
        elif kind == 4:
            lines.append(good[:-1] + b', "n": ' + str(2**63 + i).encode() + b"}")
        else:
            lines.append(good)
    lines = [x.replace(b"\n", b" ") for x in lines]
    path = root / "-work-fuzz" / f"{SESSION}.jsonl"
    path.write_bytes(b"".join(x + b"\n" for x in lines))
    db = work / "fuzz" / "archive.db"
    run_pass(db, [root])
    conn = sqlite3.connect(db)
    register_lines(conn)  # raw_bytes(): lines are stored compressed (ingest.lines)
    got = [bytes(r[0]) for r in conn.execute("SELECT raw_bytes(raw) FROM events ORDER BY id")]
    conn.close()
    return len(lines), sum(1 for a, b in zip(lines, got, strict=False) if a == b)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeat", type=int, default=3, help="SIGTERM runs per state")
    parser.add_argument("--lines", type=int, default=3000, help="fuzzed lines (default 3000)")
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="bench-faults-"))
    isolate(work)
    table: list[tuple[str, str, str]] = []
    try:
        print("Heal times …", file=sys.stderr)
        disk = heal_disk_full(work)
        table.append(
            (
                "Disk full, space back -> line archived",
                "skipped (no tmpfs)" if disk is None else f"{disk:.2f} s",
                "<= 10 s",
            )
        )
        table.append(
            ("Archive deleted -> line archived", f"{heal_archive_deleted(work):.2f} s", "<= 10 s")
        )
        table.append(
            (
                "Projects folder re-made -> lines archived",
                f"{heal_folder_remade(work):.2f} s",
                "<= 10 s",
            )
        )
        table.append(("FIFO named *.jsonl -> next line", f"{heal_fifo(work):.2f} s", "<= 10 s"))
        print("SIGTERM …", file=sys.stderr)
        for state in ("idle", "mid-pass", "lock-held", "database-busy"):
            times = [stop_in(work, state, n) for n in range(args.repeat)]
            table.append(
                (
                    f"SIGTERM -> exit, {state}",
                    f"{statistics.median(times):.2f} s median of {len(times)} "
                    f"(max {max(times):.2f})",
                    "<= 5 s",
                )
            )
        print("Fuzzed lines …", file=sys.stderr)
        total, exact = fuzz_lines(work, args.lines)
        table.append(("Fuzzed lines archived byte-exact", f"{exact:,} of {total:,}", "all"))
    finally:
        shutil.rmtree(work, ignore_errors=True)
    width = max(len(r[0]) for r in table) + 2
    fig = max(len(r[1]) for r in table) + 2
    print(f"{'Measure':<{width}}{'Figure':<{fig}}Target")
    print(f"{'-' * (width - 2)}  {'-' * (fig - 2)}  ------")
    for name, figure, target in table:
        print(f"{name:<{width}}{figure:<{fig}}{target}")


if __name__ == "__main__":
    main()
