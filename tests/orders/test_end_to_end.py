"""Panel → poll_orders → tg-inspect (moto SQS) → QueueWorker → validation → provider_orders.

Real Postgres and Redis; the inspector is the fake one (tests/workers has the run on the real one)."""

from __future__ import annotations

import asyncio
import functools
import json

import pytest
from moto import mock_aws

from tests.fakes.inspector import FakeInspector, missing, public_channel, temporary
from tgops.cache import keys
from tgops.config import ServiceRule
from tgops.messaging.errors import RetryLater
from tgops.messaging.topology import INSPECT
from tgops.messaging.worker import QueueWorker
from tgops.orders import validation
from tgops.orders.polling import OrderPoller
from tgops.runtime import Runtime

WAIT_LIMIT_SEC = 60


@pytest.fixture
async def runtime(order_settings):
    with mock_aws():
        settings = order_settings.model_copy(update={"dispatch_jitter_max_sec": 0})
        runtime = Runtime(settings)
        runtime.queues().ensure_queues()
        yield runtime
        await runtime.close()


async def statuses(db, remote_ids):
    rows = [await db.fetch_one("provider_order_by_remote_id", {"remote_order_id": rid}) for rid in remote_ids]
    return {row["remote_order_id"]: row["status"] for row in rows}


async def run_worker_until(runtime, inspector, done) -> None:
    stop = asyncio.Event()
    worker = QueueWorker(
        runtime.queues(),
        INSPECT,
        functools.partial(validation.handle, runtime, inspector=inspector),
        wait_time_sec=0,
    )
    task = asyncio.create_task(worker.run(stop))
    try:
        async with asyncio.timeout(WAIT_LIMIT_SEC):
            while not await done():
                await asyncio.sleep(0.05)
    finally:
        stop.set()
        await task


async def test_orders_placed_in_the_panel_end_depends_ok_or_depends_failed(runtime, panel, http_panel, db):
    settings = runtime.settings.model_copy(
        update={"order_service_rules": {5: ServiceRule(visibility="public")}}
    )
    runtime.settings = settings
    good = panel.place_order("https://t.me/good_channel", service_id=1)
    same_group = panel.place_order("@Good_Channel", service_id=1)
    nobody = panel.place_order("t.me/nobody_here", service_id=1)
    invalid = panel.place_order("https://example.com/not_telegram", service_id=1)
    private = panel.place_order("https://t.me/+AbCdEf123456", service_id=5)
    inspector = FakeInspector()
    inspector.answer("https://t.me/nobody_here", missing())
    inspector.answer("https://t.me/+AbCdEf123456", public_channel(link_kind="invite", is_private=True))
    redis = runtime.redis()

    report = await OrderPoller(settings, db, redis, runtime.queues(), http_panel).poll()
    assert report.dispatched == 3

    ids = [good, same_group, nobody, invalid, private]

    async def all_decided() -> bool:
        return "validating" not in (await statuses(db, ids)).values()

    await run_worker_until(runtime, inspector, all_decided)

    assert await statuses(db, ids) == {
        good: "awaiting", same_group: "awaiting", nobody: "depends_failed",  # validated, started by itself
        invalid: "depends_failed", private: "depends_failed",
    }  # fmt: skip
    assert sorted(inspector.calls) == [
        "https://t.me/+AbCdEf123456",
        "https://t.me/good_channel",
        "https://t.me/nobody_here",
    ]
    row = await db.fetch_one("provider_order_by_remote_id", {"remote_order_id": private})
    assert row["provider_last_error"] == "the chat is private; this service needs a public one"


async def test_the_poller_sends_no_second_job_while_one_retries(runtime, panel, http_panel, db):
    settings, redis, queues = runtime.settings, runtime.redis(), runtime.queues()
    panel.place_order("t.me/busy_channel")
    poller = OrderPoller(settings, db, redis, queues, http_panel)
    await poller.poll()
    [message] = await queues.receive(INSPECT.name, wait_time_sec=0)
    inspector = FakeInspector(default=temporary())
    with pytest.raises(RetryLater):
        await validation.handle(runtime, message, inspector=inspector)
    await redis.delete(keys.inspect_dispatch(keys.group_key(1, "https://t.me/busy_channel")))  # 90 s later

    report = await poller.poll()

    assert report.dispatched == 0 and report.skipped["being_sent"] == 1


async def test_a_job_that_never_gets_an_answer_takes_five_tries_then_lands_in_the_dlq(
    runtime, panel, http_panel, db
):
    runtime.settings = runtime.settings.model_copy(update={"inspect_backoff_sec": [0, 0, 0, 0, 0]})
    order_id = panel.place_order("t.me/unreachable_channel")
    await OrderPoller(runtime.settings, db, runtime.redis(), runtime.queues(), http_panel).poll()
    inspector = FakeInspector(default=temporary())
    queues = runtime.queues()
    dead: list = []

    async def in_dlq() -> bool:
        dead.extend(await queues.receive(INSPECT.dlq_name, wait_time_sec=0))
        return bool(dead)

    await run_worker_until(runtime, inspector, in_dlq)

    assert len(inspector.calls) == 5
    body = json.loads(dead[0].body)
    assert (body["kind"], body["link"], body["tries_before"]) == (
        "validate_order_group",
        "https://t.me/unreachable_channel",
        2,
    )
    row = await db.fetch_one("provider_order_by_remote_id", {"remote_order_id": order_id})
    assert (row["status"], row["provider_sending_at"]) == ("validating", None)
    assert row["provider_last_error"] == "validation gave up: NO_AVAILABLE_ACCOUNTS: all_attempts_exhausted"
