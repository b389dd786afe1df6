"""How the DM bot reaches the Bot API for one bot: through its own token and limits, or the outbox."""

from __future__ import annotations

from tgops.db.database import Database
from tgops.dm.bots import BotGateway, BotIdentity, gateway
from tgops.runtime import Runtime


def gateway_for(runtime: Runtime, db: Database, bot: BotIdentity) -> BotGateway:
    return gateway(runtime.settings, runtime.redis(), db, bot.token)
