"""PgQueues beyond the shared suite: what moto does not model (stale receipt handles, deduplication
after a delete, retention), concurrent consumers, the tables' place outside the migrations, and errors."""

from __future__ import annotations

import asyncio
from collections import Counter

import psycopg
import pytest

from tgops.config import Settings
from tgops.local.services import free_port
from tgops.messaging import pg_queues
from tgops.messaging.errors import QueueUnavailable
from tgops.messaging.pg_queues import PgQueues
from tgops.messaging.sqs import SqsQueues
from tgops.messaging.topology import DM, INSPECT, SETUP_FAST, Consumer, Priority, QueueSpec
from tgops.messaging.worker import QueueWorker, Received
from tgops.runtime import Runtime

from .conftest import TEST_PREFIX, eventually

LOCAL_TABLES = ("local_queue_messages", "local_queue_dedup")


@pytest.fixture
async def queues(database_url):
    backend = PgQueues(database_url, queue_prefix=TEST_PREFIX)
    backend.ensure_queues()
    yield backend
    await backend.aclose()


def table_facts(database_url: str) -> dict[str, bool]:
    """Each local queue table present, with whether row level security is on."""
    with psycopg.connect(database_url) as connection:
        rows = connection.execute(
            "SELECT relname, relrowsecurity FROM pg_class WHERE relname = ANY(%s) AND relkind = 'r'",
            [list(LOCAL_TABLES)],
        ).fetchall()
    return dict(rows)


def test_the_migrations_do_not_create_the_local_tables_ensure_queues_does_with_rls(database_url):
    assert table_facts(database_url) == {}

    names = PgQueues(database_url, queue_prefix=TEST_PREFIX).ensure_queues()
    PgQueues(database_url, queue_prefix=TEST_PREFIX).ensure_queues()  # a second start-up changes nothing

    assert table_facts(database_url) == dict.fromkeys(LOCAL_TABLES, True)
    assert names[DM.name] == "test-dm_queue.fifo"
    assert names[INSPECT.dlq_name] == "test-tg-inspect-dlq"


async def test_a_receipt_handle_stops_working_once_the_message_is_received_again(queues):
    await queues.send(SETUP_FAST.name, "job")
    [first] = await queues.receive(SETUP_FAST.name, wait_time_sec=0, visibility_timeout_sec=0)
    [second] = await queues.receive(SETUP_FAST.name, wait_time_sec=0, visibility_timeout_sec=30)

    await queues.delete(SETUP_FAST.name, first.receipt_handle)  # accepted, deletes nothing (as SQS)
    with pytest.raises(QueueUnavailable, match="no longer works"):
        await queues.change_visibility(SETUP_FAST.name, first.receipt_handle, 0)
    with pytest.raises(QueueUnavailable, match="no longer works"):
        queues.set_visibility(SETUP_FAST.name, first.receipt_handle, 0)
    assert queues.release(SETUP_FAST.name, [first.receipt_handle]) == [first.receipt_handle]

    assert queues.depth(SETUP_FAST.name) == {"visible": 0, "in_flight": 1, "delayed": 0}
    await queues.delete(SETUP_FAST.name, second.receipt_handle)
    assert queues.depth(SETUP_FAST.name) == {"visible": 0, "in_flight": 0, "delayed": 0}


async def test_deduplication_outlives_the_delete_and_ends_after_its_interval(queues, monkeypatch):
    monkeypatch.setattr(pg_queues, "DEDUP_INTERVAL_SEC", 1)
    first_id = await queues.send(DM.name, "update", group_id="chat-1", dedup_id="update-7")
    [received] = await queues.receive(DM.name, wait_time_sec=0)
    await queues.delete(DM.name, received.receipt_handle)

    duplicate_id = await queues.send(DM.name, "again", group_id="chat-1", dedup_id="update-7")
    assert duplicate_id == first_id
    assert await queues.receive(DM.name, wait_time_sec=0) == []

    await asyncio.sleep(1.2)
    later_id = await queues.send(DM.name, "a new update", group_id="chat-1", dedup_id="update-7")
    [later] = await queues.receive(DM.name, wait_time_sec=0)
    assert later_id != first_id
    assert (later.message_id, later.body) == (later_id, "a new update")


def spec(name: str, retention_sec: int) -> QueueSpec:
    consumer = Consumer("nobody", "fargate", timeout_sec=1, batch_size=1, concurrency=1)
    return QueueSpec(name, consumer, Priority.BULK, producers=(), retention_sec=retention_sec)


async def test_messages_expire_after_the_retention_period_in_the_queue_and_in_the_dlq(
    database_url, monkeypatch
):
    short_lived, dead_end = spec("short-lived", retention_sec=1), spec("dead-end", retention_sec=60)
    monkeypatch.setattr(pg_queues, "DLQ_RETENTION_SEC", 1)
    queues = PgQueues(database_url, queue_prefix=TEST_PREFIX, specs=[short_lived, dead_end])
    queues.ensure_queues()
    try:
        await queues.send(short_lived.name, "expires in the queue")
        await queues.send(dead_end.name, "expires in the dlq")
        for _ in range(3):
            await queues.receive(dead_end.name, wait_time_sec=0, visibility_timeout_sec=0)
        assert await queues.receive(dead_end.name, wait_time_sec=0) == []
        assert queues.depth(dead_end.dlq_name)["visible"] == 1

        await asyncio.sleep(1.2)  # DLQ retention counts from the send, for a standard queue (as in SQS)

        assert await queues.receive(short_lived.name, wait_time_sec=0) == []
        assert queues.depth(short_lived.name) == {"visible": 0, "in_flight": 0, "delayed": 0}
        assert queues.depth(dead_end.dlq_name)["visible"] == 0
        assert await queues.receive(dead_end.dlq_name, wait_time_sec=0) == []
    finally:
        await queues.aclose()


async def test_concurrent_consumers_never_get_one_message_twice(queues):
    sent = {await queues.send(SETUP_FAST.name, f"job-{number}") for number in range(120)}
    deliveries: Counter[str] = Counter()

    async def consume() -> None:
        while batch := await queues.receive(SETUP_FAST.name, wait_time_sec=0, visibility_timeout_sec=60):
            deliveries.update(message.message_id for message in batch)
            for message in batch:
                await queues.delete(SETUP_FAST.name, message.receipt_handle)

    await asyncio.gather(*(consume() for _ in range(6)))

    assert set(deliveries) == sent
    assert max(deliveries.values()) == 1


async def test_concurrent_fifo_consumers_keep_each_group_in_order_and_one_at_a_time(queues, database_url):
    groups = {f"chat-{group}": [f"chat-{group}:{n}" for n in range(16)] for group in range(4)}
    for position in range(16):
        for group, bodies in groups.items():
            await queues.send(DM.name, bodies[position], group_id=group, dedup_id=bodies[position])
    in_flight: set[str] = set()
    handled: dict[str, list[str]] = {group: [] for group in groups}
    overlaps = []

    async def consume(queues: PgQueues) -> None:
        idle = 0
        while idle < 3:
            batch = await queues.receive(DM.name, wait_time_sec=0, max_messages=3, visibility_timeout_sec=60)
            idle = 0 if batch else idle + 1
            for group in {message.group_id for message in batch}:
                if group in in_flight:
                    overlaps.append(group)
                in_flight.add(group)
            for position, message in enumerate(batch):
                await asyncio.sleep(0)  # let another consumer try this group now
                handled[message.group_id].append(message.body)
                if all(later.group_id != message.group_id for later in batch[position + 1 :]):
                    in_flight.discard(message.group_id)  # its last one here: free once deleted
                await queues.delete(DM.name, message.receipt_handle)

    consumers = [queues, *(PgQueues(database_url, queue_prefix=TEST_PREFIX) for _ in range(2))]  # 3 pools
    try:
        await asyncio.gather(*(consume(consumers[number % 3]) for number in range(9)))
    finally:
        await asyncio.gather(*(other.aclose() for other in consumers[1:]))

    assert overlaps == []
    assert handled == groups


async def test_a_worker_on_postgres_runs_jobs_and_dead_letters_the_one_that_keeps_failing(queues):
    await queues.send(SETUP_FAST.name, "good")
    poison_id = await queues.send(SETUP_FAST.name, "poison")
    done = []

    async def handler(message: Received) -> None:
        if message.body == "poison":
            raise RuntimeError("cannot handle this one")
        done.append(message.body)

    stop = asyncio.Event()
    worker = QueueWorker(queues, SETUP_FAST, handler, wait_time_sec=1, visibility_timeout_sec=1)
    running = asyncio.create_task(worker.run(stop))
    await eventually(lambda: queues.depth(SETUP_FAST.dlq_name)["visible"] == 1, "poison in the DLQ")
    stop.set()
    await running

    assert done == ["good"]
    assert queues.depth(SETUP_FAST.name) == {"visible": 0, "in_flight": 0, "delayed": 0}
    [dead] = await queues.receive(SETUP_FAST.dlq_name, wait_time_sec=0)
    assert (dead.message_id, dead.receive_count) == (poison_id, 4)


async def test_an_unreachable_database_is_a_queue_unavailable_error_naming_the_queue(monkeypatch):
    monkeypatch.setattr(pg_queues, "CONNECT_TIMEOUT_SEC", 1)
    queues = PgQueues(f"postgresql://postgres@127.0.0.1:{free_port()}/postgres", queue_prefix=TEST_PREFIX)

    with pytest.raises(QueueUnavailable, match="send to test-tg-inspect"):
        await queues.send(INSPECT.name, "x")
    with pytest.raises(QueueUnavailable, match="receive from test-tg-inspect"):
        await queues.receive(INSPECT.name, wait_time_sec=0)
    with pytest.raises(QueueUnavailable, match="read queue depths"):
        queues.approximate_depths()
    with pytest.raises(QueueUnavailable, match="create the local queue tables"):
        queues.ensure_queues()


async def test_the_queue_backend_setting_chooses_what_runtime_builds(database_url):
    local = Runtime(Settings(_env_file=None, queue_backend="postgres", database_url=database_url))
    assert isinstance(Runtime(Settings(_env_file=None)).queues(), SqsQueues)
    assert isinstance(local.queues(), PgQueues)

    assert (await local.health())["sqs"]["status"] == "down"  # no tables yet: nothing to receive from
    local.queues().ensure_queues()
    assert (await local.health())["sqs"] == {"status": "up"}
    await local.queues().send(INSPECT.name, "x")
    await local.close()
    with pytest.raises(QueueUnavailable, match="TGOPS_DATABASE_URL"):
        Runtime(Settings(_env_file=None, queue_backend="postgres")).queues()
