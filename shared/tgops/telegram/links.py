"""Telegram links: every form Telegram accepts, parsed into one kind and one canonical https://t.me/... form.

`parse_link` never raises: anything it cannot read comes back as kind "invalid" with a reason.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Literal
from urllib.parse import parse_qs, unquote, urlsplit

LinkKind = Literal["public", "post", "private_post", "invite", "bot", "invalid"]

TELEGRAM_HOSTS = frozenset({"t.me", "telegram.me", "telegram.dog"})
MAX_LINK_LENGTH = 2048
# Telegram's own rule, widened to 4 characters for collectible (Fragment) names.
USERNAME = re.compile(r"[a-z][a-z0-9_]{2,30}[a-z0-9]")
INVITE_HASH = re.compile(r"[A-Za-z0-9_-]{6,64}")
NUMBER = re.compile(r"[1-9][0-9]{0,18}")
# First path segments t.me gives another meaning; none of them names a chat.
RESERVED_PATHS = frozenset(
    {
        "addemoji",
        "addlist",
        "addstickers",
        "addtheme",
        "bg",
        "boost",
        "confirmphone",
        "contact",
        "giftcode",
        "invoice",
        "iv",
        "login",
        "m",
        "multibuy",
        "nft",
        "proxy",
        "setlanguage",
        "share",
        "socks",
    }
)


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
    if parts.username is not None or port is not None:
        return _invalid("a Telegram link has no user name or port in its host")
    host = (parts.hostname or "").removeprefix("www.")
    segments = [unquote(segment) for segment in parts.path.split("/") if segment]
    if host in TELEGRAM_HOSTS:
        return _from_path(segments)
    if host.endswith(".t.me"):
        return _from_subdomain(host.removesuffix(".t.me"), segments)
    return _invalid(f"not a Telegram host: {host or 'none'}")


def _from_subdomain(name: str, segments: list[str]) -> ParsedLink:
    if not segments:
        return _from_username(name)
    if len(segments) == 1:
        return _post(name, segments[0])
    return _invalid("unexpected path after a name.t.me host")


def _from_path(segments: list[str]) -> ParsedLink:
    if not segments:
        return _invalid("no chat in the link")
    first = segments[0]
    if first.startswith("+"):
        return _from_invite(first[1:], extra=segments[1:])
    lowered = first.lower()
    if lowered == "joinchat":
        return _from_invite(segments[1] if len(segments) > 1 else "", extra=segments[2:])
    if lowered == "c":
        return _private_post(segments[1:])
    if lowered == "s":
        segments = segments[1:]
        if not segments:
            return _invalid("no chat after /s/")
    name, rest = segments[0], segments[1:]
    if name.lower() in RESERVED_PATHS:
        return _invalid(f"t.me/{name.lower()} is not a chat link")
    if not rest:
        return _from_username(name)
    # t.me/name/post or, in a forum, t.me/name/topic/post: the message is the last number.
    if len(rest) <= 2 and all(NUMBER.fullmatch(part) for part in rest):
        return _post(name, rest[-1])
    return _invalid("unexpected path after the chat name")


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
        return _from_invite(query.get("invite", ""), extra=[])
    if action == "privatepost":
        return _private_post([query.get("channel", ""), query.get("post", "")])
    return _invalid(f"unsupported tg:// action {action or 'none'!r}")


def _from_username(name: str) -> ParsedLink:
    username = name.lower()
    if not USERNAME.fullmatch(username) or "__" in username:
        return _invalid(f"not a valid username: {name[:64]!r}")
    if username in RESERVED_PATHS:
        return _invalid(f"{username!r} is reserved by Telegram")
    # Telegram keeps names ending in "bot" for bots.
    kind: LinkKind = "bot" if username.endswith("bot") else "public"
    return ParsedLink(kind=kind, username=username, normalized=f"https://t.me/{username}")


def _post(name: str, post: str) -> ParsedLink:
    chat = _from_username(name)
    if not chat.is_valid:
        return chat
    if not NUMBER.fullmatch(post):
        return _invalid(f"not a post number: {post[:32]!r}")
    post_id = int(post)
    return ParsedLink(
        kind="post",
        username=chat.username,
        post_id=post_id,
        normalized=f"https://t.me/{chat.username}/{post_id}",
    )


def _private_post(segments: list[str]) -> ParsedLink:
    if len(segments) not in (2, 3) or not all(NUMBER.fullmatch(part) for part in segments):
        return _invalid("a t.me/c/ link needs a channel id and a post number")
    channel_id, post_id = int(segments[0]), int(segments[-1])
    return ParsedLink(
        kind="private_post",
        channel_id=channel_id,
        post_id=post_id,
        normalized=f"https://t.me/c/{channel_id}/{post_id}",
    )


def _from_invite(invite_hash: str, *, extra: list[str]) -> ParsedLink:
    if extra:
        return _invalid("unexpected path after the invite hash")
    if invite_hash.isdigit():
        return _invalid("a phone number link, not a chat")
    if not INVITE_HASH.fullmatch(invite_hash):
        return _invalid(f"not a valid invite hash: {invite_hash[:64]!r}")
    return ParsedLink(kind="invite", invite_hash=invite_hash, normalized=f"https://t.me/+{invite_hash}")


def _invalid(reason: str) -> ParsedLink:
    return ParsedLink(kind="invalid", reason=reason)
