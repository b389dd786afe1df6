"""A FIFO group's followers keep their chance to run when the head of their group is dead-lettered.

On moto's SQS, through both drivers: the head fails every time, so SQS moves it to its DLQ after three
receives; the message behind it in the same group must still run, and the other group is untouched.
"""

from __future__ import annotations

import asyncio

from aws_lambda_powertools.utilities.batch.exceptions import BatchProcessingError

from tgops.messaging.lambda_batch import process_sqs_messages
from tgops.messaging.sqs import Received, SqsQueues
from tgops.messaging.topology import DM
from tgops.messaging.worker import QueueWorker

from .conftest import eventually

HEAD, FOLLOWER, NEIGHBOUR = "head", "follower", "neighbour"


async def send_group(queues: SqsQueues) -> dict[str, str]:
    ids = {}
    for body, group in ((HEAD, "chat-1"), (FOLLOWER, "chat-1"), (NEIGHBOUR, "chat-2")):
        ids[body] = await queues.send(DM.name, body, group_id=group, dedup_id=body)
    return ids


def failing_head(handled: list[tuple[str, int]]):
    async def handler(message: Received) -> None:
        handled.append((message.body, message.receive_count))
        if message.body == HEAD:
            raise RuntimeError("the head always fails")

    return handler


def bodies(messages: list[Received]) -> list[str]:
    return sorted(message.body for message in messages)


async def drain(queues: SqsQueues, queue: str) -> list[Received]:
    messages = []
    while batch := await queues.receive(queue, wait_time_sec=0, visibility_timeout_sec=300):
        messages += batch
    return messages


async def deliver_like_lambda(queues: SqsQueues, handler) -> None:
    """One poll of Lambda's SQS event source mapping: the batch runs, successes are deleted, and the
    failures come back at once (as if their visibility timeout had passed)."""
    received = await queues.receive(DM.name, wait_time_sec=0, visibility_timeout_sec=300)
    if not received:
        return
    event = {"Records": [lambda_record(message) for message in received]}
    try:
        response = await asyncio.to_thread(process_sqs_messages, event, None, DM, handler, queues=queues)
        failed = {item["itemIdentifier"] for item in response["batchItemFailures"]}
    except BatchProcessingError:
        failed = {message.message_id for message in received}
    for message in received:
        if message.message_id in failed:
            await queues.change_visibility(DM.name, message.receipt_handle, 0)
        else:
            await queues.delete(DM.name, message.receipt_handle)


def lambda_record(message: Received) -> dict:
    return {
        "messageId": message.message_id,
        "receiptHandle": message.receipt_handle,
        "body": message.body,
        "attributes": message.attributes,
        "messageAttributes": {},
        "eventSource": "aws:sqs",
        "eventSourceARN": "arn:aws:sqs:us-east-1:123456789012:test-dm_queue.fifo",
        "awsRegion": "us-east-1",
    }


async def test_lambda_a_follower_runs_after_its_head_is_dead_lettered(queues):
    ids = await send_group(queues)
    handled: list[tuple[str, int]] = []

    for _ in range(6):  # three deliveries of the head, one that dead-letters it, and spares
        await deliver_like_lambda(queues, failing_head(handled))

    assert [count for body, count in handled if body == HEAD] == [1, 2, 3]
    assert (FOLLOWER in [body for body, _ in handled]) is True
    assert [body for body, _ in handled].count(FOLLOWER) == 1
    assert [body for body, _ in handled].count(NEIGHBOUR) == 1
    dead = await drain(queues, DM.dlq_name)
    assert [(message.body, message.message_id) for message in dead] == [(HEAD, ids[HEAD])]
    assert await drain(queues, DM.name) == []


async def test_fargate_a_follower_runs_after_its_head_is_dead_lettered(queues):
    ids = await send_group(queues)
    handled: list[tuple[str, int]] = []
    worker = QueueWorker(queues, DM, failing_head(handled), wait_time_sec=0, visibility_timeout_sec=1)

    stop = asyncio.Event()
    running = asyncio.create_task(worker.run(stop))
    await eventually(lambda: queues.depth(DM.dlq_name)["visible"] >= 1, "the head in the DLQ")
    await eventually(lambda: FOLLOWER in [body for body, _ in handled], "the follower run", timeout_sec=5)
    stop.set()
    await running

    assert [count for body, count in handled if body == HEAD] == [1, 2, 3]
    assert [count for body, count in handled if body == FOLLOWER] == [1]  # it spent no receive waiting
    assert [body for body, _ in handled].count(NEIGHBOUR) == 1
    dead = await drain(queues, DM.dlq_name)
    assert [(message.body, message.message_id) for message in dead] == [(HEAD, ids[HEAD])]
    assert await drain(queues, DM.name) == []


async def test_fargate_a_follower_keeps_all_its_receives_for_its_own_failures(queues):
    ids = await send_group(queues)
    handled: list[tuple[str, int]] = []

    async def handler(message: Received) -> None:
        handled.append((message.body, message.receive_count))
        if message.body == HEAD or (message.body == FOLLOWER and message.receive_count < 3):
            raise RuntimeError("fails")

    worker = QueueWorker(queues, DM, handler, wait_time_sec=0, visibility_timeout_sec=1)
    stop = asyncio.Event()
    running = asyncio.create_task(worker.run(stop))
    await eventually(lambda: (FOLLOWER, 3) in handled, "the follower's third receive", timeout_sec=20)
    await eventually(lambda: queues.depth(DM.name) == {"visible": 0, "in_flight": 0, "delayed": 0}, "done")
    stop.set()
    await running

    assert [count for body, count in handled if body == FOLLOWER] == [1, 2, 3]
    assert [message.message_id for message in await drain(queues, DM.dlq_name)] == [ids[HEAD]]
