"""The API's surface on real Postgres and Redis: failed authentications throttled per client, /health
without exception text, oversized bodies refused with 413 before any route parses them."""

from __future__ import annotations

import json
import logging
from contextlib import asynccontextmanager

import httpx
import pytest

from tgops.api.app import create_app
from tgops.local.services import free_port
from tgops.messaging.sqs import InMemoryQueues
from tgops.runtime import Runtime

ATTACKER = ("203.0.113.7", 40000)
NEIGHBOUR = ("198.51.100.9", 40000)
PULL = "/api/provider/telegram/tasks/pull"
SYNC = "/api/provider/telegram/accounts/sync"
REPORT = "/api/provider/telegram/tasks/report"


@asynccontextmanager
async def client_from(runtime: Runtime, client_address=ATTACKER):
    transport = httpx.ASGITransport(app=create_app(runtime), client=client_address)
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as client:
        yield client


@pytest.fixture
async def runtime(settings):
    runtime = Runtime(settings, queue_sender=InMemoryQueues())
    yield runtime
    await runtime.close()


def provider(settings, token=None):
    return {"X-Provider-Token": token or settings.provider_token.get_secret_value()}


def admin(settings, token=None):
    return {"Authorization": f"Bearer {token or settings.admin_token.get_secret_value()}"}


def webhook_secret(settings):
    return {"X-Telegram-Bot-Api-Secret-Token": settings.telegram_webhook_secret.get_secret_value()}


REQUESTS = {
    "provider": lambda client, headers: client.post(PULL, json={"limit": 1}, headers=headers),
    "admin": lambda client, headers: client.get("/admin/dlq/dm_queue?limit=1", headers=headers),
    "api_key": lambda client, headers: client.get("/api/groups", headers=headers),
}
WRONG = {
    "provider": lambda settings: {"X-Provider-Token": "guess"},
    "admin": lambda settings: {"Authorization": "Bearer guess"},
    "api_key": lambda settings: {"X-API-Key": "tgk_guess"},
}
RIGHT = {"provider": provider, "admin": admin}


@pytest.mark.parametrize("kind", ["provider", "admin", "api_key"])
async def test_failed_authentications_are_throttled_per_client(settings, runtime, kind):
    limit = settings.auth_failure_limit
    async with client_from(runtime) as attacker, client_from(runtime, NEIGHBOUR) as neighbour:
        guesses = [await REQUESTS[kind](attacker, WRONG[kind](settings)) for _ in range(limit + 1)]
        other_client = await REQUESTS[kind](neighbour, WRONG[kind](settings))
        right_token = await REQUESTS[kind](attacker, RIGHT[kind](settings)) if kind in RIGHT else None

    assert [guess.status_code for guess in guesses] == [401] * limit + [429]
    assert 1 <= int(guesses[-1].headers["Retry-After"]) <= settings.auth_failure_window_sec
    assert other_client.status_code == 401
    if right_token is not None:  # a guess that is right is not told apart while the client is throttled
        assert right_token.status_code == 429


async def test_the_provider_api_answers_the_throttle_in_seed_002s_shape(settings, runtime):
    async with client_from(runtime) as client:
        for _ in range(settings.auth_failure_limit):
            await client.post(PULL, json={}, headers=provider(settings, "guess"))
        throttled = await client.post(PULL, json={}, headers=provider(settings, "guess"))

    assert throttled.status_code == 429
    assert throttled.json()["ok"] is False and "too many failed" in throttled.json()["error"]


async def test_health_says_down_without_the_exception_text_which_goes_to_the_log(settings, caplog):
    dead_redis = settings.model_copy(update={"redis_url": f"redis://127.0.0.1:{free_port()}/0"})
    runtime = Runtime(dead_redis, queue_sender=InMemoryQueues())
    try:
        with caplog.at_level(logging.WARNING):
            async with client_from(runtime) as client:
                response = await client.get("/health")
    finally:
        await runtime.close()

    assert response.status_code == 503
    assert response.json()["dependencies"]["redis"] == {"status": "down"}
    assert response.json()["dependencies"]["postgres"] == {"status": "up"}
    assert "127.0.0.1" not in response.text and "Error" not in response.text
    assert any(
        "redis" in record.getMessage() and "127.0.0.1" in record.getMessage() for record in caplog.records
    )


def big_body(size: int) -> bytes:
    return json.dumps({"accounts": [], "padding": "x" * size}).encode()


async def chunks(body: bytes):
    for start in range(0, len(body), 65536):
        yield body[start : start + 65536]


@pytest.mark.parametrize(
    ("method", "url", "headers", "shape"),
    [
        ("POST", SYNC, provider, "provider"),
        ("POST", REPORT, provider, "provider"),
        ("POST", PULL, provider, "provider"),
        ("POST", "/admin/dlq/dm_queue/replay", admin, "detail"),
        ("POST", "/api/send_messages", lambda settings: {"X-API-Key": "tgk_any"}, "detail"),
        ("POST", "/api/webhooks/telegram", webhook_secret, "detail"),
    ],
)
async def test_bodies_above_the_limit_are_refused_with_413_declared_or_streamed(
    settings, runtime, method, url, headers, shape
):
    body = big_body(settings.api_max_body_bytes)
    request_headers = {**headers(settings), "Content-Type": "application/json"}
    async with client_from(runtime) as client:
        declared = await client.request(method, url, content=body, headers=request_headers)
        streamed = await client.request(method, url, content=chunks(body), headers=request_headers)

    for response in (declared, streamed):
        assert response.status_code == 413
        reason = response.json()["error"] if shape == "provider" else response.json()["detail"]
        assert str(settings.api_max_body_bytes) in reason


async def test_a_declared_body_above_the_limit_is_refused_even_where_no_body_is_read(settings, runtime):
    async with client_from(runtime) as client:
        response = await client.request("GET", "/health", content=big_body(settings.api_max_body_bytes))

    assert response.status_code == 413


async def test_a_body_under_the_limit_still_reaches_the_route(settings, runtime):
    async with client_from(runtime) as client:
        synced = await client.post(
            SYNC,
            content=chunks(big_body(1000)),
            headers={**provider(settings), "Content-Type": "application/json"},
        )

    assert synced.status_code == 200 and synced.json()["ok"] is True
