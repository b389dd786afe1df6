"""The webhook endpoints on real Postgres and Redis; queue sends recorded (duplicates included)."""

from __future__ import annotations

import asyncio
import json
from contextlib import asynccontextmanager

import httpx
import psycopg
import pytest
import redis
from pydantic import SecretStr

from tests.cache.test_client import ReplyDroppingProxy
from tests.conftest import load_event
from tests.fakes.queues import RecordingQueues
from tgops.api.app import create_app
from tgops.cache import keys
from tgops.ingress.messages import MAIN_BOT_ID, TelegramUpdateReceived
from tgops.local.services import free_port
from tgops.messaging.envelopes import decode
from tgops.runtime import Runtime
from tgops.security import hash_secret

MAIN_URL = "/api/webhooks/telegram"
SECRET_HEADER = "X-Telegram-Bot-Api-Secret-Token"
BOT_SECRET = "bot-7-secret"


@asynccontextmanager
async def webhook_client(settings, queues: RecordingQueues):
    app = create_app(Runtime(settings, queue_sender=queues))
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as client:
        try:
            yield client
        finally:
            await app.state.runtime.close()


@pytest.fixture
def queues() -> RecordingQueues:
    return RecordingQueues()


@pytest.fixture
async def client(settings, queues):
    async with webhook_client(settings, queues) as client:
        yield client


@pytest.fixture
def main_secret(settings) -> dict[str, str]:
    return {SECRET_HEADER: settings.telegram_webhook_secret.get_secret_value()}


@pytest.fixture
def bot_id(database_url) -> int:
    with psycopg.connect(database_url, autocommit=True) as connection:
        return connection.execute(
            "INSERT INTO bots (username, webhook_secret_hash) VALUES ('clone_bot', %s) RETURNING id",
            (hash_secret(BOT_SECRET),),
        ).fetchone()[0]


def redis_keys(redis_url: str, pattern: str) -> list[str]:
    with redis.Redis.from_url(redis_url, decode_responses=True) as connection:
        return sorted(connection.keys(pattern))


def dedupe_rows(database_url: str) -> list[tuple[int, int]]:
    with psycopg.connect(database_url) as connection:
        return connection.execute("SELECT bot_id, update_id FROM webhook_dedupe ORDER BY 1, 2").fetchall()


def settings_with_dead_redis(settings):
    return settings.model_copy(update={"redis_url": f"redis://127.0.0.1:{free_port()}/0"})


def settings_with_dead_redis_and_postgres(settings):
    return settings_with_dead_redis(settings).model_copy(
        update={
            "database_url": f"postgresql://postgres@127.0.0.1:{free_port()}/gone",
            "database_connect_timeout_sec": 1,
        }
    )


async def test_new_update_is_acknowledged_and_queued_with_its_chat_order(
    client, queues, main_secret, redis_url
):
    update = load_event("telegram_update_private_message")

    response = await client.post(MAIN_URL, json=update, headers=main_secret)

    assert response.status_code == 200
    assert response.json() == {"ok": True, "status": "queued"}
    [sent] = queues.calls
    assert sent.queue == "dm_queue"
    assert sent.group_id == f"{MAIN_BOT_ID}:{update['message']['chat']['id']}"
    assert sent.dedup_id == f"{MAIN_BOT_ID}:{update['update_id']}"
    message = decode(sent.body, TelegramUpdateReceived)
    assert (message.bot_id, message.update_id, message.update_type) == (
        MAIN_BOT_ID,
        update["update_id"],
        "message",
    )
    assert message.update == update
    assert redis_keys(redis_url, "webhook:*") == [keys.webhook_dedupe(MAIN_BOT_ID, update["update_id"])]


@pytest.mark.parametrize(
    ("event", "queue"),
    [("telegram_update_join_request", "tgms_queue"), ("telegram_update_group_command", "dm_queue")],
)
async def test_updates_are_routed_by_kind(client, queues, main_secret, event, queue):
    response = await client.post(MAIN_URL, json=load_event(event), headers=main_secret)

    assert response.json()["status"] == "queued"
    assert [sent.queue for sent in queues.calls] == [queue]


@pytest.mark.parametrize("headers", [{}, {SECRET_HEADER: "wrong"}, {SECRET_HEADER: ""}])
async def test_missing_or_wrong_secret_is_refused_and_nothing_is_remembered(
    client, queues, headers, redis_url
):
    response = await client.post(
        MAIN_URL, json=load_event("telegram_update_private_message"), headers=headers
    )

    assert response.status_code == 401
    assert SECRET_HEADER in response.json()["detail"]
    assert queues.calls == []
    assert redis_keys(redis_url, "webhook:*") == []


async def test_placeholder_secret_accepts_nobody(settings, queues):
    placeholder = settings.model_copy(update={"telegram_webhook_secret": SecretStr("change-me")})
    async with webhook_client(placeholder, queues) as client:
        response = await client.post(
            MAIN_URL, json=load_event("telegram_update_private_message"), headers={SECRET_HEADER: "change-me"}
        )

    assert response.status_code == 401


async def test_each_bot_is_checked_against_its_own_hashed_secret(
    client, queues, bot_id, main_secret, database_url
):
    update = load_event("telegram_update_join_request")
    url = f"{MAIN_URL}/{bot_id}"

    accepted = await client.post(url, json=update, headers={SECRET_HEADER: BOT_SECRET})
    main_bots_secret = await client.post(url, json=update, headers=main_secret)
    unknown_bot = await client.post(
        f"{MAIN_URL}/{bot_id + 1}", json=update, headers={SECRET_HEADER: BOT_SECRET}
    )
    with psycopg.connect(database_url, autocommit=True) as connection:
        connection.execute("UPDATE bots SET is_active = false WHERE id = %s", (bot_id,))
    inactive = await client.post(url, json={**update, "update_id": 9}, headers={SECRET_HEADER: BOT_SECRET})

    assert accepted.status_code == 200
    assert [main_bots_secret.status_code, unknown_bot.status_code, inactive.status_code] == [401, 401, 401]
    [sent] = queues.calls
    assert sent.group_id == f"{bot_id}:{update['chat_join_request']['chat']['id']}"
    assert sent.dedup_id == f"{bot_id}:{update['update_id']}"


async def test_same_update_five_times_is_queued_once(client, queues, main_secret):
    update = load_event("telegram_update_callback_query")

    statuses = [
        (await client.post(MAIN_URL, json=update, headers=main_secret)).json()["status"] for _ in range(5)
    ]

    assert statuses == ["queued"] + ["duplicate"] * 4
    assert len(queues.calls) == 1


async def test_fifty_concurrent_copies_are_queued_once(client, queues, main_secret):
    update = load_event("telegram_update_group_message")

    responses = await asyncio.gather(
        *(client.post(MAIN_URL, json=update, headers=main_secret) for _ in range(50))
    )

    assert {response.status_code for response in responses} == {200}
    assert sorted(response.json()["status"] for response in responses).count("queued") == 1
    assert len(queues.calls) == 1


async def test_enqueue_failure_forgets_the_update_so_the_retry_gets_through(
    client, queues, main_secret, redis_url
):
    update = load_event("telegram_update_private_message")
    queues.failures_left = 1

    failed = await client.post(MAIN_URL, json=update, headers=main_secret)
    remembered_after_failure = redis_keys(redis_url, "webhook:*")
    retried = await client.post(MAIN_URL, json=update, headers=main_secret)

    assert failed.status_code == 503
    assert "retry" in failed.json()["detail"]
    assert remembered_after_failure == []
    assert retried.json()["status"] == "queued"
    assert len(queues.calls) == 1


async def test_with_redis_down_postgres_dedupes_exactly_once(settings, queues, main_secret, database_url):
    update = load_event("telegram_update_join_request")
    async with webhook_client(settings_with_dead_redis(settings), queues) as client:
        sequential = [
            (await client.post(MAIN_URL, json=update, headers=main_secret)).json() for _ in range(5)
        ]
        concurrent = await asyncio.gather(
            *(client.post(MAIN_URL, json={**update, "update_id": 77}, headers=main_secret) for _ in range(50))
        )

    assert [answer["status"] for answer in sequential] == ["queued"] + ["duplicate"] * 4
    assert [response.json()["status"] for response in concurrent].count("queued") == 1
    assert {response.status_code for response in concurrent} == {200}
    assert len(queues.calls) == 2
    assert dedupe_rows(database_url) == [(MAIN_BOT_ID, 77), (MAIN_BOT_ID, update["update_id"])]


async def test_with_redis_down_an_enqueue_failure_releases_the_postgres_row(
    settings, queues, main_secret, database_url
):
    update = load_event("telegram_update_private_message")
    queues.failures_left = 1
    async with webhook_client(settings_with_dead_redis(settings), queues) as client:
        failed = await client.post(MAIN_URL, json=update, headers=main_secret)
        rows_after_failure = dedupe_rows(database_url)
        retried = await client.post(MAIN_URL, json=update, headers=main_secret)

    assert failed.status_code == 503
    assert rows_after_failure == []
    assert retried.json()["status"] == "queued"
    assert len(queues.calls) == 1


async def test_with_redis_and_postgres_down_the_answer_is_503_and_nothing_is_remembered(
    settings, queues, main_secret, redis_url, database_url
):
    update = load_event("telegram_update_private_message")
    async with webhook_client(settings_with_dead_redis_and_postgres(settings), queues) as client:
        refused = await client.post(MAIN_URL, json=update, headers=main_secret)
    async with webhook_client(settings, queues) as client:
        once_back = await client.post(MAIN_URL, json=update, headers=main_secret)

    assert refused.status_code == 503
    assert "retry" in refused.json()["detail"]
    assert once_back.json()["status"] == "queued"
    assert len(queues.calls) == 1


async def test_per_bot_webhook_answers_503_when_its_secret_cannot_be_checked(settings, queues):
    async with webhook_client(settings_with_dead_redis_and_postgres(settings), queues) as client:
        response = await client.post(f"{MAIN_URL}/5", json={"update_id": 1}, headers={SECRET_HEADER: "x"})

    assert response.status_code == 503
    assert queues.calls == []


async def test_unhandled_update_types_are_acknowledged_counted_and_not_queued(
    client, queues, main_secret, redis_url
):
    update = load_event("telegram_update_inline_query")

    answers = [(await client.post(MAIN_URL, json=update, headers=main_secret)).json() for _ in range(2)]

    assert answers == [{"ok": True, "status": "ignored"}] * 2
    assert queues.calls == []
    with redis.Redis.from_url(redis_url, decode_responses=True) as connection:
        assert connection.get(keys.unhandled_updates("inline_query")) == "2"
    assert redis_keys(redis_url, "webhook:[0-9]*") == []


@pytest.mark.parametrize(
    ("body", "reason"),
    [
        (b"not json", "not valid JSON"),
        (b"[]", "JSON object"),
        (b'{"message": {}}', "update_id is missing"),
        (b'{"update_id": "5"}', "update_id must be an integer"),
    ],
)
async def test_malformed_bodies_are_refused_with_a_reason(client, queues, main_secret, body, reason):
    response = await client.post(
        MAIN_URL, content=body, headers={**main_secret, "Content-Type": "application/json"}
    )

    assert response.status_code == 400
    assert reason in response.json()["detail"]
    assert queues.calls == []


async def test_bodies_above_one_megabyte_are_refused_declared_or_streamed(client, queues, main_secret):
    padding = "x" * (1024 * 1024)
    body = json.dumps({"update_id": 1, "message": {"text": padding}}).encode()

    async def chunked():
        for start in range(0, len(body), 65536):
            yield body[start : start + 65536]

    declared = await client.post(MAIN_URL, content=body, headers=main_secret)
    streamed = await client.post(MAIN_URL, content=chunked(), headers=main_secret)

    assert [declared.status_code, streamed.status_code] == [413, 413]
    assert "1048576" in streamed.json()["detail"]
    assert queues.calls == []


async def test_openapi_documents_the_update_body_and_every_answer(client):
    schema = (await client.get("/openapi.json")).json()

    for path in (MAIN_URL, f"{MAIN_URL}/{{bot_id}}"):
        operation = schema["paths"][path]["post"]
        body_schema = operation["requestBody"]["content"]["application/json"]["schema"]
        assert body_schema["required"] == ["update_id"]
        assert {"200", "400", "401", "413", "503"} <= set(operation["responses"])
        ack = operation["responses"]["200"]["content"]["application/json"]["schema"]
        assert ack == {"$ref": "#/components/schemas/WebhookAck"}


class HangingQueues(RecordingQueues):
    """The first `hangs` sends never return, as when the process is frozen or killed mid-send."""

    def __init__(self, hangs: int = 1) -> None:
        super().__init__()
        self.hangs = hangs
        self.entered = asyncio.Event()

    async def send(self, queue, body, **options) -> str:
        if self.hangs:
            self.hangs -= 1
            self.entered.set()
            await asyncio.Event().wait()
        return await super().send(queue, body, **options)


async def test_a_send_that_hangs_is_cut_off_inside_the_deadline_and_the_retry_gets_through(
    settings, main_secret
):
    queues = HangingQueues()
    update = load_event("telegram_update_private_message")
    bounded = settings.model_copy(update={"webhook_enqueue_timeout_sec": 0.2})
    async with webhook_client(bounded, queues) as client:
        # A guard against the old behaviour (waiting forever), not a latency assertion.
        cut_off = await asyncio.wait_for(client.post(MAIN_URL, json=update, headers=main_secret), 10)
        retried = await client.post(MAIN_URL, json=update, headers=main_secret)

    assert cut_off.status_code == 503
    assert retried.json()["status"] == "queued"
    assert len(queues.calls) == 1


async def test_a_claim_whose_send_never_finished_expires_quickly_so_the_retry_gets_through(
    settings, main_secret, redis_url
):
    """The process is frozen or killed mid-send: none of its own clean-up runs, and its claim is still
    pending (a short TTL, not the 300 s of a queued update), so Telegram's retry is queued."""
    queues = HangingQueues()
    update = load_event("telegram_update_private_message")
    # Settings as a frozen process sees them: its own send timeout never fires.
    frozen = settings.model_copy(update={"webhook_pending_claim_sec": 1, "webhook_enqueue_timeout_sec": 60})
    async with webhook_client(frozen, queues) as client:
        frozen_request = asyncio.create_task(client.post(MAIN_URL, json=update, headers=main_secret))
        await queues.entered.wait()
        with redis.Redis.from_url(redis_url) as connection:
            pending_ttl_ms = connection.pttl(keys.webhook_dedupe(MAIN_BOT_ID, update["update_id"]))
        await asyncio.sleep(1.1)
        retried = await client.post(MAIN_URL, json=update, headers=main_secret)
        frozen_request.cancel()

    assert 0 < pending_ttl_ms <= 1000
    assert retried.json()["status"] == "queued"
    assert len(queues.calls) == 1


async def test_with_redis_down_a_send_that_never_finished_leaves_no_row_behind(
    settings, main_secret, database_url
):
    queues = HangingQueues()
    update = load_event("telegram_update_join_request")
    async with webhook_client(settings_with_dead_redis(settings), queues) as client:
        dying = asyncio.create_task(client.post(MAIN_URL, json=update, headers=main_secret))
        await queues.entered.wait()
        retry = asyncio.create_task(client.post(MAIN_URL, json=update, headers=main_secret))
        await asyncio.sleep(0.2)
        dying.cancel()  # its connection goes, and with it the uncommitted claim
        retried = await asyncio.wait_for(retry, 10)

    assert retried.json()["status"] == "queued"
    assert len(queues.calls) == 1
    assert dedupe_rows(database_url) == [(MAIN_BOT_ID, update["update_id"])]


def test_the_webhook_sends_to_sqs_with_a_budget_inside_api_gateways_deadline(settings):
    runtime = Runtime(settings)
    ingress, shared = runtime.ingress_queues().client.meta.config, runtime.queues().client.meta.config

    worst_case_sec = (ingress.connect_timeout + ingress.read_timeout) * ingress.retries["total_max_attempts"]
    assert worst_case_sec < 29 / 2
    assert settings.webhook_enqueue_timeout_sec < settings.webhook_pending_claim_sec < 29
    assert shared.read_timeout > 20  # receivers keep the long poll's timeout


async def test_a_claim_whose_reply_was_lost_is_not_taken_for_a_duplicate(settings, queues, main_secret):
    """The connection drops after Redis ran the claim: a blind resend would find the claim and answer
    "duplicate" for an update nobody queued."""
    update = load_event("telegram_update_private_message")
    async with ReplyDroppingProxy(settings.redis_url, "SET", "EVALSHA") as url:
        proxied = settings.model_copy(update={"redis_url": url})
        async with webhook_client(proxied, queues) as client:
            response = await client.post(MAIN_URL, json=update, headers=main_secret)

    assert response.json()["status"] == "queued"
    assert len(queues.calls) == 1


async def test_the_count_of_unhandled_updates_expires(client, main_secret, redis_url, settings):
    await client.post(MAIN_URL, json=load_event("telegram_update_inline_query"), headers=main_secret)

    with redis.Redis.from_url(redis_url) as connection:
        ttl_ms = connection.pttl(keys.unhandled_updates("inline_query"))
    assert 0 < ttl_ms <= settings.webhook_unhandled_count_ttl_sec * 1000
