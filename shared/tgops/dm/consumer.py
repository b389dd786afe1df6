"""The dm_queue consumer: one Telegram update for the main bot or a cloned bot, handled once.

A small dispatcher of its own over python-telegram-bot's typed `Bot`, not PTB's `Application`: an
Application wants `initialize()` (a getMe per token per cold start), swallows handler errors into its
error handlers (a failing update must fail its SQS message so it is retried and lands in the DLQ), and
keeps conversation state in memory, which a Lambda loses between updates.
"""

from __future__ import annotations

import logging

from tgops.dm.bots import identify
from tgops.dm.conversation import DmBot
from tgops.dm.gateway import gateway_for
from tgops.dm.incoming import parse
from tgops.ingress.messages import TelegramUpdateReceived
from tgops.messaging.envelopes import decode
from tgops.messaging.sqs import Received
from tgops.runtime import Runtime

log = logging.getLogger(__name__)


async def handle(runtime: Runtime, message: Received) -> None:
    event = decode(message.body, TelegramUpdateReceived)
    incoming = parse(event.update_type, event.update)
    if incoming is None:
        log.info("dm update ignored: nothing to act on", extra={"update_type": event.update_type})
        return
    db = await runtime.database()
    bot = await identify(db, runtime.settings, event.bot_id)
    if bot is None:
        log.info("dm update for an unknown or removed bot ignored", extra={"bot_id": event.bot_id})
        return
    dm = DmBot(runtime.settings, db, runtime.redis(), bot, gateway_for(runtime, db, bot))
    await dm.handle(event, incoming)
