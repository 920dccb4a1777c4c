"""Time `claude-sessions cost` and the dashboard's queries on a big archive.

    claude-sessions demo /tmp/demo --mb 1000
    claude-sessions sync --db /tmp/demo.db --projects /tmp/demo
    python bench/bench_cost.py /tmp/demo.db

Prints the median of a few runs of each report (in-process, the way the command runs,
without Python start-up), one `claude-sessions cost` run as a subprocess (with start-up),
each usage view (first page and count) and each chart query of the overview
dashboard in metadata.yml, in the web app's timezone setting (--timezone).
"""

from __future__ import annotations

import shutil
import statistics
import subprocess
import time
from pathlib import Path

import click
import yaml
from click.testing import CliRunner
from datasette_dashboards import replace_opts_in_query

from ingest import blocks, localdays, schema, usage
from ingest.cli import cli

METADATA = Path(__file__).resolve().parent.parent / "metadata.yml"


def timed(fn, runs: int = 5) -> float:
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times) * 1000


@click.command()
@click.argument("db", type=click.Path(exists=True, dir_okay=False))
@click.option("--runs", default=5, show_default=True)
@click.option(
    "--timezone",
    default="Europe/Paris",
    show_default=True,
    help="The web app's timezone setting for the views and the dashboard.",
)
def main(db, runs, timezone):
    conn = schema.connect(db)
    # as the plugin prepares its connections (local days: ingest/localdays.py)
    localdays.register(conn, timezone)
    if localdays.zone(timezone) is not None:
        usage.local_views(conn)
    calls, events = (
        conn.execute("SELECT count(*) FROM api_calls").fetchone()[0],
        conn.execute("SELECT count(*) FROM events").fetchone()[0],
    )
    size = Path(db).stat().st_size / 1e6
    print(f"{db}: {size:,.0f} MB, {events:,} events, {calls:,} api_calls")
    runner = CliRunner()
    for by in ("day", "session", "week", "project", "model", "block"):
        args = ["cost", "--db", db, "--by", by, "--json"]

        def run(args=args):
            result = runner.invoke(cli, args)
            assert result.exit_code == 0, result.output

        print(f"cost --by {by:8} {timed(run, runs):8.1f} ms (in-process median of {runs})")
    start = time.perf_counter()
    subprocess.run(
        [shutil.which("claude-sessions") or "claude-sessions", "cost", "--db", db],
        check=True,
        capture_output=True,
    )
    print(
        f"cost --by day as a subprocess (with Python start-up): "
        f"{(time.perf_counter() - start) * 1000:.0f} ms"
    )
    for view in (*usage.VIEWS, "usage_blocks"):
        for sql in (f"SELECT * FROM {view} LIMIT 101", f"SELECT count(*) FROM {view}"):
            ms = timed(lambda sql=sql: conn.execute(sql).fetchall(), runs)
            print(f"{sql:42} {ms:8.1f} ms")
    print(f"blocks.current_block     {timed(lambda: blocks.current_block(conn), runs):8.1f} ms")
    print(f"usage.unpriced_models    {timed(lambda: usage.unpriced_models(conn), runs):8.1f} ms")
    board = yaml.safe_load(METADATA.read_text())["plugins"]["datasette-dashboards"]
    total = 0.0
    for slug, dashboard in board.items():
        for name, chart in dashboard["charts"].items():
            if "query" not in chart:
                continue
            sql = replace_opts_in_query(chart["query"], {})
            ms = timed(lambda sql=sql: conn.execute(sql).fetchall(), runs)
            total += ms
            print(f"dashboard {slug}/{name:18} {ms:8.1f} ms")
        for name, flt in dashboard.get("filters", {}).items():
            if "query" in flt:
                ms = timed(lambda q=flt["query"]: conn.execute(q).fetchall(), runs)
                total += ms
                print(f"dashboard filter {name:16} {ms:8.1f} ms")
    print(f"dashboard page, all queries one after another: {total:.0f} ms")


if __name__ == "__main__":
    main()
