"""Who may press Sync now: the claude-sessions-sync action and the allow_sync setting."""

from __future__ import annotations

import pytest
from datasette.app import Datasette
from datasette.utils import StartupError
from itsdangerous.url_safe import URLSafeSerializer

from datasette_claude_sessions import utils
from ingest.sync import run_pass

from .test_status import make_datasette, scalar

SYNC = "/-/claude-sessions/sync.json"


@pytest.fixture
def archive(real_projects, db_path):
    run_pass(db_path, [real_projects], trigger="cli")
    return db_path


def actor_cookie(ds, actor_id: str) -> dict[str, str]:
    return {"cookie": "ds_actor=" + ds.sign({"a": {"id": actor_id}}, "actor")}


async def post_as(ds, actor_id: str | None):
    """Press Sync now as a browser would: signed-in cookie, csrftoken cookie and field."""
    token = URLSafeSerializer(ds._secret).dumps("token", "csrftoken")
    cookie = f"ds_csrftoken={token}"
    if actor_id:
        cookie += "; ds_actor=" + ds.sign({"a": {"id": actor_id}}, "actor")
    return await ds.client.post(SYNC, data={"csrftoken": token}, headers={"cookie": cookie})


@pytest.mark.asyncio
async def test_unconfigured_instance_refuses_anonymous_and_allows_root(archive, real_projects):
    ds = make_datasette(archive, real_projects)
    before = scalar(archive, "select count(*) from sync_runs")
    refused = await post_as(ds, None)
    assert refused.status_code == 403
    assert refused.json() == {
        "ok": False,
        "error": "Sync now needs the claude-sessions-sync permission.",
    }
    assert (await post_as(ds, "alice")).status_code == 403
    assert scalar(archive, "select count(*) from sync_runs") == before
    allowed = await post_as(ds, "root")
    assert allowed.status_code == 200
    assert allowed.json()["ok"] is True
    assert scalar(archive, "select count(*) from sync_runs") == before + 1


@pytest.mark.asyncio
async def test_refused_html_post_gets_the_403_page(archive, real_projects):
    ds = make_datasette(archive, real_projects)
    response = await ds.client.post("/-/claude-sessions/sync")
    assert response.status_code == 403
    assert "claude-sessions-sync" in response.text
    page = await ds.client.get("/-/claude-sessions/status")
    assert "Sync now</button>" not in page.text
    assert "needs the <code>claude-sessions-sync</code> permission" in page.text


@pytest.mark.asyncio
async def test_allow_block_matches_actors(archive, real_projects):
    ds = make_datasette(archive, real_projects, allow_sync={"id": ["alice", "carol"]})
    assert (await post_as(ds, "alice")).status_code == 200
    assert (await post_as(ds, "bob")).status_code == 403
    assert (await post_as(ds, None)).status_code == 403
    assert (await post_as(ds, "root")).status_code == 403  # the block replaces the default
    page = await ds.client.get("/-/claude-sessions/status", headers=actor_cookie(ds, "alice"))
    assert "Sync now</button>" in page.text


@pytest.mark.asyncio
async def test_allow_sync_true_lets_everybody_sync(archive, real_projects):
    ds = make_datasette(archive, real_projects, allow_sync=True)
    response = await post_as(ds, None)
    assert response.status_code == 200
    assert response.json()["ok"] is True


@pytest.mark.asyncio
async def test_permission_hook_answers_only_for_its_action(archive, real_projects):
    ds = make_datasette(archive, real_projects, allow_sync={"id": "alice"})
    assert await ds.permission_allowed({"id": "alice"}, utils.SYNC_ACTION) is True
    assert await ds.permission_allowed({"id": "bob"}, utils.SYNC_ACTION) is False
    assert await ds.permission_allowed(None, utils.SYNC_ACTION) is False
    # Other actions keep Datasette's defaults.
    assert await ds.permission_allowed(None, "view-instance", default=True) is True


def test_register_actions_is_empty_on_datasette_0_65(archive):
    pytest.importorskip("datasette")
    try:
        import datasette.permissions  # noqa: F401
    except ImportError:
        assert utils.register_actions(None) == []
    else:
        names = [action.name for action in utils.register_actions(None)]
        assert names == [utils.SYNC_ACTION]


@pytest.mark.asyncio
async def test_status_pages_follow_view_permissions(archive, real_projects):
    ds = Datasette(
        [str(archive)], metadata={"databases": {archive.stem: {"allow": {"id": "root"}}}}
    )
    assert (await ds.client.get("/-/claude-sessions/status.json")).status_code == 403
    assert (await ds.client.get("/-/claude-sessions/status")).status_code == 403
    assert (await ds.client.get("/-/claude-sessions/live")).status_code == 403
    root = actor_cookie(ds, "root")
    assert (await ds.client.get("/-/claude-sessions/status.json", headers=root)).status_code == 200


@pytest.mark.asyncio
@pytest.mark.parametrize(
    "config, sentence",
    [
        ({"allow_sync": "yes"}, "allow_sync must be true, false or an allow block"),
        ({"projects": [1, 2]}, "projects must be a list of folders"),
    ],
)
async def test_malformed_configuration_stops_startup(archive, config, sentence):
    ds = Datasette([str(archive)], metadata={"plugins": {"datasette-claude-sessions": config}})
    with pytest.raises(StartupError, match=sentence):
        await ds.invoke_startup()
