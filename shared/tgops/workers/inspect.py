"""`python -m tgops.workers.inspect`: the Fargate worker that consumes tg-inspect.

One process drives many jobs at once (the queue's consumer concurrency), all sharing one MTProto
pool. SIGTERM (ECS stopping the task) stops receiving, lets running jobs finish within the grace
period and gives every unfinished message back to the queue. The pool's counters are published as
metrics every minute and once more on the way out.
"""

from __future__ import annotations

import asyncio
import functools
from collections import Counter

from tgops import metrics
from tgops.config import get_settings
from tgops.logs import configure_logging
from tgops.messaging.topology import INSPECT
from tgops.messaging.worker import QueueWorker, install_signal_handlers
from tgops.orders import validation
from tgops.orders.link_inspector import create_inspector
from tgops.runtime import Runtime
from tgops.telegram.pool import PoolMetrics
from tgops.telegram.sessions import ClientFactory

POOL_METRICS_INTERVAL_SEC = 60.0  # CloudWatch's standard resolution
POOL_METRIC = "MtprotoPoolOutcomes"


class PoolMetricsPublisher:
    """Publishes what the pool counted since the last publish, so each outcome is counted once."""

    def __init__(self, pool_metrics: PoolMetrics) -> None:
        self._pool_metrics = pool_metrics
        self._published: Counter[str] = Counter()

    def publish(self) -> None:
        current = Counter(self._pool_metrics.snapshot())
        for outcome, value in (current - self._published).items():
            metrics.count(POOL_METRIC, value, outcome=outcome)
        self._published = current

    async def publish_every(self, interval_sec: float) -> None:
        while True:
            await asyncio.sleep(interval_sec)
            self.publish()


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
    handler = functools.partial(validation.handle, runtime, inspector=inspector)
    worker = QueueWorker(
        runtime.queues(), INSPECT, handler, wait_time_sec=wait_time_sec, database=runtime.database
    )
    publisher = PoolMetricsPublisher(pool.metrics)
    publishing = asyncio.create_task(publisher.publish_every(POOL_METRICS_INTERVAL_SEC))
    try:
        await worker.run(stop)
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
    configure_logging(get_settings(), service="tg-inspect")
    asyncio.run(main())
