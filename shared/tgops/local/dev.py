"""`tgops dev`: the whole system in one process on this machine.

Whatever has no URL configured is started locally: Postgres and Redis with their data under
`<data_dir>/` (reused next time), and a fake SMM panel (tgops.local.fake_panel). Without
TGOPS_SQS_ENDPOINT_URL the queues are tables in that Postgres (tgops.messaging.pg_queues), so
nothing queued is lost across a restart or a crash.
Then: migrations, queues, the API on 127.0.0.1:8000, every queue consumer and every schedule.
Without Telegram API credentials, Telegram is simulated (tgops.telegram.simulated) and a few simulated
probe accounts are seeded in the embedded database; without TGOPS_SESSION_ENCRYPTION_KEY, sessions are
encrypted with a key generated once under `<data_dir>/`, and so are the provider token, the admin token
and the webhook secret when they are not configured (`tgops dev tokens` prints them).
One per data directory (tgops.local.dev_state holds the lock and what the commands beside it read); a
taken API port or a configured SQS endpoint that nothing answers at stops it before anything starts.
Once the API answers, a summary says what runs and what does not yet. Ctrl-C stops it all cleanly.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
import socket
import urllib.parse
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import uvicorn

from tgops.config import PLACEHOLDER, Settings, get_settings
from tgops.errors import StartupError
from tgops.local.dev_state import (
    LOCAL_TOKENS,
    TOKENS_FILE,
    AlreadyRunning,
    DevLock,
    clear_dev_state,
    local_tokens,
    write_dev_state,
)
from tgops.local.services import LocalPostgres, LocalRedis, LocalServiceError
from tgops.logs import configure_logging

if TYPE_CHECKING:
    from tgops.db.database import Database

SERVICE_NAMES = {LocalPostgres: "Postgres", LocalRedis: "Redis"}

log = logging.getLogger("tgops.dev")
SESSION_KEY_FILE = "session-encryption.key"
ENDPOINT_CHECK_TIMEOUT_SEC = 3
API_START_POLL_SEC = 0.05


@dataclass
class EmbeddedServices:
    settings: Settings
    started: list = field(default_factory=list)

    def start(self) -> dict[str, str]:
        """Start what is not configured; return the variables that point at them."""
        data_dir = self.settings.data_dir.resolve()
        urls: dict[str, str] = {}
        if not self.settings.database_url:
            urls["TGOPS_DATABASE_URL"] = self._start(LocalPostgres(data_dir / "postgres"))
        if not (self.settings.redis_url or self.settings.uses_upstash):
            urls["TGOPS_REDIS_URL"] = self._start(LocalRedis(data_dir / "redis"))
        if self.settings.queue_backend is None and not self.settings.sqs_endpoint_url:
            urls["TGOPS_QUEUE_BACKEND"] = "postgres"
        elif self.settings.sqs_endpoint_url:
            urls |= emulator_credentials()
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
        try:
            url = service.start()
        except LocalServiceError as error:
            raise StartupError(str(error)) from None
        self.started.append(service)
        log.info("started embedded %s at %s", SERVICE_NAMES.get(type(service), type(service).__name__), url)
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
        applied = apply_migrations(settings.database_url or "")
    except Exception as error:  # noqa: BLE001 -- start-up names the setting, whatever failed
        raise StartupError(f"TGOPS_DATABASE_URL: cannot migrate the database: {error}") from None
    if applied:
        log.info("applied migrations %s", ", ".join(applied))
    from tgops.runtime import create_queues

    try:
        create_queues(settings).ensure_queues()
    except Exception as error:  # noqa: BLE001 -- start-up names the setting, whatever failed
        setting = "TGOPS_DATABASE_URL" if settings.queue_backend == "postgres" else "TGOPS_SQS_ENDPOINT_URL"
        raise StartupError(f"{setting}: cannot create the queues: {error}") from None
    if settings.queue_backend == "postgres":
        log.info("queues: durable, in Postgres (set TGOPS_SQS_ENDPOINT_URL to use an SQS emulator)")


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


async def serve(settings: Settings, stop: asyncio.Event, *, started: dict[str, str] | None = None) -> None:
    """Serve until `stop` is set; `started` holds what this run started for itself (EmbeddedServices)."""
    started = started or {}
    from tgops.accounts.runner import close_shared_runner
    from tgops.api.app import create_app, freeze_loaded_objects
    from tgops.groups.backfill_worker import close_shared_pool as close_backfill_pool
    from tgops.local.loops import background_tasks
    from tgops.orders.validation import close_shared_inspector
    from tgops.runtime import Runtime

    runtime = Runtime(settings)
    await check_redis(settings)
    embedded_database = "TGOPS_DATABASE_URL" in started
    await prepare_telegram(settings, await runtime.database(), embedded_database=embedded_database)
    server = _Server(
        uvicorn.Config(
            create_app(runtime),
            host=settings.api_host,
            port=settings.api_port,
            log_level="warning",
            log_config=None,  # uvicorn's lines go through tgops.logs like every other
        )
    )
    freeze_loaded_objects()
    api = asyncio.create_task(server.serve(), name="api")
    tasks = [api, *background_tasks(runtime, stop)]
    while not (server.started or api.done() or stop.is_set()):
        await asyncio.sleep(API_START_POLL_SEC)
    if server.started:
        log.info("\n".join(startup_summary(settings, started)))
    else:
        stop.set()  # the API could not start (uvicorn said why): stop the rest too
    await stop.wait()
    server.should_exit = True
    await asyncio.gather(*tasks, return_exceptions=True)
    await close_shared_inspector(runtime)
    await close_shared_runner(runtime)
    await close_backfill_pool(runtime)
    await runtime.close()


def startup_summary(settings: Settings, started: dict[str, str]) -> list[str]:
    """What runs in this `tgops dev` and what does not yet, one line each."""
    from tgops.handlers import QUEUE_HANDLERS, SCHEDULE_HANDLERS
    from tgops.messaging.topology import QUEUES, SCHEDULES

    url = api_url(settings)
    rows = [
        (
            "data",
            f"{settings.data_dir.resolve()} (one tgops dev per folder; commands run here find this one)",
        ),
        ("postgres", _where(started, "TGOPS_DATABASE_URL", "embedded")),
        ("redis", _where(started, "TGOPS_REDIS_URL", "embedded")),
        ("queues", _queue_backend(settings, started)),
        (
            "panel",
            _where(started, "TGOPS_PANEL_BASE_URL", "fake SMM panel", "`tgops panel order` places orders"),
        ),
        ("telegram", _telegram(settings)),
        ("tokens", _tokens(settings, started)),
    ]
    consumed = [spec.name for spec in QUEUES if spec.name in QUEUE_HANDLERS]
    idle = [spec.name for spec in QUEUES if spec.name not in QUEUE_HANDLERS]
    rows.append(("consumed", ", ".join(consumed) or "none"))
    if idle:
        rows.append(
            ("not consumed", f"{', '.join(idle)}: no consumer yet, what is sent there waits in the queue")
        )
    scheduled = [
        f"{schedule.name} every {settings.dev_schedule_period_sec or schedule.rate_minutes * 60:g}s"
        for schedule in SCHEDULES
        if schedule.name in SCHEDULE_HANDLERS
    ]
    unscheduled = [schedule.name for schedule in SCHEDULES if schedule.name not in SCHEDULE_HANDLERS]
    rows.append(("schedules", ", ".join(scheduled) or "none"))
    if unscheduled:
        rows.append(("not scheduled", f"{', '.join(unscheduled)}: no handler yet"))
    width = max(len(label) for label, _ in rows)
    return [
        f"tgops is up: {url} (/docs, /health); Ctrl-C stops it",
        *(f"  {label:<{width}}  {text}" for label, text in rows),
    ]


def _where(started: dict[str, str], variable: str, what: str, hint: str = "") -> str:
    if variable not in started:
        return f"configured ({variable})"
    return f"{what} at {started[variable]}" + (f" ({hint})" if hint else "")


def _queue_backend(settings: Settings, started: dict[str, str]) -> str:
    """The one place that says which queue backend this run uses."""
    if settings.queue_backend == "postgres":
        return "durable, in Postgres (TGOPS_SQS_ENDPOINT_URL to use an SQS emulator)"
    if settings.sqs_endpoint_url:
        return f"SQS at {settings.sqs_endpoint_url} (TGOPS_SQS_ENDPOINT_URL)"
    return f"AWS SQS in {settings.aws_region}"


def _telegram(settings: Settings) -> str:
    bot_api = (
        "Bot API calls skipped (no TGOPS_TELEGRAM_BOT_TOKEN)"
        if settings.telegram_bot_token.get_secret_value() in ("", PLACEHOLDER)
        else "Bot API real (TGOPS_TELEGRAM_BOT_TOKEN)"
    )
    mtproto = "simulated (tgops.telegram.simulated)" if settings.uses_simulated_telegram else "real"
    return f"MTProto {mtproto}; {bot_api}"


def _tokens(settings: Settings, started: dict[str, str]) -> str:
    generated = [name for name in LOCAL_TOKENS if name in started]
    configured = [name for name in LOCAL_TOKENS if name not in started]
    kept = settings.data_dir.resolve() / TOKENS_FILE
    parts = [f"local ones: `tgops dev tokens` prints them (kept in {kept})"] if generated else []
    parts += [f"configured: {', '.join(configured)}"] if configured else []
    return "; ".join(parts)


def install_stop_signals(loop: asyncio.AbstractEventLoop, stop: asyncio.Event) -> None:
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)


def run_dev() -> None:
    """Lock the data directory, check the API port, then start everything; a failure is a StartupError."""
    settings = get_settings()
    data_dir = settings.data_dir.resolve()
    lock = DevLock(data_dir)
    try:
        lock.acquire(url=api_url(settings))
    except AlreadyRunning as error:
        raise StartupError(str(error)) from None
    try:
        check_port_free(settings)
        if settings.sqs_endpoint_url:
            check_reachable("TGOPS_SQS_ENDPOINT_URL", settings.sqs_endpoint_url)
        _run_locked(settings, data_dir)
    finally:
        lock.release()


def _run_locked(settings: Settings, data_dir: Path) -> None:
    services = EmbeddedServices(settings)
    try:
        values = services.start() | local_secrets(settings, data_dir)
        os.environ.update(values)
        # Everything this run set for itself, for the commands run beside it (tgops.cli.support).
        write_dev_state(
            data_dir, values | {"TGOPS_API_HOST": settings.api_host, "TGOPS_API_PORT": str(settings.api_port)}
        )
        get_settings.cache_clear()
        settings = get_settings()
        configure_logging(settings, service="dev")  # now knowing the secrets generated for this run
        prepare_dependencies(settings)

        async def main() -> None:
            stop = asyncio.Event()
            install_stop_signals(asyncio.get_running_loop(), stop)
            await serve(settings, stop, started=values)

        asyncio.run(main())
    finally:
        clear_dev_state(data_dir)
        services.stop()


def api_url(settings: Settings) -> str:
    return f"http://{settings.api_host}:{settings.api_port}"


def check_port_free(settings: Settings) -> None:
    """Find a taken API port before anything starts, naming the setting that moves it."""
    family = socket.AF_INET6 if ":" in settings.api_host else socket.AF_INET
    with socket.socket(family) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as uvicorn binds: TIME_WAIT is no user
        try:
            probe.bind((settings.api_host, settings.api_port))
        except OSError as error:
            raise StartupError(
                f"TGOPS_API_PORT: {settings.api_host}:{settings.api_port} is not free ({error.strerror}); "
                "set TGOPS_API_PORT or pass `tgops dev --port N` to use another port"
            ) from None


def emulator_credentials() -> dict[str, str]:
    """SQS emulators take any credentials: without AWS ones configured, boto3 gets placeholders rather
    than failing with "Unable to locate credentials" before it ever reaches the endpoint."""
    if "AWS_ACCESS_KEY_ID" in os.environ or "AWS_PROFILE" in os.environ:
        return {}
    return {"AWS_ACCESS_KEY_ID": "local", "AWS_SECRET_ACCESS_KEY": "local"}


def check_reachable(setting: str, url: str) -> None:
    """A configured endpoint that nothing answers at is named, with the setting, before anything starts."""
    parsed = urllib.parse.urlsplit(url)
    port = parsed.port or (443 if parsed.scheme == "https" else 80)
    try:
        socket.create_connection((parsed.hostname, port), timeout=ENDPOINT_CHECK_TIMEOUT_SEC).close()
    except OSError as error:
        raise StartupError(f"{setting}: nothing answers at {url} ({error.strerror or error})") from None


def local_secrets(settings: Settings, data_dir: Path) -> dict[str, str]:
    """The secrets this run generates for whatever is not configured, kept under `data_dir` so the next
    run and the commands beside it use the same ones. Only in development: elsewhere none is generated."""
    if settings.env != "development":
        return {}
    generated = {}
    if settings.session_encryption_key.get_secret_value() == PLACEHOLDER:
        generated["TGOPS_SESSION_ENCRYPTION_KEY"] = local_session_key(data_dir)
    unset = [name for name in LOCAL_TOKENS if _secret_of(settings, name) == PLACEHOLDER]
    if unset:
        tokens = local_tokens(data_dir)
        generated |= {name: tokens[name] for name in unset}
        log.info(
            "local %s: `tgops dev tokens` prints them (kept in %s)",
            ", ".join(name.removeprefix("TGOPS_").lower().replace("_", " ") for name in unset),
            data_dir / TOKENS_FILE,
        )
    return generated


def _secret_of(settings: Settings, variable: str) -> str:
    return getattr(settings, variable.removeprefix("TGOPS_").lower()).get_secret_value()
