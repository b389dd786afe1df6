"""The Lambda driver of the consumer engine: Powertools' BatchProcessor with partial batch responses.

Lambda's SQS event source mapping receives and deletes; this driver runs each record through the
engine (tgops.messaging.consumer) in the batch's order and reports only what is not done in
`batchItemFailures`. A record to retry later gets its delay as its visibility; FIFO records skipped
behind a failure of their group are made visible again at once (they still come back behind it: the
failed one holds their group). When every record fails, Powertools raises and the whole batch comes back.

The FIFO rule is the engine's (`Delivery`), so the plain BatchProcessor serves FIFO queues too:
Powertools' SqsFifoPartialProcessor(skip_group_on_error=True) skips the same way, but also behind a
head at its last receive, which would send the followers to the DLQ untried.

The batch's outcome counts are published once per invocation, when it ends.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Coroutine
from functools import lru_cache
from typing import Any

from aws_lambda_powertools.utilities.batch import BatchProcessor, EventType
from aws_lambda_powertools.utilities.data_classes.sqs_event import SQSRecord

from tgops.messaging.backend import QueueBackend
from tgops.messaging.consumer import (
    Delivery,
    FinalFailureHook,
    Handler,
    Outcome,
    QueueConsumer,
    Verdict,
    log_final_failure,
)
from tgops.messaging.errors import MessagingError, QueueUnavailable
from tgops.messaging.failures import FailureLog
from tgops.messaging.sqs import Received, SqsQueues
from tgops.messaging.topology import QueueSpec

logger = logging.getLogger(__name__)

Runner = Callable[[Coroutine[Any, Any, Any]], Any]

_runner: asyncio.Runner | None = None


class NotDone(MessagingError):
    """Raised to Powertools for a record the engine did not finish: it goes in batchItemFailures."""

    def __init__(self, outcome: Outcome) -> None:
        super().__init__(f"{outcome.verdict.value}: {outcome.reason}")
        self.outcome = outcome


def received_from_record(record: SQSRecord) -> Received:
    return Received(
        message_id=record.message_id,
        receipt_handle=record.receipt_handle,
        body=record.body,
        receive_count=int(record.attributes.approximate_receive_count or 1),
        attributes=dict(record.raw_event.get("attributes") or {}),
    )


class LambdaBatch:
    def __init__(self, consumer: QueueConsumer, queues: Callable[[], QueueBackend], run: Runner) -> None:
        self._consumer = consumer
        self._queues = queues
        self._run = run

    def process(self, event: dict[str, Any], context: Any) -> dict[str, list[dict[str, str]]]:
        delivery = self._consumer.delivery()
        skipped: list[Received] = []

        def record_handler(record: SQSRecord) -> None:
            outcome = self._run(self._consume(received_from_record(record), delivery))
            if outcome.verdict is Verdict.SKIPPED:
                skipped.append(outcome.message)
            if not outcome.done:
                raise NotDone(outcome)

        processor = BatchProcessor(EventType.SQS)
        try:
            with processor(event["Records"], record_handler, context):
                processor.process()
                if skipped:
                    self._run(self._release(skipped))
        finally:
            self._consumer.publish_metrics()  # once per invocation, even when the whole batch failed
        return processor.response()  # type: ignore[return-value]  # Powertools' TypedDict of the same shape

    async def _consume(self, message: Received, delivery: Delivery) -> Outcome:
        outcome = await self._consumer.consume(message, delivery)
        if outcome.verdict is Verdict.RETRY:
            try:
                await self._queues().change_visibility(
                    self._consumer.queue.name, message.receipt_handle, outcome.delay_sec
                )
            except QueueUnavailable as error:
                logger.warning(
                    "could not delay message %s; it comes back after its visibility timeout: %s",
                    message.message_id,
                    error,
                )
        return outcome

    async def _release(self, messages: list[Received]) -> None:
        handles = [message.receipt_handle for message in messages]
        try:
            await asyncio.to_thread(self._queues().release, self._consumer.queue.name, handles)
        except QueueUnavailable as error:
            logger.warning("could not give back %d skipped FIFO record(s): %s", len(messages), error)


@lru_cache
def default_queues() -> SqsQueues:
    return SqsQueues()


def run_in_lambda_loop(awaitable: Coroutine[Any, Any, Any]) -> Any:
    """Run on one event loop kept for the process (created on first use, reused by later batches)."""
    global _runner
    if _runner is None:
        _runner = asyncio.Runner()
    return _runner.run(awaitable)


def process_sqs_messages(
    event: dict[str, Any],
    context: Any,
    queue: QueueSpec,
    handler: Handler,
    *,
    queues: QueueBackend | None = None,
    on_final_failure: FinalFailureHook = log_final_failure,
) -> dict[str, list[dict[str, str]]]:
    """One batch through the engine, outside `lambda_handler` (tests, tools): `{"batchItemFailures": [...]}`."""
    failures = FailureLog()
    consumer = QueueConsumer(queue, handler, failures=failures, on_final_failure=on_final_failure)
    try:
        return LambdaBatch(consumer, lambda: queues or default_queues(), run_in_lambda_loop).process(
            event, context
        )
    finally:
        run_in_lambda_loop(failures.close())
