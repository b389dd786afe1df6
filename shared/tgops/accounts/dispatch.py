"""The `dispatch_setup` schedule (and `tgops setup dispatch`): required setup tasks for every active,
enabled action account (never a probe), and the due ones queued, each once.

A task is queued when it is pending, or to retry and its retry_at has come, and it is not queued already:
the same statement that picks it marks it (enqueued_at), so a second run, even a concurrent one, queues
nothing twice. The runner clears the mark when it finishes the task; a message lost on the way (its DLQ)
is queued again after setup_enqueue_stale_sec. Free of Telethon: runs as a Lambda.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from tgops import switches
from tgops.accounts.setup_tasks import RunSetupTask, queue_for
from tgops.messaging.envelopes import encode
from tgops.messaging.errors import QueueUnavailable
from tgops.runtime import Runtime

log = logging.getLogger(__name__)
SEND_CONCURRENCY = 16


async def run(runtime: Runtime) -> dict[str, Any]:
    settings = runtime.settings
    if not await switches.is_on(runtime.redis(), switches.SETUP_ENABLED, settings):
        log.info("account setup is off (TGOPS_SETUP_ENABLED, or the dashboard's switch): nothing dispatched")
        return {"enabled": False}
    db = await runtime.database()
    task_types = list(settings.setup_tasks)
    created = await db.execute("setup_upsert_tasks", {"task_types": task_types})
    due = await db.fetch_all(
        "setup_mark_enqueued",
        {
            "task_types": task_types,
            "stale_sec": settings.setup_enqueue_stale_sec,
            "limit": settings.setup_dispatch_limit,
        },
    )
    queues = runtime.queues()
    gate = asyncio.Semaphore(SEND_CONCURRENCY)

    async def send(row) -> int | None:
        message = RunSetupTask(task_id=row["id"], account_id=row["account_id"], task_type=row["task_type"])
        async with gate:
            try:
                await queues.send(queue_for(row["task_type"]), encode(message))
            except QueueUnavailable as error:
                log.warning("setup task %s not queued; the next run tries again: %s", row["id"], error)
                return row["id"]
        return None

    unsent = [task_id for task_id in await asyncio.gather(*(send(row) for row in due)) if task_id is not None]
    if unsent:
        await db.execute("setup_unmark_enqueued", {"ids": unsent})
    summary = {"enabled": True, "created": created, "enqueued": len(due) - len(unsent), "unsent": len(unsent)}
    log.info("setup dispatched: %(created)d tasks created, %(enqueued)d queued, %(unsent)d not sent", summary)
    return summary
