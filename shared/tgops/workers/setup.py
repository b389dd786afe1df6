"""`python -m tgops.workers.setup`: the Fargate worker that consumes tg-setup-fast and tg-setup-media.

One process, one MTProto pool, one QueueWorker per setup queue (each with its queue's concurrency: the
media queue runs fewer uploads at once). SIGTERM stops receiving and lets running tasks finish within the
grace period, as the inspect worker does. The pool's counters are published as metrics every minute.
"""

from __future__ import annotations

import asyncio
import functools

from tgops.accounts import runner as setup_runner
from tgops.messaging.topology import SETUP_FAST, SETUP_MEDIA
from tgops.messaging.worker import QueueWorker
from tgops.runtime import Runtime
from tgops.telegram.sessions import ClientFactory
from tgops.workers.process import consume, run


async def serve(
    runtime: Runtime,
    stop: asyncio.Event,
    *,
    client_factory: ClientFactory | None = None,
    wait_time_sec: int = 20,
) -> None:
    """Consume both setup queues until `stop` is set; `client_factory` replaces Telethon (a simulated Telegram)."""
    runner, pool = setup_runner.create_runner(
        runtime.settings, db=await runtime.database(), redis=runtime.redis(), client_factory=client_factory
    )
    handler = functools.partial(setup_runner.handle, runtime, runner=runner)
    workers = [
        QueueWorker(runtime.queues(), queue, handler, wait_time_sec=wait_time_sec, database=runtime.database)
        for queue in (SETUP_FAST, SETUP_MEDIA)
    ]
    await consume(runtime, stop, pool, workers)


if __name__ == "__main__":
    run(serve, service="tg-setup")
