"""Pulls: lease up to `limit` pullable tasks with FOR UPDATE SKIP LOCKED, for `task_lease_sec`."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from tgops.config import Settings

if TYPE_CHECKING:
    from tgops.db.database import Database, Row


async def pull_tasks(db: Database, settings: Settings, limit: int) -> list[dict[str, Any]]:
    rows = await db.fetch_all("lease_tasks", {"limit": limit, "lease_sec": settings.task_lease_sec})
    return [task_view(row) for row in rows]


def task_view(row: Row) -> dict[str, Any]:
    """A leased task as seed 002 shows it, plus `lease_version` and `leased_until`.

    `attempt` counts earlier leases (0 on the first pull, as in the seed); the stored column counts
    this one too.
    """
    return {
        "task_id": row["id"],
        "order_id": row["order_id"],
        "action": row["action"],
        "link": row["link"],
        "account": {"provider_account_id": row["provider_account_id"], "phone": row["phone"]},
        "per_call": row["per_call"],
        "post_id": row["post_id"],
        "link_hash": row["link_hash"],
        "attempt": row["attempt"] - 1,
        "lease_version": row["lease_version"],
        "leased_until": row["leased_until"].isoformat(),
    }
