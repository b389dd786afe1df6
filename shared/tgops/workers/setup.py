"""`python -m tgops.workers.setup`: the Fargate worker that consumes tg-setup-fast and tg-setup-media.

One process, one MTProto pool, one QueueWorker per setup queue (each with its queue's concurrency: the
media queue runs fewer uploads at once). SIGTERM stops receiving and lets running tasks finish within the
grace period, as the inspect worker does. The pool's counters are published as metrics every minute.
"""

from __future__ import annotations

import asyncio
import functools
import logging

from tgops.accounts import runner as setup_runner
from tgops.config import get_settings
from tgops.messaging.topology import SETUP_FAST, SETUP_MEDIA
from tgops.messaging.worker import QueueWorker, install_signal_handlers
from tgops.runtime import Runtime
from tgops.telegram.sessions import ClientFactory
from tgops.workers.inspect import POOL_METRICS_INTERVAL_SEC, PoolMetricsPublisher


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
        QueueWorker(runtime.queues(), queue, handler, wait_time_sec=wait_time_sec)
        for queue in (SETUP_FAST, SETUP_MEDIA)
    ]
    publisher = PoolMetricsPublisher(pool.metrics)
    publishing = asyncio.create_task(publisher.publish_every(POOL_METRICS_INTERVAL_SEC))
    try:
        await asyncio.gather(*(worker.run(stop) for worker in workers))
    finally:
        publishing.cancel()
        await asyncio.gather(publishing, return_exceptions=True)
        await pool.close()
        publisher.publish()
        await runtime.close()


async def main() -> None:
    stop = asyncio.Event()
    install_signal_handlers(stop)
    await serve(Runtime(get_settings()), stop)


if __name__ == "__main__":
    logging.basicConfig(
        level=get_settings().log_level, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    asyncio.run(main())
