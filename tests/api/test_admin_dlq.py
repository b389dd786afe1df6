"""DLQ administration on moto SQS and real Postgres, through the HTTP API."""

from __future__ import annotations

import asyncio
import time

import httpx
import psycopg
import pytest
from aws_lambda_powertools.utilities.batch.exceptions import BatchProcessingError
from moto import mock_aws

from tests.conftest import load_event
from tgops.api.app import create_app
from tgops.ingress.messages import TelegramUpdateReceived
from tgops.messaging.envelopes import encode
from tgops.messaging.failures import record_final_failure
from tgops.messaging.lambda_batch import process_sqs_messages
from tgops.messaging.sqs import Received, SqsQueues
from tgops.messaging.topology import DM, GROUP_MESSAGE, SETUP_FAST
from tgops.messaging.worker import QueueWorker
from tgops.runtime import Runtime


@pytest.fixture
def queues(settings) -> SqsQueues:
    with mock_aws():
        sqs = SqsQueues(settings)
        sqs.ensure_queues()
        yield sqs


@pytest.fixture
async def client(settings, queues):
    runtime = Runtime(settings)
    transport = httpx.ASGITransport(app=create_app(runtime))
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as client:
        yield client
    await runtime.close()


@pytest.fixture
def admin(settings) -> dict[str, str]:
    return {"Authorization": f"Bearer {settings.admin_token.get_secret_value()}"}


def dead_letter(queues: SqsQueues, spec, body: str, group: str = "0:42") -> str:
    """Put a message straight into a DLQ, as SQS's redrive would."""
    request = {"QueueUrl": queues.url(spec.dlq_name), "MessageBody": body}
    if spec.fifo:
        request |= {"MessageGroupId": group, "MessageDeduplicationId": f"dedup-{body}"}
    return queues.client.send_message(**request)["MessageId"]


async def drain(queues: SqsQueues, queue: str) -> list[Received]:
    messages = []
    while batch := await queues.receive(queue, wait_time_sec=0, visibility_timeout_sec=300):
        messages += batch
    return messages


def update_message(update_id: int, chat_id: int) -> str:
    update = load_event("telegram_update_private_message")
    update["update_id"] = update_id
    update["message"]["chat"]["id"] = chat_id
    return encode(TelegramUpdateReceived(bot_id=0, update_id=update_id, update_type="message", update=update))


@pytest.mark.parametrize("headers", [{}, {"Authorization": "Bearer wrong"}, {"Authorization": "Basic abc"}])
async def test_admin_endpoints_refuse_a_missing_or_wrong_token(client, headers):
    listing = await client.get("/admin/dlq/dm_queue", headers=headers)
    replay = await client.post("/admin/dlq/dm_queue/replay", headers=headers)

    assert [listing.status_code, replay.status_code] == [401, 401]
    assert listing.headers["WWW-Authenticate"] == "Bearer"


async def test_unknown_queue_is_refused_with_the_known_names(client, admin):
    response = await client.get("/admin/dlq/nope", headers=admin)

    assert response.status_code == 422
    assert "dm_queue" in response.text


async def test_listing_shows_reason_and_preview_and_loses_nothing(client, admin, queues, db):
    long_body = "x" * 2000
    poisoned = dead_letter(queues, GROUP_MESSAGE, long_body)
    unexplained = dead_letter(queues, GROUP_MESSAGE, "short")
    await record_final_failure(db, GROUP_MESSAGE.name, poisoned, 3, "BadRequest: chat not found")

    first = (await client.get("/admin/dlq/group_message_queue", headers=admin)).json()
    second = (await client.get("/admin/dlq/group_message_queue", headers=admin)).json()

    assert (first["queue"], first["dlq"], first["approximate_depth"]) == (
        "group_message_queue",
        "group_message_queue-dlq",
        2,
    )
    by_id = {message["message_id"]: message for message in first["messages"]}
    assert set(by_id) == {poisoned, unexplained}
    assert by_id[poisoned]["failure"]["reason"] == "BadRequest: chat not found"
    assert by_id[poisoned]["failure"]["receive_count"] == 3
    assert by_id[poisoned]["body_preview"] == "x" * 500 and by_id[poisoned]["body_size"] == 2000
    assert by_id[unexplained]["failure"] is None
    assert {message["message_id"] for message in second["messages"]} == {poisoned, unexplained}
    assert second["approximate_depth"] == 2


async def test_replay_all_returns_every_message_to_its_source_once(client, admin, queues):
    bodies = [update_message(update_id, chat_id=100 + update_id) for update_id in range(3)]
    dead = {dead_letter(queues, DM, body, group=f"0:{100 + n}"): body for n, body in enumerate(bodies)}

    first = (await client.post("/admin/dlq/dm_queue/replay", headers=admin)).json()
    second = (await client.post("/admin/dlq/dm_queue/replay", headers=admin)).json()

    assert set(first["replayed"]) == set(dead)
    assert second == {"replayed": {}, "already_replayed": [], "not_found": []}
    back = await drain(queues, DM.name)
    assert sorted(message.body for message in back) == sorted(bodies)
    assert {message.group_id for message in back} == {"0:100", "0:101", "0:102"}
    assert await drain(queues, DM.dlq_name) == []


async def test_replay_of_chosen_ids_leaves_the_others_in_the_dlq(client, admin, queues):
    chosen = dead_letter(queues, GROUP_MESSAGE, "chosen")
    other = dead_letter(queues, GROUP_MESSAGE, "other")

    result = (
        await client.post(
            "/admin/dlq/group_message_queue/replay", headers=admin, json={"message_ids": [chosen, "gone-id"]}
        )
    ).json()
    listing = (await client.get("/admin/dlq/group_message_queue", headers=admin)).json()

    assert list(result["replayed"]) == [chosen]
    assert result["not_found"] == ["gone-id"]
    assert [message["message_id"] for message in listing["messages"]] == [other]
    assert [message.body for message in await drain(queues, GROUP_MESSAGE.name)] == ["chosen"]


async def test_a_replay_interrupted_before_its_delete_does_not_send_twice(
    client, admin, queues, database_url
):
    message_id = dead_letter(queues, GROUP_MESSAGE, "sent before the crash")
    with psycopg.connect(database_url, autocommit=True) as connection:
        connection.execute(
            "INSERT INTO dlq_replays (queue, message_id, replay_message_id) VALUES (%s, %s, 'earlier')",
            (GROUP_MESSAGE.name, message_id),
        )

    result = (await client.post("/admin/dlq/group_message_queue/replay", headers=admin)).json()

    assert result == {"replayed": {}, "already_replayed": [message_id], "not_found": []}
    assert await drain(queues, GROUP_MESSAGE.name) == []
    assert await drain(queues, GROUP_MESSAGE.dlq_name) == []


async def deliver_like_lambda(queues: SqsQueues, handler) -> list[str]:
    """One poll of Lambda's SQS event source: run the batch, delete the successes, return the failures.

    A failed record is made visible again at once, as if its visibility timeout had passed.
    """
    received = await queues.receive(DM.name, wait_time_sec=0, visibility_timeout_sec=300)
    if not received:
        return []
    event = {"Records": [lambda_record(message) for message in received]}
    try:
        response = await asyncio.to_thread(process_sqs_messages, event, None, DM, handler, queues=queues)
        failed = [item["itemIdentifier"] for item in response["batchItemFailures"]]
    except BatchProcessingError:
        failed = [message.message_id for message in received]
    for message in received:
        if message.message_id in failed:
            await queues.change_visibility(DM.name, message.receipt_handle, 0)
        else:
            await queues.delete(DM.name, message.receipt_handle)
    return failed


def lambda_record(message: Received) -> dict:
    return {
        "messageId": message.message_id,
        "receiptHandle": message.receipt_handle,
        "body": message.body,
        "attributes": message.attributes,
        "messageAttributes": {},
        "eventSource": "aws:sqs",
        "eventSourceARN": "arn:aws:sqs:us-east-1:123456789012:tgops-dm_queue.fifo",
        "awsRegion": "us-east-1",
    }


async def test_poison_message_reaches_the_dlq_with_its_reason_and_replay_returns_it(client, admin, queues):
    """Reliability: 3 receives, neighbours untouched, visible with its reason, replayed."""
    poison = update_message(1, chat_id=501)
    neighbours = [update_message(2, chat_id=502), update_message(3, chat_id=503)]
    poison_id = await queues.send(DM.name, poison, group_id="0:501", dedup_id="0:1")
    for update_id, body in zip((2, 3), neighbours):
        await queues.send(DM.name, body, group_id=f"0:{500 + update_id}", dedup_id=f"0:{update_id}")
    handled: list[str] = []

    async def handler(message: Received) -> None:
        if message.body == poison:
            raise RuntimeError("poison pill")
        handled.append(message.body)

    failures = [await deliver_like_lambda(queues, handler) for _ in range(4)]
    listing = (await client.get("/admin/dlq/dm_queue", headers=admin)).json()
    replay = (await client.post("/admin/dlq/dm_queue/replay", headers=admin)).json()

    assert failures == [[poison_id], [poison_id], [poison_id], []]
    assert sorted(handled) == sorted(neighbours)
    [dead] = listing["messages"]
    assert dead["message_id"] == poison_id
    assert dead["failure"]["reason"] == "RuntimeError: poison pill"
    assert dead["failure"]["receive_count"] == 3
    assert dead["group_id"] == "0:501"
    assert list(replay["replayed"]) == [poison_id]
    [back] = await drain(queues, DM.name)
    assert (back.body, back.group_id) == (poison, "0:501")


async def test_a_fargate_worker_records_why_it_gave_up(queues, db):
    message_id = await queues.send(SETUP_FAST.name, "undecodable")

    async def handler(message: Received) -> None:
        raise ValueError("cannot decode")

    stop = asyncio.Event()
    worker = QueueWorker(queues, SETUP_FAST, handler, wait_time_sec=1, visibility_timeout_sec=1)
    running = asyncio.create_task(worker.run(stop))
    deadline = time.monotonic() + 30
    rows = []
    while not rows and time.monotonic() < deadline:
        await asyncio.sleep(0.1)
        rows = await db.fetch_all(
            "queue_failures_for_messages", {"queue": SETUP_FAST.name, "message_ids": [message_id]}
        )
    stop.set()
    await running

    [row] = rows
    assert (row["reason"], row["receive_count"]) == ("ValueError: cannot decode", 3)
