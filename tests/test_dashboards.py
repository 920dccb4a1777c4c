"""The overview dashboard in metadata.yml renders and every chart's SQL runs."""

from __future__ import annotations

import datetime as dt
import re
from pathlib import Path

import pytest
import yaml
from datasette.app import Datasette
from datasette_dashboards import replace_opts_in_query

from ingest.sync import run_pass

METADATA = Path(__file__).resolve().parent.parent / "metadata.yml"
SLUG = "claude-usage"


@pytest.fixture
def dashboard_ds(real_projects, tmp_path):
    metadata = yaml.safe_load(METADATA.read_text())
    db = tmp_path / "claude-sessions.db"
    run_pass(db, [real_projects], host="laptop")
    return Datasette([str(db)], metadata=metadata), metadata


def dashboard(metadata) -> dict:
    return metadata["plugins"]["datasette-dashboards"][SLUG]


FILTERS = {
    "project": "deep-manifest",  # the name of /src/deep-manifest
    "model": "claude-opus-4-5-20251101",
    "host": "laptop",
    "date_start": "2025-11-01",
    "date_end": "2025-11-30",
}


@pytest.mark.asyncio
async def test_dashboard_page_renders(dashboard_ds):
    ds, metadata = dashboard_ds
    response = await ds.client.get(f"/-/dashboards/{SLUG}")
    assert response.status_code == 200
    assert "Claude Code usage" in response.text
    response = await ds.client.get(f"/-/dashboards/{SLUG}", params=FILTERS)
    assert response.status_code == 200
    for name in dashboard(metadata)["charts"]:
        response = await ds.client.get(f"/-/dashboards/{SLUG}/{name}")
        assert response.status_code == 200, name


@pytest.mark.asyncio
@pytest.mark.parametrize("filters", [{}, FILTERS], ids=["no-filters", "all-filters"])
async def test_every_chart_query_runs(dashboard_ds, filters):
    ds, metadata = dashboard_ds
    board = dashboard(metadata)
    assert set(board["charts"]) == {name for row in board["layout"] for name in row}
    non_empty = 0
    for name, chart in board["charts"].items():
        if chart["library"] == "markdown":
            continue
        sql = replace_opts_in_query(chart["query"], filters)
        response = await ds.client.get(
            f"/{chart['db']}.json", params={"sql": sql, "_shape": "array", **filters}
        )
        assert response.status_code == 200, (name, response.text)
        rows = response.json()
        non_empty += bool(rows)
        if chart["library"] == "metric":
            assert chart["display"]["field"] in rows[0]
    assert non_empty >= 8
    for flt in board["filters"].values():
        if "query" in flt:
            response = await ds.client.get(
                f"/{flt['db']}.json", params={"sql": flt["query"], "_shape": "array"}
            )
            assert response.status_code == 200 and response.json()


@pytest.mark.asyncio
async def test_status_json_has_usage(dashboard_ds):
    ds, _ = dashboard_ds
    response = await ds.client.get("/-/claude-sessions/status.json")
    assert response.status_code == 200
    usage = response.json()["usage"]
    assert usage == {"current_block": None, "unpriced_models": []}
    page = await ds.client.get("/-/claude-sessions/status")
    assert page.status_code == 200 and 'id="cs-usage"' in page.text


async def chart_rows(ds, metadata, name: str, filters: dict | None = None) -> list[dict]:
    chart = dashboard(metadata)["charts"][name]
    sql = replace_opts_in_query(chart["query"], filters or {})
    response = await ds.client.get(
        f"/{chart['db']}.json", params={"sql": sql, "_shape": "array", **(filters or {})}
    )
    assert response.status_code == 200, (name, response.text)
    return response.json()


@pytest.mark.asyncio
async def test_numbers_are_formatted(dashboard_ds):
    ds, metadata = dashboard_ds
    tokens = (await chart_rows(ds, metadata, "total-tokens"))[0]["tokens"]
    assert re.fullmatch(r"\d{1,3}(,\d{3})+", tokens)
    cost = (await chart_rows(ds, metadata, "total-cost"))[0]["cost"]
    assert re.fullmatch(r"\d{1,3}(,\d{3})*\.\d\d", cost)
    top = await chart_rows(ds, metadata, "top-projects")
    assert all(re.fullmatch(r"\$\d{1,3}(,\d{3})*\.\d\d", row["cost_usd"]) for row in top)
    costs = [float(row["cost_usd"][1:].replace(",", "")) for row in top]
    assert costs == sorted(costs, reverse=True)
    # vega-lite axes and tooltips carry a d3 format.
    dumped = yaml.safe_dump(dashboard(metadata)["charts"]["tokens-per-day"])
    assert "format: ~s" in dumped and "format: ',.0f'" in dumped


@pytest.mark.asyncio
async def test_project_filter_lists_the_names_top_projects_shows(dashboard_ds):
    ds, metadata = dashboard_ds
    flt = dashboard(metadata)["filters"]["project"]
    response = await ds.client.get(
        f"/{flt['db']}.json", params={"sql": flt["query"], "_shape": "array"}
    )
    options = [row["project"] for row in response.json()]
    shown = [row["project"] for row in await chart_rows(ds, metadata, "top-projects")]
    assert shown and set(shown) <= set(options)
    assert not any(option.startswith("-") for option in options)  # no encoded folders
    for name in ("total-sessions", "tool-errors"):
        every = await chart_rows(ds, metadata, name)
        one = await chart_rows(ds, metadata, name, {"project": shown[0]})
        assert one and one != every, name


@pytest.mark.asyncio
async def test_tool_error_rate_lists_tools_without_errors(dashboard_ds):
    ds, metadata = dashboard_ds
    rows = await chart_rows(ds, metadata, "tool-errors")
    assert any(row["errors"] == "0" for row in rows)
    assert any(row["errors"] != "0" for row in rows)
    assert all(row["error_rate"].endswith("%") for row in rows)


@pytest.mark.asyncio
@pytest.mark.parametrize("name", ["cost-per-day", "tokens-per-day", "sessions-per-day"])
async def test_daily_charts_use_weeks_over_long_ranges(dashboard_ds, name):
    """Bars a day wide for a short range, a week wide (from Monday) over months: never
    hundreds of 1-pixel bars; each bar spans start..end."""
    ds, metadata = dashboard_ds
    chart = dashboard(metadata)["charts"][name]
    assert chart["display"]["encoding"]["x2"]["field"] == "end"
    every = await chart_rows(ds, metadata, name)
    assert {row["period"] for row in every} == {"week from"}
    for row in every:
        start = dt.date.fromisoformat(row["start"])
        assert start.weekday() == 0
        assert dt.date.fromisoformat(row["end"]) == start + dt.timedelta(days=7)
    few = await chart_rows(
        ds, metadata, name, {"date_start": "2025-07-01", "date_end": "2025-07-31"}
    )
    assert few and {row["period"] for row in few} == {"day"}
    for row in few:
        start = dt.date.fromisoformat(row["start"])
        assert dt.date.fromisoformat(row["end"]) == start + dt.timedelta(days=1)
    # The days add up to no more than the weeks that cover them.
    field = chart["display"]["encoding"]["y"]["field"]
    if name != "sessions-per-day":
        july = [r for r in every if "2025-06-30" <= r["start"] <= "2025-07-31"]
        assert sum(r[field] for r in few) <= sum(r[field] for r in july) + 1e-6
