"""Pulls: lease up to `limit` pullable tasks with FOR UPDATE SKIP LOCKED, for `task_lease_sec`."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from tgops.config import Settings

if TYPE_CHECKING:
    from tgops.db.database import Database


@dataclass(frozen=True)
class LeasedTasks:
    """One pull: the tasks as the JSON array seed 002 shows (written by Postgres), and how many."""

    tasks_json: str
    count: int

    def tasks(self) -> list[dict[str, Any]]:
        return json.loads(self.tasks_json)


async def pull_tasks(db: Database, settings: Settings, limit: int) -> LeasedTasks:
    row = await db.fetch_one("lease_tasks", {"limit": limit, "lease_sec": settings.task_lease_sec})
    return LeasedTasks(tasks_json=row["tasks"], count=row["count"])
