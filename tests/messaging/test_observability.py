"""What the consumer engine tells an operator, in either driver: each message's log lines carry its
correlation id and domain ids, and its outcomes are counted per queue, one EMF document per invocation."""

from __future__ import annotations

import asyncio
import json
import logging
from typing import Literal

import pytest
from aws_lambda_powertools.utilities.batch.exceptions import BatchProcessingError

from tests.helpers.emf import emitted, enable_metrics, totals
from tgops import correlation
from tgops.messaging.consumer import correlation_fields
from tgops.messaging.envelopes import Message, decode, encode
from tgops.messaging.errors import RetryLater
from tgops.messaging.lambda_batch import process_sqs_messages
from tgops.messaging.sqs import Received
from tgops.messaging.topology import DM, GROUP_MESSAGE, SETUP_FAST
from tgops.messaging.worker import QueueWorker

from .test_lambda_batch import lambda_record

log = logging.getLogger("tgops.test_observability")


class RunProbe(Message):
    kind: Literal["run_probe"] = "run_probe"
    task_id: int
    account_id: int


class CorrelationRecorder(logging.Handler):
    """Keeps each record's correlation scope as the logging set-up's filter sees it."""

    def __init__(self) -> None:
        super().__init__()
        self.addFilter(correlation.CorrelationFilter())
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)


@pytest.fixture
def recorded() -> CorrelationRecorder:
    recorder = CorrelationRecorder()
    root = logging.getLogger()
    level = root.level
    root.addHandler(recorder)
    root.setLevel(logging.INFO)
    yield recorder
    root.removeHandler(recorder)
    root.setLevel(level)


async def test_the_worker_logs_each_job_under_the_correlation_id_its_message_was_queued_with(
    queues, recorded
):
    with correlation.scope(correlation_id="poll-run-1"):
        message = RunProbe(task_id=31, account_id=7)
    sqs_id = await queues.send(SETUP_FAST.name, encode(message))
    stop = asyncio.Event()
    handled: list[RunProbe] = []

    async def handle(received: Received) -> None:
        log.info("setting up")
        handled.append(decode(received.body, RunProbe))
        stop.set()

    await QueueWorker(queues, SETUP_FAST, handle, wait_time_sec=1).run(stop)

    (line,) = [record for record in recorded.records if record.getMessage() == "setting up"]
    assert {key: getattr(line, key) for key in ("correlation_id", "task_id", "account_id", "kind")} == {
        "correlation_id": "poll-run-1",
        "task_id": 31,
        "account_id": 7,
        "kind": "run_probe",
    }
    assert (line.queue, line.message_id, line.sqs_message_id) == (SETUP_FAST.name, message.message_id, sqs_id)
    assert handled[0].correlation_id == "poll-run-1"


def test_a_message_queued_before_correlation_ids_decodes_and_logs_under_its_sqs_message_id(recorded):
    old_body = json.dumps({"kind": "run_probe", "schema_version": 1, "task_id": 3, "account_id": 4,
                           "message_id": "01JD", "created_at": "2026-11-30T10:00:00Z"})  # fmt: skip
    decoded: list[RunProbe] = []

    async def handle(received: Received) -> None:
        decoded.append(decode(received.body, RunProbe))
        log.info("handled")

    process_sqs_messages({"Records": [lambda_record("sqs-old", old_body)]}, None, SETUP_FAST, handle)

    (line,) = [record for record in recorded.records if record.getMessage() == "handled"]
    assert (line.correlation_id, line.task_id) == ("sqs-old", 3)
    assert decoded[0].task_id == 3


@pytest.mark.parametrize(
    "body",
    ["not json", "[1, 2]", json.dumps({"correlation_id": "bad\nid", "order_id": True, "kind": ["x"]})],
)
def test_a_body_that_is_not_an_envelope_still_gets_its_queue_and_an_id(body):
    received = Received(message_id="sqs-9", receipt_handle="h", body=body, receive_count=1)

    assert correlation_fields(DM.name, received) == {
        "queue": DM.name,
        "sqs_message_id": "sqs-9",
        "correlation_id": "sqs-9",
    }


def test_a_lambda_batch_publishes_its_outcomes_once_per_invocation(monkeypatch, capsys):
    enable_metrics(monkeypatch, service="dm_consumer")
    records = [lambda_record("ok-1", "ok"), lambda_record("ok-2", "ok"), lambda_record("bad", "bad"),
               lambda_record("dead", "bad", receive_count=3)]  # fmt: skip

    async def handle(message: Received) -> None:
        if message.body == "bad":
            raise RuntimeError("broken")

    process_sqs_messages({"Records": records}, None, GROUP_MESSAGE, handle)

    out = capsys.readouterr().out
    assert len([line for line in out.splitlines() if line.startswith('{"_aws"')]) == 1
    queue = frozenset({("queue", GROUP_MESSAGE.name)})
    assert totals(out) == {
        ("MessagesProcessed", queue): 2,
        ("MessagesFailed", queue): 2,
        ("MessagesRetried", queue): 0,
        ("MessagesSkipped", queue): 0,
        ("MessagesDeadLettered", queue): 1,
    }


def test_a_batch_that_fails_whole_still_publishes_its_outcomes(monkeypatch, capsys):
    enable_metrics(monkeypatch)

    async def handle(message: Received) -> None:
        raise RuntimeError("broken")

    with pytest.raises(BatchProcessingError):
        process_sqs_messages({"Records": [lambda_record("m1", "x")]}, None, GROUP_MESSAGE, handle)

    assert (
        totals(capsys.readouterr().out)[("MessagesFailed", frozenset({("queue", GROUP_MESSAGE.name)}))] == 1
    )


async def test_the_worker_publishes_each_jobs_outcome(queues, monkeypatch, capsys):
    enable_metrics(monkeypatch, service="setup")
    await queues.send(SETUP_FAST.name, "later")
    stop = asyncio.Event()

    async def handle(message: Received) -> None:
        stop.set()
        raise RetryLater(30, "account cooling down")

    await QueueWorker(queues, SETUP_FAST, handle, wait_time_sec=1).run(stop)

    metrics = [metric for metric in emitted(capsys.readouterr().out) if metric.value]
    assert [(metric.name, metric.dimensions) for metric in metrics] == [
        ("MessagesRetried", {"service": "setup", "queue": SETUP_FAST.name})
    ]


async def test_a_worker_without_metrics_switched_on_prints_no_emf(queues, capsys):
    await queues.send(SETUP_FAST.name, "done")
    stop = asyncio.Event()

    async def handle(message: Received) -> None:
        stop.set()

    await QueueWorker(queues, SETUP_FAST, handle, wait_time_sec=1).run(stop)

    assert emitted(capsys.readouterr().out) == []
