"""The broadcast routes: a job's state, deleting its messages (API key), the CSV export (admin token)."""

from __future__ import annotations

import csv
import io

import pytest

from tests.api.public_api_support import public_api
from tests.broadcast.conftest import add_groups, received
from tgops.api.api_keys import create_api_key
from tgops.broadcast.consumer import handle
from tgops.broadcast.jobs import BroadcastJob
from tgops.broadcast.messages import BroadcastDelete
from tgops.messaging.envelopes import decode


@pytest.fixture
async def api(bot_settings, db):
    created = await create_api_key(db, "tests")
    async with public_api(bot_settings.model_copy(update={"broadcast_rate_per_sec": 20})) as api:
        api.client.headers["X-API-Key"] = created.key
        yield api


async def test_a_sent_broadcast_is_reported_deleted_on_request_and_exported_as_csv(
    api, bot_api, db, bot_settings
):
    await add_groups(db, [-1, -2])
    response = await api.client.post("/api/send_messages", json={"content": {"type": "text", "text": "hi"}})
    job = decode(api.queues.bodies("group_message_queue")[0], BroadcastJob)
    assert response.json()["job_id"] == job.job_id
    await handle(api.runtime, received(job))

    state = await api.client.get(f"/api/broadcasts/{job.job_id}")
    assert state.status_code == 200
    assert state.json() | {"job_id": None} == {
        "job_id": None,
        "status": "done",
        "total": 2,
        "deliveries": {"sent": 2},
        "deletions": {"not_deleted": 2},
        "delete_requested": False,
    }

    deletion = await api.client.delete(f"/api/broadcasts/{job.job_id}")
    assert deletion.status_code == 202 and deletion.json() == {"job_id": job.job_id, "to_delete": 2}
    queued = decode(api.queues.bodies("group_message_queue")[-1], BroadcastDelete)
    await handle(api.runtime, received(queued))
    after = (await api.client.get(f"/api/broadcasts/{job.job_id}")).json()
    assert after["deletions"] == {"deleted": 2} and after["delete_requested"] is True

    refused = await api.client.get("/admin/sent_messages.csv")
    export = await api.client.get(
        "/admin/sent_messages.csv",
        headers={"Authorization": f"Bearer {bot_settings.admin_token.get_secret_value()}"},
    )
    assert refused.status_code == 401
    assert export.status_code == 200 and export.headers["content-type"].startswith("text/csv")
    rows = list(csv.DictReader(io.StringIO(export.text)))
    assert sorted(row["chat_id"] for row in rows) == ["-1", "-2"]
    assert {(row["status"], row["delete_outcome"]) for row in rows} == {("deleted", "deleted")}
    assert all(row["debug_code"].startswith("DBG:") and row["message_id"] for row in rows)


async def test_an_unknown_broadcast_is_404_and_a_malformed_id_422(api):
    unknown = "01J0000000000000000000000Z"
    assert (await api.client.get(f"/api/broadcasts/{unknown}")).status_code == 404
    assert (await api.client.delete(f"/api/broadcasts/{unknown}")).status_code == 404
    assert (await api.client.delete("/api/broadcasts/not-a-job")).status_code == 422
    assert api.queues.sent == []


async def test_the_broadcast_routes_need_an_api_key(api):
    del api.client.headers["X-API-Key"]
    assert (await api.client.delete("/api/broadcasts/01J0000000000000000000000Z")).status_code == 401
