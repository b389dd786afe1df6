"""Which code handles each queue and each schedule, declared once for Lambda, Fargate and `tgops dev`.

Values are "module:function" paths, imported only when used, so a Lambda never imports another
consumer's dependencies (Telethon above all).
- queue handler:    `async def handle(runtime: Runtime, message: Received) -> None`
- schedule handler: `async def run(runtime: Runtime) -> None`
"""

from __future__ import annotations

from collections.abc import Callable
from importlib import import_module

QUEUE_HANDLERS: dict[str, str] = {
    "dm_queue": "tgops.dm.consumer:handle",
    "tg-inspect": "tgops.workers.inspect_queue:handle",  # order validation, join-request backfill
    "group_message_queue": "tgops.broadcast.consumer:handle",
    "tgms_queue": "tgops.groups.consumer:handle",
    "tg-setup-fast": "tgops.accounts.runner:handle",
    "tg-setup-media": "tgops.accounts.runner:handle",
}
SCHEDULE_HANDLERS: dict[str, str] = {
    "poll_orders": "tgops.orders.polling:run",
    "generate_tasks": "tgops.provider.generation:run",
    "group_tick": "tgops.groups.tick:run",
    "dispatch_setup": "tgops.accounts.dispatch:run",
    "flush_panel_updates": "tgops.orders.panel_updates:run",
}


def resolve(path: str) -> Callable:
    module_name, _, attribute = path.partition(":")
    return getattr(import_module(module_name), attribute)


def queue_handler(queue_name: str) -> Callable | None:
    path = QUEUE_HANDLERS.get(queue_name)
    return resolve(path) if path else None


def schedule_handler(schedule_name: str) -> Callable | None:
    path = SCHEDULE_HANDLERS.get(schedule_name)
    return resolve(path) if path else None
