"""Hourly group maintenance: member counts (with their history, and the phase rules they drive),
missed join requests, inactive-member removal, and the periodic posts of `group_posts`.

Missed join requests: Telegram keeps undelivered webhook updates for 24 h, but the Bot API cannot
list pending requests. The group's invite link (`managed_groups.invite_link`) tells how many requests
wait on it (`pending_join_request_count`); more than the group's open requests here is a gap, kept on
the group (`join_gap_pending`, `join_gap_detected_at`) and logged. When the group has a fleet account
assigned as its admin (`admin_account_id`), a backfill is queued for the inspect worker, which lists
the waiting requests through MTProto's `messages.getChatInviteImporters` (tgops.groups.backfill).

Removal: activity is known only from what the bot has seen since it joined. A member is inactive when
the bot has watched them (joined or spoke) for longer than the rule's `inactive_days` without a
message; members the bot never saw are reported as unknown, never removed. Admins, the bot itself and
`allow_user_ids` are spared. Until the operator confirms the rule (`tgops.groups.repository.confirm_kick_rule`), a run is a
preview: it records whom it would remove and removes nobody. Every removal is recorded with its reason.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from telegram.error import TelegramError

from tgops.broadcast.sender import with_debug_code
from tgops.groups.backfill import request_backfill
from tgops.telegram.bot_client import BotClient, Lane

if TYPE_CHECKING:
    from tgops.config import Settings
    from tgops.db.database import Database
    from tgops.messaging.backend import QueueSender

log = logging.getLogger(__name__)

POSTS_PER_RUN = 50


async def refresh_member_count(
    db: Database, client: BotClient, chat_id: int, *, backfill_through: Backfill | None = None
) -> int | None:
    async def request(bot, _chat):
        return await bot.get_chat_member_count(chat_id)

    try:
        count = await client.call(request, chat_id=None, lane=Lane.BULK)
    except TelegramError as error:
        log.warning("member count of %s not refreshed: %s", chat_id, error.message)
        return None
    row = await db.fetch_one("group_set_member_count", {"chat_id": chat_id, "member_count": count})
    if row is not None and row["phase"] != row["previous_phase"]:
        await db.execute("group_phase_changed", {"chat_id": chat_id})
        log.info(
            "group %s: phase %s -> %s at %d members", chat_id, row["previous_phase"], row["phase"], count
        )
    await detect_join_gap(db, client, chat_id, backfill_through=backfill_through)
    return count


@dataclass(frozen=True)
class Backfill:
    """Where a detected gap's backfill is queued (tgops.groups.backfill.request_backfill)."""

    queues: QueueSender
    settings: Settings


async def detect_join_gap(
    db: Database, client: BotClient, chat_id: int, *, backfill_through: Backfill | None = None
) -> int | None:
    """Requests waiting on the group's invite link that never reached us; None when it cannot tell.
    With `backfill_through`, a gap of a group that has an admin account is backfilled."""
    if client.dry_run:  # no Telegram to ask: the outbox answers no invite link
        return None
    group = await db.fetch_one("group_get_by_chat_id", {"chat_id": chat_id})
    if group is None or not group["invite_link"]:
        return None

    async def request(bot, _chat):
        return await bot.edit_chat_invite_link(chat_id, group["invite_link"])

    try:
        link = await client.call(request, chat_id=None, lane=Lane.BULK)
    except TelegramError as error:
        log.info("join gap of %s not checked: %s", chat_id, error.message)
        return None
    waiting = getattr(link, "pending_join_request_count", None)
    if waiting is None:
        return None
    known = (await db.fetch_one("join_request_pending_count", {"chat_id": chat_id}))["pending"]
    missing = max(0, waiting - known)
    await db.execute("group_set_join_gap", {"chat_id": chat_id, "missing": missing})
    if missing:
        log.warning("group %s: %d join requests wait in Telegram that never reached us", chat_id, missing)
        if backfill_through is not None:
            await request_backfill(db, backfill_through.queues, backfill_through.settings, chat_id)
    return missing


@dataclass(frozen=True)
class RemovalReport:
    chat_id: int
    preview: bool
    removed: list[int]  # or, in a preview, would be removed
    unknown: int  # members the bot has never seen


async def remove_inactive(db: Database, client: BotClient, chat_id: int) -> RemovalReport | None:
    group = await db.fetch_one("group_get_by_chat_id", {"chat_id": chat_id})
    rule = (group or {}).get("kick_rule")
    if not rule or not rule.get("inactive_days"):
        return None
    spared = {int(user_id) for user_id in rule.get("allow_user_ids", [])}
    spared |= await _admins(client, chat_id)
    spared.add(_bot_user_id(client))
    candidates = await db.fetch_all(
        "group_kick_candidates",
        {"chat_id": chat_id, "inactive_days": int(rule["inactive_days"]), "spared_user_ids": sorted(spared)},
    )
    preview = not rule.get("confirmed", False)
    removed = []
    for member in candidates:
        reason = (
            f"no message seen for {rule['inactive_days']} days (last seen {member['last_seen']:%Y-%m-%d})"
        )
        outcome = "preview" if preview else await _kick(client, chat_id, member["user_id"])
        await db.execute(
            "group_removal_record",
            {
                "chat_id": chat_id,
                "user_id": member["user_id"],
                "reason": reason,
                "preview": preview,
                "outcome": outcome,
            },
        )
        if outcome in ("preview", "removed"):
            removed.append(member["user_id"])
        if outcome == "removed":
            await db.execute("group_member_removed", {"chat_id": chat_id, "user_id": member["user_id"]})
    await db.execute("group_kick_checked", {"chat_id": chat_id})
    known = (await db.fetch_one("group_known_member_count", {"chat_id": chat_id}))["known"]
    unknown = max(0, (group["member_count"] or 0) - known)
    verb = "would remove" if preview else "removed"
    log.info("group %s: %s %d inactive members; %d members never seen", chat_id, verb, len(removed), unknown)
    return RemovalReport(chat_id, preview, removed, unknown)


async def _admins(client: BotClient, chat_id: int) -> set[int]:
    async def request(bot, _chat):
        return await bot.get_chat_administrators(chat_id)

    administrators = await client.call(request, chat_id=None, lane=Lane.BULK)
    return {member.user.id for member in administrators}


def _bot_user_id(client: BotClient) -> int:
    token = client.bot.token
    return int(token.split(":", 1)[0]) if token.split(":", 1)[0].isdigit() else 0


async def _kick(client: BotClient, chat_id: int, user_id: int) -> str:
    """Remove without banning: ban, then lift the ban, so the member may come back."""

    async def request(bot, _chat):
        await bot.ban_chat_member(chat_id, user_id)
        return await bot.unban_chat_member(chat_id, user_id, only_if_banned=True)

    try:
        await client.call(request, chat_id=None, lane=Lane.BULK)
    except TelegramError as error:
        return f"failed: {error.message}"[:200]
    return "removed"


async def send_due_posts(db: Database, client: BotClient) -> int:
    """Periodic posts whose time has come, through the bot's bulk lane; each slot at most once."""
    sent = 0
    for post in await db.fetch_all("group_posts_claim_due", {"limit": POSTS_PER_RUN}):
        error, message_id = None, None
        try:
            message = await client.call(_post_request(post), chat_id=post["chat_id"], lane=Lane.BULK)
            message_id = message.message_id
            sent += 1
        except TelegramError as failure:
            error = f"{type(failure).__name__}: {failure.message}"[:500]
        await db.execute("group_post_result", {"id": post["id"], "error": error})
        await db.execute(
            "sent_message_insert",
            {
                "job_id": None,
                "chat_id": post["chat_id"],
                "message_id": message_id,
                "debug_code": post["debug_code"],
                "status": "failed" if error else "sent",
                "error": error,
                "bot_key": client.key,
                "kind": "group_post",
            },
        )
    return sent


def _post_request(post: dict[str, Any]):
    from telegram import InlineKeyboardButton, InlineKeyboardMarkup

    rows = post["buttons"] or []
    markup = (
        InlineKeyboardMarkup([[InlineKeyboardButton(**button) for button in row] for row in rows])
        if rows
        else None
    )

    async def request(bot, chat_id):
        if post["photo_url"]:
            caption = with_debug_code(post["text"], post["debug_code"], 1024)
            return await bot.send_photo(chat_id, post["photo_url"], caption=caption, reply_markup=markup)
        return await bot.send_message(
            chat_id, with_debug_code(post["text"], post["debug_code"], 4096), reply_markup=markup
        )

    return request
