"""A Redis lock that only its holder can release or extend, and that always carries a TTL."""

from __future__ import annotations

import secrets
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from tgops.cache.client import RedisClient
from tgops.cache.scripts import script


class TokenLock:
    """SET NX PX with a random token; release and extend compare the token inside one Lua call.

    Pass `token` to act for a holder from another process (e.g. one that stored it with its task).
    """

    def __init__(self, client: RedisClient, key: str, ttl_ms: int, *, token: str | None = None) -> None:
        self._client = client
        self.key = key
        self.ttl_ms = _positive(ttl_ms)
        self.token = token or secrets.token_hex(16)

    async def acquire(self) -> bool:
        return await self._client.set(self.key, self.token, nx=True, px=self.ttl_ms)

    @asynccontextmanager
    async def held(self) -> AsyncIterator[bool]:
        """Try to acquire for the block: yields whether this holder got the lock, released after if so."""
        acquired = await self.acquire()
        try:
            yield acquired
        finally:
            if acquired:
                await self.release()

    async def release(self) -> bool:
        return await script("lock_release").run(self._client, [self.key], [self.token]) == 1

    async def extend(self, ttl_ms: int) -> bool:
        args = [self.token, _positive(ttl_ms)]
        return await script("lock_extend").run(self._client, [self.key], args) == 1


def _positive(ttl_ms: int) -> int:
    # PX 0 is refused by Redis and PEXPIRE 0 deletes the key: a lock must always live a while.
    if ttl_ms <= 0:
        raise ValueError(f"lock TTL must be > 0 ms, got {ttl_ms}")
    return ttl_ms
