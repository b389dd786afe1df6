"""The tg-inspect queue's handler: each message's kind says who handles it.

- `validate_order_group`, `recheck_order_link`: order link validation (tgops.orders.validation);
- `group_join_backfill`: join requests missed by the webhook, listed through a group's admin account
  (tgops.groups.backfill_worker).

Both need the MTProto pool, which is why they share this queue and its Fargate worker.
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING

from tgops.groups.messages import BackfillJoinRequests
from tgops.orders import validation

if TYPE_CHECKING:
    from tgops.messaging.sqs import Received
    from tgops.orders.inspection_result import LinkInspector
    from tgops.runtime import Runtime
    from tgops.telegram.pool import MtprotoPool


async def handle(
    runtime: Runtime,
    message: Received,
    *,
    inspector: LinkInspector | None = None,
    pool: MtprotoPool | None = None,
) -> None:
    if _kind(message.body) == BackfillJoinRequests.kind_name():
        from tgops.groups import backfill_worker

        await backfill_worker.handle(runtime, message, pool=pool)
        return
    await validation.handle(runtime, message, inspector=inspector)


def _kind(body: str) -> object:
    """The message's kind, or None; a body that is not a JSON object is validation's to refuse."""
    try:
        payload = json.loads(body)
    except (TypeError, ValueError):
        return None
    return payload.get("kind") if isinstance(payload, dict) else None
