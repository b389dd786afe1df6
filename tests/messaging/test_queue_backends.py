"""One behaviour suite for the QueueBackend protocol, run on SqsQueues (moto) and on PgQueues (Postgres).

What the consumers and the DLQ administration rely on must hold on both: visibility, receive counts,
redrive to the DLQ after MAX_RECEIVE_COUNT receives, FIFO order and group blocking, deduplication,
delay, release, depth and long polling.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator

import pytest

from tgops.messaging.backend import QueueBackend
from tgops.messaging.pg_queues import PgQueues
from tgops.messaging.topology import DM, INSPECT, MAX_RECEIVE_COUNT, QUEUES, SETUP_FAST

from .conftest import TEST_PREFIX

SHORT_SEC = 1
PAST_SHORT_SEC = 1.3


@pytest.fixture(params=["sqs", "postgres"])
async def backend(request) -> AsyncIterator[QueueBackend]:
    if request.param == "sqs":
        yield request.getfixturevalue("queues")
        return
    queues = PgQueues(request.getfixturevalue("database_url"), queue_prefix=TEST_PREFIX)
    queues.ensure_queues()
    yield queues
    await queues.aclose()


async def receive_now(backend: QueueBackend, queue: str, **options) -> list:
    return await backend.receive(queue, wait_time_sec=0, **options)


async def test_a_message_goes_round_with_its_attributes(backend):
    before_ms = int(time.time() * 1000)
    message_id = await backend.send(INSPECT.name, '{"kind": "x"}')

    [received] = await receive_now(backend, INSPECT.name)

    assert (received.message_id, received.body, received.receive_count) == (message_id, '{"kind": "x"}', 1)
    assert received.attributes["ApproximateReceiveCount"] == "1"
    assert before_ms - 1000 <= int(received.attributes["SentTimestamp"]) <= int(time.time() * 1000) + 1000
    assert received.group_id is None
    await backend.delete(INSPECT.name, received.receipt_handle)
    assert backend.depth(INSPECT.name) == {"visible": 0, "in_flight": 0, "delayed": 0}
    assert await receive_now(backend, INSPECT.name) == []


async def test_a_received_message_stays_invisible_until_its_visibility_runs_out(backend):
    await backend.send(SETUP_FAST.name, "job")

    [first] = await receive_now(backend, SETUP_FAST.name, visibility_timeout_sec=SHORT_SEC)
    assert await receive_now(backend, SETUP_FAST.name) == []
    assert backend.depth(SETUP_FAST.name) == {"visible": 0, "in_flight": 1, "delayed": 0}
    await asyncio.sleep(PAST_SHORT_SEC)
    [again] = await receive_now(backend, SETUP_FAST.name, visibility_timeout_sec=SHORT_SEC)

    assert again.message_id == first.message_id
    assert (first.receive_count, again.receive_count) == (1, 2)
    assert again.receipt_handle != first.receipt_handle


async def test_the_queue_visibility_timeout_applies_without_an_override(backend):
    await backend.send(INSPECT.name, "job")

    [received] = await receive_now(backend, INSPECT.name)
    await asyncio.sleep(PAST_SHORT_SEC)

    assert await receive_now(backend, INSPECT.name) == []  # the topology's 1080 s still runs
    await backend.change_visibility(INSPECT.name, received.receipt_handle, 0)
    [again] = await receive_now(backend, INSPECT.name)
    assert again.receive_count == 2


async def test_change_visibility_extends_a_held_message(backend):
    await backend.send(SETUP_FAST.name, "long job")
    [held] = await receive_now(backend, SETUP_FAST.name, visibility_timeout_sec=SHORT_SEC)

    await backend.change_visibility(SETUP_FAST.name, held.receipt_handle, 30)
    await asyncio.sleep(PAST_SHORT_SEC)

    assert await receive_now(backend, SETUP_FAST.name) == []
    backend.set_visibility(SETUP_FAST.name, held.receipt_handle, 0)
    assert [message.message_id for message in await receive_now(backend, SETUP_FAST.name)] == [
        held.message_id
    ]


async def test_a_message_received_three_times_moves_to_its_dlq_on_the_fourth(backend):
    message_id = await backend.send(SETUP_FAST.name, "poison")
    counts = []
    for _ in range(MAX_RECEIVE_COUNT):
        [received] = await receive_now(backend, SETUP_FAST.name)
        counts.append(received.receive_count)
        assert backend.release(SETUP_FAST.name, [received.receipt_handle]) == []

    assert await receive_now(backend, SETUP_FAST.name) == []

    assert counts == [1, 2, 3]
    assert backend.depth(SETUP_FAST.name) == {"visible": 0, "in_flight": 0, "delayed": 0}
    assert backend.depth(SETUP_FAST.dlq_name)["visible"] == 1
    [dead] = await receive_now(backend, SETUP_FAST.dlq_name)
    assert (dead.message_id, dead.body, dead.receive_count) == (message_id, "poison", MAX_RECEIVE_COUNT + 1)


async def test_a_fifo_dead_letter_keeps_its_group_and_the_group_goes_on(backend):
    await backend.send(DM.name, "first", group_id="chat-1", dedup_id="u1")
    await backend.send(DM.name, "second", group_id="chat-1", dedup_id="u2")
    for _ in range(MAX_RECEIVE_COUNT):
        [first] = await receive_now(backend, DM.name, max_messages=1)
        assert first.body == "first"
        backend.release(DM.name, [first.receipt_handle])

    [second] = await receive_now(backend, DM.name)

    assert second.body == "second"
    [dead] = await receive_now(backend, DM.dlq_name)
    assert (dead.body, dead.group_id) == ("first", "chat-1")


async def test_fifo_delivers_a_group_in_order_and_never_while_one_of_it_is_in_flight(backend):
    for number in range(1, 4):
        await backend.send(DM.name, f"a{number}", group_id="chat-a", dedup_id=f"a{number}")
    await backend.send(DM.name, "b1", group_id="chat-b", dedup_id="b1")

    [a1] = await receive_now(backend, DM.name, max_messages=1, visibility_timeout_sec=SHORT_SEC)
    others = await receive_now(backend, DM.name)
    assert (a1.body, a1.group_id) == ("a1", "chat-a")
    assert [message.body for message in others] == ["b1"]  # chat-a waits for a1

    await asyncio.sleep(PAST_SHORT_SEC)  # a1 was not deleted: it comes back before a2
    [a1_again] = await receive_now(backend, DM.name, max_messages=1)
    assert (a1_again.body, a1_again.receive_count) == ("a1", 2)
    await backend.delete(DM.name, a1_again.receipt_handle)
    rest = await receive_now(backend, DM.name)
    assert [message.body for message in rest] == ["a2", "a3"]


async def test_fifo_drops_a_deduplication_id_sent_again(backend):
    await backend.send(DM.name, "update", group_id="chat-1", dedup_id="update-7")
    await backend.send(DM.name, "update again", group_id="chat-1", dedup_id="update-7")
    [received] = await receive_now(backend, DM.name)
    await backend.delete(DM.name, received.receipt_handle)

    assert received.body == "update"
    assert received.attributes["MessageGroupId"] == "chat-1"
    assert await receive_now(backend, DM.name) == []


async def test_a_delayed_message_is_counted_delayed_then_delivered(backend):
    await backend.send(SETUP_FAST.name, "later", delay_sec=SHORT_SEC)

    assert await receive_now(backend, SETUP_FAST.name) == []
    assert backend.depth(SETUP_FAST.name) == {"visible": 0, "in_flight": 0, "delayed": 1}
    await asyncio.sleep(PAST_SHORT_SEC)
    [received] = await receive_now(backend, SETUP_FAST.name)
    assert (received.body, received.receive_count) == ("later", 1)


async def test_release_gives_held_messages_back_at_once_and_names_the_refused(backend):
    for number in range(3):
        await backend.send(SETUP_FAST.name, f"job-{number}")
    held = await receive_now(backend, SETUP_FAST.name, max_messages=10)
    assert len(held) == 3

    refused = backend.release(SETUP_FAST.name, [held[0].receipt_handle, held[1].receipt_handle, "bogus"])

    assert refused == ["bogus"]
    assert backend.depth(SETUP_FAST.name) == {"visible": 2, "in_flight": 1, "delayed": 0}
    back = await receive_now(backend, SETUP_FAST.name, max_messages=10)
    assert sorted(message.body for message in back) == sorted(message.body for message in held[:2])


async def test_depths_cover_every_queue_and_dlq(backend):
    await backend.send(INSPECT.name, "visible")
    await backend.send(SETUP_FAST.name, "in flight")
    await receive_now(backend, SETUP_FAST.name)
    await backend.send(SETUP_FAST.name, "delayed", delay_sec=60)

    depths = backend.approximate_depths()

    assert set(depths) == {name for spec in QUEUES for name in (spec.name, spec.dlq_name)}
    assert depths[INSPECT.name] == {"visible": 1, "in_flight": 0, "delayed": 0}
    assert depths[SETUP_FAST.name] == {"visible": 0, "in_flight": 1, "delayed": 1}
    assert depths[DM.dlq_name] == {"visible": 0, "in_flight": 0, "delayed": 0}


async def test_a_long_poll_returns_a_message_sent_while_it_waits(backend):
    async def send_soon() -> None:
        await asyncio.sleep(0.3)
        await backend.send(INSPECT.name, "late")

    sending = asyncio.create_task(send_soon())
    started = time.monotonic()
    received = await backend.receive(INSPECT.name, wait_time_sec=5)
    await sending

    assert [message.body for message in received] == ["late"]
    assert time.monotonic() - started < 5


async def test_a_long_poll_on_an_empty_queue_waits_then_answers_empty(backend):
    started = time.monotonic()
    assert await backend.receive(INSPECT.name, wait_time_sec=1) == []
    assert time.monotonic() - started >= 0.9


@pytest.mark.parametrize(
    ("queue", "options", "reason"),
    [
        (DM.name, {}, "group_id and dedup_id are required"),
        (DM.name, {"group_id": "g", "dedup_id": "d", "delay_sec": 5}, "delay_sec is not supported"),
        (INSPECT.name, {"group_id": "g"}, "apply only to FIFO"),
        (INSPECT.name, {"delay_sec": 901}, "between 0 and 900"),
    ],
)
async def test_a_send_the_queue_would_refuse_is_refused_before_it_goes(backend, queue, options, reason):
    with pytest.raises(ValueError, match=reason):
        await backend.send(queue, "x", **options)
    assert backend.depth(queue) == {"visible": 0, "in_flight": 0, "delayed": 0}


async def test_an_unknown_queue_is_named(backend):
    with pytest.raises(KeyError, match="no-such-queue"):
        await backend.send("no-such-queue", "x")
