"""Task counts for the dashboard and metrics."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from tgops.db.database import Database


STATUSES = ("queued", "leased", "pending", "done", "failed")


async def task_counts(db: Database) -> dict[str, int]:
    """Tasks per status, plus `expired_leases`: leased or pending tasks whose lease ran out."""
    counts = dict.fromkeys(STATUSES, 0)
    for row in await db.fetch_all("task_status_counts"):
        counts[row["status"]] = row["tasks"]
    counts["expired_leases"] = (await db.fetch_one("expired_lease_count"))["tasks"]
    return counts
