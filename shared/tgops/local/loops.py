"""The consumer loops and schedules that `tgops dev` runs beside the API, in one process.

Every queue, Lambda-consumed ones included, runs through the consumer engine's Fargate driver
(tgops.messaging.worker): the same policy as on AWS, with long polling instead of an event source."""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging

from tgops.handlers import queue_handler, schedule_handler
from tgops.messaging.topology import QUEUES, SCHEDULES
from tgops.runtime import Runtime, scheduled_run

log = logging.getLogger("tgops.dev")
LOCAL_WAIT_TIME_SEC = 1  # short polls so Ctrl-C never waits on a long poll


def background_tasks(runtime: Runtime, stop: asyncio.Event) -> list[asyncio.Task]:
    from tgops.messaging.worker import QueueWorker

    tasks = []
    for spec in QUEUES:
        handler = queue_handler(spec.name)
        if handler is None:
            log.warning("queue %s has no handler yet: its messages stay queued", spec.name)
            continue
        worker = QueueWorker(
            runtime.queues(),
            spec,
            functools.partial(handler, runtime),
            wait_time_sec=LOCAL_WAIT_TIME_SEC,
            database=runtime.database,
        )
        tasks.append(asyncio.create_task(worker.run(stop), name=f"consumer:{spec.name}"))
    for schedule in SCHEDULES:
        handler = schedule_handler(schedule.name)
        if handler is None:
            log.warning("schedule %s has no handler yet", schedule.name)
            continue
        period_sec = runtime.settings.dev_schedule_period_sec or schedule.rate_minutes * 60
        task = run_every(period_sec, functools.partial(handler, runtime), stop, schedule.name)
        tasks.append(asyncio.create_task(task, name=f"schedule:{schedule.name}"))
    return tasks


async def run_every(period_sec: float, job, stop: asyncio.Event, name: str) -> None:
    while not stop.is_set():
        try:
            with scheduled_run(name):
                await job()
        except Exception:
            log.exception("schedule %s failed; it runs again in %.0fs", name, period_sec)
        with contextlib.suppress(asyncio.TimeoutError):
            await asyncio.wait_for(stop.wait(), period_sec)
