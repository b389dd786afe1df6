"""The process-wide connections (Postgres pool, Redis client, SQS), opened on first use.

A Lambda container opens each once and keeps it for its later invocations; `tgops dev` and the
workers open them at start-up. Nothing connects at import time.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal

from tgops.config import Settings

if TYPE_CHECKING:
    from tgops.cache.client import RedisClient
    from tgops.db.database import Database
    from tgops.messaging.backend import QueueBackend, QueueSender
    from tgops.messaging.sqs import InMemoryQueues

log = logging.getLogger(__name__)
HEALTH_CHECK_TIMEOUT_SEC = 2.0
# The webhook's SQS sends: two attempts of at most 2 s to connect and 3 s to answer, so the thread ends
# soon after the send is cut off (settings.webhook_enqueue_timeout_sec), far inside API Gateway's 29 s.
INGRESS_SQS_BUDGET = {"connect_timeout_sec": 2, "read_timeout_sec": 3, "max_retries": 1}


@dataclass
class Runtime:
    settings: Settings
    # create_queues(settings) unless given (tests, benchmarks)
    queue_sender: QueueBackend | InMemoryQueues | None = None
    database_role: Literal["api", "worker"] = "worker"  # whose statement and lock timeouts to take
    _ingress_queues: QueueSender | None = field(default=None, init=False)
    _database: Database | None = field(default=None, init=False)
    _redis: RedisClient | None = field(default=None, init=False)
    _lock: asyncio.Lock = field(default_factory=asyncio.Lock, init=False)

    async def database(self) -> Database:
        if self._database is None:
            from tgops.db.database import Database

            async with self._lock:
                if self._database is None:
                    self._database = await Database.from_settings(self.settings, self.database_role)
        return self._database

    def redis(self) -> RedisClient:
        if self._redis is None:
            from tgops.cache.client import create_redis

            self._redis = create_redis(self.settings)
        return self._redis

    def queues(self) -> QueueBackend | InMemoryQueues:
        if self.queue_sender is None:
            self.queue_sender = create_queues(self.settings)
        return self.queue_sender

    def ingress_queues(self) -> QueueSender:
        """The webhook path's sender: on SQS a client of its own with a tight budget (the shared one
        waits long enough for receivers' long polls); any other backend as it is."""
        if self._ingress_queues is None:
            from tgops.messaging.sqs import SqsQueues

            queues = self.queues()
            is_sqs = type(queues) is SqsQueues
            self._ingress_queues = SqsQueues(self.settings, **INGRESS_SQS_BUDGET) if is_sqs else queues
        return self._ingress_queues

    async def health(self) -> dict[str, dict[str, str]]:
        checks = {"postgres": self._check_postgres, "redis": self._check_redis, "sqs": self._check_sqs}
        results = await asyncio.gather(*(_run_check(name, check) for name, check in checks.items()))
        return dict(zip(checks, results))

    async def _check_postgres(self) -> str:
        if not self.settings.database_url:
            return "not_configured"
        return "up" if await (await self.database()).ping() else "down"

    async def _check_redis(self) -> str:
        if not (self.settings.redis_url or self.settings.uses_upstash):
            return "not_configured"
        return "up" if await self.redis().ping() else "down"

    async def _check_sqs(self) -> str:
        queues = self.queues()
        if self.settings.queue_backend == "postgres":
            from tgops.messaging.topology import QUEUES

            await asyncio.to_thread(queues.depth, QUEUES[0].name)
            return "up"
        await asyncio.to_thread(
            queues.client.list_queues, QueueNamePrefix=self.settings.queue_prefix, MaxResults=1
        )
        return "up"

    async def close(self) -> None:
        if (close_queues := getattr(self.queue_sender, "aclose", None)) is not None:
            await close_queues()  # the Postgres queue backend's pool
        if self._database is not None:
            await self._database.close()
            self._database = None
        if self._redis is not None:
            await self._redis.aclose()
            self._redis = None


def create_queues(settings: Settings) -> QueueBackend:
    """The queue backend the settings choose (TGOPS_QUEUE_BACKEND): the local Postgres one, or SQS."""
    if settings.queue_backend == "postgres":
        from tgops.messaging.pg_queues import PgQueues

        return PgQueues.from_settings(settings)
    from tgops.messaging.sqs import SqsQueues

    return SqsQueues(settings)


async def _run_check(name: str, check) -> dict[str, str]:
    """Up, down or not configured; why a dependency is down goes to the log, never to the answer."""
    try:
        status = await asyncio.wait_for(check(), HEALTH_CHECK_TIMEOUT_SEC)
    except TimeoutError:
        log.warning("health: %s gave no answer within %.0fs", name, HEALTH_CHECK_TIMEOUT_SEC)
        return {"status": "down"}
    except Exception as error:  # noqa: BLE001 -- a health check reports every failure rather than raising
        log.warning("health: %s is down: %s: %s", name, type(error).__name__, error)
        return {"status": "down"}
    if status == "down":
        log.warning("health: %s answered, but not as expected", name)
    return {"status": status}


@contextmanager
def scheduled_run(
    name: str, *, event_id: object = None, function_request_id: str | None = None
) -> Iterator[None]:
    """One run of a schedule (on Lambda or in `tgops dev`): a correlation scope whose id is the
    EventBridge event's (a new one without it), so every line of the run and of the messages it
    queues carries that id; and an X-Ray span."""
    from tgops import correlation, tracing

    run_id = correlation.accepted_id(event_id) or correlation.new_id()
    with (
        correlation.scope(correlation_id=run_id, schedule=name, function_request_id=function_request_id),
        tracing.span(f"schedule {name}"),
    ):
        yield


def scheduled_handler(job: Callable[[Runtime], Awaitable[Any]]) -> Callable[[dict, Any], Any]:
    """A Lambda handler running `job(runtime)` per EventBridge tick. One event loop and one Runtime
    per container, so warm invocations reuse the Postgres pool and the Redis client.

    Each run is a `scheduled_run` under the EventBridge event's id."""
    from tgops.config import get_settings
    from tgops.logs import configure_logging

    loop = asyncio.new_event_loop()
    runtime = Runtime(get_settings())
    configure_logging(runtime.settings, service=job.__module__)

    def handler(event: dict, context: Any) -> Any:
        event_id = event.get("id") if isinstance(event, dict) else None
        with scheduled_run(
            job.__module__, event_id=event_id, function_request_id=getattr(context, "aws_request_id", None)
        ):
            return loop.run_until_complete(job(runtime))

    def close() -> None:
        """Close the connections and the loop (a Lambda container never needs to; tests do)."""
        loop.run_until_complete(runtime.close())
        loop.close()

    handler.close = close
    return handler
