"""`tgops dev`: the whole system in one process on this machine.

Whatever has no URL configured is started locally: Postgres and Redis with their data under
`<data_dir>/` (reused next time), and moto's SQS server. Then: migrations, queues, the API on
127.0.0.1:8000, every queue consumer and every schedule. Ctrl-C stops it all cleanly.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
from collections.abc import Callable
from dataclasses import dataclass, field

import uvicorn

from tgops.config import Settings, get_settings
from tgops.local.services import LocalPostgres, LocalRedis, LocalSqs

log = logging.getLogger("tgops.dev")


class StartupError(Exception):
    """One line naming the setting that stopped start-up."""


@dataclass
class EmbeddedServices:
    settings: Settings
    started: list = field(default_factory=list)

    def start(self) -> dict[str, str]:
        """Start what is not configured; return the TGOPS_* variables that point at them."""
        data_dir = self.settings.data_dir.resolve()
        urls: dict[str, str] = {}
        if not self.settings.database_url:
            urls["TGOPS_DATABASE_URL"] = self._start(LocalPostgres(data_dir / "postgres"))
        if not (self.settings.redis_url or self.settings.uses_upstash):
            urls["TGOPS_REDIS_URL"] = self._start(LocalRedis(data_dir / "redis"))
        if not self.settings.sqs_endpoint_url:
            urls["TGOPS_SQS_ENDPOINT_URL"] = self._start(LocalSqs())
            for name, value in (("AWS_ACCESS_KEY_ID", "local"), ("AWS_SECRET_ACCESS_KEY", "local")):
                os.environ.setdefault(name, value)
        return urls

    def _start(self, service) -> str:
        url = service.start()
        self.started.append(service)
        log.info("started embedded %s at %s", type(service).__name__.removeprefix("Local"), url)
        return url

    def stop(self) -> None:
        for service in reversed(self.started):
            with contextlib.suppress(Exception):
                service.stop()
        self.started.clear()


def prepare_dependencies(settings: Settings) -> None:
    """Migrate, create queues and reach Redis; a failure names the setting to fix."""
    from tgops.db.migrate import apply_migrations

    try:
        applied = apply_migrations(settings.database_url)
    except Exception as error:
        raise StartupError(f"TGOPS_DATABASE_URL: cannot migrate the database: {error}") from None
    if applied:
        log.info("applied migrations %s", ", ".join(applied))
    try:
        from tgops.messaging.sqs import SqsQueues

        SqsQueues(settings).ensure_queues()
    except Exception as error:
        raise StartupError(f"TGOPS_SQS_ENDPOINT_URL: cannot create the queues: {error}") from None


async def check_redis(settings: Settings) -> None:
    from tgops.cache.client import create_redis

    setting = "TGOPS_UPSTASH_REDIS_REST_URL" if settings.uses_upstash else "TGOPS_REDIS_URL"
    client = create_redis(settings)
    try:
        await asyncio.wait_for(client.ping(), 5)
    except Exception as error:
        raise StartupError(f"{setting}: cannot reach Redis: {error}") from None
    finally:
        await client.aclose()


class _Server(uvicorn.Server):
    """uvicorn without its own signal handling: `tgops dev` owns Ctrl-C for every part."""

    @contextlib.contextmanager
    def capture_signals(self):
        yield


async def serve(settings: Settings, stop: asyncio.Event) -> None:
    from tgops.api.app import create_app
    from tgops.local.loops import background_tasks
    from tgops.runtime import Runtime

    runtime = Runtime(settings)
    await check_redis(settings)
    server = _Server(
        uvicorn.Config(create_app(runtime), host=settings.api_host, port=settings.api_port, log_level="warning")
    )
    tasks = [asyncio.create_task(server.serve(), name="api")]
    tasks += background_tasks(runtime, stop)
    log.info("tgops is up: http://%s:%s/health", settings.api_host, settings.api_port)
    await stop.wait()
    server.should_exit = True
    await asyncio.gather(*tasks, return_exceptions=True)
    await runtime.close()


def install_stop_signals(loop: asyncio.AbstractEventLoop, stop: asyncio.Event) -> None:
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)


def run_dev(on_ready: Callable[[Settings], None] | None = None) -> None:
    settings = get_settings()
    services = EmbeddedServices(settings)
    try:
        os.environ.update(services.start())
        get_settings.cache_clear()
        settings = get_settings()
        prepare_dependencies(settings)
        if on_ready:
            on_ready(settings)

        async def main() -> None:
            stop = asyncio.Event()
            install_stop_signals(asyncio.get_running_loop(), stop)
            await serve(settings, stop)

        asyncio.run(main())
    finally:
        services.stop()
