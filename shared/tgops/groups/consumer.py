"""The `tgms_queue` consumer (`group_consumer` Lambda, and `tgops dev`): the groups' Telegram updates
and the maintenance jobs `group_tick` queues, one chat's messages in order (FIFO group per chat).

- `chat_join_request`: recorded once, then decided by policy (tgops.groups.join_requests);
- `chat_member`, group messages: what the bot sees of members (joins, leaves, activity);
- `my_chat_member`: the bot's own membership (removed from a group: the group is deactivated);
- maintenance: due decisions, member counts, inactive-member removal (tgops.groups.maintenance).

Only the main bot's groups are managed here; updates of other bots' groups are recorded and held.
"""

from __future__ import annotations

import logging
import time
from typing import TYPE_CHECKING, Any

from tgops.groups import join_requests, maintenance
from tgops.groups.chats import migration_hook
from tgops.groups.messages import QUEUE, GroupMaintenance
from tgops.ingress.messages import MAIN_BOT_ID, TelegramUpdateReceived
from tgops.messaging.envelopes import decode_any, encode
from tgops.telegram.bot_client import BotClient, bot_client

if TYPE_CHECKING:
    from tgops.db.database import Database
    from tgops.messaging.sqs import Received
    from tgops.runtime import Runtime

log = logging.getLogger(__name__)

LEFT_STATUSES = frozenset({"left", "kicked"})


async def main_bot(runtime: Runtime) -> BotClient:
    db = await runtime.database()
    token = runtime.settings.telegram_bot_token.get_secret_value()
    return bot_client(token, runtime.settings, runtime.redis(), db, on_migrated=migration_hook(db))


async def handle(runtime: Runtime, message: Received) -> None:
    decoded = decode_any(message.body, (TelegramUpdateReceived, GroupMaintenance))
    db = await runtime.database()
    if isinstance(decoded, GroupMaintenance):
        await _maintain(runtime, db, decoded)
        return
    payload = decoded.update.get(decoded.update_type)
    if not isinstance(payload, dict):
        return
    if decoded.update_type == "chat_join_request":
        recorded = await join_requests.record(db, payload, runtime.settings)
        if recorded is not None and decoded.bot_id == MAIN_BOT_ID:
            await _decide(runtime, db, payload["chat"]["id"])
    elif decoded.update_type == "chat_member":
        await _member_changed(db, payload)
    elif decoded.update_type == "my_chat_member":
        await _bot_membership_changed(db, payload)
    elif decoded.update_type in ("message", "edited_message"):
        await _member_spoke(db, payload)


async def _maintain(runtime: Runtime, db: Database, job: GroupMaintenance) -> None:
    if job.task == "decide":
        await _decide(runtime, db, job.chat_id)
        return
    client = await main_bot(runtime)
    if job.task == "member_count":
        backfill = maintenance.Backfill(runtime.queues(), runtime.settings)
        await maintenance.refresh_member_count(db, client, job.chat_id, backfill_through=backfill)
    else:
        await maintenance.remove_inactive(db, client, job.chat_id)


async def _decide(runtime: Runtime, db: Database, chat_id: int) -> None:
    """Pump the due decisions; if time ran out with some still waiting, go on in a fresh message."""
    wait = runtime.settings.group_decision_wait_sec
    client = await main_bot(runtime)
    _, unfinished = await join_requests.decide_due(db, client, runtime.settings, runtime.redis(), wait)
    if unfinished:
        job = GroupMaintenance(chat_id=chat_id, task="decide")
        slot = int(time.time())
        await runtime.queues().send(QUEUE, encode(job), group_id=job.group_id, dedup_id=f"decide:{slot}")


async def _member_changed(db: Database, update: dict[str, Any]) -> None:
    member = update.get("new_chat_member") or {}
    user = member.get("user") or {}
    if "id" not in user:
        return
    status = member.get("status", "member")
    await db.execute(
        "group_member_seen",
        {
            "chat_id": update["chat"]["id"],
            "user_id": user["id"],
            "status": status,
            "new_status": status,
            "is_bot": bool(user.get("is_bot")),
            "active": False,
        },
    )


async def _member_spoke(db: Database, message: dict[str, Any]) -> None:
    user = message.get("from") or {}
    if "id" not in user or (message.get("chat") or {}).get("type") not in ("group", "supergroup"):
        return
    await db.execute(
        "group_member_seen",
        {
            "chat_id": message["chat"]["id"],
            "user_id": user["id"],
            "status": "member",
            "new_status": None,
            "is_bot": bool(user.get("is_bot")),
            "active": True,
        },
    )


async def _bot_membership_changed(db: Database, update: dict[str, Any]) -> None:
    status = (update.get("new_chat_member") or {}).get("status")
    still_member = status not in LEFT_STATUSES
    reason = f"the bot's membership became {status!r}"
    await db.execute(
        "group_set_bot_status",
        {"chat_id": update["chat"]["id"], "still_member": still_member, "reason": reason},
    )
    if not still_member:
        log.warning("group %s: %s; deactivated", update["chat"]["id"], reason)
