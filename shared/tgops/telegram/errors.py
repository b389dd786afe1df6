"""What an MTProto error means for the pool: the one table from Telethon's error classes to our outcomes.

Outcomes:
- cooldown: the account (and, for connection trouble, its proxy) rests for `cooldown_sec`, the call moves
  to the next account;
- disable: the session is dead (revoked, banned, duplicated); the account is disabled with `code` as reason;
- definite: Telegram answered about the target itself (no such username, expired invite...): a final
  answer, never retried on another account;
- refresh_peer: the client's peer cache lacks the entity; retry once on a fresh client, then skip;
- fatal: our configuration or protocol is wrong (the server speaks another layer, its RSA key is not known):
  no account's fault, and every account would fail the same way, so the pool blames none and stops with
  `message`.

Worker-only: importing telethon.errors loads Telethon, which no Lambda may do.
"""

from __future__ import annotations

import asyncio
import re
from dataclasses import dataclass
from typing import Literal

from telethon import errors

from tgops.config import Settings, env_name

OutcomeKind = Literal["cooldown", "disable", "definite", "refresh_peer", "fatal"]

DEFINITE = (
    errors.UsernameNotOccupiedError,
    errors.UsernameInvalidError,
    errors.UsernamePurchaseAvailableError,
    errors.InviteHashExpiredError,
    errors.InviteHashInvalidError,
    errors.InviteHashEmptyError,
    errors.ChannelPrivateError,
    errors.ChannelInvalidError,
    errors.MsgIdInvalidError,
)
# Every 401 means the session no longer works (unregistered, revoked, deactivated, banned, expired...).
SESSION_DEAD = (
    errors.UnauthorizedError,
    errors.AuthKeyDuplicatedError,
    errors.PhoneNumberBannedError,
)
CONNECTION = (
    ConnectionError,
    asyncio.IncompleteReadError,
    errors.InvalidBufferError,
    OSError,  # socket and proxy failures; also TimeoutError from a connect that hung
)
PEER_NOT_IN_DB = "Could not find the input entity"
# Telethon's MTProtoSender gives up with this ConnectionError on a server it reached but could make no auth
# key with: every try met a SecurityError, as when the server's RSA key is not one Telethon knows.
AUTH_KEY_GENERATION_FAILED = "auth_key generation failed"


@dataclass(frozen=True, slots=True)
class ErrorOutcome:
    kind: OutcomeKind
    code: str
    cooldown_sec: int = 0
    proxy_cooldown: bool = False  # the connection failed: the proxy rests too, and the client is rebuilt
    message: str | None = None  # fatal: what is wrong and which setting to look at


PROTOCOL_MISMATCH = ErrorOutcome(
    "fatal",
    "MTPROTO_PROTOCOL_MISMATCH",
    message=(
        "the MTProto server answered with a type this Telethon does not know (TypeNotFoundError): it speaks "
        f"another layer; upgrade Telethon or point {env_name('telegram_dc_address')} at a server of its layer"
    ),
)
SERVER_KEY_UNKNOWN = ErrorOutcome(
    "fatal",
    "MTPROTO_SERVER_KEY_UNKNOWN",
    message=(
        "no auth key could be made with the MTProto server: its RSA key is not one Telethon knows; set "
        f"{env_name('telegram_server_public_key')} to the server's public key"
    ),
)


def classify(error: Exception, settings: Settings) -> ErrorOutcome:
    if isinstance(error, errors.TypeNotFoundError):
        return PROTOCOL_MISMATCH
    if isinstance(error, ConnectionError) and str(error).startswith(AUTH_KEY_GENERATION_FAILED):
        return SERVER_KEY_UNKNOWN
    code = error_code(error)
    if isinstance(error, errors.FloodError) and getattr(error, "seconds", None) is not None:
        return ErrorOutcome("cooldown", code, cooldown_sec=int(error.seconds))
    if isinstance(error, errors.PeerFloodError):
        return ErrorOutcome("cooldown", code, cooldown_sec=settings.peer_flood_cooldown_sec)
    if isinstance(error, SESSION_DEAD):
        return ErrorOutcome("disable", code)
    if isinstance(error, DEFINITE):
        return ErrorOutcome("definite", code)
    if isinstance(error, ValueError) and PEER_NOT_IN_DB in str(error):
        return ErrorOutcome("refresh_peer", "PEER_NOT_IN_DB")
    if isinstance(error, CONNECTION):
        return ErrorOutcome(
            "cooldown", code, cooldown_sec=settings.stream_closed_cooldown_sec, proxy_cooldown=True
        )
    return ErrorOutcome("cooldown", code, cooldown_sec=settings.unknown_error_cooldown_sec)


def safe_detail(error: Exception) -> str:
    """What is safe to log about an error: Telegram's and the network's messages, otherwise only the type
    (an arbitrary exception, e.g. from parsing a session, may quote the secret it choked on)."""
    if isinstance(error, (errors.RPCError, OSError)):
        return f"{type(error).__name__}: {str(error)[:200]}"
    return type(error).__name__


def error_code(error: Exception) -> str:
    """Telethon's name for the error, e.g. UsernameNotOccupiedError -> USERNAME_NOT_OCCUPIED."""
    if isinstance(error, errors.RPCError) and type(error).__module__ == errors.rpcbaseerrors.__name__:
        return error.message  # an error Telethon has no class for is a base class carrying the raw name
    if isinstance(error, CONNECTION) and not isinstance(error, errors.RPCError):
        return "CONNECTION_ERROR"
    name = type(error).__name__.removesuffix("Error") or type(error).__name__
    return re.sub(r"(?<!^)(?=[A-Z])", "_", name).upper()
