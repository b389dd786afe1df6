"""Task generation: one task per due order per run, its account chosen by a RESERVE claim.

Due orders are locked with SKIP LOCKED, so generators running at once never work the same order; the
reserve lock keeps them from handing one account the same action twice. Open tasks already cover part
of `remains`, so no more work is generated than the order still needs.
"""

from __future__ import annotations

import contextlib
import logging
import random
from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING

from ulid import ULID

from tgops.cache.client import RedisClient
from tgops.config import Settings
from tgops.db.params import jsonb
from tgops.orders import panel_updates
from tgops.provider import claims
from tgops.provider.actions import ActionRules, link_hash, order_action, rules_for

if TYPE_CHECKING:
    from tgops.db.database import Database, Row, Session

log = logging.getLogger(__name__)

ORDERS_PER_TRANSACTION = 100  # keeps order rows locked briefly, so reports are not held up
CANDIDATE_PAGES_PER_TASK = 4
NO_UPPER_BOUND = 2**62


@dataclass
class GenerationResult:
    orders: int = 0
    created: int = 0
    no_account: int = 0
    already_covered: int = 0  # open tasks already cover what the order still needs


class AccountSelector:
    """Cursor scan over the accounts, per action, starting at a random point and wrapping around."""

    def __init__(self, redis: RedisClient, settings: Settings, start_after_id: int) -> None:
        self._redis = redis
        self._page_size = settings.provider_reserve_candidates
        self._lock_ttl_ms = settings.reserve_lock_sec * 1000
        self._start_after_id = start_after_id
        self._cursors: dict[str, int] = {}

    async def reserve(self, session: Session, task_id: str, rules: ActionRules, link: str) -> Row | None:
        start = self._cursors.get(rules.action, self._start_after_id)
        pages = 0
        for first_after_id, up_to_id in ((start, NO_UPPER_BOUND), (0, start)):
            after_id = first_after_id
            while pages < CANDIDATE_PAGES_PER_TASK:
                params = {
                    "action": rules.action,
                    "after_id": after_id,
                    "up_to_id": up_to_id,
                    "limit": self._page_size,
                }
                candidates = await session.fetch_all("candidate_accounts", params)
                if not candidates:
                    break
                pages += 1
                account_ids = [row["id"] for row in candidates]
                chosen = await claims.reserve(
                    self._redis, task_id, rules, link, account_ids, self._lock_ttl_ms
                )
                if chosen is not None:
                    self._cursors[rules.action] = chosen
                    return next(row for row in candidates if row["id"] == chosen)
                after_id = account_ids[-1]
        return None


async def generate_tasks(
    db: Database, redis: RedisClient, settings: Settings, limit: int
) -> GenerationResult:
    result = GenerationResult()
    highest = await db.fetch_one("highest_account_id")
    selector = AccountSelector(redis, settings, random.randint(0, highest["id"]))
    while result.orders < limit:
        batch = min(ORDERS_PER_TRANSACTION, limit - result.orders)
        handled = await _generate_batch(db, redis, settings, selector, batch, result)
        if handled < batch:
            break
    return result


async def _generate_batch(
    db: Database,
    redis: RedisClient,
    settings: Settings,
    selector: AccountSelector,
    limit: int,
    result: GenerationResult,
) -> int:
    reserved: list[claims.Reservation] = []
    try:
        async with db.transaction() as tx:
            orders = await tx.fetch_all("lock_due_orders", {"limit": limit})
            for order in orders:
                created = await _generate_for_order(tx, settings, selector, order, reserved, result)
                await tx.execute("advance_order", {"order_id": order["id"], "task_created": created})
                if created and order["status"] == "awaiting":  # now in_progress: the panel hears it
                    await panel_updates.record(tx, [order["id"]], "in_progress")
    except Exception:
        # The tasks were not stored: free their accounts now rather than when the locks expire.
        with contextlib.suppress(Exception):
            await claims.rollback(redis, reserved)
        raise
    result.orders += len(orders)
    return len(orders)


async def _generate_for_order(
    session: Session,
    settings: Settings,
    selector: AccountSelector,
    order: Row,
    reserved: list[claims.Reservation],
    result: GenerationResult,
) -> bool:
    needed = order["remains"] - order["open_quantity"]
    if needed <= 0:
        result.already_covered += 1
        return False
    rules = rules_for(settings, order_action(settings, order))
    task_id = str(ULID())
    hashed_link = link_hash(order["link"])
    account = await selector.reserve(session, task_id, rules, hashed_link)
    if account is None:
        result.no_account += 1
        return False
    reserved.append(claims.Reservation(task_id, account["id"], hashed_link, rules))
    await session.execute(
        "insert_telegram_task",
        {
            "id": task_id,
            "order_id": order["id"],
            "action": rules.action,
            "link_hash": hashed_link,
            "telegram_account_id": account["id"],
            "provider_account_id": account["provider_account_id"],
            "per_call": min(order["per_call"], needed),
            "payload": jsonb(
                {
                    "link": order["link"],
                    "post_id": order["post_id"],
                    "panel_order_id": order["remote_order_id"],
                }
            ),
        },
    )
    result.created += 1
    return True


async def run(runtime, limit: int | None = None) -> dict:
    """Schedule handler (`generate_tasks`): one generation run, logged with the task counts."""
    from tgops.orders.recheck import dispatch_rechecks
    from tgops.provider.stats import task_counts

    db = await runtime.database()
    limit = limit or runtime.settings.provider_generate_limit
    rechecks = await dispatch_rechecks(db, runtime.queues())
    result = await generate_tasks(db, runtime.redis(), runtime.settings, limit)
    summary = {"generated": asdict(result), "rechecks_sent": rechecks, "tasks": await task_counts(db)}
    log.info("generate_tasks %s", summary)
    return summary
