"""The `group_tick` schedule: queue each group's due maintenance on `tgms_queue` (in line with its
updates, deduplicated per slot), and send the periodic posts that are due."""

from __future__ import annotations

import logging
import time
from typing import TYPE_CHECKING

from tgops.groups import join_requests, maintenance
from tgops.groups.consumer import main_bot
from tgops.groups.messages import QUEUE, GroupMaintenance
from tgops.messaging.envelopes import encode

if TYPE_CHECKING:
    from tgops.runtime import Runtime

log = logging.getLogger(__name__)

GROUPS_PER_RUN = 500
DEDUP_SLOT_SEC = 300  # one job per group, task and tick (the schedule runs every 5 minutes)


async def run(runtime: Runtime) -> dict[str, int]:
    db = await runtime.database()
    settings = runtime.settings
    due = {
        # One job starts the decision pump, which serves every group.
        "decide": (await join_requests.chats_with_due_decisions(db, GROUPS_PER_RUN))[:1],
        "member_count": _chats(
            await db.fetch_all(
                "groups_due_member_count",
                {"interval_min": settings.group_member_count_interval_min, "limit": GROUPS_PER_RUN},
            )
        ),
        "kick_inactive": _chats(
            await db.fetch_all(
                "groups_due_kick", {"interval_min": settings.group_kick_interval_min, "limit": GROUPS_PER_RUN}
            )
        ),
    }
    slot = int(time.time() // DEDUP_SLOT_SEC)
    queues = runtime.queues()
    for task, chat_ids in due.items():
        for chat_id in chat_ids:
            job = GroupMaintenance(chat_id=chat_id, task=task)
            await queues.send(QUEUE, encode(job), group_id=job.group_id, dedup_id=f"{task}:{chat_id}:{slot}")
    posted = await maintenance.send_due_posts(db, await main_bot(runtime))
    counts = {task: len(chat_ids) for task, chat_ids in due.items()} | {"posts": posted}
    log.info("group_tick: %s", counts)
    return counts


def _chats(rows: list[dict]) -> list[int]:
    return [row["chat_id"] for row in rows]
