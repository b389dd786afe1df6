"""Fixtures for the provider pull tests: real Postgres and Redis, the API in process."""

from __future__ import annotations

from collections.abc import AsyncIterator

import httpx
import psycopg
import pytest

from tgops.api.app import create_app
from tgops.config import Settings
from tgops.runtime import Runtime

PROVIDER_TOKEN = "test-provider_token"  # what tests/conftest.py's `settings` sets


@pytest.fixture
async def runtime(settings: Settings) -> AsyncIterator[Runtime]:
    runtime = Runtime(settings)
    yield runtime
    await runtime.close()


@pytest.fixture
async def api(runtime: Runtime) -> AsyncIterator[httpx.AsyncClient]:
    """The provider API with the right token."""
    transport = httpx.ASGITransport(app=create_app(runtime))
    async with httpx.AsyncClient(
        transport=transport, base_url="http://tgops.test", headers={"X-Provider-Token": PROVIDER_TOKEN}
    ) as client:
        yield client


def add_order(
    database_url: str,
    *,
    remains: int,
    link: str = "https://t.me/channel",
    action: str | None = "subscribe",
    per_call: int = 1,
    interval_seconds: int = 60,
    due: bool = True,
    status: str = "awaiting",
    remote_service_id: int = 1,
) -> int:
    with psycopg.connect(database_url, autocommit=True) as connection:
        row = connection.execute(
            "INSERT INTO provider_orders (remote_order_id, remote_service_id, raw_link, link, quantity, remains,"
            " status, next_run_at, interval_seconds, action, per_call)"
            " VALUES ((SELECT coalesce(max(remote_order_id), 0) + 1 FROM provider_orders), %s, %s, %s, %s, %s,"
            " %s, now() + CASE WHEN %s THEN interval '-1 second' ELSE interval '1 hour' END, %s, %s, %s)"
            " RETURNING id",
            (
                remote_service_id,
                link,
                link,
                remains,
                remains,
                status,
                due,
                interval_seconds,
                action,
                per_call,
            ),
        ).fetchone()
    return row[0]


def add_accounts(database_url: str, count: int, *, first: int = 1) -> list[int]:
    with psycopg.connect(database_url, autocommit=True) as connection:
        rows = connection.execute(
            "INSERT INTO telegram_accounts (provider_account_id, phone)"
            " SELECT 'ext_' || n, '+1555' || lpad(n::text, 7, '0') FROM generate_series(%s::int, %s::int) AS n"
            " RETURNING id",
            (first, first + count - 1),
        ).fetchall()
    return [row[0] for row in rows]


def fetch(database_url: str, sql: str, params: tuple = ()) -> list[tuple]:
    with psycopg.connect(database_url, autocommit=True) as connection:
        return connection.execute(sql, params).fetchall()
