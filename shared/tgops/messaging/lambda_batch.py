"""The Lambda-side consumer: Powertools batch processing with partial batch responses.

Only failed records are reported in `batchItemFailures`; SQS deletes the rest. Standard queues
go through `BatchProcessor`; FIFO queues through `SqsFifoPartialProcessor` with
`skip_group_on_error`, so one failing chat does not hold back the other chats of the batch, and
the skipped records of a failed group are made visible again at once (they still come back
behind the failed one, FIFO order holds). A handler raising `RetryLater` has its record come back
after `delay_sec`. When a record fails at its last receive (SQS moves it to the DLQ next),
`on_final_failure(record, reason)` runs (by default it logs) and the reason is kept for the DLQ view
(tgops.messaging.failures).

Handlers are async like the Fargate ones: `process_sqs_messages` runs them on one event loop kept
for the life of the Lambda container, so pooled connections survive from one invocation to the next.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from functools import lru_cache
from typing import Any

from aws_lambda_powertools import Logger
from aws_lambda_powertools.utilities.batch import BatchProcessor, EventType, SqsFifoPartialProcessor
from aws_lambda_powertools.utilities.data_classes.sqs_event import SQSRecord

from tgops.messaging.errors import QueueUnavailable, RetryLater
from tgops.messaging.failures import record_final_failure
from tgops.messaging.sqs import Received, SqsQueues
from tgops.messaging.topology import MAX_RECEIVE_COUNT, QueueSpec

# A child: its records go through the Logger the Lambda handler sets up, without reconfiguring it.
logger = Logger(child=True)

RecordHandler = Callable[[SQSRecord], None]
MessageHandler = Callable[[Received], Awaitable[None]]
FinalFailureHook = Callable[[SQSRecord, str], None]

_runner: asyncio.Runner | None = None


def log_final_failure(record: SQSRecord, reason: str) -> None:
    logger.error(
        "message %s failed its last attempt; SQS moves it to the DLQ: %s",
        record.message_id,
        reason,
        extra={"sqs_message_id": record.message_id, "receive_count": receive_count(record), "reason": reason},
    )


def receive_count(record: SQSRecord) -> int:
    return int(record.attributes.approximate_receive_count or 1)


def received_from_record(record: SQSRecord) -> Received:
    return Received(
        message_id=record.message_id,
        receipt_handle=record.receipt_handle,
        body=record.body,
        receive_count=receive_count(record),
        attributes=dict(record.raw_event.get("attributes") or {}),
    )


def run_in_lambda_loop(awaitable: Awaitable[Any]) -> Any:
    """Run on the container's one event loop (created on first use, reused by later invocations)."""
    global _runner
    if _runner is None:
        _runner = asyncio.Runner()
    return _runner.run(awaitable)


@lru_cache
def default_queues() -> SqsQueues:
    return SqsQueues()


def process_sqs_messages(
    event: dict[str, Any],
    context: Any,
    queue: QueueSpec,
    handler: MessageHandler,
    *,
    queues: SqsQueues | None = None,
    on_final_failure: FinalFailureHook = log_final_failure,
) -> dict[str, list[dict[str, str]]]:
    """`process_sqs_batch` for an async handler taking a `Received`, the Fargate workers' signature."""

    def handle_record(record: SQSRecord) -> None:
        run_in_lambda_loop(handler(received_from_record(record)))

    return process_sqs_batch(
        event, context, queue, handle_record, queues=queues, on_final_failure=on_final_failure
    )


def process_sqs_batch(
    event: dict[str, Any],
    context: Any,
    queue: QueueSpec,
    handle_record: RecordHandler,
    *,
    queues: SqsQueues | None = None,
    on_final_failure: FinalFailureHook = log_final_failure,
) -> dict[str, list[dict[str, str]]]:
    """Run `handle_record` on each record; return `{"batchItemFailures": [...]}`.

    When every record fails, Powertools raises `BatchProcessingError` (the whole batch comes back).
    """
    batch = _Batch(queue, queues, on_final_failure)
    if queue.fifo:
        processor = SqsFifoPartialProcessor(skip_group_on_error=True)
    else:
        processor = BatchProcessor(EventType.SQS)
    with processor(event["Records"], batch.wrap(handle_record), context):
        outcomes = processor.process()
        batch.release_skipped([record for status, _, record in outcomes if status == "fail"])
    return processor.response()


class _Batch:
    def __init__(
        self, queue: QueueSpec, queues: SqsQueues | None, on_final_failure: FinalFailureHook
    ) -> None:
        self._queue = queue
        self._queues = queues
        self._on_final_failure = on_final_failure
        self._attempted_failures: set[str] = set()

    @property
    def queues(self) -> SqsQueues:
        return self._queues or default_queues()

    def wrap(self, handle_record: RecordHandler) -> RecordHandler:
        def record_handler(record: SQSRecord) -> None:
            try:
                handle_record(record)
            except RetryLater as retry:
                self._set_visibility(record, retry.delay_sec)
                self._failed(record, f"retry later: {retry.reason}")
                raise
            except Exception as error:
                self._failed(record, f"{type(error).__name__}: {error}", log_traceback=True)
                raise

        return record_handler

    def release_skipped(self, failed: list[SQSRecord]) -> None:
        """FIFO records skipped behind a failed one of their group: visible again now."""
        skipped = [record for record in failed if record.message_id not in self._attempted_failures]
        if not skipped:
            return
        for record in skipped:
            self._failed(record, "skipped: an earlier message of its FIFO group failed")
        try:
            self.queues.release(self._queue.name, [record.receipt_handle for record in skipped])
        except QueueUnavailable as error:
            logger.warning("could not give back skipped FIFO records: %s", error)

    def _failed(self, record: SQSRecord, reason: str, *, log_traceback: bool = False) -> None:
        self._attempted_failures.add(record.message_id)
        logger.warning(
            "message %s failed; it comes back: %s",
            record.message_id,
            reason,
            extra={
                "queue": self._queue.name,
                "sqs_message_id": record.message_id,
                "receive_count": receive_count(record),
                "reason": reason,
            },
            exc_info=log_traceback,
        )
        if receive_count(record) >= MAX_RECEIVE_COUNT:
            self._on_final_failure(record, reason)
            record_final_failure(self._queue.name, record.message_id, receive_count(record), reason)

    def _set_visibility(self, record: SQSRecord, delay_sec: int) -> None:
        try:
            self.queues.set_visibility(self._queue.name, record.receipt_handle, delay_sec)
        except QueueUnavailable as error:
            logger.warning(
                "could not delay message %s; it comes back after the visibility timeout: %s",
                record.message_id,
                error,
            )
