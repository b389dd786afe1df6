"""Deleting the messages of one broadcast (`DELETE /api/broadcasts/{job_id}` queues a `BroadcastDelete`).

Each sent message gets one outcome, kept in `sent_messages.delete_outcome`:
`deleted`, `already_deleted` (Telegram no longer has it), `too_old` (Telegram lets a bot delete only
messages younger than 48 hours), `no_rights` (the bot may not delete there, or is no longer in the
chat), `wrong_bot` (another bot sent it; only its sender may delete it), or `error` (anything else,
with Telegram's answer in `error`). A message that already has an outcome is never tried again.
"""

from __future__ import annotations

import logging
import time
from datetime import timedelta
from typing import TYPE_CHECKING, Any

from telegram.error import BadRequest, Forbidden, RetryAfter, TelegramError

from tgops.broadcast.jobs import QUEUE
from tgops.broadcast.messages import BroadcastDelete
from tgops.messaging.envelopes import encode
from tgops.telegram.bot_client import BotClient, Lane, describe_failure

if TYPE_CHECKING:
    from tgops.db.database import Database
    from tgops.messaging.backend import QueueSender

log = logging.getLogger(__name__)

DELETE_WINDOW = timedelta(hours=48)
PAGE = 100


async def delete_broadcast(
    db: Database, client: BotClient, queues: QueueSender, job_id: str, budget_sec: float
) -> dict[str, int]:
    """Delete what is left of the job's messages; queue a continuation when the budget runs out."""
    deadline = time.monotonic() + budget_sec
    outcomes: dict[str, int] = {}
    after_id = 0
    while True:
        rows = await db.fetch_all(
            "sent_messages_to_delete", {"job_id": job_id, "after_id": after_id, "limit": PAGE}
        )
        if not rows:
            return outcomes
        for row in rows:
            if time.monotonic() >= deadline:
                await queues.send(QUEUE, encode(BroadcastDelete(job_id=job_id)))
                return outcomes
            outcome, error = await _delete_one(client, row)
            await db.execute("sent_message_deleted", {"id": row["id"], "outcome": outcome, "error": error})
            outcomes[outcome] = outcomes.get(outcome, 0) + 1
            after_id = row["id"]


async def _delete_one(client: BotClient, row: dict[str, Any]) -> tuple[str, str | None]:
    if row["bot_key"] is not None and row["bot_key"] != client.key:
        return "wrong_bot", "sent by another bot"
    if row["age"] >= DELETE_WINDOW:
        return "too_old", "older than 48 hours"

    async def request(bot, _chat):
        return await bot.delete_message(row["chat_id"], row["message_id"])

    try:
        await client.call(request, chat_id=None, lane=Lane.BULK)
    except RetryAfter:
        raise
    except (BadRequest, Forbidden) as error:
        return classify_delete_error(error), error.message[:500]
    except TelegramError as error:
        return "error", describe_failure(error)[:500]
    return "deleted", None


def classify_delete_error(error: TelegramError) -> str:
    text = error.message.lower()
    if isinstance(error, Forbidden) or "not enough rights" in text or "have no rights" in text:
        return "no_rights"
    if "message to delete not found" in text or "message_id_invalid" in text:
        return "already_deleted"
    if "message can't be deleted" in text:
        return "no_rights"  # younger than 48 h (checked first), so the bot may not delete it there
    return "error"
