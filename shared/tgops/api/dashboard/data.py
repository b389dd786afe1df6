"""What each dashboard page shows, read from Postgres, Redis and the queues (nothing here renders)."""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
from dataclasses import dataclass
from functools import cache
from typing import TYPE_CHECKING, Any

import boto3
from botocore.exceptions import BotoCoreError, ClientError

from tgops import switches
from tgops.messaging.sqs import SqsQueues
from tgops.messaging.topology import DLQ_ALARM_THRESHOLD, QUEUES, QUEUES_BY_NAME, QueueSpec
from tgops.orders.timeline import order_timeline
from tgops.provider.stats import task_counts

if TYPE_CHECKING:
    from tgops.runtime import Runtime

log = logging.getLogger(__name__)
OLDEST_AGE_ALARM_SEC = 300  # as template.yaml's age alarms
STUCK_VALIDATING_SEC = 15 * 60
STUCK_IDLE_SEC = 30 * 60
HISTORY_DAYS = 14


@dataclass(frozen=True)
class QueueRow:
    spec: QueueSpec
    depth: dict[str, int]
    dlq_depth: dict[str, int]
    oldest_sec: int | None
    dlq_oldest_sec: int | None

    @property
    def alarms(self) -> list[str]:
        found = []
        if self.dlq_depth.get("visible", 0) > DLQ_ALARM_THRESHOLD:
            found.append(f"{self.spec.dlq_name} holds {self.dlq_depth['visible']} messages")
        if (self.oldest_sec or 0) > OLDEST_AGE_ALARM_SEC:
            found.append(f"the oldest message of {self.spec.name} has waited {self.oldest_sec} s")
        return found


async def queue_rows(runtime: Runtime) -> list[QueueRow]:
    depths = await asyncio.to_thread(runtime.queues().approximate_depths)
    ages = await oldest_ages(runtime, depths)
    return [
        QueueRow(spec, depths.get(spec.name, {}), depths.get(spec.dlq_name, {}), ages.get(spec.name),
                 ages.get(spec.dlq_name))
        for spec in QUEUES
    ]  # fmt: skip


async def oldest_ages(runtime: Runtime, depths: dict[str, dict[str, int]]) -> dict[str, int]:
    """Seconds the oldest message of each queue and DLQ has waited, where known.

    SQS answers this only through CloudWatch (ApproximateAgeOfOldestMessage); a DLQ's age also comes from
    the failure log in Postgres, which every backend writes, and is shown only while the DLQ holds any."""
    db = await runtime.database()
    ages = {
        spec.dlq_name: row["oldest_sec"]
        for row in await db.fetch_all("dash_dead_letter_ages")
        if (spec := QUEUES_BY_NAME.get(row["queue"])) and depths.get(spec.dlq_name, {}).get("visible")
    }
    queues = runtime.queues()
    if isinstance(queues, SqsQueues) and not runtime.settings.sqs_endpoint_url:
        ages |= await asyncio.to_thread(cloudwatch_ages, queues, runtime.settings.aws_region)
    return ages


def cloudwatch_ages(queues: SqsQueues, region: str | None) -> dict[str, int]:
    names = [queue for spec in QUEUES for queue in (spec.name, spec.dlq_name)]
    end = dt.datetime.now(dt.UTC)
    metric = [
        {"Id": f"q{index}", "MetricStat": {"Metric": {
            "Namespace": "AWS/SQS", "MetricName": "ApproximateAgeOfOldestMessage",
            "Dimensions": [{"Name": "QueueName", "Value": queues.physical_name(name)}]},
            "Period": 60, "Stat": "Maximum"}}
        for index, name in enumerate(names)
    ]  # fmt: skip
    try:
        response = _cloudwatch(region).get_metric_data(
            MetricDataQueries=metric, StartTime=end - dt.timedelta(minutes=10), EndTime=end,
            ScanBy="TimestampDescending",
        )  # fmt: skip
    except (BotoCoreError, ClientError) as error:
        log.warning("queue ages unknown: CloudWatch answered %s", type(error).__name__)
        return {}
    return {
        names[int(result["Id"][1:])]: int(result["Values"][0])
        for result in response["MetricDataResults"]
        if result["Values"]
    }


@cache
def _cloudwatch(region: str | None) -> Any:
    return boto3.client("cloudwatch", region_name=region)


async def overview(runtime: Runtime) -> dict[str, Any]:
    db = await runtime.database()
    rows = await queue_rows(runtime)
    facts = await db.fetch_one("dash_alarm_facts")
    return {
        "queues": rows,
        "alarms": [alarm for row in rows for alarm in row.alarms] + pool_and_group_alarms(facts),
        "activity": await db.fetch_one("dash_activity_last_hour"),
        "switches": await switches.states(runtime.redis(), runtime.settings),
    }


def pool_and_group_alarms(facts: dict[str, int]) -> list[str]:
    found = []
    if facts["accounts"] and not facts["usable_action_accounts"]:
        why = (
            f"all {facts['action_accounts']} cooling down or disabled"
            if facts["action_accounts"]
            else "none imported"
        )
        found.append(f"no action account is usable ({why}): tasks fail with NO_AVAILABLE_ACCOUNTS")
    if facts["accounts"] and not facts["usable_probe_accounts"]:
        found.append("no probe account is usable: link inspection cannot run")
    if facts["groups_deactivated_last_hour"]:
        found.append(f"{facts['groups_deactivated_last_hour']} group(s) deactivated in the last hour")
    return found


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
        "setup": await db.fetch_all(
            "dash_setup_progress", {"task_types": list(runtime.settings.setup_tasks)}
        ),
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
        "top_commands": await db.fetch_all("dash_top_commands", {"days": HISTORY_DAYS}),
        "bots": await db.fetch_all("dash_cloned_bots"),
    }


async def groups(runtime: Runtime) -> dict[str, Any]:
    db = await runtime.database()
    history: dict[int, list[tuple[dt.datetime, int]]] = {}
    for row in await db.fetch_all("dash_member_history", {"days": HISTORY_DAYS}):
        history.setdefault(row["chat_id"], []).append((row["counted_at"], row["member_count"]))
    return {
        "groups": await db.fetch_all("dash_groups"),
        "charts": {chat_id: line(points) for chat_id, points in history.items()},
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


def line(points: list[tuple[dt.datetime, int]], *, width: int = 220, height: int = 40) -> dict[str, Any]:
    """A line chart's SVG polyline over time, its values spread between their lowest and highest."""
    start, end = points[0][0], points[-1][0]
    span = (end - start).total_seconds() or 1
    low, high = min(value for _, value in points), max(value for _, value in points)
    spread = high - low or 1
    pad = 3
    coordinates = [
        (pad + (at - start).total_seconds() / span * (width - 2 * pad),
         height - pad - (value - low) / spread * (height - 2 * pad))
        for at, value in points
    ]  # fmt: skip
    return {
        "points": " ".join(f"{x:.1f},{y:.1f}" for x, y in coordinates),
        "count": len(points), "low": low, "high": high, "first": points[0][1], "last": points[-1][1],
        "since": start, "width": width, "height": height,
    }  # fmt: skip
