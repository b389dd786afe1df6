"""The outbox to the panel: every change of a field tgops owns, told durably and in order.

`record` writes one row per order, inside the caller's transaction, so a change and the news of it
commit together. The `flush_panel_updates` schedule sends them through the panel adapter: per order
the oldest unsent update first and nothing after it until it is sent; each carries its row id as its
idempotency key, so one sent again after a crash between sending and marking is applied once. A
failed send waits out a backoff and is tried again, as long as it takes; the other orders go on.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

from tgops import metrics
from tgops.orders.panel import HttpPanel, Panel, PanelError

if TYPE_CHECKING:
    from tgops.config import Settings
    from tgops.db.database import Database, Session
    from tgops.runtime import Runtime

log = logging.getLogger(__name__)

MAX_ERROR_CHARS = 500


def idempotency_key(update_id: int) -> str:
    return f"tgops-order-update-{update_id}"


async def record(session: Session, order_ids: Sequence[int], change: str) -> None:
    """Queue the orders' current state for the panel (status, start_count, remains, reason)."""
    if order_ids:
        await session.execute("record_panel_update", {"ids": sorted(set(order_ids)), "change": change})


@dataclass
class FlushReport:
    sent: int = 0
    failed: int = 0


async def flush(db: Database, panel: Panel, settings: Settings) -> FlushReport:
    """Send what is due until nothing is, a batch's worth has been tried, or a send failed."""
    report = FlushReport()
    while report.sent + report.failed < settings.panel_update_batch:
        limit = settings.panel_update_batch - report.sent - report.failed
        claimed = await db.fetch_all(
            "claim_panel_updates", {"limit": limit, "claim_sec": settings.panel_update_claim_sec}
        )
        if not claimed:
            break
        for update in claimed:
            if await _send(db, panel, settings, update):
                report.sent += 1
            else:
                report.failed += 1
        if report.failed:
            break  # the panel is failing: what is left waits for the next run, after its backoff
    return report


async def _send(db: Database, panel: Panel, settings: Settings, update: dict) -> bool:
    try:
        await panel.update_order(update["remote_order_id"], update["fields"], idempotency_key(update["id"]))
    except PanelError as error:
        backoff = settings.panel_update_backoff_sec
        retry_in = backoff[min(update["attempts"], len(backoff) - 1)]
        await db.execute(
            "mark_panel_update_failed",
            {"id": update["id"], "error": str(error)[:MAX_ERROR_CHARS], "retry_in_sec": retry_in},
        )
        log.warning(
            "panel update %s of order %s not sent (try %d): %s; next try in %ds",
            update["id"], update["remote_order_id"], update["attempts"] + 1, error, retry_in,
            extra={"order_id": update["remote_order_id"], "update_id": update["id"], "reason": str(error)},
        )  # fmt: skip
        return False
    await db.execute("mark_panel_update_sent", {"id": update["id"]})
    return True


async def run(runtime: Runtime) -> None:
    """The `flush_panel_updates` schedule."""
    settings = runtime.settings
    if not settings.panel_base_url:
        log.info("flush_panel_updates: TGOPS_PANEL_BASE_URL is not set; nothing to send")
        return
    panel = HttpPanel.from_settings(settings)
    try:
        report = await flush(await runtime.database(), panel, settings)
    finally:
        await panel.aclose()
    metrics.publish({"PanelUpdatesSent": report.sent, "PanelUpdatesFailed": report.failed})
    if report.sent or report.failed:
        log.info("flush_panel_updates: %d sent, %d failed", report.sent, report.failed)
