"""`tgops dev`: the whole system in one process on this machine.

Whatever has no URL configured is started locally: Postgres and Redis with their data under
`<data_dir>/` (reused next time), moto's SQS server, and a fake SMM panel (tgops.local.fake_panel).
Then: migrations, queues, the API on 127.0.0.1:8000, every queue consumer and every schedule.
Without Telegram API credentials, Telegram is simulated (tgops.telegram.simulated) and a few simulated
probe accounts are seeded in the embedded database; without TGOPS_SESSION_ENCRYPTION_KEY, sessions are
encrypted with a key generated once under `<data_dir>/`. Ctrl-C stops it all cleanly.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import uvicorn

from tgops.config import PLACEHOLDER, Settings, get_settings
from tgops.local.dev_state import clear_dev_state, write_dev_state
from tgops.local.services import LocalPostgres, LocalRedis, LocalSqs

if TYPE_CHECKING:
    from tgops.db.database import Database

log = logging.getLogger("tgops.dev")
SESSION_KEY_FILE = "session-encryption.key"


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
        if not self.settings.panel_base_url:
            urls |= self._start_fake_panel(data_dir)
        return urls

    def _start_fake_panel(self, data_dir: Path) -> dict[str, str]:
        from tgops.local.fake_panel import DEV_API_KEY, FakePanel

        data_dir.mkdir(parents=True, exist_ok=True)
        try:
            panel = FakePanel(api_key=DEV_API_KEY, state_file=data_dir / "fake-panel.json").start()
        except (OSError, ValueError) as error:
            raise StartupError(
                f"TGOPS_PANEL_BASE_URL: not set, and the fake panel did not start: {error}"
            ) from None
        self.started.append(panel)
        log.info(
            "started the fake SMM panel at %s (API key %s); place orders with `tgops panel order`",
            panel.url, DEV_API_KEY,
        )  # fmt: skip
        return {"TGOPS_PANEL_BASE_URL": panel.url, "TGOPS_PANEL_API_KEY": DEV_API_KEY}

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
    except Exception as error:  # noqa: BLE001 -- start-up names the setting, whatever failed
        raise StartupError(f"TGOPS_DATABASE_URL: cannot migrate the database: {error}") from None
    if applied:
        log.info("applied migrations %s", ", ".join(applied))
    try:
        from tgops.messaging.sqs import SqsQueues

        SqsQueues(settings).ensure_queues()
    except Exception as error:  # noqa: BLE001 -- start-up names the setting, whatever failed
        raise StartupError(f"TGOPS_SQS_ENDPOINT_URL: cannot create the queues: {error}") from None


async def check_redis(settings: Settings) -> None:
    from tgops.cache.client import create_redis

    setting = "TGOPS_UPSTASH_REDIS_REST_URL" if settings.uses_upstash else "TGOPS_REDIS_URL"
    client = create_redis(settings)
    try:
        await asyncio.wait_for(client.ping(), 5)
    except Exception as error:  # noqa: BLE001 -- start-up names the setting, whatever failed
        raise StartupError(f"{setting}: cannot reach Redis: {error}") from None
    finally:
        await client.aclose()


class _Server(uvicorn.Server):
    """uvicorn without its own signal handling: `tgops dev` owns Ctrl-C for every part."""

    @contextlib.contextmanager
    def capture_signals(self):
        yield


def local_session_key(data_dir: Path) -> str:
    """A session encryption key kept under `data_dir`: sessions stored by one run are readable by the next."""
    from cryptography.fernet import Fernet

    path = data_dir / SESSION_KEY_FILE
    if not path.exists():
        data_dir.mkdir(parents=True, exist_ok=True)
        with os.fdopen(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600), "wb") as file:
            file.write(Fernet.generate_key())
        log.info("generated a local session encryption key in %s", path)
    return path.read_text().strip()


async def prepare_telegram(settings: Settings, db: Database, *, embedded_database: bool) -> None:
    """Simulated Telegram: say so and give the pool probe accounts. Real: retire the simulated accounts."""
    from tgops.telegram import simulated
    from tgops.telegram.sessions import SessionCipher, SessionKeyError

    if not settings.uses_simulated_telegram:
        if retired := await simulated.retire_simulated_accounts(db):
            log.info("deactivated %d simulated probe accounts: Telegram is real in this run", retired)
        return
    bot_api = (
        "Bot API getChat skipped (no TGOPS_TELEGRAM_BOT_TOKEN)"
        if settings.telegram_bot_token.get_secret_value() in ("", PLACEHOLDER)
        else "Bot API getChat still goes out with TGOPS_TELEGRAM_BOT_TOKEN"
    )
    log.warning(
        "Telegram is simulated: MTProto lookups are answered locally by tgops.telegram.simulated, %s. "
        "Set TGOPS_TELEGRAM_API_ID and TGOPS_TELEGRAM_API_HASH to use the real Telegram.",
        bot_api,
    )
    if not embedded_database:
        log.warning(
            "TGOPS_DATABASE_URL is configured: no simulated probe accounts are added to it, so lookups find "
            "no account unless it has probe accounts of its own"
        )
        return
    try:
        cipher = SessionCipher.from_settings(settings)
    except SessionKeyError as error:
        raise StartupError(str(error)) from None
    ids = await simulated.seed_probe_accounts(db, cipher)
    log.info("simulated probe accounts ready: ids %s", ", ".join(map(str, ids)))
    if count := settings.dev_simulated_action_accounts:
        banned = min(settings.dev_simulated_banned_accounts, count)
        ids = await simulated.seed_action_accounts(db, cipher, count, banned=banned)
        log.info("simulated action accounts ready (%d banned): ids %s", banned, ", ".join(map(str, ids)))


async def serve(settings: Settings, stop: asyncio.Event, *, embedded_database: bool = False) -> None:
    from tgops.accounts.runner import close_shared_runner
    from tgops.api.app import create_app, freeze_loaded_objects
    from tgops.local.loops import background_tasks
    from tgops.orders.validation import close_shared_inspector
    from tgops.runtime import Runtime

    runtime = Runtime(settings)
    await check_redis(settings)
    await prepare_telegram(settings, await runtime.database(), embedded_database=embedded_database)
    server = _Server(
        uvicorn.Config(
            create_app(runtime), host=settings.api_host, port=settings.api_port, log_level="warning"
        )
    )
    freeze_loaded_objects()
    tasks = [asyncio.create_task(server.serve(), name="api")]
    tasks += background_tasks(runtime, stop)
    log.info("tgops is up: http://%s:%s/health", settings.api_host, settings.api_port)
    await stop.wait()
    server.should_exit = True
    await asyncio.gather(*tasks, return_exceptions=True)
    await close_shared_inspector(runtime)
    await close_shared_runner(runtime)
    await runtime.close()


def install_stop_signals(loop: asyncio.AbstractEventLoop, stop: asyncio.Event) -> None:
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)


def run_dev(on_ready: Callable[[Settings], None] | None = None) -> None:
    settings = get_settings()
    services = EmbeddedServices(settings)
    data_dir = settings.data_dir.resolve()
    try:
        embedded = services.start()
        os.environ.update(embedded)
        write_dev_state(data_dir, embedded)
        if settings.session_encryption_key.get_secret_value() == PLACEHOLDER:
            os.environ["TGOPS_SESSION_ENCRYPTION_KEY"] = local_session_key(data_dir)
        get_settings.cache_clear()
        settings = get_settings()
        prepare_dependencies(settings)
        if on_ready:
            on_ready(settings)

        async def main() -> None:
            stop = asyncio.Event()
            install_stop_signals(asyncio.get_running_loop(), stop)
            await serve(settings, stop, embedded_database="TGOPS_DATABASE_URL" in embedded)

        asyncio.run(main())
    finally:
        clear_dev_state(data_dir)
        services.stop()
