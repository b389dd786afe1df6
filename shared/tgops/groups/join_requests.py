"""Join requests: recorded once per chat and user, decided by the group's phase policy, at most once,
paced through the Postgres action queue (the `queued` rows of `join_requests`, each with its `due_at`).

One consumer at a time per bot pumps the queue (a Redis lock): it makes the due decisions of all
groups concurrently, one at a time per group, and waits for the next ones for up to
`TGOPS_GROUP_DECISION_WAIT_SEC`; the others only record. What is still queued when it stops is
picked up by the next join request or by `group_tick`.

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

from tgops.cache import keys
from tgops.cache.lock import TokenLock
from tgops.telegram.bot_client import PACING_MARGIN, BotClient, Lane

if TYPE_CHECKING:
    from tgops.cache.client import RedisClient
    from tgops.config import Settings
    from tgops.db.database import Database

log = logging.getLogger(__name__)

ALREADY_DECIDED = ("hide_requester_missing", "user_already_participant")
PUMP_LOCK_MS = 10_000  # a pump that died frees the lock this soon
CLAIM_BATCH = 50  # decisions claimed (one per group) and made at once
MIN_POLL_SEC = 0.01


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
    db: Database, client: BotClient, settings: Settings, redis: RedisClient, wait_sec: float
) -> tuple[int, bool]:
    """Make the due decisions of every group, unless another consumer already does (one pump per
    bot at a time, through a Redis lock): concurrently across groups, one at a time per group, for up
    to `wait_sec`. Returns how many were made here, and whether this run stopped with decisions still
    waiting and nobody else pumping (the caller queues a `decide` job to go on)."""
    decided = 0
    deadline = time.monotonic() + wait_sec
    pump = TokenLock(redis, keys.decision_pump(client.key), PUMP_LOCK_MS)
    while await pump.acquire():
        try:
            decided += await _pump(db, client, settings, pump, deadline)
        finally:
            await pump.release()
        # A request recorded while the lock was being released found it taken: look once more.
        waiting = await db.fetch_one("join_request_next_due", _spacing(settings))
        if not waiting["waiting"]:
            return decided, False
        if time.monotonic() >= deadline:
            return decided, True
    return decided, False


async def _pump(db: Database, client: BotClient, settings: Settings, pump: TokenLock, deadline: float) -> int:
    decided = 0
    spacing = _spacing(settings)
    while time.monotonic() < deadline:
        await pump.extend(PUMP_LOCK_MS)
        rows = await db.fetch_all("join_request_claim_due", {**spacing, "limit": CLAIM_BATCH})
        if rows:
            await asyncio.gather(*(_decide(db, client, row) for row in rows))
            decided += len(rows)
            continue
        due = await db.fetch_one("join_request_next_due", spacing)
        if not due["waiting"]:
            return decided
        wait = min(max(0.0, float(due["wait_sec"] or 0)), deadline - time.monotonic())
        await asyncio.sleep(max(wait, MIN_POLL_SEC))
    return decided


def _spacing(settings: Settings) -> dict[str, float]:
    return {"default_interval_sec": settings.group_decision_interval_sec, "margin": PACING_MARGIN}


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
