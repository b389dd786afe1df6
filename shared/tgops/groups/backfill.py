"""Backfill of the join requests missed while the webhook was down: the part free of Telethon.

The Bot API cannot list pending join requests and bots may not call MTProto's
`messages.getChatInviteImporters`, so a group that has a fleet account assigned as its admin
(`managed_groups.admin_account_id`) gets its gap backfilled through that account:

1. `detect_join_gap` (tgops.groups.maintenance, on `tgms_queue`) finds a gap and calls `request_backfill`,
   which queues a `group_join_backfill` message on `tg-inspect`, at most one per
   `TGOPS_GROUP_BACKFILL_INTERVAL_MIN` per group (one SQL statement is the gate);
2. the Fargate inspect worker (tgops.groups.backfill_worker) lists the requests page by page on that
   account through the pool (`call_on`: its lock, its proxy's throttle, FLOOD_WAIT cooldowns) and hands
   each page to `record_importers`;
3. each importer is recorded as the webhook would have recorded its `chat_join_request`
   (tgops.groups.join_requests.record, source `backfill`): once per chat and user, the unique constraint
   decides, and the phase policy schedules it on the paced action queue; a `decide` job on `tgms_queue`
   then starts the decision pump.

Without an admin account, the gap stays detected and reported on the group. A refusal (the account is not
an admin, cannot reach the chat, was disabled) is kept on the group (`join_backfill_error`) and not asked
again before `TGOPS_GROUP_BACKFILL_REFUSED_RETRY_MIN`, or until another account is assigned.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import TYPE_CHECKING

from tgops.groups import join_requests
from tgops.groups.messages import QUEUE, BackfillJoinRequests, GroupMaintenance
from tgops.messaging.envelopes import encode
from tgops.messaging.topology import INSPECT

if TYPE_CHECKING:
    from tgops.config import Settings
    from tgops.db.database import Database
    from tgops.messaging.backend import QueueSender

log = logging.getLogger(__name__)

ERROR_MAX_CHARS = 500


@dataclass(frozen=True, slots=True)
class Importer:
    """One pending join request as getChatInviteImporters lists it."""

    user_id: int
    date: int  # unix seconds, as a chat_join_request's `date`
    username: str | None = None


async def request_backfill(db: Database, queues: QueueSender, settings: Settings, chat_id: int) -> bool:
    """Queue a backfill of the group's gap when it has an admin account and is due for one."""
    row = await db.fetch_one(
        "group_request_backfill",
        {
            "chat_id": chat_id,
            "interval_min": settings.group_backfill_interval_min,
            "refused_retry_min": settings.group_backfill_refused_retry_min,
        },
    )
    if row is None:
        return False
    job = BackfillJoinRequests(chat_id=chat_id, account_id=row["admin_account_id"])
    await queues.send(INSPECT.name, encode(job))
    log.info("group %s: join-request backfill queued on account %s", chat_id, row["admin_account_id"])
    return True


async def record_importers(db: Database, settings: Settings, chat_id: int, importers: list[Importer]) -> int:
    """Record each importer as its webhook update would have been; returns how many were new."""
    recorded = 0
    for importer in importers:
        update = {
            "chat": {"id": chat_id},
            "from": {"id": importer.user_id, "username": importer.username},
            "date": importer.date,
        }
        if await join_requests.record(db, update, settings, source="backfill") is not None:
            recorded += 1
    return recorded


async def start_decisions(queues: QueueSender, chat_id: int, dedup: str) -> None:
    """The recorded requests are decided by the group consumer's pump, as a webhook's would be."""
    job = GroupMaintenance(chat_id=chat_id, task="decide")
    await queues.send(QUEUE, encode(job), group_id=job.group_id, dedup_id=f"decide:backfill:{dedup}")


async def finished(db: Database, chat_id: int, recorded: int) -> None:
    await db.execute("group_backfill_done", {"chat_id": chat_id, "recorded": recorded})
    log.info(
        "group %s: join-request backfill done, %d requests recorded that we had missed", chat_id, recorded
    )


async def refused(db: Database, chat_id: int, error: str) -> None:
    """Kept on the group for the operator; not asked again before the refusal retry."""
    await db.execute("group_backfill_failed", {"chat_id": chat_id, "error": error[:ERROR_MAX_CHARS]})
    log.warning("group %s: join-request backfill refused: %s", chat_id, error)
