"""The Fargate driver of the consumer engine: long-polls one queue and runs a bounded number of jobs.

Each message is one job through the engine (tgops.messaging.consumer), and then: done → deleted;
retry later → visible again after its delay; failed → visible again after the queue's visibility
timeout. A FIFO queue is received one message per call: SQS hands out no message of a group while
one of it is in flight, so a group's messages run in order, one at a time, a failure holds back the
rest of its group, and a follower never spends a receive behind a failing head.

Messages are received on a short lease (`DEFAULT_LEASE_SEC`), renewed by a heartbeat while their job
runs. The queue's own visibility timeout stays at least 6x the job timeout (ARCHITECTURE), but a
worker that dies mid-job stops renewing, so its messages come back within a lease instead of after
the queue's whole timeout (18 minutes for tg-inspect).

On stop: no more receives; running jobs get `shutdown_grace_sec` to finish, then are cancelled;
every message not finished is made visible again at once. Nothing unfinished is deleted.

The engine's outcome counts are published after each job, the worker's equivalent of an invocation.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from tgops.messaging.backend import QueueBackend
from tgops.messaging.consumer import (
    FinalFailureHook,
    Handler,
    Outcome,
    QueueConsumer,
    Verdict,
    log_final_failure,
)
from tgops.messaging.errors import QueueUnavailable
from tgops.messaging.failures import FailureLog
from tgops.messaging.sqs import MAX_RECEIVE_BATCH, Received
from tgops.messaging.topology import QueueSpec

if TYPE_CHECKING:
    from tgops.db.database import Database

__all__ = ["QueueWorker", "Received", "install_signal_handlers"]

logger = logging.getLogger(__name__)

DEFAULT_SHUTDOWN_GRACE_SEC = 25.0  # inside ECS's default 30 s between SIGTERM and SIGKILL
DEFAULT_LEASE_SEC = 60  # how long a dead worker's message stays invisible
RECEIVE_ERROR_BACKOFF_SEC = 5.0
RENEWALS_PER_LEASE = 3  # renew well before the lease runs out, even if one call is slow or fails


def install_signal_handlers(stop: asyncio.Event) -> None:
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)


@dataclass(eq=False)
class _Job:
    held: list[Received]  # received and neither deleted nor given back yet
    task: asyncio.Task | None = None
    # Held while changing visibility, so a heartbeat cannot undo a delete, delay or release.
    visibility_lock: asyncio.Lock = field(default_factory=asyncio.Lock)


class QueueWorker:
    def __init__(
        self,
        queues: QueueBackend,
        queue: QueueSpec,
        handler: Handler,
        *,
        concurrency: int | None = None,
        wait_time_sec: int = 20,
        visibility_extension_every_sec: float | None = None,
        visibility_timeout_sec: int | None = None,
        job_timeout_sec: float | None = None,
        shutdown_grace_sec: float = DEFAULT_SHUTDOWN_GRACE_SEC,
        on_final_failure: FinalFailureHook = log_final_failure,
        database: Callable[[], Awaitable[Database]] | None = None,
        lease_sec: int | None = None,
    ) -> None:
        """`visibility_timeout_sec`: how long a failed message stays invisible (the queue's by default);
        `lease_sec`: the visibility a message is received with and renewed to while its job runs;
        `database` (e.g. `Runtime.database`): where final failures are recorded."""
        self._queues = queues
        self._queue = queue
        self._concurrency = concurrency or queue.consumer.concurrency
        self._wait_time_sec = wait_time_sec
        self._failed_visibility_sec = visibility_timeout_sec or queue.visibility_timeout_sec
        self.lease_sec = lease_sec or min(DEFAULT_LEASE_SEC, self._failed_visibility_sec)
        self._renew_every_sec = visibility_extension_every_sec or self.lease_sec / RENEWALS_PER_LEASE
        # FIFO: one message per receive. SQS (and moto) hand out no message of a group while one of it
        # is in flight, so each receive returns the oldest message of a free group: followers are never
        # received beside their head, and a head that fails spends none of their receives (each receive
        # counts toward maxReceiveCount). A batch would hand them out together and skipping them would
        # cost each one a receive per failure of the head. The price is one call per FIFO message.
        self._receive_batch = 1 if queue.fifo else MAX_RECEIVE_BATCH
        self._shutdown_grace_sec = shutdown_grace_sec
        self._consumer = QueueConsumer(
            queue,
            handler,
            failures=FailureLog(database),
            job_timeout_sec=job_timeout_sec or queue.consumer.timeout_sec,
            on_final_failure=on_final_failure,
        )
        self._jobs: set[_Job] = set()
        self._receiving: asyncio.Task | None = None

    async def run(self, stop: asyncio.Event) -> None:
        logger.info("consuming %s with up to %d jobs at once", self._queue.name, self._concurrency)
        try:
            while not stop.is_set():
                free = self._concurrency - len(self._jobs)
                if free <= 0:
                    await self._wait_for_any((job.task for job in self._jobs), stop)
                    continue
                for message in await self._receive(min(free, self._receive_batch), stop):
                    self._start(message)
        finally:
            await self._shut_down()
            await self._consumer.failures.close()

    async def _receive(self, count: int, stop: asyncio.Event) -> list[Received]:
        self._receiving = asyncio.ensure_future(
            self._queues.receive(
                self._queue.name,
                max_messages=count,
                wait_time_sec=self._wait_time_sec,
                visibility_timeout_sec=self.lease_sec,
            )
        )
        await self._wait_for_any([self._receiving], stop)
        if not self._receiving.done():
            return []  # stopping: _shut_down collects and releases whatever this poll returns
        receiving, self._receiving = self._receiving, None
        try:
            return receiving.result()
        except QueueUnavailable as error:
            logger.warning("receive from %s failed; retrying: %s", self._queue.name, error)
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(stop.wait(), RECEIVE_ERROR_BACKOFF_SEC)
            return []

    async def _wait_for_any(self, tasks, stop: asyncio.Event) -> None:
        stopping = asyncio.ensure_future(stop.wait())
        try:
            await asyncio.wait([stopping, *tasks], return_when=asyncio.FIRST_COMPLETED)
        finally:
            stopping.cancel()

    def _start(self, message: Received) -> None:
        job = _Job(held=[message])
        job.task = asyncio.create_task(
            self._run_job(job, message), name=f"{self._queue.name}:{message.message_id}"
        )
        self._jobs.add(job)
        job.task.add_done_callback(lambda _: self._jobs.discard(job))

    async def _run_job(self, job: _Job, message: Received) -> None:
        heartbeat = asyncio.create_task(self._keep_leased(job))
        try:
            outcome = await self._consumer.consume(message)
            async with job.visibility_lock:
                job.held.clear()
                await self._settle(outcome)
        finally:
            heartbeat.cancel()
            self._consumer.publish_metrics()

    async def _settle(self, outcome: Outcome) -> None:
        if outcome.verdict is Verdict.DONE:
            await self._delete(outcome.message)
        elif outcome.verdict is Verdict.RETRY:
            await self._change_visibility(outcome.message, outcome.delay_sec)
        else:
            await self._change_visibility(outcome.message, self._failed_visibility_sec)

    async def _delete(self, message: Received) -> None:
        try:
            await self._queues.delete(self._queue.name, message.receipt_handle)
        except QueueUnavailable as error:
            logger.warning("message %s handled but not deleted; it comes back: %s", message.message_id, error)

    async def _keep_leased(self, job: _Job) -> None:
        while True:
            await asyncio.sleep(self._renew_every_sec)
            async with job.visibility_lock:
                for message in job.held:
                    await self._change_visibility(message, self.lease_sec)

    async def _change_visibility(self, message: Received, timeout_sec: int) -> None:
        try:
            await self._queues.change_visibility(self._queue.name, message.receipt_handle, timeout_sec)
        except QueueUnavailable as error:
            logger.warning(
                "could not set message %s visible in %ds: %s", message.message_id, timeout_sec, error
            )

    async def _release(self, messages: list[Received], reason: str) -> None:
        try:
            refused = await asyncio.to_thread(
                self._queues.release, self._queue.name, [message.receipt_handle for message in messages]
            )
        except QueueUnavailable as error:
            refused, reason = [message.receipt_handle for message in messages], f"{reason}; {error}"
        logger.info(
            "gave %d message(s) back to %s (%d refused): %s",
            len(messages),
            self._queue.name,
            len(refused),
            reason,
        )

    async def _shut_down(self) -> None:
        """Let running jobs finish within the grace period; give back everything else at once."""
        jobs = list(self._jobs)
        running = [job.task for job in jobs if job.task is not None]
        if self._receiving is not None:
            running.append(self._receiving)
        if running:
            _, late = await asyncio.wait(running, timeout=self._shutdown_grace_sec)
            for task in late:
                if task is not self._receiving:
                    task.cancel()
            await asyncio.gather(*(job.task for job in jobs if job.task is not None), return_exceptions=True)
        held = [message for job in jobs for message in job.held]
        held += await self._collect_late_receive()
        if held:
            await self._release(held, "worker stopping")
        logger.info("stopped consuming %s", self._queue.name)

    async def _collect_late_receive(self) -> list[Received]:
        # A long poll cannot be cancelled once in its thread; wait for it so that the messages it
        # returns are released now instead of staying invisible for a whole visibility timeout.
        if self._receiving is None:
            return []
        receiving, self._receiving = self._receiving, None
        try:
            return await receiving
        except QueueUnavailable:
            return []
