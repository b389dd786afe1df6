"""API keys: stored hashed, checked on every public request, revoked at once, rate limited per key."""

from __future__ import annotations

import hashlib

import psycopg
import pytest
import redis
from typer.testing import CliRunner

from tests.api.public_api_support import public_api
from tgops.api.api_keys import create_api_key, find_active_key, list_api_keys, revoke_api_key
from tgops.cache import keys
from tgops.cache.client import RedisPyClient
from tgops.cache.rate_limit import hit
from tgops.cli import app as cli_app

GROUPS = "/api/groups"


async def test_only_the_hash_is_stored_and_the_key_is_found_by_it(db, database_url):
    created = await create_api_key(db, "ops-dashboard", 5)

    assert created.key.startswith("tgk_") and len(created.key) > 40
    assert created.record.key_prefix == created.key[:10]
    with psycopg.connect(database_url) as connection:
        row = connection.execute("SELECT * FROM api_keys WHERE id = %s", (created.record.id,)).fetchone()
    assert hashlib.sha256(created.key.encode()).hexdigest() in row
    assert all(created.key not in str(value) for value in row)

    found = await find_active_key(db, created.key)
    assert (found.id, found.name, found.rate_limit_per_window) == (created.record.id, "ops-dashboard", 5)
    assert await find_active_key(db, created.key + "x") is None
    assert await find_active_key(db, created.key[:-1]) is None


async def test_revoked_key_is_no_longer_found_and_revoking_twice_keeps_the_first_time(db):
    created = await create_api_key(db, "temp")
    first = await revoke_api_key(db, created.record.id)
    second = await revoke_api_key(db, created.record.id)

    assert first.revoked_at is not None and second.revoked_at == first.revoked_at
    assert await find_active_key(db, created.key) is None
    assert await revoke_api_key(db, 999_999) is None
    assert [record.id for record in await list_api_keys(db)] == [created.record.id]


async def test_requests_without_a_valid_key_are_refused_with_a_reason(settings, db):
    created = await create_api_key(db, "ops")
    revoked = await create_api_key(db, "old")
    await revoke_api_key(db, revoked.record.id)

    async with public_api(settings) as api:
        missing = await api.client.get(GROUPS)
        wrong = await api.client.get(GROUPS, headers={"X-API-Key": "tgk_not-a-key"})
        old = await api.client.get(GROUPS, headers={"X-API-Key": revoked.key})
        good = await api.client.get(GROUPS, headers={"X-API-Key": created.key})

    assert missing.status_code == 401 and missing.json()["detail"] == "missing X-API-Key header"
    assert wrong.status_code == 401 and wrong.json()["detail"] == "unknown or revoked API key"
    assert old.status_code == 401
    assert good.status_code == 200


async def test_use_is_recorded(settings, db):
    created = await create_api_key(db, "ops")
    async with public_api(settings) as api:
        await api.client.get(GROUPS, headers={"X-API-Key": created.key})
    (record,) = await list_api_keys(db)
    assert record.last_used_at is not None


async def test_each_key_has_its_own_rate_limit_answered_with_retry_after(settings, db):
    limited = await create_api_key(db, "limited", rate_limit_per_window=3)
    other = await create_api_key(db, "other", rate_limit_per_window=3)

    async with public_api(settings) as api:
        answers = [(await api.client.get(GROUPS, headers={"X-API-Key": limited.key})) for _ in range(5)]
        other_answer = await api.client.get(GROUPS, headers={"X-API-Key": other.key})

    assert [answer.status_code for answer in answers] == [200, 200, 200, 429, 429]
    refused = answers[3]
    assert 1 <= int(refused.headers["Retry-After"]) <= settings.api_key_rate_window_sec
    assert "rate limit of 3 requests per 60s" in refused.json()["detail"]
    assert other_answer.status_code == 200


async def test_keys_without_their_own_limit_use_the_settings_default(settings, db):
    created = await create_api_key(db, "default")
    runtime_settings = settings.model_copy(update={"api_key_rate_limit": 2})
    async with public_api(runtime_settings) as api:
        statuses = [
            (await api.client.get(GROUPS, headers={"X-API-Key": created.key})).status_code for _ in range(3)
        ]
    assert statuses == [200, 200, 429]


async def test_requests_pass_unlimited_while_redis_is_unreachable(settings, db):
    created = await create_api_key(db, "ops", rate_limit_per_window=1)
    no_redis = settings.model_copy(update={"redis_url": "redis://127.0.0.1:1/0"})
    async with public_api(no_redis) as api:
        statuses = [
            (await api.client.get(GROUPS, headers={"X-API-Key": created.key})).status_code for _ in range(3)
        ]
    assert statuses == [200, 200, 200]


async def test_fixed_window_opens_again_when_it_ends(redis_url):
    client = RedisPyClient(redis_url)
    key = keys.rate_limit("test", 1)
    try:
        decisions = [await hit(client, key, limit=2, window_sec=60) for _ in range(3)]
        assert [(d.allowed, d.remaining) for d in decisions] == [(True, 1), (True, 0), (False, 0)]
        assert 59_000 < decisions[2].reset_ms <= 60_000 and decisions[2].retry_after_sec == 60

        raw = redis.Redis.from_url(redis_url)
        raw.persist(key)  # a counter that lost its TTL must not refuse its subject forever
        assert 0 < (await hit(client, key, limit=2, window_sec=60)).reset_ms <= 60_000
        raw.delete(key)  # the window ended
        raw.close()
        assert (await hit(client, key, limit=2, window_sec=60)).allowed
    finally:
        await client.aclose()


def test_cli_prints_the_key_once_lists_and_revokes(settings, database_url):
    runner = CliRunner()

    created = runner.invoke(cli_app, ["apikey", "create", "ops-dashboard", "--rate-limit", "7"])
    assert created.exit_code == 0, created.output
    key = created.stdout.strip()
    assert key.startswith("tgk_") and "\n" not in key

    listed = runner.invoke(cli_app, ["apikey", "list"], env={"COLUMNS": "200"})  # no wrapped cells
    assert listed.exit_code == 0, listed.output
    assert "ops-dashboard" in listed.stdout and key[:10] in listed.stdout and key not in listed.stdout

    with psycopg.connect(database_url) as connection:
        (key_id,) = connection.execute("SELECT id FROM api_keys").fetchone()
    revoked = runner.invoke(cli_app, ["apikey", "revoke", str(key_id)])
    assert revoked.exit_code == 0 and f"revoked API key {key_id}" in revoked.output
    with psycopg.connect(database_url) as connection:
        assert connection.execute("SELECT revoked_at IS NOT NULL FROM api_keys").fetchone() == (True,)

    unknown = runner.invoke(cli_app, ["apikey", "revoke", "424242"])
    assert unknown.exit_code == 1 and "no API key with id 424242" in unknown.output


@pytest.mark.parametrize("name", ["", "   "])
def test_cli_refuses_an_empty_name(settings, name):
    result = CliRunner().invoke(cli_app, ["apikey", "create", name])
    assert result.exit_code == 2 and "NAME must not be empty" in result.output
