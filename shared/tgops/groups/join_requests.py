"""Join requests: recorded once per chat and user, decided by the group's phase policy, at most once,
paced through the Postgres action queue (the `queued` rows of `join_requests`, each with its `due_at`).

Policy: each phase has its action (`growth_join_action`, default approve; `monitoring_join_action`,
default hold). A held request stays `pending` for the operator. Approvals and declines take the
group's next decision slot (`TGOPS_GROUP_DECISION_INTERVAL_SEC` apart, or the group's own interval),
and go out on the bot's priority lane: they never wait behind a broadcast.

A decision is marked `deciding` before its call; one found `deciding` a minute later had its holder
die and is tried again, and Telegram's answer (the request is gone, the user is already in) says the
first call went through.
"""

from __future__ import annotations

import asyncio
import logging
import time
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from telegram.error import BadRequest, TelegramError

from tgops.telegram.bot_client import PACING_MARGIN, BotClient, Lane

if TYPE_CHECKING:
    from tgops.config import Settings
    from tgops.db.database import Database

log = logging.getLogger(__name__)

ALREADY_DECIDED = ("hide_requester_missing", "user_already_participant")


async def record(
    db: Database, update: dict[str, Any], settings: Settings, *, source: str = "webhook"
) -> dict[str, Any] | None:
    """Record a `chat_join_request` and apply the group's policy; None when it was already recorded."""
    chat_id, user = update["chat"]["id"], update["from"]
    requested_at = datetime.fromtimestamp(update.get("date", time.time()), UTC)
    row = await db.fetch_one(
        "join_request_record",
        {
            "chat_id": chat_id,
            "user_id": user["id"],
            "username": user.get("username"),
            "requested_at": requested_at,
            "source": source,
        },
    )
    if row is None:
        return None
    group = await db.fetch_one("group_get_by_chat_id", {"chat_id": chat_id})
    action = policy(group)
    if action == "hold":
        return row
    scheduled = await db.fetch_one(
        "join_request_schedule",
        {
            "id": row["id"],
            "chat_id": chat_id,
            "action": action,
            "default_interval_sec": settings.group_decision_interval_sec,
        },
    )
    return scheduled or row


def policy(group: dict[str, Any] | None) -> str:
    """approve, decline or hold: the action of the group's phase (an unmanaged chat is held)."""
    if group is None or not group["is_active"]:
        return "hold"
    return group["growth_join_action"] if group["phase"] == "growth" else group["monitoring_join_action"]


async def decide_due(
    db: Database, client: BotClient, settings: Settings, chat_id: int, wait_sec: float
) -> int:
    """Make the chat's due decisions, waiting up to `wait_sec` for ones due soon; returns how many."""
    deadline = time.monotonic() + wait_sec
    group = await db.fetch_one("group_get_by_chat_id", {"chat_id": chat_id})
    interval = (group or {}).get("decision_interval_sec")
    interval = settings.group_decision_interval_sec if interval is None else interval
    spacing = {"chat_id": chat_id, "interval_sec": interval * PACING_MARGIN}
    decided = 0
    while True:
        row = await db.fetch_one("join_request_claim_due", spacing)
        if row is not None:
            await _decide(db, client, row)
            decided += 1
            continue
        due = await db.fetch_one("join_request_next_due", spacing)
        if not due["waiting"]:
            return decided
        wait = max(0.0, float(due["wait_sec"]))
        if time.monotonic() + wait > deadline:
            return decided  # group_tick queues the rest when they fall due
        await asyncio.sleep(wait + 0.01)


async def _decide(db: Database, client: BotClient, row: dict[str, Any]) -> None:
    approve = row["action"] == "approve"

    async def request(bot, _chat):
        if approve:
            return await bot.approve_chat_join_request(row["chat_id"], row["user_id"])
        return await bot.decline_chat_join_request(row["chat_id"], row["user_id"])

    status, error = ("approved" if approve else "declined"), None
    try:
        await client.call(request, chat_id=None, lane=Lane.PRIORITY)
    except BadRequest as failure:
        already = any(text in failure.message.lower() for text in ALREADY_DECIDED)
        if (
            not (already and row["attempts"] > 1)
            and "user_already_participant" not in failure.message.lower()
        ):
            status = "failed"
        error = failure.message[:500]
    except TelegramError as failure:
        status, error = "failed", f"{type(failure).__name__}: {failure.message}"[:500]
    await db.execute("join_request_decided", {"id": row["id"], "status": status, "error": error})
    log.info("join request %s of chat %s: %s", row["user_id"], row["chat_id"], status)


async def chats_with_due_decisions(db: Database, limit: int = 500) -> list[int]:
    return [row["chat_id"] for row in await db.fetch_all("join_request_chats_due", {"limit": limit})]
