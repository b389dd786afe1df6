"""`python -m tgops.workers.inspect`: the Fargate worker that consumes tg-inspect (order validation, and
join-request backfills through the same pool: tgops.workers.inspect_queue).

One process drives many jobs at once (the queue's consumer concurrency), all sharing one MTProto
pool; stopping and metrics as every worker (tgops.workers.process).
"""

from __future__ import annotations

import asyncio
import functools

from tgops.messaging.topology import INSPECT
from tgops.messaging.worker import QueueWorker
from tgops.orders.link_inspector import create_inspector
from tgops.runtime import Runtime
from tgops.telegram.sessions import ClientFactory
from tgops.workers import inspect_queue
from tgops.workers.process import consume, run


async def serve(
    runtime: Runtime,
    stop: asyncio.Event,
    *,
    client_factory: ClientFactory | None = None,
    wait_time_sec: int = 20,
) -> None:
    """Consume tg-inspect until `stop` is set; `client_factory` replaces Telethon (a simulated Telegram)."""
    inspector, pool = create_inspector(
        runtime.settings, db=await runtime.database(), redis=runtime.redis(), client_factory=client_factory
    )
    handler = functools.partial(inspect_queue.handle, runtime, inspector=inspector, pool=pool)
    worker = QueueWorker(
        runtime.queues(), INSPECT, handler, wait_time_sec=wait_time_sec, database=runtime.database
    )
    await consume(runtime, stop, pool, [worker])


if __name__ == "__main__":
    run(serve, service="tg-inspect")
