"""Which queue handles a Telegram update, and the FIFO group that keeps one chat's updates in order.

dm_queue: private messages, callback queries and bot commands (also /init and /activate in groups).
tgms_queue: join requests, chat and member updates, other group traffic.
Anything else is acknowledged and counted, never queued.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

DM_QUEUE = "dm_queue"
TGMS_QUEUE = "tgms_queue"
GROUP_CHAT_TYPES = frozenset({"group", "supergroup"})
MEMBER_UPDATE_TYPES = ("chat_join_request", "chat_member", "my_chat_member")

# Telegram's update fields (Bot API 9.6): anything else is counted as "other", so a sender cannot grow
# the set of counters without bound.
KNOWN_UPDATE_TYPES = frozenset(
    {
        "message",
        "edited_message",
        "channel_post",
        "edited_channel_post",
        "business_connection",
        "business_message",
        "edited_business_message",
        "deleted_business_messages",
        "message_reaction",
        "message_reaction_count",
        "inline_query",
        "chosen_inline_result",
        "callback_query",
        "shipping_query",
        "pre_checkout_query",
        "purchased_paid_media",
        "poll",
        "poll_answer",
        "my_chat_member",
        "chat_member",
        "chat_join_request",
        "chat_boost",
        "removed_chat_boost",
        "managed_bot",
    }
)
# What setWebhook asks Telegram for: every update some consumer handles (Telegram leaves chat_member out
# unless asked for it).
ALLOWED_UPDATES = (
    "message",
    "edited_message",
    "callback_query",
    "my_chat_member",
    "chat_member",
    "chat_join_request",
    "managed_bot",
)


@dataclass(frozen=True)
class Route:
    update_type: str
    queue: str | None  # None: nobody handles this update
    chat_id: int | None = None

    def group_id(self, bot_id: int) -> str:
        """FIFO MessageGroupId: one bot's updates for one chat, in Telegram's order."""
        return f"{bot_id}:{self.chat_id}"


def update_type(update: dict[str, Any]) -> str:
    fields = [name for name in update if name != "update_id"]
    if not fields:
        return "empty"
    return fields[0] if fields[0] in KNOWN_UPDATE_TYPES else "other"


def route_update(update: dict[str, Any]) -> Route:
    kind = update_type(update)
    payload = update.get(kind)
    if not isinstance(payload, dict):
        return Route(kind, None)
    if kind == "managed_bot":  # Bot API 9.6: a user created a bot for this one to manage
        return _to(kind, DM_QUEUE, _user_id({"from": payload.get("user")}))
    if kind == "callback_query":
        return _to(kind, DM_QUEUE, _chat_id(payload.get("message")) or _user_id(payload))
    if kind in MEMBER_UPDATE_TYPES:
        return _to(kind, TGMS_QUEUE, _chat_id(payload))
    if kind in ("message", "edited_message"):
        return _route_message(kind, payload)
    return Route(kind, None)


def _route_message(kind: str, message: dict[str, Any]) -> Route:
    chat = message.get("chat")
    chat_type = chat.get("type") if isinstance(chat, dict) else None
    if chat_type == "private":
        return _to(kind, DM_QUEUE, _chat_id(message)) if kind == "message" else Route(kind, None)
    if chat_type in GROUP_CHAT_TYPES:
        queue = DM_QUEUE if kind == "message" and is_bot_command(message) else TGMS_QUEUE
        return _to(kind, queue, _chat_id(message))
    return Route(kind, None)


def is_bot_command(message: dict[str, Any]) -> bool:
    entities = message.get("entities")
    if isinstance(entities, list) and any(
        isinstance(entity, dict) and entity.get("type") == "bot_command" and entity.get("offset") == 0
        for entity in entities
    ):
        return True
    text = message.get("text")
    return isinstance(text, str) and text.startswith("/")


def _to(kind: str, queue: str, chat_id: int | None) -> Route:
    return Route(kind, queue, chat_id) if chat_id is not None else Route(kind, None)


def _chat_id(payload: Any) -> int | None:
    chat = payload.get("chat") if isinstance(payload, dict) else None
    return _integer(chat.get("id")) if isinstance(chat, dict) else None


def _user_id(payload: dict[str, Any]) -> int | None:
    user = payload.get("from")
    return _integer(user.get("id")) if isinstance(user, dict) else None


def _integer(value: Any) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) else None
