"""Bot cloning: a user brings their own bot, which then runs the same handlers through its own token.

The conversation's state lives in Redis with a TTL (a Lambda keeps nothing between updates): `/clone` sets
"waiting for a token", the next text message is taken as the token, checked with getMe, sealed into `bots`
under that bot's id, and the bot's webhook is set to `/api/webhooks/telegram/{bot_id}` with a secret of its
own. The message holding the token is deleted from the chat. With Bot API 9.6 a user can instead create a
bot managed by this one (a keyboard button); Telegram then sends a `managed_bot` update, and its token is
fetched with getManagedBotToken.
"""

from __future__ import annotations

import logging
import re
from typing import TYPE_CHECKING, Any

from telegram.error import InvalidToken, TelegramError

from tgops.cache import keys
from tgops.dm import replies
from tgops.dm.bots import gateway, new_webhook_secret, seal_token, webhook_url
from tgops.dm.replies import Reply
from tgops.ingress.routing import ALLOWED_UPDATES
from tgops.security import hash_secret

if TYPE_CHECKING:
    from tgops.dm.conversation import Context, DmBot

log = logging.getLogger(__name__)

AWAITING_TOKEN = "awaiting_token"
STATE_TTL_SEC = 600
TOKEN_SHAPE = re.compile(r"^\d{5,20}:[A-Za-z0-9_-]{30,100}$")
MANAGED_BOT_REQUEST_ID = 1


async def begin(dm: DmBot, context: Context) -> list[Reply]:
    incoming = context.incoming
    if incoming.in_group:
        return []
    await dm.redis.set(_state_key(dm, incoming.user_id), AWAITING_TOKEN, ex=STATE_TTL_SEC)
    text = (
        "Send me the token @BotFather gave your bot (it looks like 123456:ABC-DEF...).\n"
        "Or tap the button below to create a new bot that I manage for you.\n/cancel to stop."
    )
    managed = {"keyboard": [[{"text": "Create a managed bot", "request_managed_bot": {
        "request_id": MANAGED_BOT_REQUEST_ID}}]], "one_time_keyboard": True, "resize_keyboard": True}  # fmt: skip
    return [replies.message(incoming.chat_id, text, managed)]


async def cancel(dm: DmBot, context: Context) -> list[Reply]:
    await dm.redis.delete(_state_key(dm, context.incoming.user_id))
    return [replies.message(context.incoming.chat_id, "Cancelled.", replies.MENU)]


async def awaiting_token(dm: DmBot, context: Context) -> bool:
    return await dm.redis.get(_state_key(dm, context.incoming.user_id)) == AWAITING_TOKEN


async def receive_token(dm: DmBot, context: Context) -> list[Reply]:
    incoming = context.incoming
    token = (incoming.text or "").strip()
    forget = _delete_message(incoming)
    if not TOKEN_SHAPE.match(token):
        return [
            *forget,
            replies.message(incoming.chat_id, "That is not a bot token. Send the token, or /cancel."),
        ]
    try:
        me = await _gateway(dm, token).call(Reply("get_me"))
    except InvalidToken:
        await dm.redis.delete(_state_key(dm, incoming.user_id))
        return [
            *forget,
            replies.message(incoming.chat_id, "Telegram does not accept this token. /clone to try again."),
        ]
    bot_id = await register(dm, context, token, telegram_bot_id=me.id, username=me.username)
    await dm.redis.delete(_state_key(dm, incoming.user_id))
    if bot_id is None:
        return [*forget, replies.message(incoming.chat_id, "This bot is already run by someone else here.")]
    return [
        *forget,
        replies.message(incoming.chat_id, f"@{me.username} is ready: it answers like me.", replies.MENU),
    ]


async def adopt_managed_bot(dm: DmBot, context: Context) -> list[Reply]:
    """Bot API 9.6: a bot the user created to be managed by this one."""
    managed = context.incoming.managed_bot or {}
    bot: dict[str, Any] = managed.get("bot") or {}
    token = await dm.gateway.call(Reply("get_managed_bot_token", {"user_id": bot["id"]}))
    if not isinstance(token, str):
        return []
    bot_id = await register(dm, context, token, telegram_bot_id=bot["id"], username=bot.get("username"))
    if bot_id is None:
        return []
    return [
        replies.message(context.incoming.user_id, f"@{bot.get('username')} is ready: it answers like me.")
    ]


async def register(
    dm: DmBot, context: Context, token: str, *, telegram_bot_id: int, username: str | None
) -> int | None:
    """Store the bot for its owner and point its webhook at us; None when another user runs it."""
    secret = new_webhook_secret()
    row = await context.session.fetch_one(
        "dm_claim_bot",
        {"telegram_bot_id": telegram_bot_id, "username": username, "webhook_secret_hash": hash_secret(secret),
         "owner_user_id": context.incoming.user_id},
    )  # fmt: skip
    if row is None:
        return None
    bot_id = row["id"]
    url = webhook_url(dm.settings, bot_id)
    webhook = {"url": url, "secret_token": secret, "allowed_updates": list(ALLOWED_UPDATES)}
    await _gateway(dm, token).call(Reply("set_webhook", webhook))
    await context.session.execute(
        "dm_store_bot_token",
        {"bot_id": bot_id, "token_encrypted": seal_token(dm.settings, bot_id, token), "webhook_url": url},
    )
    log.info("cloned bot registered", extra={"bot_id": bot_id, "owner_user_id": context.incoming.user_id})
    return bot_id


async def list_bots(dm: DmBot, context: Context) -> list[Reply]:
    bots = await context.session.fetch_all("dm_owned_bots", {"owner_user_id": context.incoming.user_id})
    if not bots:
        return [
            replies.message(
                context.incoming.chat_id, "You have no bots yet: /clone to add one.", replies.MENU
            )
        ]
    rows = [[replies.button(f"Remove @{bot['username']}", f"rmbot:{bot['id']}")] for bot in bots]
    names = "\n".join(f"@{bot['username']}" for bot in bots)
    return [
        replies.message(
            context.incoming.chat_id, f"Your bots:\n{names}", replies.keyboard(*rows, replies.BACK)
        )
    ]


async def remove_bot(dm: DmBot, context: Context, bot_id: int) -> list[Reply]:
    row = await context.session.fetch_one(
        "dm_deactivate_bot",
        {"bot_id": bot_id, "owner_user_id": context.incoming.user_id, "reason": "removed by owner"},
    )
    if row is None:
        return [replies.message(context.incoming.chat_id, "That bot is not yours, or already removed.")]
    await _delete_webhook(dm, bot_id, row["token_encrypted"])
    return [replies.message(context.incoming.chat_id, "Removed: that bot no longer answers.", replies.MENU)]


async def deactivate_revoked(dm: DmBot) -> None:
    """Telegram answered 401 for a cloned bot's token: it was revoked, so the bot stops."""
    await dm.db.execute(
        "dm_deactivate_bot", {"bot_id": dm.bot.bot_id, "owner_user_id": None, "reason": "token revoked"}
    )
    log.warning("cloned bot deactivated: its token was revoked", extra={"bot_id": dm.bot.bot_id})


async def _delete_webhook(dm: DmBot, bot_id: int, sealed: str | None) -> None:
    from tgops.dm.bots import open_token

    if not sealed:
        return
    try:
        await _gateway(dm, open_token(dm.settings, bot_id, sealed)).call(Reply("delete_webhook"))
    except TelegramError as error:  # the bot is off our side already; Telegram's copy expires by itself
        log.info(
            "deleteWebhook of a removed bot failed", extra={"bot_id": bot_id, "reason": type(error).__name__}
        )


def _delete_message(incoming: Any) -> list[Reply]:
    """The user's message holding a token is deleted from the chat."""
    if incoming.message_id is None:
        return []
    return [Reply("delete_message", {"chat_id": incoming.chat_id, "message_id": incoming.message_id})]


def _gateway(dm: DmBot, token: str):
    """A user's bot, reached through its own token and limits."""
    return gateway(dm.settings, dm.redis, dm.db, token)


def _state_key(dm: DmBot, user_id: int) -> str:
    return keys.dm_conversation(dm.bot.bot_id, user_id)
