from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import threading

from tgops.local.services import free_port
from tgops.messaging import worker as worker_module
from tgops.messaging.errors import RetryLater
from tgops.messaging.sqs import SqsQueues
from tgops.messaging.topology import DM, INSPECT, SETUP_FAST
from tgops.messaging.worker import QueueWorker, Received, install_signal_handlers

from .conftest import eventually, sqs_settings

SHORT_VISIBILITY_SEC = 1


def worker(queues, handler, spec=SETUP_FAST, **options) -> QueueWorker:
    options = {"wait_time_sec": 1, "visibility_timeout_sec": SHORT_VISIBILITY_SEC} | options
    return QueueWorker(queues, spec, handler, **options)


def depth(queues: SqsQueues, queue: str) -> dict[str, int]:
    return queues.approximate_depths()[queue]


async def test_jobs_run_with_bounded_concurrency_and_are_deleted_when_done(queues):
    for number in range(10):
        await queues.send(SETUP_FAST.name, f"job-{number}")
    active, peak, handled = 0, 0, []
    three_running = asyncio.Event()

    async def handler(message: Received) -> None:
        nonlocal active, peak
        active += 1
        peak = max(peak, active)
        if active == 3:
            three_running.set()
        await three_running.wait()  # every job waits until three run at once: a fourth would show
        await asyncio.sleep(0.01)
        handled.append(message.body)
        active -= 1

    stop = asyncio.Event()
    running = asyncio.create_task(worker(queues, handler, concurrency=3).run(stop))
    await eventually(lambda: len(handled) == 10, "all ten jobs handled")
    stop.set()
    await running

    assert peak == 3
    assert sorted(handled) == sorted(f"job-{number}" for number in range(10))
    assert depth(queues, SETUP_FAST.name) == {"visible": 0, "in_flight": 0, "delayed": 0}


async def test_a_slow_job_keeps_its_message_invisible_beyond_the_visibility_timeout(queues):
    await queues.send(SETUP_FAST.name, "slow")
    started, finish, calls = asyncio.Event(), asyncio.Event(), []

    async def handler(message: Received) -> None:
        calls.append(message.receive_count)
        started.set()
        await finish.wait()

    stop = asyncio.Event()
    running = asyncio.create_task(worker(queues, handler, visibility_extension_every_sec=0.3).run(stop))
    await started.wait()
    seen_by_another_receiver = []
    for _ in range(12):  # 2.4 s, more than twice the 1 s visibility the message was received with
        seen_by_another_receiver += await queues.receive(SETUP_FAST.name, wait_time_sec=0)
        await asyncio.sleep(0.2)
    finish.set()
    await eventually(lambda: depth(queues, SETUP_FAST.name)["in_flight"] == 0, "the message deleted")
    stop.set()
    await running

    assert seen_by_another_receiver == []
    assert calls == [1]
    assert depth(queues, SETUP_FAST.name) == {"visible": 0, "in_flight": 0, "delayed": 0}


async def test_retry_later_brings_the_message_back_after_its_delay_without_deleting_it(queues):
    await queues.send(SETUP_FAST.name, "soon")
    await queues.send(SETUP_FAST.name, "much later")
    calls: list[tuple[str, int]] = []

    async def handler(message: Received) -> None:
        calls.append((message.body, message.receive_count))
        if message.body == "much later":
            raise RetryLater(600, "cooldown")
        if message.receive_count == 1:
            raise RetryLater(0, "try again now")

    stop = asyncio.Event()
    running = asyncio.create_task(worker(queues, handler, visibility_timeout_sec=300).run(stop))
    await eventually(lambda: ("soon", 2) in calls, "'soon' delivered a second time")
    await eventually(lambda: depth(queues, SETUP_FAST.name)["in_flight"] == 1, "'soon' deleted")
    stop.set()
    await running

    assert sorted(calls) == [("much later", 1), ("soon", 1), ("soon", 2)]
    assert depth(queues, SETUP_FAST.name) == {"visible": 0, "in_flight": 1, "delayed": 0}


async def test_failing_messages_reappear_and_land_in_the_dlq_after_three_receives(queues):
    message_id = await queues.send(SETUP_FAST.name, "poison")
    receive_counts, finals = [], []

    async def handler(message: Received) -> None:
        receive_counts.append(message.receive_count)
        raise ValueError("cannot parse")

    stop = asyncio.Event()
    consumer = worker(queues, handler, on_final_failure=lambda *failure: finals.append(failure))
    running = asyncio.create_task(consumer.run(stop))
    await eventually(lambda: depth(queues, SETUP_FAST.dlq_name)["visible"] == 1, "the message in the DLQ")
    stop.set()
    await running

    assert receive_counts == [1, 2, 3]
    assert [(message.message_id, reason) for message, reason in finals] == [
        (message_id, "ValueError: cannot parse")
    ]
    assert depth(queues, SETUP_FAST.name) == {"visible": 0, "in_flight": 0, "delayed": 0}


async def test_stopping_gives_unfinished_messages_back_at_once(queues):
    await queues.send(SETUP_FAST.name, "never finishes")
    started, cancelled = asyncio.Event(), asyncio.Event()

    async def handler(message: Received) -> None:
        started.set()
        try:
            await asyncio.Event().wait()
        except asyncio.CancelledError:
            cancelled.set()
            raise

    stop = asyncio.Event()
    consumer = worker(queues, handler, visibility_timeout_sec=300, shutdown_grace_sec=0.1)
    running = asyncio.create_task(consumer.run(stop))
    await started.wait()
    stop.set()
    await running

    [again] = await queues.receive(SETUP_FAST.name, wait_time_sec=0)
    assert cancelled.is_set()
    assert (again.body, again.receive_count) == ("never finishes", 2)


async def test_stopping_lets_a_running_job_finish_within_the_grace_period(queues):
    await queues.send(SETUP_FAST.name, "almost done")
    started, finish, finished = asyncio.Event(), asyncio.Event(), []

    async def handler(message: Received) -> None:
        started.set()
        await finish.wait()
        finished.append(message.body)

    stop = asyncio.Event()
    running = asyncio.create_task(worker(queues, handler, shutdown_grace_sec=30).run(stop))
    await started.wait()
    stop.set()
    await asyncio.sleep(0.1)
    assert not running.done()
    finish.set()
    await running

    assert finished == ["almost done"]
    assert depth(queues, SETUP_FAST.name) == {"visible": 0, "in_flight": 0, "delayed": 0}


async def test_a_fifo_group_runs_in_order_one_message_at_a_time(queues):
    for body, group in (("a1", "A"), ("b1", "B"), ("a2", "A"), ("a3", "A"), ("b2", "B")):
        await queues.send(DM.name, body, group_id=group, dedup_id=body)
    order: list[str] = []
    running_groups: set[str] = set()
    overlaps: list[str] = []

    async def handler(message: Received) -> None:
        if message.group_id in running_groups:
            overlaps.append(message.body)
        running_groups.add(message.group_id)
        await asyncio.sleep(0.02)
        order.append(message.body)
        running_groups.discard(message.group_id)

    stop = asyncio.Event()
    running = asyncio.create_task(worker(queues, handler, spec=DM, concurrency=10).run(stop))
    await eventually(lambda: len(order) == 5, "all five handled")
    stop.set()
    await running

    assert overlaps == []
    assert [body for body in order if body.startswith("a")] == ["a1", "a2", "a3"]
    assert [body for body in order if body.startswith("b")] == ["b1", "b2"]


async def test_a_failure_in_a_fifo_group_holds_back_the_rest_of_that_group_unrun(queues):
    for body in ("a1", "a2", "a3"):
        await queues.send(DM.name, body, group_id="A", dedup_id=body)
    calls: list[str] = []

    async def handler(message: Received) -> None:
        calls.append(message.body)
        raise RuntimeError("transient")

    stop = asyncio.Event()
    running = asyncio.create_task(worker(queues, handler, spec=DM, visibility_timeout_sec=300).run(stop))
    # a1 stays in flight for its visibility timeout; a2 and a3 wait behind it, never received
    await eventually(
        lambda: depth(queues, DM.name) == {"visible": 2, "in_flight": 1, "delayed": 0},
        "a1 failed, a2 and a3 waiting",
    )
    stop.set()
    await running

    assert calls == ["a1"]


async def test_an_unreachable_queue_does_not_stop_the_worker():
    unreachable = SqsQueues(sqs_settings(sqs_endpoint_url=f"http://127.0.0.1:{free_port()}"))
    handled = []

    async def handler(message: Received) -> None:
        handled.append(message)

    stop = asyncio.Event()
    running = asyncio.create_task(worker(unreachable, handler).run(stop))
    await asyncio.sleep(0.5)
    assert not running.done()
    stop.set()
    await running

    assert handled == []


async def test_sigterm_sets_the_stop_event():
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    install_signal_handlers(stop)
    try:
        os.kill(os.getpid(), signal.SIGTERM)
        await asyncio.wait_for(stop.wait(), 5)
    finally:
        for signum in (signal.SIGTERM, signal.SIGINT):
            loop.remove_signal_handler(signum)

    assert stop.is_set()


class DyingWorker:
    """Runs a worker on an event loop of its own thread. `die` stops that loop dead, as a killed
    process would: no finally block runs, nothing is given back, no lease is renewed again.
    `bury` lets the corpse finish its shutdown after the test has looked, so nothing leaks."""

    def __init__(self, consumer: QueueWorker) -> None:
        self._loop = asyncio.new_event_loop()
        self._stop = asyncio.Event()
        self._task = self._loop.create_task(consumer.run(self._stop))
        self._thread = self._run_loop()

    def _run_loop(self) -> threading.Thread:
        def serve() -> None:
            with contextlib.suppress(RuntimeError):  # "Event loop stopped before Future completed."
                self._loop.run_until_complete(self._task)

        thread = threading.Thread(target=serve, daemon=True)
        thread.start()
        return thread

    def die(self) -> None:
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(5)

    def bury(self) -> None:
        self._loop.call_soon(self._stop.set)
        self._run_loop().join(10)
        self._loop.close()


async def test_a_message_held_by_a_dead_worker_comes_back_within_its_lease(queues, monkeypatch):
    """The queue keeps its long visibility timeout; the worker leases messages for much less."""
    lease_sec = 2
    monkeypatch.setattr(worker_module, "DEFAULT_LEASE_SEC", lease_sec)
    await queues.send(SETUP_FAST.name, "crashes the worker")
    started = threading.Event()

    async def handler(message: Received) -> None:
        started.set()
        await asyncio.Event().wait()

    consumer = QueueWorker(
        queues, SETUP_FAST, handler, concurrency=1, wait_time_sec=1, shutdown_grace_sec=0.1
    )
    dying = DyingWorker(consumer)
    assert await asyncio.to_thread(started.wait, 10)
    await asyncio.sleep(lease_sec * 1.5)
    alive_holds_it = await queues.receive(SETUP_FAST.name, wait_time_sec=0)
    dying.die()
    back: list[Received] = []
    deadline = asyncio.get_running_loop().time() + lease_sec + 5
    while not back and asyncio.get_running_loop().time() < deadline:
        back += await queues.receive(SETUP_FAST.name, wait_time_sec=1, visibility_timeout_sec=300)
    dying.bury()

    assert alive_holds_it == []
    assert [(message.body, message.receive_count) for message in back] == [("crashes the worker", 2)]
    assert queue_visibility_timeout(queues, SETUP_FAST.name) == SETUP_FAST.visibility_timeout_sec


def test_the_inspect_worker_leases_for_a_minute_while_its_queue_keeps_six_times_the_job_timeout(queues):
    consumer = QueueWorker(queues, INSPECT, handler=None)

    assert consumer.lease_sec == 60
    assert queue_visibility_timeout(queues, INSPECT.name) == 6 * INSPECT.consumer.timeout_sec == 1080


def queue_visibility_timeout(queues: SqsQueues, queue: str) -> int:
    attributes = queues.client.get_queue_attributes(
        QueueUrl=queues.url(queue), AttributeNames=["VisibilityTimeout"]
    )
    return int(attributes["Attributes"]["VisibilityTimeout"])
