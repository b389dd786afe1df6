"""Which bot an update reached, and the Bot API client that answers through that bot's own token.

`bot_id` 0 is the main bot (its token is a setting); any other is a row of `bots` (a user's cloned bot,
its token sealed at rest). Tokens are opened only to build a client and never logged.
"""

from __future__ import annotations

import logging
import secrets
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol

from tgops.config import PLACEHOLDER, Settings
from tgops.dm.replies import Reply
from tgops.ingress.messages import MAIN_BOT_ID
from tgops.telegram.bot_client import Lane, bot_client

if TYPE_CHECKING:
    from telegram import Bot

    from tgops.cache.client import RedisClient
    from tgops.db.database import Database
    from tgops.telegram.bot_client import BotClient
    from tgops.telegram.sessions import SessionCipher

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


# Calls that write to a chat: spaced per chat by the shared limiter; the others only take a slot.
WRITES_TO_CHAT = frozenset({"send_message", "send_photo", "edit_message_text"})


class LimitedGateway:
    """Bot API calls of one bot through tgops.telegram.bot_client: the bot's shared limits (its own
    bucket, in the priority lane: a reply never waits behind a broadcast), or its dry-run outbox."""

    def __init__(self, client: BotClient) -> None:
        self._client = client

    async def call(self, reply: Reply) -> Any:
        chat_id = reply.params.get("chat_id") if reply.method in WRITES_TO_CHAT else None

        async def request(bot: Bot, chat: int | None) -> Any:
            params = reply.params if chat is None else {**reply.params, "chat_id": chat}
            return await getattr(bot, reply.method)(**params)

        return await self._client.call(request, chat_id=chat_id, lane=Lane.PRIORITY)


def gateway(settings: Settings, redis: RedisClient, db: Database, token: str | None) -> LimitedGateway:
    """The gateway of one token; no token (the main bot in a local run) records into the outbox."""
    return LimitedGateway(bot_client(token or "", settings, redis, db))


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


def _token_cipher(settings: Settings) -> SessionCipher:
    """The local key only: the sessions' KMS key is the Fargate workers' alone, and bot tokens are opened
    by the DM consumer Lambda. Sealed with the row's id, so a token copied to another row opens nowhere."""
    from tgops.telegram.sessions import SessionCipher

    return SessionCipher(settings.session_encryption_key.get_secret_value())


def seal_token(settings: Settings, bot_id: int, token: str) -> str:
    from tgops.telegram.sessions import BOT_TOKEN

    return _token_cipher(settings).encrypt(token, account_id=bot_id, purpose=BOT_TOKEN)


def open_token(settings: Settings, bot_id: int, sealed: str) -> str:
    from tgops.telegram.sessions import BOT_TOKEN

    return _token_cipher(settings).decrypt(sealed, account_id=bot_id, purpose=BOT_TOKEN)


def new_webhook_secret() -> str:
    """Telegram allows 1-256 characters of A-Z, a-z, 0-9, _ and -."""
    return secrets.token_urlsafe(32)


def webhook_url(settings: Settings, bot_id: int) -> str:
    base = settings.public_base_url or f"http://{settings.api_host}:{settings.api_port}"
    path = "/api/webhooks/telegram" if bot_id == MAIN_BOT_ID else f"/api/webhooks/telegram/{bot_id}"
    return base.rstrip("/") + path
