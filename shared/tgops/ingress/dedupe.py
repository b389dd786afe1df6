"""Remember each Telegram update exactly once: Redis first, Postgres when Redis is unreachable.

An update becomes remembered only once it is queued. In Redis its claim is *pending* (a short TTL, the
claimant's token as its value) while the send runs and is made the record for the dedupe TTL after it;
in Postgres the claim is a row inserted in a transaction that commits after the send. A process killed
mid-send so leaves behind a pending key that expires within seconds, or a transaction the server rolls
back, never a record that would answer Telegram's retries "duplicate" for five minutes.

Updates are told apart by equality of (bot, update id), never by "greater than the last seen":
Telegram's ids are not promised to arrive in order.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from typing import TYPE_CHECKING

from tgops.cache import keys
from tgops.cache.errors import CacheError
from tgops.cache.scripts import script
from tgops.db.errors import DatabaseError, DatabaseUnavailable

if TYPE_CHECKING:
    from tgops.cache.client import RedisClient
    from tgops.db.database import Database

log = logging.getLogger(__name__)
EXPIRED_ROWS_DELETED_PER_CLAIM = 100
QUEUED = "queued"  # the value of a confirmed claim; a pending one holds its claimant's token


class DedupeUnavailable(DatabaseUnavailable):
    """Neither Redis nor Postgres could record the update (the app answers 503: Telegram retries)."""


class UpdateDedupe:
    def __init__(
        self,
        redis: RedisClient,
        database: Callable[[], Awaitable[Database]],
        ttl_sec: int,
        pending_sec: float,
    ) -> None:
        self._redis = redis
        self._database = database  # opened only when Redis fails
        self._ttl_sec = ttl_sec
        self._pending_ms = max(1, int(pending_sec * 1000))

    @asynccontextmanager
    async def claim(self, bot_id: int, update_id: int) -> AsyncIterator[bool]:
        """Yields True when the update is new: queue it inside the block. The update is remembered when
        the block ends without an error and forgotten when it raises. Yields False for a duplicate."""
        key = keys.webhook_dedupe(bot_id, update_id)
        token = uuid.uuid4().hex
        try:
            claimed = await script("webhook_claim").run(self._redis, [key], [token, self._pending_ms])
        except CacheError as error:
            log.warning("Redis failed, deduplicating the update in Postgres instead: %s", error)
            async with self._claim_in_postgres(bot_id, update_id) as new:
                yield new
            return
        if not claimed:
            yield False
            return
        try:
            yield True
        except BaseException:
            await self._forget(key, token)
            raise
        await self._remember(key, token)

    async def _remember(self, key: str, token: str) -> None:
        try:
            await script("webhook_confirm").run(self._redis, [key], [token, QUEUED, self._ttl_sec * 1000])
        except CacheError as error:
            # Queued all the same; the pending claim expires soon and a retry of the update then meets
            # the FIFO queue's deduplication id.
            log.warning("could not record queued update %s: %s", key, error)

    async def _forget(self, key: str, token: str) -> None:
        try:
            await script("webhook_release").run(self._redis, [key], [token])
        except CacheError as error:
            log.warning("could not release the claim %s; it expires by itself: %s", key, error)

    @asynccontextmanager
    async def _claim_in_postgres(self, bot_id: int, update_id: int) -> AsyncIterator[bool]:
        """The row commits with the transaction, after the send; a copy arriving meanwhile waits on it."""
        params = {"bot_id": bot_id, "update_id": update_id, "ttl_sec": self._ttl_sec}
        claiming = True
        try:
            database = await self._database()
            async with database.transaction() as session:
                await session.execute(
                    "delete_expired_webhook_updates",
                    {"ttl_sec": self._ttl_sec, "limit": EXPIRED_ROWS_DELETED_PER_CLAIM},
                )
                claimed = await session.fetch_one("claim_webhook_update", params)
                claiming = False
                yield claimed is not None
        except DatabaseError as error:
            if not claiming:
                raise
            raise DedupeUnavailable(f"Redis is unreachable and Postgres failed: {error}") from error
