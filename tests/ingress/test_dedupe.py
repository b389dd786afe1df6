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
PENDING_SEC = 15


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


def dedupe_of(redis, database) -> UpdateDedupe:
    return UpdateDedupe(redis, database, TTL_SEC, PENDING_SEC)


async def claim_and_queue(dedupe: UpdateDedupe, bot_id: int, update_id: int) -> bool:
    """Claim the update and end the block as a successful send does; True when it was new."""
    async with dedupe.claim(bot_id, update_id) as new:
        return new


class SendFailed(Exception):
    pass


async def claim_and_fail(dedupe: UpdateDedupe, bot_id: int, update_id: int) -> None:
    with pytest.raises(SendFailed):
        async with dedupe.claim(bot_id, update_id) as new:
            assert new
            raise SendFailed


async def test_a_claim_is_pending_during_the_send_and_kept_for_the_ttl_after_it(redis, db):
    dedupe = dedupe_of(redis, database_of(db))
    key = keys.webhook_dedupe(7, 1001)

    async with dedupe.claim(7, 1001) as new:
        pending_ttl = await redis.pttl(key)
        during_the_send = await claim_and_queue(dedupe, 7, 1001)
    after_the_send = await claim_and_queue(dedupe, 7, 1001)

    assert new is True
    assert 0 < pending_ttl <= PENDING_SEC * 1000
    assert (during_the_send, after_the_send) == (False, False)
    assert await redis.get(key) == "queued"
    assert PENDING_SEC * 1000 < await redis.pttl(key) <= TTL_SEC * 1000


async def test_same_update_id_of_another_bot_and_lower_ids_are_new(redis, db):
    """Equality of (bot, update id), never "greater than the last seen"."""
    dedupe = dedupe_of(redis, database_of(db))

    assert await claim_and_queue(dedupe, 7, 1001)
    assert await claim_and_queue(dedupe, 8, 1001)
    assert await claim_and_queue(dedupe, 7, 1000)
    assert await claim_and_queue(dedupe, 7, 5)


async def test_a_failed_send_forgets_the_claim(redis, db):
    dedupe = dedupe_of(redis, database_of(db))

    await claim_and_fail(dedupe, 7, 1001)

    assert await redis.get(keys.webhook_dedupe(7, 1001)) is None
    assert await claim_and_queue(dedupe, 7, 1001)


async def test_a_failed_send_does_not_drop_a_claim_another_request_took_since(redis, db):
    """The first claim expired during a slow send and a retry claimed the update: only its own goes."""
    dedupe = dedupe_of(redis, database_of(db))
    key = keys.webhook_dedupe(7, 1001)

    with pytest.raises(SendFailed):
        async with dedupe.claim(7, 1001):
            await redis.delete(key)  # the pending claim expired
            await redis.set(key, "another-claimant")
            raise SendFailed

    assert await redis.get(key) == "another-claimant"


async def test_with_redis_down_postgres_dedupes_concurrent_copies_once(dead_redis, db):
    dedupe = dedupe_of(dead_redis, database_of(db))

    claims = await asyncio.gather(*(claim_and_queue(dedupe, 7, 2002) for _ in range(20)))

    assert claims.count(True) == 1


async def test_with_redis_down_a_failed_send_leaves_no_row(dead_redis, db, database_url):
    dedupe = dedupe_of(dead_redis, database_of(db))

    await claim_and_fail(dedupe, 7, 2002)

    with psycopg.connect(database_url) as connection:
        assert connection.execute("SELECT count(*) FROM webhook_dedupe").fetchone()[0] == 0
    assert await claim_and_queue(dedupe, 7, 2002)


async def test_postgres_fallback_treats_rows_past_the_ttl_as_absent_and_cleans_them_up(
    dead_redis, db, database_url
):
    dedupe = dedupe_of(dead_redis, database_of(db))
    with psycopg.connect(database_url, autocommit=True) as connection:
        connection.execute(
            "INSERT INTO webhook_dedupe (bot_id, update_id, seen_at) VALUES"
            " (7, 3003, now() - interval '301 seconds'), (7, 3004, now() - interval '1 hour'),"
            " (7, 3005, now() - interval '10 seconds')"
        )

        assert await claim_and_queue(dedupe, 7, 3003) is True
        assert await claim_and_queue(dedupe, 7, 3005) is False
        left = connection.execute("SELECT update_id FROM webhook_dedupe ORDER BY update_id").fetchall()

    assert [row[0] for row in left] == [3003, 3005]


async def test_with_redis_and_postgres_down_nothing_is_claimed(dead_redis):
    dedupe = dedupe_of(dead_redis, no_database)

    with pytest.raises(DedupeUnavailable):
        await claim_and_queue(dedupe, 7, 4004)
