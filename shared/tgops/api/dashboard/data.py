"""What each dashboard page shows, read from Postgres, Redis and the queues (nothing here renders)."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from tgops import switches
from tgops.messaging.topology import DLQ_ALARM_THRESHOLD, QUEUES, QueueSpec
from tgops.orders.timeline import order_timeline
from tgops.provider.stats import task_counts

if TYPE_CHECKING:
    from tgops.runtime import Runtime

STUCK_VALIDATING_SEC = 15 * 60
STUCK_IDLE_SEC = 30 * 60
HISTORY_DAYS = 14


@dataclass(frozen=True)
class QueueRow:
    spec: QueueSpec
    depth: dict[str, int]
    dlq_depth: dict[str, int]

    @property
    def alarm(self) -> bool:
        return self.dlq_depth.get("visible", 0) > DLQ_ALARM_THRESHOLD


async def queue_rows(runtime: Runtime) -> list[QueueRow]:
    depths = await asyncio.to_thread(runtime.queues().approximate_depths)
    return [QueueRow(spec, depths.get(spec.name, {}), depths.get(spec.dlq_name, {})) for spec in QUEUES]


async def overview(runtime: Runtime) -> dict[str, Any]:
    db = await runtime.database()
    rows = await queue_rows(runtime)
    return {
        "queues": rows,
        "alarms": [
            f"{row.spec.dlq_name} holds {row.dlq_depth.get('visible', 0)} messages"
            for row in rows
            if row.alarm
        ],
        "activity": await db.fetch_one("dash_activity_last_hour"),
        "switches": await switches.states(runtime.redis(), runtime.settings),
    }


async def orders(runtime: Runtime, status: str | None) -> dict[str, Any]:
    db = await runtime.database()
    return {
        "counts": await db.fetch_all("dash_order_status_counts"),
        "orders": await db.fetch_all("dash_orders", {"status": status, "limit": 200}),
        "stuck": await db.fetch_all(
            "dash_stuck_orders", {"validating_sec": STUCK_VALIDATING_SEC, "idle_sec": STUCK_IDLE_SEC}
        ),
        "status": status,
        "stuck_validating_sec": STUCK_VALIDATING_SEC,
        "stuck_idle_sec": STUCK_IDLE_SEC,
    }


async def order(runtime: Runtime, remote_order_id: int) -> dict[str, Any] | None:
    """One order's timeline (tgops.orders.timeline, as `tgops orders show` prints it)."""
    return await order_timeline(await runtime.database(), remote_order_id)


async def accounts(runtime: Runtime) -> dict[str, Any]:
    db = await runtime.database()
    return {
        "accounts": [
            row | {"phone": mask_phone(row["phone"])}
            for row in await db.fetch_all("dash_accounts", {"limit": 1000})
        ],
        "proxies": await db.fetch_all("dash_accounts_per_proxy"),
        "setup": await db.fetch_all("dash_setup_progress"),
    }


async def tasks(runtime: Runtime, status: str | None) -> dict[str, Any]:
    db = await runtime.database()
    return {
        "counts": await task_counts(db),
        "per_account": await db.fetch_all("dash_tasks_per_provider_account"),
        "recent": await db.fetch_all("dash_recent_tasks", {"status": status}),
        "status": status,
    }


async def bot_usage(runtime: Runtime) -> dict[str, Any]:
    db = await runtime.database()
    return {
        "totals": await db.fetch_one("dash_bot_totals"),
        "points": await db.fetch_all("dash_points_per_day", {"days": HISTORY_DAYS}),
        "commands": await db.fetch_all("dash_commands_per_day", {"days": HISTORY_DAYS}),
        "bots": await db.fetch_all("dash_cloned_bots"),
    }


async def groups(runtime: Runtime) -> dict[str, Any]:
    db = await runtime.database()
    history: dict[int, list[int]] = {}
    for row in await db.fetch_all("dash_member_history", {"days": HISTORY_DAYS}):
        history.setdefault(row["chat_id"], []).append(row["member_count"])
    return {
        "groups": await db.fetch_all("dash_groups"),
        "charts": {chat_id: bars(counts, width=160, height=30) for chat_id, counts in history.items()},
        "join_requests": await db.fetch_all("dash_join_requests"),
        "broadcasts": await db.fetch_all("dash_broadcasts"),
    }


async def outbox(runtime: Runtime, method: str | None) -> dict[str, Any]:
    db = await runtime.database()
    return {"calls": await db.fetch_all("dash_outbox", {"method": method, "limit": 200}), "method": method}


def mask_phone(phone: str | None) -> str:
    """Enough of a phone number to tell accounts apart, not to dial it."""
    if not phone or len(phone) < 6:
        return phone or ""
    return f"{phone[:3]}…{phone[-3:]}"


def bars(values: list[int], *, width: int = 300, height: int = 60) -> list[dict[str, float]]:
    """Bar geometry for an inline SVG chart (server-side: no charting library in the browser)."""
    if not values:
        return []
    top = max(values) or 1
    step = width / len(values)
    return [
        {
            "x": index * step,
            "w": max(step - 2, 1),
            "h": value / top * height,
            "y": height - value / top * height,
            "v": value,
        }
        for index, value in enumerate(values)
    ]
