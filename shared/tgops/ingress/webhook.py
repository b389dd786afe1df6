"""Accepting a Telegram update: validate, route, remember once, queue. Nothing here waits for processing."""

from __future__ import annotations

import asyncio
import json
import logging
from dataclasses import dataclass
from enum import Enum
from typing import TYPE_CHECKING, Any

from tgops import correlation
from tgops.cache import keys
from tgops.cache.errors import CacheError
from tgops.cache.rate_limit import count_in_window
from tgops.ingress.dedupe import UpdateDedupe
from tgops.ingress.messages import TelegramUpdateReceived
from tgops.ingress.routing import route_update
from tgops.messaging.envelopes import encode
from tgops.messaging.errors import QueueUnavailable
from tgops.security import secret_matches_hash, secrets_match

if TYPE_CHECKING:
    from tgops.cache.client import RedisClient
    from tgops.config import Settings
    from tgops.db.database import Database
    from tgops.messaging.backend import QueueSender

log = logging.getLogger(__name__)
# Telegram's ids have at most 52 significant bits (they fit a double, so every JSON parser reads them
# exactly), and the fallback dedupe stores them as Postgres bigint.
MAX_UPDATE_ID = 2**53 - 1


class InvalidUpdate(ValueError):
    """The body is not a Telegram update; the message says why."""


class EnqueueFailed(QueueUnavailable):
    """The update could not be queued; its claim was released so Telegram's retry gets through (503)."""


class Outcome(str, Enum):
    QUEUED = "queued"
    DUPLICATE = "duplicate"
    IGNORED = "ignored"  # no consumer handles this update type: acknowledged and counted


def parse_update(body: bytes) -> dict[str, Any]:
    try:
        update = json.loads(body)
    except (UnicodeDecodeError, ValueError) as error:
        raise InvalidUpdate(f"body is not valid JSON: {error}") from None
    if not isinstance(update, dict):
        raise InvalidUpdate(f"body must be a JSON object, not a JSON {type(update).__name__}")
    update_id = update.get("update_id")
    if update_id is None:
        raise InvalidUpdate("update_id is missing")
    # JSON has one number type: 12.0 is the integer 12 (as JSON Schema's "integer" says), 12.5 is not.
    if isinstance(update_id, float) and update_id.is_integer():
        update_id = update["update_id"] = int(update_id)
    if not isinstance(update_id, int) or isinstance(update_id, bool):
        raise InvalidUpdate(f"update_id must be an integer, not {type(update_id).__name__}")
    if not 0 <= update_id <= MAX_UPDATE_ID:
        raise InvalidUpdate(f"update_id must be between 0 and {MAX_UPDATE_ID}")
    return update


def main_bot_secret_matches(settings: Settings, secret: str | None) -> bool:
    """The main bot's webhook secret is TGOPS_TELEGRAM_WEBHOOK_SECRET (the placeholder matches nothing)."""
    return secrets_match(secret, settings.telegram_webhook_secret.get_secret_value())


async def bot_secret_matches(database: Database, bot_id: int, secret: str | None) -> bool:
    row = await database.fetch_one("active_bot_webhook_secret_hash", {"bot_id": bot_id})
    return row is not None and secret_matches_hash(secret, row["webhook_secret_hash"])


@dataclass
class WebhookIngress:
    dedupe: UpdateDedupe
    queues: QueueSender
    redis: RedisClient
    send_timeout_sec: float
    unhandled_count_ttl_sec: int

    async def accept(self, bot_id: int, update: dict[str, Any]) -> Outcome:
        """Queue a new update once. Raises DedupeUnavailable or EnqueueFailed: answer 5xx, Telegram retries."""
        correlation.bind(bot_id=bot_id, update_id=update["update_id"])  # on this request's lines
        route = route_update(update)
        if route.queue is None:
            await self._count_unhandled(route.update_type)
            return Outcome.IGNORED
        update_id = update["update_id"]
        async with self.dedupe.claim(bot_id, update_id) as new:
            if not new:
                return Outcome.DUPLICATE
            message = TelegramUpdateReceived(
                bot_id=bot_id, update_id=update_id, update_type=route.update_type, update=update
            )
            try:
                # Cut off inside the request's deadline. A send still running in its thread after the cut
                # may land; its FIFO deduplication id then drops the copy Telegram's retry brings.
                async with asyncio.timeout(self.send_timeout_sec):
                    await self.queues.send(
                        route.queue,
                        encode(message),
                        group_id=route.group_id(bot_id),
                        dedup_id=f"{bot_id}:{update_id}",
                    )
            except Exception as error:  # whatever failed, the update is not queued: the claim is dropped
                raise EnqueueFailed(
                    f"could not queue update {update_id} to {route.queue}: {error!r}"
                ) from error
        return Outcome.QUEUED

    async def _count_unhandled(self, update_type: str) -> None:
        log.info("ignoring a %s update: no consumer handles it", update_type)
        try:
            await count_in_window(
                self.redis, keys.unhandled_updates(update_type), window_sec=self.unhandled_count_ttl_sec
            )
        except CacheError as error:
            log.warning("could not count an unhandled %s update: %s", update_type, error)
