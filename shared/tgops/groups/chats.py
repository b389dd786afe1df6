"""What the Bot API tells about a group's chat, stored on its `managed_groups` row."""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

from tgops import metrics

if TYPE_CHECKING:
    from tgops.db.database import Database

log = logging.getLogger(__name__)
GROUPS_DEACTIVATED_METRIC = "GroupsDeactivated"  # alarmed in template.yaml


async def record_send_failure(db: Database, chat_id: int, reason: str, max_failures: int) -> None:
    """A failure of the chat itself; the group is deactivated after `max_failures` in a row."""
    row = await db.fetch_one(
        "group_record_send_failure",
        {"chat_id": chat_id, "reason": reason[:500], "max_failures": max_failures},
    )
    if row is not None and not row["is_active"] and row["consecutive_failures"] == max_failures:
        log.warning("group %s deactivated after %d failures in a row: %s", chat_id, max_failures, reason)
        metrics.count(GROUPS_DEACTIVATED_METRIC)


async def record_send_success(db: Database, chat_id: int) -> None:
    await db.execute("group_record_send_success", {"chat_id": chat_id})


def migration_hook(db: Database):
    """The Bot API client's `on_migrated`: the group and its pending deliveries follow the new id."""

    async def on_migrated(old_chat_id: int, new_chat_id: int) -> None:
        await db.execute("group_migrate_chat", {"old_chat_id": old_chat_id, "new_chat_id": new_chat_id})

    return on_migrated
