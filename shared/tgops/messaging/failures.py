"""Why each queue message was given up on, kept in Postgres for the DLQ view.

The consumer engine records a message that fails at its last receive (SQS moves it to its DLQ next).
Recording never raises: a reason that cannot be stored is logged, and the message still reaches its DLQ.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from tgops.db.database import Database

log = logging.getLogger(__name__)
CONNECT_TIMEOUT_SEC = 3
MAX_REASON_CHARS = 2000


async def record_final_failure(
    database: Database, queue: str, message_id: str, receive_count: int, reason: str
) -> None:
    params = {
        "queue": queue,
        "message_id": message_id,
        "receive_count": receive_count,
        "reason": reason[:MAX_REASON_CHARS],
    }
    await database.execute("record_queue_failure", params)


class FailureLog:
    """Records final failures through `database` (e.g. `Runtime.database`), or else through a small
    pool of its own opened from the settings on the first final failure (closed by `close`)."""

    def __init__(self, database: Callable[[], Awaitable[Database]] | None = None) -> None:
        self._database = database
        self._own: Database | None = None

    async def record(self, queue: str, message_id: str, receive_count: int, reason: str) -> None:
        try:
            database = await self._connection()
            if database is None:
                log.info("no database configured: the failure reason of %s is only logged", message_id)
                return
            await record_final_failure(database, queue, message_id, receive_count, reason)
        except Exception as error:  # noqa: BLE001 -- never let bookkeeping change what happens to the message
            log.warning(
                "could not record why message %s of %s failed (%s): %s", message_id, queue, reason, error
            )

    async def close(self) -> None:
        if self._own is not None:
            own, self._own = self._own, None
            await own.close()

    async def _connection(self) -> Database | None:
        if self._database is not None:
            return await self._database()
        if self._own is None:
            from tgops.config import get_settings
            from tgops.db.database import Database

            settings = get_settings()
            if not settings.database_url:
                return None
            # Final failures are rare: no connection is held until one happens, and one is enough.
            self._own = await Database.connect(
                settings.database_url,
                min_size=0,
                max_size=1,
                transaction_pooler=settings.uses_transaction_pooler,
                timeout_sec=CONNECT_TIMEOUT_SEC,
            )
        return self._own
