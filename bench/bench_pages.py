"""Benchmark the transcript and search pages and print the figures.

    python bench/bench_pages.py                  # 10k and 50k-event sessions, ~200 MB corpus
    python bench/bench_pages.py --mb 1000 --keep

Everything happens in a temporary folder (HOME, CLAUDE_CONFIG_DIR, CLAUDE_SESSIONS_DB
and XDG_DATA_HOME point inside it).  The archive holds a demo corpus written by
``ingest.demo.generate`` plus synthetic linear sessions of 10,000 and 50,000 events
(prompts, Bash calls, results, answers).  Each URL is fetched in-process through
``datasette.client`` (the full request: routing, queries, ordering, Jinja rendering):
once cold, then 5 times; the median of those 5 is reported.
"""

from __future__ import annotations

import argparse
import asyncio
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

from ingest.demo import generate  # noqa: E402
from ingest.sync import run_pass  # noqa: E402
from tests.pages_helpers import synthetic_session, write_jsonl  # noqa: E402

RUNS = 5


def isolate(work: Path) -> None:
    home = work / "home"
    home.mkdir(exist_ok=True)
    os.environ.update(
        HOME=str(home),
        CLAUDE_CONFIG_DIR=str(home / ".claude"),
        CLAUDE_SESSIONS_DB=str(home / "archive.db"),
        XDG_DATA_HOME=str(home / ".local" / "share"),
    )


def search_terms(db: Path) -> dict[str, str]:
    """The most common, a middling and a rare indexed term of the corpus."""
    conn = sqlite3.connect(db)
    # 'col' mode and col = 'text': events_fts also indexes each event's kind, whose
    # words (tool, result, ...) the search page never looks for.
    conn.execute("create virtual table temp.vocab using fts5vocab('main', 'events_fts', 'col')")
    rows = conn.execute(
        "select term, doc from temp.vocab where col = 'text' and length(term) > 3 "
        "and term glob '[a-z]*' order by doc desc"
    ).fetchall()
    conn.close()
    return {
        f"common ({rows[0][1]:,} docs)": rows[0][0],
        f"middling ({rows[len(rows) // 50][1]:,} docs)": rows[len(rows) // 50][0],
        f"rare ({rows[-1][1]:,} docs)": rows[-1][0],
    }


async def measure(db: Path, urls: list[tuple[str, str]]) -> list[tuple[str, float, float, int]]:
    from datasette_claude_sessions.metadata import load_metadata
    from tests.pages_helpers import datasette_for

    assert load_metadata(db.stem)
    ds = datasette_for(db)
    await ds.client.get("/")  # startup
    results = []
    for label, url in urls:
        started = time.perf_counter()
        response = await ds.client.get(url)
        cold = (time.perf_counter() - started) * 1000
        assert response.status_code == 200, (url, response.status_code, response.text[:500])
        warm = []
        for _ in range(RUNS):
            started = time.perf_counter()
            await ds.client.get(url)
            warm.append((time.perf_counter() - started) * 1000)
        results.append((label, cold, statistics.median(warm), len(response.content)))
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--mb", type=float, default=200, help="demo corpus size (MB)")
    parser.add_argument("--keep", action="store_true", help="keep the temporary folder")
    args = parser.parse_args()

    work = Path(tempfile.mkdtemp(prefix="bench-pages-"))
    isolate(work)
    try:
        projects = work / "projects"
        started = time.perf_counter()
        generate(projects, mb=args.mb, seed=1)
        sizes = {
            10_000: "b1000000-0000-4000-8000-000000010000",
            50_000: "b5000000-0000-4000-8000-000000050000",
        }
        for events, sid in sizes.items():
            write_jsonl(projects / "-bench-big" / f"{sid}.jsonl", synthetic_session(sid, events))
        db = work / "claude-sessions.db"
        run_pass(db, [projects], trigger="cli")
        conn = sqlite3.connect(db)
        total = conn.execute("select count(*) from events").fetchone()[0]
        biggest, biggest_events = conn.execute(
            "select session_id, count(*) from events where session_id not like 'b_000000-%' "
            "group by session_id order by 2 desc limit 1"
        ).fetchone()
        project = conn.execute(
            "select project_path from sessions group by project_path order by count(*) desc"
        ).fetchone()[0]
        event_40k = conn.execute(
            "select id from events where session_id = ? order by id limit 1 offset 40000",
            (sizes[50_000],),
        ).fetchone()[0]
        conn.close()
        size_mb = db.stat().st_size / 1e6
        print(
            f"archive: {total:,} events, {size_mb:,.0f} MB "
            f"(built in {time.perf_counter() - started:.0f} s)\n"
        )

        s10, s50 = (f"/-/claude-sessions/session/{sizes[n]}" for n in (10_000, 50_000))
        urls = [
            ("transcript 10k events, page 1", s10),
            ("transcript 10k events, page 10", s10 + "?page=10"),
            ("transcript 10k events, .json page 1", s10 + ".json"),
            ("transcript 50k events, page 1", s50),
            ("transcript 50k events, ?event= (page 81)", s50 + f"?event={event_40k}"),
            (
                f"transcript largest demo session ({biggest_events:,} events), page 1",
                f"/-/claude-sessions/session/{biggest}",
            ),
        ]
        for label, term in search_terms(db).items():
            base = f"/-/claude-sessions/search?q={term}"
            urls += [
                (f"search {label}: best match", base),
                (f"search {label}: newest", base + "&sort=newest"),
                (f"search {label}: kind=prompt", base + "&kind=prompt"),
                (
                    f"search {label}: project + dates",
                    base + f"&project={project}&from=2000-01-01&to=2100-01-01",
                ),
                (f"search {label}: page 5", base + "&page=5"),
            ]
        results = asyncio.run(measure(db, urls))
        width = max(len(r[0]) for r in results)
        print(f"{'page':<{width}}  {'cold ms':>8}  {'median ms':>9}  {'KB':>6}")
        for label, cold, warm, size in results:
            print(f"{label:<{width}}  {cold:8.1f}  {warm:9.1f}  {size / 1000:6.0f}")
    finally:
        if args.keep:
            print(f"\nkept {work}")
        else:
            shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
