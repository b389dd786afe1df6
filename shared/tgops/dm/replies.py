"""What the DM bot answers: Bot API calls as plain data, so they can be stored with the update that caused
them and sent again if a redelivery finds them unsent, and the texts and keyboards of each screen."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

LIVE_PAGE_SIZE = 5


@dataclass(frozen=True)
class Reply:
    """One Bot API call: `method` is python-telegram-bot's snake_case name (`send_message`...)."""

    method: str
    params: dict[str, Any] = field(default_factory=dict)
    to_user: int | None = None  # a private chat: a 403 from it marks that user as having blocked the bot

    def as_json(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Reply:
        return cls(data["method"], data.get("params") or {}, data.get("to_user"))


def button(text: str, data: str) -> dict[str, str]:
    return {"text": text, "callback_data": data}


def keyboard(*rows: list[dict[str, str]]) -> dict[str, Any]:
    return {"inline_keyboard": [row for row in rows if row]}


MENU = keyboard(
    [button("🔴 Who is live", "live")],
    [button("👤 My account", "account")],
    [button("🤖 Create my bot", "clone"), button("📋 My bots", "bots")],
)
BACK = [button("« Menu", "menu")]


def message(chat_id: int, text: str, markup: dict[str, Any] | None = None, *, private: bool = True) -> Reply:
    params: dict[str, Any] = {"chat_id": chat_id, "text": text}
    if markup:
        params["reply_markup"] = markup
    return Reply("send_message", params, to_user=chat_id if private else None)


def edit(chat_id: int, message_id: int, text: str, markup: dict[str, Any] | None = None) -> Reply:
    params: dict[str, Any] = {"chat_id": chat_id, "message_id": message_id, "text": text}
    if markup:
        params["reply_markup"] = markup
    return Reply("edit_message_text", params, to_user=chat_id)


def answer_callback(callback_id: str, text: str | None = None, *, alert: bool = False) -> Reply:
    params: dict[str, Any] = {"callback_query_id": callback_id}
    if text:
        params |= {"text": text, "show_alert": alert}
    return Reply("answer_callback_query", params)


def welcome(first_name: str | None, points: int, *, referred_by: int | None) -> str:
    name = first_name or "there"
    lines = [
        f"Hi {name}! You have {points} points.",
        "Each look at who is live costs 1 point; you get 10 every day.",
    ]
    if referred_by:
        lines.append("You joined through a friend's link: they got 10 points for it.")
    return "\n".join(lines)


def account(user: dict[str, Any], referral_link: str, bots: list[dict[str, Any]]) -> str:
    points = "unlimited" if user["is_unlimited"] else str(user["points"])
    owned = ", ".join(f"@{bot['username']}" for bot in bots) or "none"
    return (
        f"Points: {points}\n"
        f"Friends invited: {user['referral_count']}\n"
        f"Your invite link: {referral_link}\n"
        f"Your bots: {owned}"
    )


def live_page(streams: list[dict[str, Any]], page: int, total: int) -> tuple[str, dict[str, Any]]:
    if not streams:
        return "Nobody is live right now.", keyboard(BACK)
    first = page * LIVE_PAGE_SIZE
    lines = [f"Live now ({first + 1}–{first + len(streams)} of {total}):"]
    for number, stream in enumerate(streams, start=first + 1):
        title = f" — {stream['title']}" if stream.get("title") else ""
        url = f"\n{stream['url']}" if stream.get("url") else ""
        lines.append(f"{number}. {stream['username']} ({stream['platform']}){title}{url}")
    navigation = []
    if page > 0:
        navigation.append(button("« Prev", f"live:{page - 1}"))
    if first + len(streams) < total:
        navigation.append(button("Next »", f"live:{page + 1}"))
    return "\n".join(lines), keyboard(navigation, BACK)


HELP = (
    "Here is what I can do:\n"
    "/start: your menu\n"
    "/live: who is live now (1 point)\n"
    "/account: your points and invite link\n"
    "/clone: run your own copy of this bot\n"
    "In a group where I am an admin, an admin can send /init, then /activate for unlimited points."
)
OUT_OF_POINTS = (
    "You are out of points. You get 10 more tomorrow, and 10 for each friend who joins with your link."
)
SLOW_DOWN = "You are sending commands too fast. Please wait a minute."
STALE_BUTTON = "This button is no longer valid."
