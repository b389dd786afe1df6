"""How the DM bot reaches the Bot API for one bot: through its own token, or into the dry-run outbox."""

from __future__ import annotations

from tgops.dm.bots import BotGateway, BotIdentity, PtbGateway, ptb_bot
from tgops.runtime import Runtime


def gateway_for(runtime: Runtime, bot: BotIdentity) -> BotGateway:
    if bot.token is None:
        raise RuntimeError("no bot token configured")
    return PtbGateway(ptb_bot(runtime.settings, bot.token))
