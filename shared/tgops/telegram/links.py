"""Telegram links: every form Telegram accepts, parsed into one kind and one canonical https://t.me/... form.

Read as Telegram's own clients read them: tdlib's LinkManager (get_link_info, parse_t_me_link_query) is
the reference, Telegram Desktop's TryConvertUrlToLocal where tdlib is silent or case-sensitive. Where this
parser is stricter on purpose, the rule says why. `parse_link` never raises: anything it cannot read comes
back as kind "invalid" with a reason.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Literal
from urllib.parse import parse_qs, unquote, urlsplit

LinkKind = Literal["public", "post", "private_post", "invite", "bot", "invalid"]

TELEGRAM_HOSTS = frozenset({"t.me", "telegram.me", "telegram.dog"})
DEFAULT_PORTS = frozenset({80, 443})  # tdlib reads t.me links on either, whatever the scheme
MAX_LINK_LENGTH = 2048
# Telegram's rule for a username (tdlib's is_valid_username), at least 3 characters long. Stricter than
# tdlib on purpose, which parses any 1-32 characters: the shortest names Telegram assigns are its own
# bots' 3 letters (@gif, @vid, @pic), so a shorter one is no chat and is refused without an MTProto call.
USERNAME = re.compile(r"[a-z][a-z0-9_]{1,30}[a-z0-9]")
MIN_SUBDOMAIN_LENGTH = 4  # tdlib reads name.t.me only for names of 4 characters or more
INVITE_HASH = re.compile(r"[A-Za-z0-9_-]+")  # tdlib: any base64url characters, however few
PHONE_NUMBER = re.compile(r"[0-9]{1,32}")  # t.me/+<digits> opens a user by phone number, not a chat
# A post or channel id. tdlib reads the leading digits of a segment ("12abc" is post 12); a segment with
# anything after its digits is refused here on purpose: in an order it is a typo, not another post.
DIGITS = re.compile(r"[0-9]{1,19}")
MAX_ID = 2**63 - 1
# Names t.me gives another meaning (tdlib's parse_t_me_link_query keywords and the subdomains
# get_link_info refuses); none of them is a chat. "boost" is read apart: t.me/boost/<name> is <name>'s.
RESERVED_NAMES = frozenset(
    {
        "a", "addemoji", "addlist", "addstickers", "addstyle", "addtheme", "auction", "auth", "bg", "boost",
        "c", "call", "confirmphone", "contact", "giftcode", "i", "invoice", "iv", "joinchat", "k", "login",
        "m", "msg", "multibuy", "newbot", "nft", "proxy", "s", "setlanguage", "share", "socks", "web", "z",
    }
)  # fmt: skip


@dataclass(frozen=True, slots=True)
class ParsedLink:
    kind: LinkKind
    username: str | None = None
    post_id: int | None = None
    channel_id: int | None = None
    invite_hash: str | None = None
    normalized: str | None = None
    reason: str | None = None

    @property
    def is_valid(self) -> bool:
        return self.kind != "invalid"


def parse_link(raw: str) -> ParsedLink:
    if not isinstance(raw, str):
        return _invalid(f"expected text, got {type(raw).__name__}")
    text = raw.strip()
    if not text:
        return _invalid("empty link")
    if len(text) > MAX_LINK_LENGTH:
        return _invalid(f"longer than {MAX_LINK_LENGTH} characters")
    if any(char.isspace() or ord(char) < 32 for char in text):
        return _invalid("contains whitespace or control characters")
    if text.startswith("@"):
        return _from_username(text[1:])
    if USERNAME.fullmatch(text.lower()):
        return _from_username(text)
    if text.lower().startswith("tg:"):
        return _from_tg_uri(text)
    return _from_url(text)


def _from_url(text: str) -> ParsedLink:
    if "://" not in text:
        text = f"https://{text}"
    try:
        parts = urlsplit(text)
        port = parts.port
    except ValueError as error:
        return _invalid(f"not a URL: {error}")
    if parts.scheme.lower() not in ("http", "https"):
        return _invalid(f"unsupported scheme {parts.scheme!r}")
    if parts.username is not None:
        return _invalid("a Telegram link has no user name in its host")
    if port is not None and port not in DEFAULT_PORTS:
        return _invalid(f"a Telegram link has no port {port}")
    host = unquote(parts.hostname or "").lower()
    # "www.t.me" is t.me, as Telegram Desktop reads it (tdlib would take "www" for a name).
    if host.endswith(".t.me") and host.count(".") == 2 and not host.startswith("www."):
        return _from_subdomain(host.removesuffix(".t.me"), parts.path)
    host = host.removeprefix("www.")
    if host in TELEGRAM_HOSTS:
        return _from_path(_segments(_without_web_preview(parts.path)))
    return _invalid(f"not a Telegram host: {host or 'none'}")


def _from_subdomain(name: str, path: str) -> ParsedLink:
    """name.t.me/... is t.me/name/...; a reserved name (joinchat.t.me, call.t.me...) is no chat."""
    if name in RESERVED_NAMES or len(name) < MIN_SUBDOMAIN_LENGTH:
        return _invalid(f"{name}.t.me is not a chat link")
    return _from_path([name, *_segments(path)])


def _without_web_preview(path: str) -> str:
    """t.me/s/<name> is the web preview of <name>'s channel; the apps drop every leading /s/."""
    while path.startswith(("/s/", "/%73/")):
        path = path[path.index("/", 1) :]
    return path


def _segments(path: str) -> list[str]:
    """The path's segments, decoded; trailing empty ones dropped, an empty first one kept (it is no name)."""
    segments = [unquote(segment) for segment in path.removeprefix("/").split("/")]
    while segments and not segments[-1]:
        segments.pop()
    return segments


def _from_path(segments: list[str]) -> ParsedLink:
    if not segments:
        return _invalid("no chat in the link")
    first = segments[0]
    if not first:
        return _invalid("an empty path segment before the chat name")
    if first[0] in "+ ":  # " " is how t.me/%20<hash> reads
        return _from_invite(first[1:])
    lowered = first.lower()  # keywords in any case, as Telegram Desktop reads them
    if lowered == "joinchat":
        return _from_invite(segments[1] if len(segments) > 1 else "")
    if lowered == "c":
        return _private_post(segments[1:])
    if lowered == "boost" and len(segments) == 2:
        return _from_username(segments[1])
    if lowered in RESERVED_NAMES:
        return _invalid(f"t.me/{lowered} is not a chat link")
    chat = _from_username(first)
    post_id = _post_in(segments[1:])
    if not chat.is_valid or post_id is None:
        # Whatever else follows a name (a story, a Mini App, a collection, post 0) belongs to that chat.
        return chat
    return _post_link(chat, post_id)


def _post_in(rest: list[str]) -> int | None:
    """t.me/name/<post> or, in a forum, t.me/name/<topic>/<post>; anything after them is ignored."""
    post_id = _positive(rest[0]) if rest else None
    if post_id is None:
        return None
    in_topic = _positive(rest[1]) if len(rest) > 1 else None
    return in_topic or post_id


def _positive(segment: str) -> int | None:
    if not DIGITS.fullmatch(segment) or not 0 < int(segment) <= MAX_ID:
        return None
    return int(segment)


def _from_tg_uri(text: str) -> ParsedLink:
    try:
        parts = urlsplit(text)
    except ValueError as error:
        return _invalid(f"not a URI: {error}")
    action = (parts.netloc or parts.path.strip("/")).lower()
    query = {key.lower(): values[0] for key, values in parse_qs(parts.query).items()}
    if action == "resolve":
        if "domain" not in query:
            return _invalid("tg://resolve without a domain")
        if "post" in query:
            return _post(query["domain"], query["post"])
        return _from_username(query["domain"])
    if action == "join":
        return _from_invite(query.get("invite", ""))
    if action == "privatepost":
        return _private_post([query.get("channel", ""), query.get("post", "")])
    return _invalid(f"unsupported tg:// action {action or 'none'!r}")


def _from_username(name: str) -> ParsedLink:
    username = name.lower()
    if not USERNAME.fullmatch(username) or "__" in username:
        return _invalid(f"not a valid username: {name[:64]!r}")
    if username in RESERVED_NAMES:
        return _invalid(f"{username!r} is reserved by Telegram")
    # Telegram keeps names ending in "bot" for bots, but not every bot's name ends so (@BotFather, @gif):
    # this kind is the spelling's guess, and the inspector reports the resolved peer's.
    kind: LinkKind = "bot" if username.endswith("bot") else "public"
    return ParsedLink(kind=kind, username=username, normalized=f"https://t.me/{username}")


def _post(name: str, post: str) -> ParsedLink:
    chat = _from_username(name)
    if not chat.is_valid or post == "0":  # post 0 is none: the apps open the chat
        return chat
    post_id = _positive(post)
    if post_id is None:
        return _invalid(f"not a post number: {post[:32]!r}")
    return _post_link(chat, post_id)


def _post_link(chat: ParsedLink, post_id: int) -> ParsedLink:
    return ParsedLink(
        kind="post",
        username=chat.username,
        post_id=post_id,
        normalized=f"https://t.me/{chat.username}/{post_id}",
    )


def _private_post(segments: list[str]) -> ParsedLink:
    """t.me/c/<channel>/<post>, or t.me/c/<channel>/<topic>/<post>; anything after them is ignored."""
    channel_id = _positive(segments[0]) if segments else None
    post_id = _post_in(segments[1:])
    if channel_id is None or post_id is None:
        return _invalid("a t.me/c/ link needs a channel id and a post number")
    return ParsedLink(
        kind="private_post",
        channel_id=channel_id,
        post_id=post_id,
        normalized=f"https://t.me/c/{channel_id}/{post_id}",
    )


def _from_invite(invite_hash: str) -> ParsedLink:
    if PHONE_NUMBER.fullmatch(invite_hash):
        return _invalid("a phone number link, not a chat")
    if not INVITE_HASH.fullmatch(invite_hash):
        return _invalid(f"not a valid invite hash: {invite_hash[:64]!r}")
    return ParsedLink(kind="invite", invite_hash=invite_hash, normalized=f"https://t.me/+{invite_hash}")


def _invalid(reason: str) -> ParsedLink:
    return ParsedLink(kind="invalid", reason=reason)
