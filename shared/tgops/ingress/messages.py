"""The queue message ingress sends for each accepted Telegram update (to dm_queue or tgms_queue)."""

from __future__ import annotations

from typing import Any, Literal

from tgops.messaging.envelopes import Message

MAIN_BOT_ID = 0
"""`bot_id` of updates that reached the main bot's endpoint (its token and secret are settings)."""


class TelegramUpdateReceived(Message):
    kind: Literal["telegram_update"] = "telegram_update"
    bot_id: int  # a `bots.id`, or MAIN_BOT_ID
    update_id: int
    update_type: str  # the update's one optional field: "message", "callback_query", ...
    update: dict[str, Any]  # the update exactly as Telegram sent it
