"""The queue-consumer engine: the one policy every consumer follows, whichever driver feeds it.

The core decodes nothing. It runs the queue's handler on a `Received` and says what becomes of it:
- the handler returns: done (the driver deletes it, or lets Lambda do so);
- the handler raises `RetryLater(delay)`: visible again after its delay;
- any other error (or the job timeout): failed, it comes back after its visibility timeout;
- a failure at the last receive (SQS moves the message to its DLQ at its next receive) is logged as
  final and its reason kept for the DLQ view (tgops.messaging.failures).
FIFO queues: the messages of one delivery (a Lambda batch, a worker's receive) run in their group's
order, and a failure skips the rest of its group in that delivery, given back to come after it.

A head failing at its last receive does not skip its followers: the group moves on past it, in the
same delivery. SQS counts every receive of a message toward maxReceiveCount, and a Lambda batch holds
a group's followers beside its head each time the head comes back (SQS and moto hand out a group's
messages together, and none of a group while one of it is in flight, so the followers cannot be held
back while the head alone is received again). Skipped behind a head that fails three times, they would
reach their DLQ untried. Nothing can uncount a receive, and sending a follower again would put it
behind its group's later messages; so once the head's fate is sealed its followers run at once. In a
Lambda batch a follower may so have fewer receives left for its own failures, never none. The Fargate
driver receives a FIFO queue one message at a time, so there a follower never spends a receive.

Every log line written while a message is handled carries its correlation scope (tgops.correlation):
the envelope's `correlation_id` (the request or run that queued it; the SQS message id for a message
without one), its queue, kind and message id, and the domain ids at its top level (order_id, job_id,
update_id...). Each run is an X-Ray span (tgops.tracing), and the outcomes are counted per queue
(MessagesProcessed, MessagesRetried, MessagesFailed, MessagesSkipped, MessagesDeadLettered), published
by the driver as one EMF document per Lambda batch or worker job.

Two drivers: `tgops.messaging.lambda_batch` (Powertools' BatchProcessor, partial batch responses) and
`tgops.messaging.worker` (Fargate: long polling, short leases kept alive while a job runs).
`lambda_handler(queue)` is the whole of a Lambda consumer's `functions/<name>/app.py`.
"""

from __future__ import annotations

import asyncio
import enum
import functools
import json
import logging
from collections import Counter
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from tgops import correlation, metrics, tracing
from tgops.messaging.errors import RetryLater
from tgops.messaging.failures import FailureLog
from tgops.messaging.sqs import Received
from tgops.messaging.topology import MAX_RECEIVE_COUNT, QueueSpec

logger = logging.getLogger(__name__)

Handler = Callable[[Received], Awaitable[None]]
FinalFailureHook = Callable[[Received, str], None]
SKIPPED_REASON = "skipped: an earlier message of its FIFO group failed"


class Verdict(enum.Enum):
    DONE = "done"
    RETRY = "retry"  # visible again after `Outcome.delay_sec`
    FAILED = "failed"  # visible again after the visibility timeout
    SKIPPED = "skipped"  # not run: an earlier message of its group failed; give it back now


OUTCOME_METRICS = {
    Verdict.DONE: "MessagesProcessed",
    Verdict.RETRY: "MessagesRetried",
    Verdict.FAILED: "MessagesFailed",
    Verdict.SKIPPED: "MessagesSkipped",
}
DEAD_LETTERED_METRIC = "MessagesDeadLettered"
ENVELOPE_FIELDS = ("kind", "message_id", *correlation.DOMAIN_IDS)


@dataclass(frozen=True)
class Outcome:
    message: Received
    verdict: Verdict
    reason: str = ""
    delay_sec: int = 0
    error: Exception | None = None  # what the handler raised, for the traceback in the log

    @property
    def done(self) -> bool:
        return self.verdict is Verdict.DONE


def at_last_receive(message: Received) -> bool:
    """SQS moves this message to its DLQ instead of delivering it again."""
    return message.receive_count >= MAX_RECEIVE_COUNT


def correlation_fields(queue: str, message: Received) -> dict[str, correlation.Field]:
    """The fields every log line of `message` carries, read from the envelope's top level without
    decoding it (that is the handler's job, and a body that is not an envelope still gets its lines)."""
    try:
        envelope = json.loads(message.body)
    except ValueError:
        envelope = None
    if not isinstance(envelope, dict):
        envelope = {}
    fields: dict[str, correlation.Field] = {"queue": queue, "sqs_message_id": message.message_id}
    for key in ENVELOPE_FIELDS:
        value = envelope.get(key)
        if isinstance(value, str | int) and not isinstance(value, bool):
            fields[key] = value
    given = correlation.accepted_id(envelope.get(correlation.CORRELATION_ID))
    fields[correlation.CORRELATION_ID] = given or message.message_id
    return fields


def log_final_failure(message: Received, reason: str) -> None:
    logger.error(
        "message %s failed its last attempt (receive %d); SQS moves it to the DLQ: %s",
        message.message_id,
        message.receive_count,
        reason,
        extra={
            "sqs_message_id": message.message_id,
            "receive_count": message.receive_count,
            "reason": reason,
        },
    )


class Delivery:
    """Messages received together (one Lambda batch): the FIFO groups whose rest must wait."""

    def __init__(self, fifo: bool) -> None:
        self._fifo = fifo
        self._stopped: set[str | None] = set()

    def blocked(self, message: Received) -> bool:
        return self._fifo and message.group_id in self._stopped

    def settle(self, outcome: Outcome) -> None:
        failed = outcome.verdict in (Verdict.RETRY, Verdict.FAILED)
        if self._fifo and failed and not at_last_receive(outcome.message):
            self._stopped.add(outcome.message.group_id)


class QueueConsumer:
    """Runs one queue's handler under the policy above; the drivers apply the outcomes to the queue."""

    def __init__(
        self,
        queue: QueueSpec,
        handler: Handler,
        *,
        failures: FailureLog | None = None,
        job_timeout_sec: float | None = None,
        on_final_failure: FinalFailureHook = log_final_failure,
    ) -> None:
        self.queue = queue
        self._handler = handler
        self.failures = failures or FailureLog()
        self._job_timeout_sec = job_timeout_sec
        self._on_final_failure = on_final_failure
        self._counts: Counter[str] = Counter()

    def delivery(self) -> Delivery:
        return Delivery(self.queue.fifo)

    async def consume(self, message: Received, delivery: Delivery | None = None) -> Outcome:
        """Run `message`, or skip it when `delivery` holds an earlier failure of its FIFO group."""
        with correlation.scope(**correlation_fields(self.queue.name, message)):
            if delivery is not None and delivery.blocked(message):
                outcome = Outcome(message, Verdict.SKIPPED, SKIPPED_REASON)
            else:
                with tracing.span(f"queue {self.queue.name}"):
                    outcome = await self._run(message)
            if delivery is not None:
                delivery.settle(outcome)
            self._counts[OUTCOME_METRICS[outcome.verdict]] += 1
            if not outcome.done:
                await self._failed(outcome)
        return outcome

    def publish_metrics(self) -> None:
        """Publish the outcomes counted since the last call, as one EMF document for the queue."""
        if self._counts:
            counts = dict.fromkeys([*OUTCOME_METRICS.values(), DEAD_LETTERED_METRIC], 0) | self._counts
            self._counts.clear()
            metrics.publish(counts, queue=self.queue.name)

    async def _run(self, message: Received) -> Outcome:
        deadline = asyncio.timeout(self._job_timeout_sec)
        try:
            async with deadline:
                await self._handler(message)
        except RetryLater as retry:
            return Outcome(message, Verdict.RETRY, f"retry later: {retry.reason}", retry.delay_sec)
        except Exception as error:  # noqa: BLE001 -- any handler error fails the message, never the consumer
            if deadline.expired():
                return Outcome(message, Verdict.FAILED, f"job exceeded {self._job_timeout_sec:g}s")
            return Outcome(message, Verdict.FAILED, f"{type(error).__name__}: {error}", error=error)
        return Outcome(message, Verdict.DONE)

    async def _failed(self, outcome: Outcome) -> None:
        message = outcome.message
        logger.log(
            logging.INFO if outcome.verdict is Verdict.SKIPPED else logging.WARNING,
            "message %s from %s not done (receive %d); it comes back: %s",
            message.message_id,
            self.queue.name,
            message.receive_count,
            outcome.reason,
            extra={
                "queue": self.queue.name,
                "sqs_message_id": message.message_id,
                "receive_count": message.receive_count,
                "reason": outcome.reason,
            },
            exc_info=outcome.error,
        )
        if at_last_receive(message):
            self._counts[DEAD_LETTERED_METRIC] += 1
            self._on_final_failure(message, outcome.reason)
            await self.failures.record(
                self.queue.name, message.message_id, message.receive_count, outcome.reason
            )


def lambda_handler(queue_name: str) -> Callable[[dict[str, Any], Any], dict[str, Any]]:
    """The Lambda handler of a queue: its handler from tgops.handlers, answering a partial batch response.

    One event loop and one Runtime per container, so warm invocations reuse the Postgres pool and the
    Redis client (as `tgops.runtime.scheduled_handler` does).
    """
    from tgops.config import get_settings
    from tgops.handlers import queue_handler
    from tgops.logs import configure_logging
    from tgops.messaging.lambda_batch import LambdaBatch
    from tgops.messaging.topology import queue
    from tgops.runtime import Runtime

    spec = queue(queue_name)
    handle = queue_handler(queue_name)
    if handle is None:
        raise LookupError(f"no handler for queue {queue_name!r} in tgops.handlers.QUEUE_HANDLERS")
    loop = asyncio.new_event_loop()
    runtime = Runtime(get_settings())
    configure_logging(runtime.settings, service=spec.consumer.name)
    consumer = QueueConsumer(spec, functools.partial(handle, runtime), failures=FailureLog(runtime.database))
    batch = LambdaBatch(consumer, runtime.queues, loop.run_until_complete)

    def handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
        with correlation.scope(function_request_id=getattr(context, "aws_request_id", None)):
            return batch.process(event, context)

    def close() -> None:
        """Close the connections and the loop (a Lambda container never needs to; tests do)."""
        loop.run_until_complete(runtime.close())
        loop.close()

    handler.close = close  # type: ignore[attr-defined]
    return handler
