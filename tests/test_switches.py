"""Runtime switches flipped in Redis are obeyed: paused work waits without spending its receives."""

from __future__ import annotations

import pytest

from tgops import switches
from tgops.broadcast.jobs import QUEUE, BroadcastJob, TextContent
from tgops.messaging.envelopes import encode
from tgops.messaging.sqs import InMemoryQueues, Received
from tgops.messaging.topology import INSPECT
from tgops.orders.messages import ValidateOrderGroup
from tgops.runtime import Runtime


@pytest.fixture
async def runtime(settings):
    switches._read.clear()
    runtime = Runtime(settings, queue_sender=InMemoryQueues())
    yield runtime
    await runtime.close()
    switches._read.clear()


def received(body: str, receive_count: int = 1) -> Received:
    return Received("m-1", "r-1", body, receive_count)


async def test_a_paused_broadcast_comes_back_in_a_minute_without_spending_a_receive(runtime):
    from tgops.broadcast.consumer import handle

    await switches.flip(runtime.redis(), switches.PAUSE_BROADCASTS, True)
    job = BroadcastJob(content=TextContent(type="text", text="hello"), chat_ids=[-100])
    await handle(runtime, received(encode(job), receive_count=3))

    [again] = runtime.queues().sent
    assert (again.queue, again.body, again.delay_sec) == (QUEUE, encode(job), switches.PAUSED_RECHECK_SEC)


async def test_paused_inspection_holds_the_validation_job(runtime):
    from tgops.orders.validation import handle

    await switches.flip(runtime.redis(), switches.PAUSE_INSPECTION, True)
    job = ValidateOrderGroup(remote_service_id=1, link="t.me/durov")
    await handle(runtime, received(encode(job)))

    [again] = runtime.queues().sent
    assert (again.queue, again.delay_sec) == (INSPECT.name, switches.PAUSED_RECHECK_SEC)


async def test_the_setup_switch_overrides_the_setting_either_way(runtime):
    from tgops.accounts.dispatch import run

    assert runtime.settings.setup_enabled is False
    assert await run(runtime) == {"enabled": False}
    await switches.flip(runtime.redis(), switches.SETUP_ENABLED, True)
    assert (await run(runtime)).get("enabled", True) is not False
