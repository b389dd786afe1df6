"""Correlation ids end to end: one id from the API request, through the queued message, to every line of
the consumer that handles it, in the JSON lines the one logging set-up writes."""

from __future__ import annotations

import asyncio
import io
import json
import logging
from collections.abc import Iterator
from types import SimpleNamespace
from typing import Literal

import httpx
import pytest
from aws_lambda_powertools.utilities.batch.exceptions import BatchProcessingError
from mangum import Mangum

from tests.api.public_api_support import build_app, public_api
from tests.conftest import load_event
from tests.fakes.queues import RecordingQueues
from tgops import correlation
from tgops.api.api_keys import create_api_key
from tgops.api.app import create_app
from tgops.broadcast.jobs import BroadcastJob
from tgops.config import Settings
from tgops.ingress.messages import TelegramUpdateReceived
from tgops.local.loops import run_every
from tgops.logs import configure_logging
from tgops.messaging.envelopes import Message, decode
from tgops.messaging.lambda_batch import process_sqs_messages
from tgops.messaging.sqs import Received
from tgops.messaging.topology import GROUP_MESSAGE
from tgops.runtime import Runtime, scheduled_handler

SEND = "/api/send_messages"
log = logging.getLogger("tgops.test_correlation")


class Probe(Message):
    kind: Literal["probe"] = "probe"
    order_id: int


@pytest.fixture
def json_lines() -> Iterator[io.StringIO]:
    """Every log line of the test, as the process's one JSON set-up writes it; the root logger is restored."""
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    captured = io.StringIO()
    configure_logging(Settings(_env_file=None, log_format="json"), service="test", stream=captured)
    yield captured
    root.handlers[:] = handlers
    root.setLevel(level)


def lines(captured: io.StringIO) -> list[dict]:
    return [json.loads(line) for line in captured.getvalue().splitlines()]  # every line is one JSON object


def sqs_event(message_id: str, body: str) -> dict:
    """One record as Lambda's SQS event source mapping delivers it."""
    return {
        "Records": [
            {
                "messageId": message_id,
                "receiptHandle": f"handle-{message_id}",
                "body": body,
                "attributes": {"ApproximateReceiveCount": "1", "SentTimestamp": "1700000000000"},
                "messageAttributes": {},
                "eventSource": "aws:sqs",
                "eventSourceARN": "arn:aws:sqs:us-east-1:123456789012:test-group_message_queue",
                "awsRegion": "us-east-1",
            }
        ]
    }


async def test_one_request_id_finds_the_api_line_and_every_line_of_the_consumer_of_its_message(
    settings, db, json_lines
):
    created = await create_api_key(db, "tests")
    async with public_api(settings) as api:
        response = await api.client.post(
            SEND,
            json={"content": {"type": "text", "text": "Live now!"}},
            headers={"X-API-Key": created.key, "X-Request-Id": "req-obs-0001"},
        )
    assert response.status_code == 202
    assert response.headers["X-Request-Id"] == "req-obs-0001"
    (body,) = api.queues.bodies("group_message_queue")
    assert decode(body, BroadcastJob).correlation_id == "req-obs-0001"

    async def handle(message: Received) -> None:
        job = decode(message.body, BroadcastJob)
        correlation.bind(job_id=job.job_id)
        log.info("broadcast taken")
        raise RuntimeError("no bot to send with")  # so the engine writes its own line too

    with pytest.raises(BatchProcessingError):  # its only record failed: the whole batch comes back
        await asyncio.to_thread(process_sqs_messages, sqs_event("sqs-1", body), None, GROUP_MESSAGE, handle)

    found = [line for line in lines(json_lines) if line.get("correlation_id") == "req-obs-0001"]
    access, taken, not_done = found
    assert (access["path"], access["status"], access["route"]) == (SEND, 202, SEND)
    job_id = response.json()["job_id"]
    consumer_fields = {"queue": "group_message_queue", "kind": "broadcast", "message_id": job_id}
    assert taken["message"] == "broadcast taken"
    assert taken.items() >= (consumer_fields | {"job_id": job_id, "sqs_message_id": "sqs-1"}).items()
    assert "not done" in not_done["message"] and "no bot to send with" in not_done["message"]
    assert not_done.items() >= consumer_fields.items()


async def test_a_webhook_requests_line_and_its_queued_update_carry_the_update_id_and_the_request_id(
    settings, json_lines
):
    queues = RecordingQueues()
    app = create_app(Runtime(settings, queue_sender=queues))
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as client:
        try:
            response = await client.post(
                "/api/webhooks/telegram",
                json=load_event("telegram_update_private_message"),
                headers={
                    "X-Telegram-Bot-Api-Secret-Token": settings.telegram_webhook_secret.get_secret_value()
                },
            )
        finally:
            await app.state.runtime.close()

    assert response.status_code == 200
    (sent,) = queues.calls
    update = decode(sent.body, TelegramUpdateReceived)
    (access,) = [line for line in lines(json_lines) if line.get("path") == "/api/webhooks/telegram"]
    assert (access["update_id"], access["bot_id"]) == (update.update_id, update.bot_id)
    assert access["correlation_id"] == update.correlation_id == response.headers["X-Request-Id"]


async def test_a_request_without_a_usable_request_id_is_given_a_new_one(settings, json_lines):
    async with public_api(settings) as api:
        given = [await api.client.get("/no-such-page", headers=headers) for headers in
                 ({}, {"X-Request-Id": "forged\nline"}, {"X-Request-Id": "x" * 200})]  # fmt: skip

    ids = [response.headers["X-Request-Id"] for response in given]
    assert len(set(ids)) == 3 and all(len(request_id) == 32 for request_id in ids)
    assert [line["correlation_id"] for line in lines(json_lines)] == ids


def test_on_lambda_the_request_id_is_api_gateways_and_the_function_request_id_is_on_the_line(
    settings, json_lines
):
    app, _ = build_app(settings)
    event = load_event("http_api_health") | {"rawPath": "/no-such-page"}
    event["requestContext"]["http"]["path"] = "/no-such-page"
    context = SimpleNamespace(function_name="tgops-HttpApi", aws_request_id="c6af9ac6-7b61-11e6-9a41")

    response = Mangum(app, lifespan="off")(event, context)

    assert response["statusCode"] == 404
    assert response["headers"]["x-request-id"] == "CXb0zjQ8oAMEbKw="
    (line,) = lines(json_lines)
    assert (line["correlation_id"], line["function_request_id"]) == (
        "CXb0zjQ8oAMEbKw=",
        context.aws_request_id,
    )


def test_a_scheduled_run_logs_and_queues_under_its_eventbridge_event_id(settings, json_lines):
    queued: list[Probe] = []

    async def run(runtime) -> None:
        log.info("polling")
        queued.append(Probe(order_id=42))

    handler = scheduled_handler(run)
    configure_logging(Settings(_env_file=None, log_format="json"), service="test", stream=json_lines)  # again
    try:
        handler({"id": "53dc4d37-cffa-4f76-80c9-8b7d4a4d2eaa", "source": "aws.events"}, None)
        handler({"source": "aws.events"}, None)
    finally:
        handler.close()

    polled = [line for line in lines(json_lines) if line["message"] == "polling"]
    assert polled[0]["correlation_id"] == queued[0].correlation_id == "53dc4d37-cffa-4f76-80c9-8b7d4a4d2eaa"
    assert polled[1]["correlation_id"] == queued[1].correlation_id != queued[0].correlation_id
    assert polled[0]["schedule"] == __name__


def test_a_bound_domain_id_stays_inside_its_scope():
    with correlation.scope(correlation_id="outer"):
        with correlation.scope(order_id=5):
            correlation.bind(task_id=9)
            inner = correlation.current()
        outer = correlation.current()
    assert inner == {"correlation_id": "outer", "order_id": 5, "task_id": 9}
    assert outer == {"correlation_id": "outer"}
    assert correlation.current() == {} and Probe(order_id=1).correlation_id is None


def test_the_console_line_carries_the_correlation_fields_too():
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    captured = io.StringIO()
    configure_logging(Settings(_env_file=None, log_format="console"), service="test", stream=captured)
    try:
        with correlation.scope(correlation_id="req-7", order_id=5):
            log.info("order skipped", extra={"reason": "no_remains"})
    finally:
        root.handlers[:] = handlers
        root.setLevel(level)
    assert (
        captured.getvalue()
        .strip()
        .endswith("tgops.test_correlation: order skipped reason=no_remains correlation_id=req-7 order_id=5")
    )


async def test_in_tgops_dev_each_scheduled_run_has_a_correlation_id_of_its_own():
    stop = asyncio.Event()
    runs: list[dict] = []

    async def job() -> None:
        runs.append(correlation.current())
        if len(runs) == 2:
            stop.set()

    await run_every(0, job, stop, "poll_orders")

    assert [run["schedule"] for run in runs] == ["poll_orders", "poll_orders"]
    assert len({run["correlation_id"] for run in runs}) == 2
