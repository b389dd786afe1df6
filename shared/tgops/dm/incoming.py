"""The part of a Telegram update the DM bot acts on: who, where, and which command, button or text."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from tgops.ingress.routing import is_bot_command

GROUP_CHAT_TYPES = ("group", "supergroup")


@dataclass(frozen=True)
class Incoming:
    user_id: int
    username: str | None
    first_name: str | None
    chat_id: int
    chat_type: str  # private, group, supergroup
    chat_title: str | None = None
    chat_username: str | None = None
    message_id: int | None = None  # the message a button was on, or the message received
    command: str | None = None  # "start" for "/start@SomeBot 42"
    command_bot: str | None = None  # "SomeBot" in "/start@SomeBot": the bot the command was meant for
    args: str = ""
    text: str | None = None  # a message that is not a command
    callback_id: str | None = None
    callback_data: str | None = None
    managed_bot: dict[str, Any] | None = None  # Bot API 9.6: {"user": ..., "bot": ...}

    @property
    def in_group(self) -> bool:
        return self.chat_type in GROUP_CHAT_TYPES

    @property
    def counts_as_command(self) -> bool:
        """What the per-user command rate limit counts."""
        return bool(self.command or self.callback_id or self.text)

    @property
    def label(self) -> str:
        """What the update asked for, for logs and the dashboard (never the text itself)."""
        if self.command:
            return f"/{self.command}"
        if self.callback_data:
            return f"button:{self.callback_data.split(':', 1)[0]}"
        if self.managed_bot:
            return "managed_bot"
        return "text" if self.text else "other"


def parse(update_type: str, update: dict[str, Any]) -> Incoming | None:
    """None for an update the DM bot has nothing to do with (an edited message, a message without sender)."""
    payload = update.get(update_type)
    if not isinstance(payload, dict):
        return None
    if update_type == "callback_query":
        return _callback(payload)
    if update_type == "message":
        return _message(payload)
    if update_type == "managed_bot":
        return _managed_bot(payload)
    return None


def _user(payload: dict[str, Any]) -> dict[str, Any] | None:
    user = payload.get("from") or payload.get("user")
    return user if isinstance(user, dict) and isinstance(user.get("id"), int) else None


def _message(message: dict[str, Any]) -> Incoming | None:
    user, chat = _user(message), message.get("chat")
    if user is None or not isinstance(chat, dict) or not isinstance(chat.get("id"), int):
        return None
    base = _base(user, chat, message.get("message_id"))
    text = message.get("text") if isinstance(message.get("text"), str) else None
    if text is not None and is_bot_command(message):
        head, _, args = text.strip().partition(" ")
        name, _, addressed = head[1:].partition("@")
        return Incoming(**base, command=name.lower(), command_bot=addressed or None, args=args.strip())
    return Incoming(**base, text=text)


def _callback(query: dict[str, Any]) -> Incoming | None:
    user = _user(query)
    if user is None or not isinstance(query.get("id"), str):
        return None
    message: dict[str, Any] = query["message"] if isinstance(query.get("message"), dict) else {}
    chat: dict[str, Any] = (
        message["chat"] if isinstance(message.get("chat"), dict) else {"id": user["id"], "type": "private"}
    )
    data = query.get("data") if isinstance(query.get("data"), str) else ""
    return Incoming(
        **_base(user, chat, message.get("message_id")), callback_id=query["id"], callback_data=data
    )


def _managed_bot(payload: dict[str, Any]) -> Incoming | None:
    user, bot = _user(payload), payload.get("bot")
    if user is None or not isinstance(bot, dict) or not isinstance(bot.get("id"), int):
        return None
    chat = {"id": user["id"], "type": "private"}
    return Incoming(**_base(user, chat, None), managed_bot={"user": user, "bot": bot})


def _base(user: dict[str, Any], chat: dict[str, Any], message_id: Any) -> dict[str, Any]:
    return {
        "user_id": user["id"],
        "username": user.get("username"),
        "first_name": user.get("first_name"),
        "chat_id": chat["id"],
        "chat_type": chat.get("type", "private"),
        "chat_title": chat.get("title"),
        "chat_username": chat.get("username"),
        "message_id": message_id if isinstance(message_id, int) else None,
    }
