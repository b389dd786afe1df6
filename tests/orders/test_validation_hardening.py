"""Issue 16 items 12 and 9: links no retry can inspect, jobs that gave up, claims of lost jobs, and the
group lock of a long job."""

from __future__ import annotations

import asyncio

import psycopg
import pytest

from tests.fakes.inspector import FakeInspector, temporary
from tgops.cache import keys
from tgops.messaging.errors import RetryLater
from tgops.messaging.topology import INSPECT
from tgops.orders.inspection_result import InspectionResult
from tgops.orders.messages import ValidateOrderGroup
from tgops.orders.validation import GroupValidator

from .test_validation import received

PRIVATE_POST = "https://t.me/c/1234567/89"


def private_post_answer() -> InspectionResult:
    """What tgops.orders.link_inspector answers for a t.me/c/ post: no retry can change it."""
    return InspectionResult(
        ok=False,
        link_kind="private_post",
        error_code="PRIVATE_POST_NOT_INSPECTABLE",
        reason="a t.me/c/ post can only be read by a member of the chat",
    )


def shift_order_times(database_url: str, remote_order_id: int, ago: str) -> None:
    """Move every timestamp of the order `ago` into the past, as if that much time had gone by."""
    with psycopg.connect(database_url, autocommit=True) as connection:
        columns = [
            row[0]
            for row in connection.execute(
                "SELECT column_name FROM information_schema.columns"
                " WHERE table_name = 'provider_orders' AND data_type = 'timestamp with time zone'"
            )
        ]
        assignments = ", ".join(f"{column} = {column} - interval '{ago}'" for column in columns)
        connection.execute(
            f"UPDATE provider_orders SET {assignments} WHERE remote_order_id = %s", (remote_order_id,)
        )


def inspect_jobs(queues) -> list[ValidateOrderGroup]:
    return [ValidateOrderGroup.model_validate_json(call.body) for call in queues.to(INSPECT.name)]


async def stored(db, remote_order_id):
    return await db.fetch_one("provider_order_by_remote_id", {"remote_order_id": remote_order_id})


async def test_a_private_post_link_is_a_verdict_not_a_retry(order_settings, panel, poller, db, redis, queues):
    order_id = panel.place_order(PRIVATE_POST)
    await poller.poll()
    [job] = inspect_jobs(queues)
    validator = GroupValidator(
        order_settings, db, redis, queues, FakeInspector(default=private_post_answer())
    )

    await validator.handle(received(job))  # no RetryLater: nothing a retry could change

    row = await stored(db, order_id)
    assert row["status"] == "depends_failed"
    assert row["provider_last_error"] == "a t.me/c/ post can only be read by a member of the chat"


async def test_a_job_that_gave_up_is_not_dispatched_again_by_polling(
    order_settings, panel, poller, db, redis, queues
):
    order_id = panel.place_order("t.me/unreachable")
    await poller.poll()
    [job] = inspect_jobs(queues)
    last_try = job.model_copy(update={"tries_before": order_settings.inspect_max_tries - 1})
    validator = GroupValidator(order_settings, db, redis, queues, FakeInspector(default=temporary()))
    with pytest.raises(RetryLater, match="gave up"):
        await validator.handle(received(last_try))
    queues.calls.clear()
    await redis.delete(keys.inspect_dispatch(keys.group_key(1, "https://t.me/unreachable")))  # 90 s later

    report = await poller.poll()

    assert inspect_jobs(queues) == [] and report.skipped["validation_gave_up"] == 1
    panel.orders[order_id]["link"] = "t.me/reachable"  # a new reason: the panel changed the link
    await poller.poll()
    assert [job.link for job in inspect_jobs(queues)] == ["https://t.me/reachable"]


class BlockingInspector:
    def __init__(self) -> None:
        self.started = asyncio.Event()

    async def inspect(self, link: str) -> InspectionResult:
        self.started.set()
        await asyncio.Event().wait()  # never answers: the process is about to die
        raise AssertionError("unreachable")


async def test_a_claim_left_by_a_job_lost_in_a_restart_is_stale_within_two_minutes(
    order_settings, panel, poller, db, redis, queues, database_url
):
    order_id = panel.place_order("t.me/alpha")
    await poller.poll()
    [job] = inspect_jobs(queues)
    inspector = BlockingInspector()
    validator = GroupValidator(order_settings, db, redis, queues, inspector)
    lost = asyncio.create_task(validator.handle(received(job)))
    await inspector.started.wait()
    lost.cancel()  # the worker is gone mid-job
    with pytest.raises(asyncio.CancelledError):
        await lost
    shift_order_times(database_url, order_id, "2 minutes")
    await redis.delete(keys.inspect_dispatch(keys.group_key(1, "https://t.me/alpha")))
    queues.calls.clear()

    report = await poller.poll()

    assert report.dispatched == 1, report.skipped


class SlowInspector:
    def __init__(self, delay_sec: float, on_the_way) -> None:
        self._delay_sec = delay_sec
        self._on_the_way = on_the_way
        self.seen: list = []

    async def inspect(self, link: str) -> InspectionResult:
        await asyncio.sleep(self._delay_sec)
        self.seen.append(await self._on_the_way())
        await asyncio.sleep(self._delay_sec)
        return FakeInspector().default


async def test_a_long_job_keeps_its_group_lock_and_its_claim(order_settings, panel, db, redis, queues):
    from tgops.orders.panel import HttpPanel
    from tgops.orders.polling import OrderPoller

    settings = order_settings.model_copy(
        update={"validate_group_lock_sec": 1, "validation_claim_stale_sec": 1}
    )
    order_id = panel.place_order("t.me/alpha")
    http_panel = HttpPanel.from_settings(settings)
    poller = OrderPoller(settings, db, redis, queues, http_panel)
    await poller.poll()
    [job] = inspect_jobs(queues)
    group = keys.group_key(1, "https://t.me/alpha")

    async def lock_and_claim():
        await redis.delete(keys.inspect_dispatch(group))
        report = await poller.poll()
        return await redis.get(keys.validate_group(group)) is not None, report.skipped["being_sent"]

    inspector = SlowInspector(1.5, lock_and_claim)
    try:
        await GroupValidator(settings, db, redis, queues, inspector).handle(received(job))
    finally:
        await http_panel.aclose()

    assert inspector.seen == [(True, 1)]  # 1.5 s into a job with a 1 s lock and a 1 s claim
    assert (await stored(db, order_id))["status"] != "validating"
    assert await redis.get(keys.validate_group(group)) is None  # released at the end
