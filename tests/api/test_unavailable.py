"""One answer to "a dependency is down" on every router: 503, `Retry-After`, a fixed reason, no driver text."""

from __future__ import annotations

from contextlib import asynccontextmanager

import httpx

from tests.conftest import load_event
from tests.fakes.queues import RecordingQueues
from tgops.api.app import create_app
from tgops.local.services import free_port
from tgops.runtime import Runtime


def without_database(settings):
    return settings.model_copy(
        update={
            "database_url": f"postgresql://postgres@127.0.0.1:{free_port()}/gone",
            "database_connect_timeout_sec": 0.5,
        }
    )


@asynccontextmanager
async def client_of(runtime: Runtime):
    transport = httpx.ASGITransport(app=create_app(runtime))
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as client:
        try:
            yield client
        finally:
            await runtime.close()


def assert_unavailable(response: httpx.Response) -> None:
    assert response.status_code == 503
    assert response.headers["Retry-After"] == "5"
    assert "127.0.0.1" not in response.text and "Traceback" not in response.text


async def test_provider_routes_answer_in_seed_002s_shape(settings):
    async with client_of(Runtime(without_database(settings))) as client:
        pulled = await client.post(
            "/api/provider/telegram/tasks/pull",
            json={"limit": 1},
            headers={"X-Provider-Token": settings.provider_token.get_secret_value()},
        )

    assert_unavailable(pulled)
    assert pulled.json() == {
        "ok": False,
        "error": "the database is unavailable; nothing was changed, retry later",
    }


async def test_admin_routes_answer_a_queue_outage_with_detail(settings):
    no_sqs = settings.model_copy(update={"sqs_endpoint_url": f"http://127.0.0.1:{free_port()}"})
    async with client_of(Runtime(no_sqs)) as client:
        listed = await client.get(
            "/admin/dlq/dm_queue",
            headers={"Authorization": f"Bearer {settings.admin_token.get_secret_value()}"},
        )

    assert_unavailable(listed)
    assert listed.json() == {"detail": "the queue is unavailable; nothing was queued, retry later"}


async def test_webhook_with_its_queue_down_answers_503_and_remembers_nothing(settings, redis_client):
    queues = RecordingQueues(failures_left=1)
    update = load_event("telegram_update_private_message")
    headers = {"X-Telegram-Bot-Api-Secret-Token": settings.telegram_webhook_secret.get_secret_value()}
    async with client_of(Runtime(settings, queue_sender=queues)) as client:
        refused = await client.post("/api/webhooks/telegram", json=update, headers=headers)
        retried = await client.post("/api/webhooks/telegram", json=update, headers=headers)

    assert_unavailable(refused)
    assert refused.json() == {"detail": "the queue is unavailable; nothing was queued, retry later"}
    assert retried.json()["status"] == "queued"


async def test_per_bot_webhook_without_a_database_answers_503(settings):
    async with client_of(Runtime(without_database(settings), queue_sender=RecordingQueues())) as client:
        refused = await client.post(
            "/api/webhooks/telegram/5",
            json={"update_id": 1},
            headers={"X-Telegram-Bot-Api-Secret-Token": "x"},
        )

    assert_unavailable(refused)
    assert refused.json()["detail"].startswith("the database is unavailable")
