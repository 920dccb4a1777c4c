"""Time `claude-sessions share` on an archive and print the figures.

    python bench/bench_share.py --archive /tmp/big/archive.db            # one run
    python bench/bench_share.py --archive /tmp/big/archive.db --repeat 3 # median of 3

The archive is only read; each run writes a new share copy in a temporary folder (next
to the archive unless --work is given) and deletes it.  Printed per run: wall seconds,
CPU seconds of this process, the archive's and the copy's sizes, sessions, and what was
replaced by kind; then the median wall time.  Make a 1 GB archive with
`claude-sessions demo DIR --mb 1000` and `claude-sessions sync --projects DIR --db A.db`.
"""

from __future__ import annotations

import argparse
import os
import resource
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from ingest.share import Options, share  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--archive", type=Path, required=True)
    parser.add_argument("--repeat", type=int, default=1)
    parser.add_argument("--work", type=Path, default=None)
    parser.add_argument("--drop", action="append", default=[])
    args = parser.parse_args()
    work = args.work or args.archive.parent
    size = args.archive.stat().st_size
    print(f"archive {args.archive}: {size / 1e6:,.0f} MB")
    times = []
    for run in range(1, args.repeat + 1):
        with tempfile.TemporaryDirectory(dir=work) as tmp:
            dest = Path(tmp) / "share.db"
            cpu = resource.getrusage(resource.RUSAGE_SELF)
            started = time.perf_counter()
            result = share(args.archive, dest, Options(drop=tuple(args.drop)))
            wall = time.perf_counter() - started
            used = resource.getrusage(resource.RUSAGE_SELF)
            cpu_s = used.ru_utime + used.ru_stime - cpu.ru_utime - cpu.ru_stime
            times.append(wall)
            replaced = ", ".join(f"{k} {n:,}" for k, n in sorted(result.counts.items()))
            print(
                f"run {run}: {wall:.1f} s wall, {cpu_s:.1f} s CPU, copy "
                f"{result.size / 1e6:,.0f} MB, {result.sessions:,} sessions; {replaced}"
            )
            print(f"  peak RSS {used.ru_maxrss / 1024:,.0f} MB; load {os.getloadavg()[0]:.1f}")
    print(f"median {statistics.median(times):.1f} s over {len(times)} run(s)")


if __name__ == "__main__":
    main()
