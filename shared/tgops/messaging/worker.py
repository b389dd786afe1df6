"""The Fargate-side consumer: long-polls one queue and runs a bounded number of jobs at once.

A job's messages stay invisible while it runs (their visibility is extended periodically), are
deleted when the handler returns, come back after `RetryLater.delay_sec` when it raises that, and
come back after the visibility timeout on any other error (after MAX_RECEIVE_COUNT receives SQS
moves them to the DLQ). Messages of one FIFO group run in order, one at a time; after a failure
the rest of that group is released to come back behind it.

On stop: no more receives; running jobs get `shutdown_grace_sec` to finish, then are cancelled;
every message not finished is made visible again at once. Nothing unfinished is deleted.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

from tgops.messaging.errors import QueueUnavailable, RetryLater
from tgops.messaging.failures import record_final_failure
from tgops.messaging.sqs import MAX_RECEIVE_BATCH, Received, SqsQueues
from tgops.messaging.topology import MAX_RECEIVE_COUNT, QueueSpec

__all__ = ["QueueWorker", "Received", "install_signal_handlers"]

logger = logging.getLogger(__name__)

Handler = Callable[[Received], Awaitable[None]]
FinalFailureHook = Callable[[Received, str], None]

DEFAULT_SHUTDOWN_GRACE_SEC = 25.0  # inside ECS's default 30 s between SIGTERM and SIGKILL
RECEIVE_ERROR_BACKOFF_SEC = 5.0
EXTENSIONS_PER_TIMEOUT = 3  # extend well before the visibility runs out, even if one call is slow


def log_final_failure(message: Received, reason: str) -> None:
    logger.error(
        "message %s failed its last attempt (receive %d); SQS moves it to the DLQ: %s",
        message.message_id,
        message.receive_count,
        reason,
    )


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
        queues: SqsQueues,
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
    ) -> None:
        self._queues = queues
        self._queue = queue
        self._handler = handler
        self._concurrency = concurrency or queue.consumer.concurrency
        self._wait_time_sec = wait_time_sec
        self._visibility_timeout_sec = visibility_timeout_sec or queue.visibility_timeout_sec
        self._extension_every_sec = visibility_extension_every_sec or (
            self._visibility_timeout_sec / EXTENSIONS_PER_TIMEOUT
        )
        self._job_timeout_sec = job_timeout_sec or queue.consumer.timeout_sec
        self._shutdown_grace_sec = shutdown_grace_sec
        self._on_final_failure = on_final_failure
        self._jobs: set[_Job] = set()
        self._receiving: asyncio.Task | None = None

    async def run(self, stop: asyncio.Event) -> None:
        logger.info("consuming %s with up to %d jobs at once", self._queue.name, self._concurrency)
        try:
            while not stop.is_set():
                free = self._concurrency - sum(len(job.held) for job in self._jobs)
                if free <= 0:
                    await self._wait_for_any((job.task for job in self._jobs), stop)
                    continue
                for chain in self._chains(await self._receive(min(free, MAX_RECEIVE_BATCH), stop)):
                    self._start(chain)
        finally:
            await self._shut_down()

    async def _receive(self, count: int, stop: asyncio.Event) -> list[Received]:
        self._receiving = asyncio.ensure_future(
            self._queues.receive(
                self._queue.name,
                max_messages=count,
                wait_time_sec=self._wait_time_sec,
                visibility_timeout_sec=self._visibility_timeout_sec,
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

    def _chains(self, messages: list[Received]) -> list[list[Received]]:
        """Standard queue: one job per message. FIFO: one job per group, in the order received."""
        if not self._queue.fifo:
            return [[message] for message in messages]
        groups: dict[str | None, list[Received]] = {}
        for message in messages:
            groups.setdefault(message.group_id, []).append(message)
        return list(groups.values())

    def _start(self, chain: list[Received]) -> None:
        job = _Job(held=list(chain))
        name = f"{self._queue.name}:{chain[0].message_id}"
        job.task = asyncio.create_task(self._run_job(job, chain), name=name)
        self._jobs.add(job)
        job.task.add_done_callback(lambda _: self._jobs.discard(job))

    async def _run_job(self, job: _Job, chain: list[Received]) -> None:
        heartbeat = asyncio.create_task(self._keep_invisible(job))
        try:
            for message in chain:
                failure = await self._handle(message)
                async with job.visibility_lock:
                    job.held.remove(message)
                    if failure is None:
                        await self._delete(message)
                        continue
                    if isinstance(failure, RetryLater):
                        await self._change_visibility(message, failure.delay_sec)
                    if job.held:
                        await self._release(job.held, "an earlier message of its FIFO group failed")
                        job.held.clear()
                    return
        finally:
            heartbeat.cancel()

    async def _handle(self, message: Received) -> Exception | None:
        """Run the handler; return the logged error that made it fail, or None."""
        deadline = asyncio.timeout(self._job_timeout_sec)
        try:
            async with deadline:
                await self._handler(message)
        except RetryLater as retry:
            self._failed(message, f"retry later: {retry.reason}", log_traceback=False)
            return retry
        except Exception as error:  # noqa: BLE001 -- any handler error fails the message, never the worker
            if deadline.expired():
                self._failed(message, f"job exceeded {self._job_timeout_sec:g}s", log_traceback=False)
            else:
                self._failed(message, f"{type(error).__name__}: {error}", log_traceback=True)
            return error
        return None

    async def _delete(self, message: Received) -> None:
        try:
            await self._queues.delete(self._queue.name, message.receipt_handle)
        except QueueUnavailable as error:
            logger.warning("message %s handled but not deleted; it comes back: %s", message.message_id, error)

    def _failed(self, message: Received, reason: str, *, log_traceback: bool) -> None:
        logger.warning(
            "message %s from %s failed (receive %d); it comes back: %s",
            message.message_id,
            self._queue.name,
            message.receive_count,
            reason,
            exc_info=log_traceback,
        )
        if message.receive_count >= MAX_RECEIVE_COUNT:
            self._on_final_failure(message, reason)
            asyncio.get_running_loop().run_in_executor(
                None,
                record_final_failure,
                self._queue.name,
                message.message_id,
                message.receive_count,
                reason,
            )

    async def _keep_invisible(self, job: _Job) -> None:
        while True:
            await asyncio.sleep(self._extension_every_sec)
            async with job.visibility_lock:
                for message in job.held:
                    await self._change_visibility(message, self._visibility_timeout_sec)

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
        running = [job.task for job in jobs]
        if self._receiving is not None:
            running.append(self._receiving)
        if running:
            _, late = await asyncio.wait(running, timeout=self._shutdown_grace_sec)
            for task in late:
                if task is not self._receiving:
                    task.cancel()
            await asyncio.gather(*(job.task for job in jobs), return_exceptions=True)
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
