from __future__ import annotations

import json

import pytest
from moto.core import DEFAULT_ACCOUNT_ID
from moto.sqs.models import sqs_backends

from tgops.local.services import LocalSqs, free_port
from tgops.messaging.errors import QueueUnavailable
from tgops.messaging.sqs import InMemoryQueues, SqsQueues
from tgops.messaging.topology import DM, GROUP_MESSAGE, INSPECT, QUEUES, SETUP_FAST

from .conftest import TEST_PREFIX, sqs_settings


def attributes(sqs: SqsQueues, queue: str) -> dict[str, str]:
    return sqs.client.get_queue_attributes(QueueUrl=sqs.url(queue), AttributeNames=["All"])["Attributes"]


def redrive_allow_policy(sqs: SqsQueues, queue: str) -> dict:
    # moto keeps RedriveAllowPolicy but leaves it out of GetQueueAttributes: read its stored queue
    stored = sqs_backends[DEFAULT_ACCOUNT_ID]["us-east-1"].queues[sqs.physical_name(queue)]
    return json.loads(stored.redrive_allow_policy)


def test_ensure_queues_creates_exactly_the_topology(queues):
    listed = queues.client.list_queues(QueueNamePrefix=TEST_PREFIX)["QueueUrls"]

    expected = {spec.physical_name(TEST_PREFIX) for spec in QUEUES}
    expected |= {spec.physical_dlq_name(TEST_PREFIX) for spec in QUEUES}
    assert {url.rsplit("/", 1)[1] for url in listed} == expected
    assert len(expected) == 12


@pytest.mark.parametrize("spec", QUEUES, ids=lambda spec: spec.name)
def test_each_queue_redrives_to_its_own_dlq_after_three_receives(queues, spec):
    queue, dlq = attributes(queues, spec.name), attributes(queues, spec.dlq_name)

    redrive = json.loads(queue["RedrivePolicy"])
    assert redrive["deadLetterTargetArn"] == dlq["QueueArn"]
    assert dlq["QueueArn"].endswith(f":{spec.physical_dlq_name(TEST_PREFIX)}")
    assert int(redrive["maxReceiveCount"]) == 3
    assert int(queue["VisibilityTimeout"]) == spec.visibility_timeout_sec == 6 * spec.consumer.timeout_sec
    assert int(queue["MessageRetentionPeriod"]) == spec.retention_sec
    assert redrive_allow_policy(queues, spec.dlq_name) == {
        "redrivePermission": "byQueue",
        "sourceQueueArns": [queue["QueueArn"]],
    }
    for attrs in (queue, dlq):
        assert (attrs.get("FifoQueue") == "true") is spec.fifo
        if spec.fifo:
            assert attrs["ContentBasedDeduplication"] == "false"


def test_ensure_queues_again_restores_drifted_attributes(queues):
    queues.client.set_queue_attributes(
        QueueUrl=queues.url(INSPECT.name), Attributes={"VisibilityTimeout": "5"}
    )

    queues.ensure_queues()

    assert int(attributes(queues, INSPECT.name)["VisibilityTimeout"]) == INSPECT.visibility_timeout_sec


async def test_send_then_receive_through_logical_names(queues):
    message_id = await queues.send(INSPECT.name, '{"kind": "x"}')

    [received] = await queues.receive(INSPECT.name, wait_time_sec=0)

    assert (received.message_id, received.body, received.receive_count) == (message_id, '{"kind": "x"}', 1)
    await queues.delete(INSPECT.name, received.receipt_handle)
    assert queues.approximate_depths()[INSPECT.name] == {"visible": 0, "in_flight": 0, "delayed": 0}


async def test_fifo_send_carries_group_and_deduplicates(queues):
    first = await queues.send(DM.name, "a", group_id="chat-1", dedup_id="update-1")
    await queues.send(DM.name, "a again", group_id="chat-1", dedup_id="update-1")

    received = await queues.receive(DM.name, wait_time_sec=0)

    assert [(m.message_id, m.body, m.group_id) for m in received] == [(first, "a", "chat-1")]


@pytest.mark.parametrize(
    ("queue", "options", "problem"),
    [
        (DM.name, {}, "group_id and dedup_id are required"),
        (DM.name, {"group_id": "g"}, "group_id and dedup_id are required"),
        (DM.name, {"group_id": "g", "dedup_id": "d", "delay_sec": 5}, "per-message delay_sec"),
        (INSPECT.name, {"dedup_id": "d"}, "apply only to FIFO queues"),
        (INSPECT.name, {"delay_sec": 901}, "delay_sec must be between 0 and 900"),
    ],
)
async def test_sends_sqs_would_refuse_are_refused_before_sending(queues, queue, options, problem):
    for sender in (queues, InMemoryQueues()):
        with pytest.raises(ValueError, match=problem):
            await sender.send(queue, "body", **options)
    assert queues.approximate_depths()[queue]["visible"] == 0


async def test_unknown_queue_is_a_key_error(queues):
    with pytest.raises(KeyError, match="unknown queue 'nope'"):
        await queues.send("nope", "body")


async def test_depths_count_visible_in_flight_and_delayed_for_queues_and_dlqs(queues):
    for body in ("a", "b"):
        await queues.send(SETUP_FAST.name, body)
    await queues.send(SETUP_FAST.name, "later", delay_sec=600)
    await queues.receive(SETUP_FAST.name, max_messages=1, wait_time_sec=0)

    depths = queues.approximate_depths()

    assert set(depths) == {spec.name for spec in QUEUES} | {spec.dlq_name for spec in QUEUES}
    assert depths[SETUP_FAST.name] == {"visible": 1, "in_flight": 1, "delayed": 1}
    assert depths[SETUP_FAST.dlq_name] == {"visible": 0, "in_flight": 0, "delayed": 0}


async def test_release_makes_held_messages_visible_at_once(queues):
    await queues.send(GROUP_MESSAGE.name, "a")
    [held] = await queues.receive(GROUP_MESSAGE.name, wait_time_sec=0)
    assert await queues.receive(GROUP_MESSAGE.name, wait_time_sec=0) == []

    refused = queues.release(GROUP_MESSAGE.name, [held.receipt_handle])

    [again] = await queues.receive(GROUP_MESSAGE.name, wait_time_sec=0)
    assert refused == []
    assert (again.message_id, again.receive_count) == (held.message_id, 2)


async def test_a_queue_that_does_not_exist_is_unavailable(aws):
    sqs = SqsQueues(sqs_settings())

    with pytest.raises(QueueUnavailable, match="resolve queue test-tg-inspect"):
        await sqs.send(INSPECT.name, "body")


async def test_an_unreachable_endpoint_is_unavailable():
    sqs = SqsQueues(sqs_settings(sqs_endpoint_url=f"http://127.0.0.1:{free_port()}"))

    with pytest.raises(QueueUnavailable, match="Could not connect"):
        await sqs.send(INSPECT.name, "body")


async def test_local_sqs_server_over_http():
    server = LocalSqs()
    endpoint = server.start()
    try:
        sqs = SqsQueues(sqs_settings(sqs_endpoint_url=endpoint))
        urls = sqs.ensure_queues()
        message_id = await sqs.send(DM.name, "hi", group_id="chat-9", dedup_id="u-1")
        [received] = await sqs.receive(DM.name, wait_time_sec=0)
    finally:
        server.stop()

    assert urls[DM.name].startswith(endpoint)
    assert (received.message_id, received.group_id) == (message_id, "chat-9")


async def test_in_memory_queues_record_sends_and_deduplicate_fifo():
    memory = InMemoryQueues()

    first = await memory.send(DM.name, "a", group_id="chat-1", dedup_id="update-1")
    again = await memory.send(DM.name, "a", group_id="chat-1", dedup_id="update-1")
    await memory.send(INSPECT.name, "b", delay_sec=30)

    assert again == first
    assert memory.bodies(DM.name) == ["a"]
    assert [(m.queue, m.group_id, m.delay_sec) for m in memory.sent] == [
        (DM.name, "chat-1", 0),
        (INSPECT.name, None, 30),
    ]
