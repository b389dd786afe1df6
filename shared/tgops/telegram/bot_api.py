"""Bot API `getChat` for public chats: answers without spending an MTProto account (python-telegram-bot).

Only a channel, supergroup or group answer is taken; anything else (not found, a private chat the bot
cannot see, rate limit, network trouble) returns None so the inspector asks MTProto instead.
"""

from __future__ import annotations

import logging

from telegram import Bot
from telegram.constants import ChatType
from telegram.error import TelegramError
from telegram.request import BaseRequest

from tgops.telegram.peers import ChatType as PeerChatType
from tgops.telegram.peers import PeerInfo

log = logging.getLogger(__name__)

GROUP_TYPES: dict[str, PeerChatType] = {
    ChatType.CHANNEL: "channel",
    ChatType.SUPERGROUP: "supergroup",
    ChatType.GROUP: "group",
}


class BotApiChats:
    def __init__(self, token: str, *, request: BaseRequest | None = None) -> None:
        self._bot = Bot(token, request=request)

    async def get_chat(self, username: str) -> PeerInfo | None:
        try:
            chat = await self._bot.get_chat(f"@{username}")
        except TelegramError as error:
            log.info(
                "bot api getChat gave no answer", extra={"username": username, "detail": _describe(error)}
            )
            return None
        chat_type = GROUP_TYPES.get(chat.type)
        if chat_type is None:
            return None
        return PeerInfo(
            chat_type=chat_type,
            title=chat.title,
            username=chat.username.lower() if chat.username else None,
            participants_count=await self._member_count(chat.id),
            is_private=not chat.username,
            join_request=bool(chat.join_by_request),
        )

    async def _member_count(self, chat_id: int) -> int | None:
        try:
            return await self._bot.get_chat_member_count(chat_id)
        except TelegramError as error:
            log.info(
                "bot api getChatMemberCount failed", extra={"chat_id": chat_id, "detail": _describe(error)}
            )
            return None


def _describe(error: TelegramError) -> str:
    # TelegramError messages never quote the token (it lives only in the URL).
    return f"{type(error).__name__}: {error.message[:200]}"
