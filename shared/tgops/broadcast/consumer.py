"""The `group_message_queue` consumer (`broadcast_consumer` Lambda, and `tgops dev`).

A `BroadcastJob` is written and expanded once, then sent (tgops.broadcast.sender); a
`BroadcastContinue` goes on with a job already expanded; a `BroadcastDelete` deletes a job's messages
(tgops.broadcast.deletion). Broadcasts go out through the main bot, on the bulk lane of its limits.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

from tgops import switches
from tgops.broadcast.deletion import delete_broadcast
from tgops.broadcast.jobs import QUEUE, BroadcastJob
from tgops.broadcast.messages import BroadcastContinue, BroadcastDelete
from tgops.broadcast.sender import BroadcastRun, accept, fan_out, load_job
from tgops.groups.chats import migration_hook
from tgops.messaging.envelopes import decode_any
from tgops.telegram.bot_client import BotClient, bot_client

if TYPE_CHECKING:
    from tgops.messaging.sqs import Received
    from tgops.runtime import Runtime

log = logging.getLogger(__name__)

KINDS = (BroadcastJob, BroadcastContinue, BroadcastDelete)


async def main_bot(runtime: Runtime) -> BotClient:
    db = await runtime.database()
    token = runtime.settings.telegram_bot_token.get_secret_value()
    return bot_client(token, runtime.settings, runtime.redis(), db, on_migrated=migration_hook(db))


async def handle(runtime: Runtime, message: Received) -> None:
    if await switches.held_while_paused(runtime, switches.PAUSE_BROADCASTS, QUEUE, message):
        return
    decoded = decode_any(message.body, KINDS)
    db = await runtime.database()
    client = await main_bot(runtime)
    if isinstance(decoded, BroadcastDelete):
        outcomes = await delete_broadcast(
            db, client, runtime.queues(), decoded.job_id, runtime.settings.broadcast_run_budget_sec
        )
        log.info("broadcast %s deletions: %s", decoded.job_id, outcomes)
        return
    if isinstance(decoded, BroadcastJob):
        job = decoded
        if await accept(db, job, client.key):
            await fan_out(runtime.queues(), job.job_id, runtime.settings.broadcast_parallelism - 1)
    else:
        job = await load_job(db, decoded.job_id)
    tally = await BroadcastRun(db, client, runtime.queues(), runtime.settings, job).run()
    log.info(
        "broadcast %s run: %d sent, %d failed, %d skipped, %d unconfirmed%s",
        job.job_id,
        tally.sent,
        tally.failed,
        tally.skipped,
        tally.unconfirmed,
        ", finished" if tally.finished else (", continues" if tally.continued else ""),
    )
