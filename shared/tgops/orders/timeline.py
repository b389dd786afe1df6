"""One order whole: what the panel asked, what tgops did, and what the panel has heard, in time order.

`order_timeline` is what `tgops orders show` prints and what the dashboard can serve as JSON.
"""

from __future__ import annotations

import datetime as dt
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from tgops.db.database import Database

ORDER_FIELDS = (
    "remote_order_id", "remote_service_id", "link", "raw_link", "post_id", "quantity", "remains", "start_count",
    "status", "action", "per_call", "interval_seconds", "next_run_at", "provider_last_error", "finish_reason",
    "link_failures",
)  # fmt: skip


async def list_orders(db: Database, *, status: str | None = None, limit: int = 20) -> list[dict[str, Any]]:
    return await db.fetch_all("recent_provider_orders", {"status": status, "limit": limit})


async def order_timeline(db: Database, remote_order_id: int) -> dict[str, Any] | None:
    """The order by its panel id, and its events oldest first; None when tgops has not polled it."""
    order = await db.fetch_one("provider_order_by_remote_id", {"remote_order_id": remote_order_id})
    if order is None:
        return None
    tasks = await db.fetch_all("order_tasks", {"order_id": order["id"]})
    updates = await db.fetch_all("order_panel_updates", {"order_id": order["id"]})
    events = _order_events(order) + _task_events(tasks) + _update_events(updates)
    events.sort(key=lambda event: event["at"])
    return {
        "order": {name: order[name] for name in ORDER_FIELDS},
        "events": events,
        "tasks": {status: sum(task["status"] == status for task in tasks) for status in _statuses(tasks)},
        "panel_updates": {
            "sent": sum(update["sent_at"] is not None for update in updates),
            "pending": sum(update["sent_at"] is None for update in updates),
        },
    }


def _event(at: dt.datetime | None, event: str, **detail: Any) -> list[dict[str, Any]]:
    return [] if at is None else [{"at": at, "event": event, **detail}]


def _order_events(order: dict[str, Any]) -> list[dict[str, Any]]:
    inspection = order["validation_result"] or {}
    verdict = "validated" if order["status"] != "depends_failed" else "validation failed"
    return [
        *_event(order["created_at"], "polled", link=order["raw_link"], quantity=order["quantity"]),
        *_event(order["validated_at"], verdict, reason=order["provider_last_error"], inspection=inspection),
        *_event(order["started_at"], "started", start_count=order["start_count"], action=order["action"],
                per_call=order["per_call"], interval_seconds=order["interval_seconds"]),
        *_event(order["recheck_requested_at"], "link recheck requested", link_failures=order["link_failures"]),
        *_event(order["finished_at"], f"ended {order['status']}", reason=order["finish_reason"]),
    ]  # fmt: skip


def _task_events(tasks: list[dict[str, Any]]) -> list[dict[str, Any]]:
    events = []
    for task in tasks:
        events += _event(task["created_at"], "task created", task_id=task["id"], action=task["action"],
                         account=task["provider_account_id"], per_call=task["per_call"])  # fmt: skip
        events += _event(task["finished_at"], f"task {task['status']}", task_id=task["id"],
                         attempt=task["attempt"], result=task["result"])  # fmt: skip
    return events


def _update_events(updates: list[dict[str, Any]]) -> list[dict[str, Any]]:
    events = []
    for update in updates:
        if update["sent_at"] is not None:
            events += _event(
                update["sent_at"], "panel told", change=update["change"], fields=update["fields"]
            )
        else:
            events += _event(update["created_at"], "panel update pending", change=update["change"],
                             fields=update["fields"], attempts=update["attempts"],
                             last_error=update["last_error"], next_try_at=update["available_at"])  # fmt: skip
    return events


def _statuses(tasks: list[dict[str, Any]]) -> list[str]:
    return sorted({task["status"] for task in tasks})
