from __future__ import annotations

import asyncio

import pytest
from aws_lambda_powertools.utilities.batch.exceptions import BatchProcessingError

from tgops.messaging.errors import RetryLater
from tgops.messaging.lambda_batch import process_sqs_messages
from tgops.messaging.sqs import Received
from tgops.messaging.topology import DM, GROUP_MESSAGE


def lambda_record(
    message_id: str,
    body: str,
    *,
    receive_count: int = 1,
    receipt_handle: str | None = None,
    group_id: str | None = None,
) -> dict:
    """One record as Lambda's SQS event source mapping delivers it."""
    attributes = {"ApproximateReceiveCount": str(receive_count), "SentTimestamp": "1700000000000"}
    if group_id:
        attributes["MessageGroupId"] = group_id
    return {
        "messageId": message_id,
        "receiptHandle": receipt_handle or f"handle-{message_id}",
        "body": body,
        "attributes": attributes,
        "messageAttributes": {},
        "eventSource": "aws:sqs",
        "eventSourceARN": "arn:aws:sqs:us-east-1:123456789012:test-queue",
        "awsRegion": "us-east-1",
    }


def event_from(received: list[Received]) -> dict:
    return {
        "Records": [
            lambda_record(
                m.message_id,
                m.body,
                receive_count=m.receive_count,
                receipt_handle=m.receipt_handle,
                group_id=m.group_id,
            )
            for m in received
        ]
    }


def failing_on(*bad_bodies: str, calls: list[str] | None = None):
    async def handle(message: Received) -> None:
        if calls is not None:
            calls.append(message.body)
        if message.body in bad_bodies:
            raise RuntimeError(f"cannot handle {message.body}")

    return handle


def failed_ids(response: dict) -> list[str]:
    return [item["itemIdentifier"] for item in response["batchItemFailures"]]


def test_only_the_failed_records_are_reported():
    event = {"Records": [lambda_record(f"m{n}", body) for n, body in enumerate(("good", "bad", "good"), 1)]}

    response = process_sqs_messages(event, None, GROUP_MESSAGE, failing_on("bad"))

    assert failed_ids(response) == ["m2"]


def test_a_fully_successful_batch_reports_nothing():
    event = {"Records": [lambda_record("m1", "good"), lambda_record("m2", "good")]}

    assert process_sqs_messages(event, None, GROUP_MESSAGE, failing_on()) == {"batchItemFailures": []}


def test_a_fully_failed_batch_raises_so_the_whole_batch_returns():
    event = {"Records": [lambda_record("m1", "bad"), lambda_record("m2", "bad")]}

    with pytest.raises(BatchProcessingError, match="All records failed"):
        process_sqs_messages(event, None, GROUP_MESSAGE, failing_on("bad"))


async def test_fifo_skips_the_rest_of_a_failed_group_and_releases_it(queues):
    for body, group in (("a1", "A"), ("b1", "B"), ("a2", "A"), ("b2", "B")):
        await queues.send(DM.name, body, group_id=group, dedup_id=body)
    received = await queues.receive(DM.name, wait_time_sec=0)
    assert [m.body for m in received] == ["a1", "b1", "a2", "b2"]
    ids = {m.body: m.message_id for m in received}
    calls: list[str] = []

    response = await asyncio.to_thread(
        process_sqs_messages, event_from(received), None, DM, failing_on("a1", calls=calls), queues=queues
    )

    assert calls == ["a1", "b1", "b2"]
    assert sorted(failed_ids(response)) == sorted([ids["a1"], ids["a2"]])
    # a2 is visible again (it waits behind a1, still in flight); b1 and b2 stay for Lambda to delete
    assert queues.approximate_depths()[DM.name] == {"visible": 1, "in_flight": 3, "delayed": 0}


async def test_retry_later_hands_the_record_back_after_its_delay(queues):
    for body in ("now", "much later", "fine"):
        await queues.send(GROUP_MESSAGE.name, body)
    received = await queues.receive(GROUP_MESSAGE.name, wait_time_sec=0, visibility_timeout_sec=600)
    ids = {m.body: m.message_id for m in received}

    async def handle(message: Received) -> None:
        if message.body == "now":
            raise RetryLater(0, "flood wait over")
        if message.body == "much later":
            raise RetryLater(600, "flood wait")

    response = await asyncio.to_thread(
        process_sqs_messages, event_from(received), None, GROUP_MESSAGE, handle, queues=queues
    )

    assert sorted(failed_ids(response)) == sorted([ids["now"], ids["much later"]])
    [back] = await queues.receive(GROUP_MESSAGE.name, wait_time_sec=0)
    assert (back.message_id, back.receive_count) == (ids["now"], 2)


def test_a_failure_at_the_last_receive_calls_the_final_failure_hook(queues):
    finals: list[tuple[str, str]] = []
    event = {
        "Records": [
            lambda_record("first-try", "bad", receive_count=1),
            lambda_record("last-try", "bad", receive_count=3),
            lambda_record("delayed-last-try", "later", receive_count=3),
            lambda_record("fine", "good", receive_count=3),
        ]
    }

    async def handle(message: Received) -> None:
        if message.body == "later":
            raise RetryLater(30, "account cooling down")
        await failing_on("bad")(message)

    process_sqs_messages(
        event,
        None,
        GROUP_MESSAGE,
        handle,
        queues=queues,
        on_final_failure=lambda message, reason: finals.append((message.message_id, reason)),
    )

    assert finals == [
        ("last-try", "RuntimeError: cannot handle bad"),
        ("delayed-last-try", "retry later: account cooling down"),
    ]


def test_async_handlers_get_received_messages_on_one_lasting_event_loop():
    seen: list[tuple[Received, asyncio.AbstractEventLoop]] = []

    async def handler(message: Received) -> None:
        seen.append((message, asyncio.get_running_loop()))

    first = {"Records": [lambda_record("m1", '{"a": 1}', receive_count=2, group_id="chat-1")]}
    second = {"Records": [lambda_record("m2", '{"a": 2}', group_id="chat-2")]}
    process_sqs_messages(first, None, DM, handler)
    process_sqs_messages(second, None, DM, handler)

    [(message, first_loop), (_, second_loop)] = seen
    assert (message.message_id, message.body, message.receive_count, message.group_id) == (
        "m1",
        '{"a": 1}',
        2,
        "chat-1",
    )
    assert message.receipt_handle == "handle-m1"
    assert first_loop is second_loop and not first_loop.is_closed()


def test_fifo_a_head_failing_at_its_last_receive_lets_its_group_move_on(queues):
    event = {
        "Records": [
            lambda_record("a1", "a1", receive_count=3, group_id="A"),
            lambda_record("a2", "a2", receive_count=3, group_id="A"),
            lambda_record("b1", "b1", receive_count=2, group_id="B"),
            lambda_record("b2", "b2", receive_count=2, group_id="B"),
        ]
    }
    calls: list[str] = []
    finals: list[str] = []

    response = process_sqs_messages(
        event,
        None,
        DM,
        failing_on("a1", "b1", calls=calls),
        queues=queues,
        on_final_failure=lambda message, reason: finals.append(message.message_id),
    )

    # a1 goes to its DLQ, so a2 runs; b1 will be tried again, so b2 waits behind it
    assert calls == ["a1", "a2", "b1"]
    assert sorted(failed_ids(response)) == ["a1", "b1", "b2"]
    assert finals == ["a1"]
