"""Remember each Telegram update exactly once: Redis `SET NX EX`, Postgres when Redis is unreachable.

A claim is taken before the update is queued and released if queueing fails, so an update that was
not queued is never remembered as seen. Updates are told apart by equality of (bot, update id), never
by "greater than the last seen": Telegram's ids are not promised to arrive in order.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal

from tgops.cache import keys
from tgops.cache.errors import CacheError
from tgops.db.errors import DatabaseError, DatabaseUnavailable

if TYPE_CHECKING:
    from tgops.cache.client import RedisClient
    from tgops.db.database import Database

log = logging.getLogger(__name__)
EXPIRED_ROWS_DELETED_PER_CLAIM = 100


class DedupeUnavailable(DatabaseUnavailable):
    """Neither Redis nor Postgres could record the update (the app answers 503: Telegram retries)."""


@dataclass(frozen=True)
class Claim:
    bot_id: int
    update_id: int
    store: Literal["redis", "postgres"]


class UpdateDedupe:
    def __init__(self, redis: RedisClient, database: Callable[[], Awaitable[Database]], ttl_sec: int) -> None:
        self._redis = redis
        self._database = database  # opened only when Redis fails
        self._ttl_sec = ttl_sec

    async def claim(self, bot_id: int, update_id: int) -> Claim | None:
        """The claim when this update is new; None when it was already seen."""
        try:
            if await self._redis.set(keys.webhook_dedupe(bot_id, update_id), "1", nx=True, ex=self._ttl_sec):
                return Claim(bot_id, update_id, "redis")
            return None
        except CacheError as error:
            log.warning("Redis failed, deduplicating the update in Postgres instead: %s", error)
        return await self._claim_in_postgres(bot_id, update_id)

    async def release(self, claim: Claim) -> None:
        """Forget a claim whose update could not be queued, so Telegram's retry gets through."""
        if claim.store == "redis":
            await self._redis.delete(keys.webhook_dedupe(claim.bot_id, claim.update_id))
        else:
            database = await self._database()
            await database.execute("release_webhook_update", _params(claim.bot_id, claim.update_id))

    async def _claim_in_postgres(self, bot_id: int, update_id: int) -> Claim | None:
        params = {**_params(bot_id, update_id), "ttl_sec": self._ttl_sec}
        try:
            database = await self._database()
            async with database.session() as session:
                # Cleanup first: once the claim is written, nothing after it may fail the request.
                await session.execute(
                    "delete_expired_webhook_updates",
                    {"ttl_sec": self._ttl_sec, "limit": EXPIRED_ROWS_DELETED_PER_CLAIM},
                )
                claimed = await session.fetch_one("claim_webhook_update", params)
        except DatabaseError as error:
            raise DedupeUnavailable(f"Redis and Postgres are both unreachable: {error}") from error
        return Claim(bot_id, update_id, "postgres") if claimed else None


def _params(bot_id: int, update_id: int) -> dict[str, int]:
    return {"bot_id": bot_id, "update_id": update_id}
