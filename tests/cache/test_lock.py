"""TokenLock on both clients: one holder at a time, only the holder acts, and never a lock without a TTL."""

from __future__ import annotations

import asyncio
import random

import pytest

from tgops.cache import keys
from tgops.cache.client import RedisClient
from tgops.cache.lock import TokenLock

KEY = keys.mtproto_lock(1)


async def test_acquire_is_exclusive_and_sets_a_ttl(client: RedisClient) -> None:
    holder, rival = TokenLock(client, KEY, 10_000), TokenLock(client, KEY, 10_000)
    assert await holder.acquire() is True
    assert await rival.acquire() is False
    assert await client.get(KEY) == holder.token
    assert 0 < await client.pttl(KEY) <= 10_000


async def test_a_wrong_token_releases_and_extends_nothing(client: RedisClient) -> None:
    holder, rival = TokenLock(client, KEY, 10_000), TokenLock(client, KEY, 10_000)
    await holder.acquire()
    assert await rival.release() is False
    assert await rival.extend(60_000) is False
    assert await client.get(KEY) == holder.token
    assert 0 < await client.pttl(KEY) <= 10_000


async def test_held_releases_only_a_lock_it_got_even_when_the_block_raises(client: RedisClient) -> None:
    holder, rival = TokenLock(client, KEY, 10_000), TokenLock(client, KEY, 10_000)
    with pytest.raises(RuntimeError):
        async with holder.held() as acquired:
            assert acquired is True
            async with rival.held() as rival_acquired:
                assert rival_acquired is False
            assert await client.get(KEY) == holder.token  # the rival's block left the holder's lock alone
            raise RuntimeError("the block failed")
    assert await client.get(KEY) is None


async def test_the_holder_extends_then_releases(client: RedisClient) -> None:
    holder = TokenLock(client, KEY, 10_000)
    await holder.acquire()
    assert await holder.extend(60_000) is True
    assert 10_000 < await client.pttl(KEY) <= 60_000
    assert await holder.release() is True
    assert await client.get(KEY) is None
    assert await holder.release() is False


async def test_a_holder_whose_lock_expired_cannot_touch_the_next_holders_lock(client: RedisClient) -> None:
    first, second = TokenLock(client, KEY, 10_000), TokenLock(client, KEY, 10_000)
    await first.acquire()
    await client.delete(KEY)  # as its TTL running out would
    assert await second.acquire() is True
    assert await first.release() is False
    assert await first.extend(60_000) is False
    assert await client.get(KEY) == second.token


async def test_a_lock_rebuilt_from_the_holders_token_acts_for_the_holder(client: RedisClient) -> None:
    holder = TokenLock(client, KEY, 10_000)
    await holder.acquire()
    assert await TokenLock(client, KEY, 10_000, token=holder.token).release() is True
    assert await client.get(KEY) is None


async def test_a_ttl_that_is_not_positive_is_refused(client: RedisClient) -> None:
    with pytest.raises(ValueError):
        TokenLock(client, KEY, 0)
    holder = TokenLock(client, KEY, 10_000)
    await holder.acquire()
    with pytest.raises(ValueError):
        await holder.extend(0)
    assert 0 < await client.pttl(KEY) <= 10_000


async def test_fifty_contenders_never_hold_the_lock_together(client: RedisClient) -> None:
    holding = most_at_once = entered = 0

    async def contend() -> None:
        nonlocal holding, most_at_once, entered
        lock = TokenLock(client, KEY, 10_000)
        while not await lock.acquire():
            await asyncio.sleep(random.uniform(0.05, 0.2))
        holding += 1
        most_at_once = max(most_at_once, holding)
        assert await client.pttl(KEY) > 0  # the others keep trying during this await
        holding -= 1
        entered += 1
        assert await lock.release() is True

    await asyncio.gather(*(contend() for _ in range(50)))
    assert entered == 50
    assert most_at_once == 1
