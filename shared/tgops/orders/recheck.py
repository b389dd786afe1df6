"""A running order whose tasks keep failing for a definite link error (the provider reports the chat
private or gone): its link is inspected once more through the pool, bypassing the cached inspection.
Still there: the order runs on. Gone (or no longer fit for its service): it ends partial with its
remains and the reason. No answer after the message's tries: the order runs on, and its next failures
ask again."""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

from tgops.messaging.envelopes import encode
from tgops.messaging.errors import QueueUnavailable, RetryLater
from tgops.messaging.topology import INSPECT, MAX_RECEIVE_COUNT
from tgops.orders import lifecycle
from tgops.orders.messages import RecheckOrderLink

if TYPE_CHECKING:
    from tgops.cache.client import RedisClient
    from tgops.config import Settings
    from tgops.db.database import Database
    from tgops.messaging.backend import QueueSender
    from tgops.messaging.sqs import Received
    from tgops.orders.inspection_result import LinkInspector

log = logging.getLogger(__name__)

RECHECK_RETRY_SEC = 60
RECHECKS_PER_RUN = 100


async def recheck(
    settings: Settings,
    db: Database,
    redis: RedisClient,
    inspector: LinkInspector,
    job: RecheckOrderLink,
    message: Received,
) -> None:
    from tgops.orders.validation import judge  # validation imports this module

    try:
        result = await inspector.inspect(job.link)
    except Exception as error:  # noqa: BLE001 -- an inspector fault is a temporary answer
        log.warning("recheck of order %s failed: %s", job.order_id, error, extra={"order_id": job.order_id})
        result = None
    if result is None or (not result.ok and result.retryable):
        if message.receive_count < MAX_RECEIVE_COUNT:
            raise RetryLater(RECHECK_RETRY_SEC, "recheck: no definite answer yet")
        await db.execute("resume_after_recheck", {"id": job.order_id})
        return
    verdict = judge(result, lifecycle.rule_for(settings, job.remote_service_id))
    if verdict.status == "depends_ok":
        await db.execute("resume_after_recheck", {"id": job.order_id})
        log.info(
            "order %s: its link is still there; it runs on", job.order_id, extra={"order_id": job.order_id}
        )
        return
    await lifecycle.end_partial(db, redis, settings, job.order_id, f"link gone: {verdict.reason}")


async def dispatch_rechecks(db: Database, queues: QueueSender) -> int:
    """Send a recheck for each order that asked for one (part of the generate_tasks schedule)."""
    sent = 0
    for order in await db.fetch_all("claim_rechecks", {"limit": RECHECKS_PER_RUN}):
        job = RecheckOrderLink(
            order_id=order["id"], remote_service_id=order["remote_service_id"], link=order["link"]
        )
        try:
            await queues.send(INSPECT.name, encode(job))
        except QueueUnavailable as error:
            await db.execute("unclaim_recheck", {"id": order["id"]})
            log.warning(
                "recheck of order %s not sent: %s", order["id"], error, extra={"order_id": order["id"]}
            )
            continue
        sent += 1
    return sent
