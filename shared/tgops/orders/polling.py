"""poll_orders: fetch the panel's orders, store them, and dispatch link validation (seed 000 C.1).

One poll per order status at a time (`socpanel:poll:{status}`). For each order: normalize its link,
upsert it, and dispatch a tg-inspect job for its group (service, normalized link) unless the order
needs none, a job for the group went out in the last 90 s, or this run already dispatched its cap.
A bad panel answer, a bad order or a bad link is logged with the order id and never ends the run.
"""

from __future__ import annotations

import logging
import random
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from tgops import metrics
from tgops.cache import keys
from tgops.cache.client import RedisClient
from tgops.cache.lock import TokenLock
from tgops.config import Settings
from tgops.db.database import Database
from tgops.db.errors import DatabaseError, DatabaseUnavailable
from tgops.db.params import jsonb
from tgops.messaging.backend import QueueSender
from tgops.messaging.envelopes import encode
from tgops.messaging.errors import QueueUnavailable
from tgops.messaging.topology import INSPECT
from tgops.orders import lifecycle
from tgops.orders.messages import ValidateOrderGroup
from tgops.orders.panel import HttpPanel, Panel, PanelError, PanelOrder
from tgops.runtime import Runtime
from tgops.telegram.links import parse_link

log = logging.getLogger(__name__)

RECENT_ERROR_SEC = 30  # an order that failed this recently waits for the next poll
DISPATCH_LOCK_NEW_SEC = 90
DISPATCH_LOCK_KNOWN_SEC = 45
# Skips worth a log line (once per order and reason); the rest are the normal state of most orders.
LOGGED_SKIPS = frozenset(
    {
        "dispatched_recently",
        "dispatch_locked",
        "being_sent",
        "validation_gave_up",
        "run_cap_reached",
        "send_failed",
    }
)


@dataclass
class PollReport:
    fetched: int = 0
    stored: int = 0
    malformed: int = 0
    invalid_links: int = 0
    panel_errors: int = 0
    dispatched: int = 0
    locked_statuses: list[str] = field(default_factory=list)
    skipped: Counter = field(default_factory=Counter)  # reason -> orders not dispatched for it


async def run(runtime: Runtime) -> None:
    """The `poll_orders` schedule."""
    settings = runtime.settings
    if not settings.panel_base_url:
        log.info("poll_orders: TGOPS_PANEL_BASE_URL is not set; nothing to poll")
        return
    panel = HttpPanel.from_settings(settings)
    try:
        poller = OrderPoller(settings, await runtime.database(), runtime.redis(), runtime.queues(), panel)
        report = await poller.poll()
    finally:
        await panel.aclose()
    log.info(
        "poll_orders: %d stored, %d dispatched, %d invalid links, %d malformed, %d panel errors",
        report.stored, report.dispatched, report.invalid_links, report.malformed, report.panel_errors,
        extra={"report": report.__dict__ | {"skipped": dict(report.skipped)}},
    )  # fmt: skip


class OrderPoller:
    def __init__(
        self,
        settings: Settings,
        db: Database,
        redis: RedisClient,
        queues: QueueSender,
        panel: Panel,
        *,
        rng: random.Random | None = None,
    ) -> None:
        self._settings = settings
        self._db = db
        self._redis = redis
        self._queues = queues
        self._panel = panel
        self._rng = rng or random.Random()

    async def poll(self) -> PollReport:
        report = PollReport()
        for status in self._settings.panel_poll_statuses:
            lock = TokenLock(self._redis, keys.poll_lock(status), self._settings.poll_lock_sec * 1000)
            async with lock.held() as acquired:
                if not acquired:
                    log.info("poll of %s orders already running elsewhere; skipped", status)
                    report.locked_statuses.append(status)
                    continue
                await self._poll_status(status, report)
        publish_report(report)
        return report

    async def _poll_status(self, status: str, report: PollReport) -> None:
        for service_id in self._settings.panel_service_ids or [None]:
            try:
                page = await self._panel.fetch_orders(status, service_id)
            except PanelError as error:
                report.panel_errors += 1
                log.warning(
                    "panel poll failed",
                    extra={"status": status, "service_id": service_id, "reason": str(error)},
                )
                continue
            report.fetched += len(page.orders) + len(page.malformed)
            for bad in page.malformed:
                report.malformed += 1
                log.warning(
                    "malformed panel order %s skipped: %s", bad.order_id, bad.reason,
                    extra={"order_id": bad.order_id, "reason": bad.reason},
                )  # fmt: skip
            for order in page.orders:
                await self._store(order, report)

    async def _store(self, order: PanelOrder, report: PollReport) -> None:
        parsed = parse_link(order.link)
        raw_link = order.link.replace("\x00", "\ufffd")  # Postgres text cannot hold NUL
        invalid = not parsed.is_valid
        params: dict[str, Any] = {
            "remote_order_id": order.id,
            "remote_service_id": order.service_id,
            "raw_link": raw_link,
            "link": parsed.normalized or raw_link.strip(),
            "post_id": parsed.post_id if parsed.kind in ("post", "private_post") else None,
            "quantity": order.quantity,
            "remains": order.remains,
            "start_count": order.start_count,
            "status": "depends_failed" if invalid and order.status == "validating" else order.status,
            "error": f"invalid link: {parsed.reason}" if invalid else None,
            "validation_result": jsonb({"link_kind": "invalid", "reason": parsed.reason})
            if invalid
            else None,
            "recent_error_sec": RECENT_ERROR_SEC,
        }
        withdrawn: list = []
        try:
            async with self._db.transaction() as tx:
                row = await tx.fetch_one("upsert_provider_order", params)
                withdrawn = await self._follow_panel(tx, order, row)
        except DatabaseUnavailable:
            raise
        except DatabaseError as error:
            report.malformed += 1
            log.warning(
                "panel order %s not stored: %s",
                order.id,
                error,
                extra={"order_id": order.id, "reason": str(error)},
            )
            return
        await lifecycle.release(self._redis, withdrawn)
        report.stored += 1
        if invalid:
            report.invalid_links += 1
            if row["previous_raw_link"] != raw_link:  # logged once, not on every poll
                log.warning(
                    "panel order %s has an invalid link: %s", order.id, parsed.reason,
                    extra={"order_id": order.id, "reason": parsed.reason},
                )  # fmt: skip
            return
        reason = skip_reason(row) or await self._dispatch(row, report)
        if reason:
            report.skipped[reason] += 1
            if reason in LOGGED_SKIPS and await self._db.fetch_one(
                "note_dispatch_skip", {"id": row["id"], "reason": reason}
            ):
                log.info(
                    "order %s not dispatched for validation: %s", order.id, reason,
                    extra={"order_id": order.id, "reason": reason},
                )  # fmt: skip

    async def _follow_panel(self, tx, order: PanelOrder, row: dict[str, Any]) -> list:
        """What the panel decides: a cancellation, or the start of a validated order that waits for it."""
        if row["status"] == "canceled" and row["previous_status"] not in (None, "canceled"):
            log.info("order %s canceled by the panel", order.id, extra={"order_id": order.id})
            return await lifecycle.cancel(tx, self._settings, row["id"])
        if row["status"] == "depends_ok" and order.status in lifecycle.EXECUTING:
            await lifecycle.start(tx, self._settings, row["remote_service_id"], [row["id"]])
            log.info("order %s started by the panel", order.id, extra={"order_id": order.id})
        return []

    async def _dispatch(self, row: dict[str, Any], report: PollReport) -> str | None:
        """Send the group's validation job; return why not when it was not sent."""
        if report.dispatched >= self._settings.max_validate_dispatch_per_run:
            return "run_cap_reached"
        group = keys.group_key(row["remote_service_id"], row["link"])
        lock_sec = DISPATCH_LOCK_NEW_SEC if row["created"] else DISPATCH_LOCK_KNOWN_SEC
        lock = TokenLock(self._redis, keys.validate_dispatch_lock(group), lock_sec * 1000)
        async with lock.held() as acquired:
            if not acquired:
                return "dispatch_locked"
            dedupe_key = keys.inspect_dispatch(group)
            if not await self._redis.set(
                dedupe_key, "1", nx=True, ex=self._settings.validate_dispatch_dedupe_sec
            ):
                return "dispatched_recently"
            job = ValidateOrderGroup(remote_service_id=row["remote_service_id"], link=row["link"])
            delay = self._rng.randint(0, self._settings.dispatch_jitter_max_sec)
            try:
                await self._queues.send(INSPECT.name, encode(job), delay_sec=delay)
            except QueueUnavailable as error:
                await self._redis.delete(dedupe_key)  # nothing went out: the next poll may try again
                log.warning(
                    "validation dispatch for order %s failed: %s", row["remote_order_id"], error,
                    extra={"order_id": row["remote_order_id"], "reason": str(error)},
                )  # fmt: skip
                return "send_failed"
        report.dispatched += 1
        return None


def publish_report(report: PollReport) -> None:
    """One poll run's counts as metrics, zeros included: a dashboard tells "none" from "no run"."""
    metrics.publish(
        {
            "PollRuns": 1,
            "OrdersFetched": report.fetched,
            "OrdersStored": report.stored,
            "OrdersDispatched": report.dispatched,
            "OrdersMalformed": report.malformed,
            "OrdersInvalidLink": report.invalid_links,
            "PanelErrors": report.panel_errors,
            "PollStatusesLocked": len(report.locked_statuses),
        }
    )
    for reason, skipped in report.skipped.items():
        metrics.count("OrdersSkipped", skipped, reason=reason)


def skip_reason(row: dict[str, Any]) -> str | None:
    """Why a stored order needs no validation job now (seed 000 C.1), or None when it needs one."""
    if row["remains"] <= 0:
        return "no_remains"
    if row["status"] != "validating":
        return "not_validating"
    if row["being_sent"]:
        return "being_sent"
    if row["gave_up"]:
        return "validation_gave_up"
    if not row["created"] and row["recently_failed"]:
        return "failed_recently"
    return None
