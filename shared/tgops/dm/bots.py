"""Which bot an update reached, and the Bot API client that answers through that bot's own token.

`bot_id` 0 is the main bot (its token is a setting); any other is a row of `bots` (a user's cloned bot,
its token sealed at rest). Tokens are opened only to build a client and never logged.
"""

from __future__ import annotations

import hashlib
import logging
import secrets
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol

from tgops.config import PLACEHOLDER, Settings
from tgops.dm.replies import Reply
from tgops.ingress.messages import MAIN_BOT_ID

if TYPE_CHECKING:
    from telegram import Bot

    from tgops.db.database import Database

log = logging.getLogger(__name__)
TOKEN_CONTEXT = "bot_token"


@dataclass(frozen=True)
class BotIdentity:
    bot_id: int  # MAIN_BOT_ID or bots.id
    token: str | None  # None: no token configured (the main bot in a local run)
    username: str | None

    @property
    def is_main(self) -> bool:
        return self.bot_id == MAIN_BOT_ID


class BotGateway(Protocol):
    async def call(self, reply: Reply) -> Any:
        """Make the Bot API call; raise python-telegram-bot's errors."""


class PtbGateway:
    """Bot API calls through python-telegram-bot's typed `Bot`."""

    def __init__(self, bot: Bot) -> None:
        self._bot = bot

    async def call(self, reply: Reply) -> Any:
        return await getattr(self._bot, reply.method)(**reply.params)


_BOTS: dict[str, Bot] = {}


def ptb_bot(settings: Settings, token: str) -> Bot:
    """One `telegram.Bot` per token for the life of the process (each keeps its own HTTP connections)."""
    from telegram import Bot

    base_url = settings.telegram_bot_api_base_url
    cache_key = hashlib.sha256(f"{base_url}|{token}".encode()).hexdigest()
    if cache_key not in _BOTS:
        _BOTS[cache_key] = Bot(token, base_url=base_url)
    return _BOTS[cache_key]


async def identify(db: Database, settings: Settings, bot_id: int) -> BotIdentity | None:
    """The bot an update was sent to; None for a cloned bot that is gone or deactivated."""
    if bot_id == MAIN_BOT_ID:
        token = settings.telegram_bot_token.get_secret_value()
        return BotIdentity(
            MAIN_BOT_ID, None if token in ("", PLACEHOLDER) else token, settings.telegram_bot_username
        )
    row = await db.fetch_one("dm_bot", {"bot_id": bot_id})
    if row is None or not row["is_active"] or not row["token_encrypted"]:
        return None
    return BotIdentity(bot_id, open_token(settings, bot_id, row["token_encrypted"]), row["username"])


def seal_token(settings: Settings, bot_id: int, token: str) -> str:
    from tgops.telegram.sessions import SessionCipher

    return SessionCipher.from_settings(settings).encrypt(token)


def open_token(settings: Settings, bot_id: int, sealed: str) -> str:
    from tgops.telegram.sessions import SessionCipher

    return SessionCipher.from_settings(settings).decrypt(sealed)


def new_webhook_secret() -> str:
    """Telegram allows 1-256 characters of A-Z, a-z, 0-9, _ and -."""
    return secrets.token_urlsafe(32)


def webhook_url(settings: Settings, bot_id: int) -> str:
    base = settings.public_base_url or f"http://{settings.api_host}:{settings.api_port}"
    path = "/api/webhooks/telegram" if bot_id == MAIN_BOT_ID else f"/api/webhooks/telegram/{bot_id}"
    return base.rstrip("/") + path
