"""What every Fargate worker process shares: its pool's metrics, its queues' consumers, its start and stop.

SIGTERM (ECS stopping the task) stops receiving, lets running jobs finish within the grace period and gives
every unfinished message back to its queue. The pool's counters are published as metrics every minute and
once more on the way out.
"""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import Awaitable, Callable

from tgops import metrics
from tgops.config import get_settings
from tgops.logs import configure_logging
from tgops.messaging.worker import QueueWorker, install_signal_handlers
from tgops.runtime import Runtime
from tgops.telegram.pool import MtprotoPool, PoolMetrics

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


async def consume(
    runtime: Runtime, stop: asyncio.Event, pool: MtprotoPool, workers: list[QueueWorker]
) -> None:
    """Run the queue workers until `stop` is set, then close the pool and the runtime."""
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


def run(serve: Callable[[Runtime, asyncio.Event], Awaitable[None]], *, service: str) -> None:
    """The `__main__` of a worker: the one logging set-up, signals, then `serve` until SIGTERM."""
    configure_logging(get_settings(), service=service)

    async def main() -> None:
        stop = asyncio.Event()
        install_signal_handlers(stop)
        await serve(Runtime(get_settings()), stop)

    asyncio.run(main())
