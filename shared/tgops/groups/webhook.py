"""Webhook registration for a bot: Telegram leaves `chat_member` out of the updates it sends unless
asked, and the group bot needs it (joins and leaves) as much as `chat_join_request`."""

from __future__ import annotations

from tgops.telegram.bot_client import BotClient, Lane

ALLOWED_UPDATES = (
    "message",
    "edited_message",
    "callback_query",
    "my_chat_member",
    "chat_member",
    "chat_join_request",
)


async def register_webhook(client: BotClient, url: str, secret_token: str) -> bool:
    """setWebhook with our secret and every update type tgops handles."""

    async def request(bot, _chat):
        return await bot.set_webhook(url, secret_token=secret_token, allowed_updates=list(ALLOWED_UPDATES))

    return await client.call(request, chat_id=None, lane=Lane.PRIORITY)
