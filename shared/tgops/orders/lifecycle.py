"""An order's life after validation: started (by its service's rule, the panel, or an operator),
withdrawn when canceled, ended partial when its link is gone. Each change and the panel's news of it
are written in the caller's transaction (tgops.orders.panel_updates)."""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Sequence
from typing import TYPE_CHECKING

from tgops.config import ServiceRule, Settings
from tgops.orders import panel_updates
from tgops.provider import claims
from tgops.provider.actions import rules_for

if TYPE_CHECKING:
    from tgops.cache.client import RedisClient
    from tgops.db.database import Database, Session

log = logging.getLogger(__name__)

DEFAULT_RULE = ServiceRule()  # no rule configured: any existing link, starts by itself, one per call
EXECUTING = ("awaiting", "in_progress", "pending")
FINISHED = ("completed", "partial", "canceled")


def rule_for(settings: Settings, service_id: int) -> ServiceRule:
    return settings.order_service_rules.get(service_id, DEFAULT_RULE)


async def start(session: Session, settings: Settings, service_id: int, order_ids: Sequence[int]) -> list[int]:
    """Start validated orders of one service: awaiting, due now. Returns the ids that started."""
    if not order_ids:
        return []
    rule = rule_for(settings, service_id)
    rows = await session.fetch_all(
        "start_orders",
        {
            "ids": list(order_ids),
            "action": rule.action,
            "per_call": rule.per_call,
            "interval_seconds": rule.interval_seconds,
            "start_count_source": rule.start_count,
        },
    )
    started = [row["id"] for row in rows]
    await panel_updates.record(session, started, "started")
    return started


async def start_by_operator(db: Database, settings: Settings, order_id: int) -> bool:
    """`tgops orders start ID`: start a validated order that waits for the panel."""
    async with db.transaction() as tx:
        order = await tx.fetch_one("order_by_id", {"id": order_id})
        if order is None:
            return False
        return bool(await start(tx, settings, order["remote_service_id"], [order_id]))


async def withdraw_tasks(
    session: Session, settings: Settings, order_id: int, reason: str
) -> list[claims.Reservation]:
    """Fail the order's open tasks; returns their claims, to roll back once the transaction commits."""
    rows = await session.fetch_all("withdraw_order_tasks", {"order_id": order_id, "reason": reason})
    return [
        claims.Reservation(
            row["id"], row["telegram_account_id"], row["link_hash"], rules_for(settings, row["action"])
        )
        for row in rows
        if row["telegram_account_id"] is not None
    ]


async def release(redis: RedisClient, withdrawn: Sequence[claims.Reservation]) -> None:
    """Free withdrawn tasks' accounts now rather than when their locks expire (harmless if it fails)."""
    with contextlib.suppress(Exception):
        await claims.rollback(redis, withdrawn)


async def cancel(session: Session, settings: Settings, order_id: int) -> list[claims.Reservation]:
    """The panel canceled the order: withdraw what is queued, tell the panel what was delivered."""
    withdrawn = await withdraw_tasks(session, settings, order_id, "order_canceled")
    await panel_updates.record(session, [order_id], "canceled")
    return withdrawn


async def end_partial(
    db: Database, redis: RedisClient, settings: Settings, order_id: int, reason: str
) -> bool:
    async with db.transaction() as tx:
        if not await tx.fetch_one("end_partial", {"id": order_id, "reason": reason}):
            return False
        withdrawn = await withdraw_tasks(tx, settings, order_id, "order_partial")
        await panel_updates.record(tx, [order_id], "partial")
    await release(redis, withdrawn)
    log.warning("order %s ends partial: %s", order_id, reason, extra={"order_id": order_id, "reason": reason})
    return True
