"""`tgops.messaging.consumer.lambda_handler`: a queue's Lambda, as functions/<consumer>/app.py builds it."""

from __future__ import annotations

import asyncio

import psycopg
import pytest
from moto import mock_aws

from tgops import handlers
from tgops.messaging.consumer import lambda_handler
from tgops.messaging.sqs import Received, SqsQueues
from tgops.messaging.topology import GROUP_MESSAGE
from tgops.runtime import Runtime

from .test_lambda_batch import failed_ids, lambda_record

SEEN: list[tuple[Runtime, asyncio.AbstractEventLoop, str]] = []


async def record_or_fail(runtime: Runtime, message: Received) -> None:
    """A queue handler as tgops.handlers registers them."""
    SEEN.append((runtime, asyncio.get_running_loop(), message.body))
    if message.body == "bad":
        raise RuntimeError("cannot send")


@pytest.fixture
def registered(monkeypatch):
    SEEN.clear()
    monkeypatch.setitem(handlers.QUEUE_HANDLERS, GROUP_MESSAGE.name, f"{__name__}:record_or_fail")


def test_answers_a_partial_batch_response_on_one_loop_and_runtime_and_records_the_final_failure(
    settings, registered, database_url
):
    with mock_aws():
        SqsQueues(settings).ensure_queues()
        handler = lambda_handler(GROUP_MESSAGE.name)
        try:
            first = handler({"Records": [lambda_record("m1", "good"), lambda_record("m2", "bad")]}, None)
            second = handler(
                {"Records": [lambda_record("m3", "good"), lambda_record("m4", "bad", receive_count=3)]}, None
            )
        finally:
            handler.close()

    assert (failed_ids(first), failed_ids(second)) == (["m2"], ["m4"])
    assert [body for _, _, body in SEEN] == ["good", "bad", "good", "bad"]
    assert len({id(runtime) for runtime, _, _ in SEEN}) == 1
    assert len({id(loop) for _, loop, _ in SEEN}) == 1
    with psycopg.connect(database_url) as connection:
        rows = connection.execute(
            "SELECT message_id, receive_count, reason FROM queue_message_failures"
        ).fetchall()
    assert rows == [("m4", 3, "RuntimeError: cannot send")]


def test_a_queue_without_a_registered_handler_is_refused_when_the_lambda_is_built(settings, monkeypatch):
    monkeypatch.delitem(handlers.QUEUE_HANDLERS, GROUP_MESSAGE.name, raising=False)
    with pytest.raises(LookupError, match="no handler for queue 'group_message_queue'"):
        lambda_handler(GROUP_MESSAGE.name)
