"""Dedupe on real Redis and real Postgres; "Redis down" is a Redis URL nobody listens on."""

import asyncio

import psycopg
import pytest

from tgops.cache import keys
from tgops.cache.client import RedisPyClient
from tgops.db.database import Database
from tgops.db.errors import DatabaseUnavailable
from tgops.ingress.dedupe import DedupeUnavailable, UpdateDedupe
from tgops.local.services import free_port

TTL_SEC = 300


@pytest.fixture
def redis(redis_client):
    return redis_client


@pytest.fixture
async def dead_redis():
    client = RedisPyClient(f"redis://127.0.0.1:{free_port()}/0", timeout_sec=1)
    yield client
    await client.aclose()


def database_of(db):
    async def open_database() -> Database:
        return db

    return open_database


async def no_database() -> Database:
    raise DatabaseUnavailable("connection refused")


async def test_first_claim_wins_and_is_kept_for_the_ttl(redis, db):
    dedupe = UpdateDedupe(redis, database_of(db), TTL_SEC)

    first = await dedupe.claim(7, 1001)
    again = await dedupe.claim(7, 1001)

    assert first is not None and first.store == "redis"
    assert again is None
    assert 0 < await redis.pttl(keys.webhook_dedupe(7, 1001)) <= TTL_SEC * 1000


async def test_same_update_id_of_another_bot_and_lower_ids_are_new(redis, db):
    """Equality of (bot, update id), never "greater than the last seen"."""
    dedupe = UpdateDedupe(redis, database_of(db), TTL_SEC)

    assert await dedupe.claim(7, 1001)
    assert await dedupe.claim(8, 1001)
    assert await dedupe.claim(7, 1000)
    assert await dedupe.claim(7, 5)


async def test_released_claim_can_be_claimed_again(redis, db):
    dedupe = UpdateDedupe(redis, database_of(db), TTL_SEC)
    claim = await dedupe.claim(7, 1001)

    await dedupe.release(claim)

    assert await redis.get(keys.webhook_dedupe(7, 1001)) is None
    assert await dedupe.claim(7, 1001)


async def test_with_redis_down_postgres_dedupes_concurrent_copies_once(dead_redis, db):
    dedupe = UpdateDedupe(dead_redis, database_of(db), TTL_SEC)

    claims = await asyncio.gather(*(dedupe.claim(7, 2002) for _ in range(20)))

    won = [claim for claim in claims if claim is not None]
    assert len(won) == 1 and won[0].store == "postgres"
    await dedupe.release(won[0])
    assert (await dedupe.claim(7, 2002)).store == "postgres"


async def test_postgres_fallback_treats_rows_past_the_ttl_as_absent_and_cleans_them_up(
    dead_redis, db, database_url
):
    dedupe = UpdateDedupe(dead_redis, database_of(db), TTL_SEC)
    with psycopg.connect(database_url, autocommit=True) as connection:
        connection.execute(
            "INSERT INTO webhook_dedupe (bot_id, update_id, seen_at) VALUES"
            " (7, 3003, now() - interval '301 seconds'), (7, 3004, now() - interval '1 hour'),"
            " (7, 3005, now() - interval '10 seconds')"
        )

        assert await dedupe.claim(7, 3003) is not None
        assert await dedupe.claim(7, 3005) is None
        left = connection.execute("SELECT update_id FROM webhook_dedupe ORDER BY update_id").fetchall()

    assert [row[0] for row in left] == [3003, 3005]


async def test_with_redis_and_postgres_down_nothing_is_claimed(dead_redis):
    dedupe = UpdateDedupe(dead_redis, no_database, TTL_SEC)

    with pytest.raises(DedupeUnavailable):
        await dedupe.claim(7, 4004)
