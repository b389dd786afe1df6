"""The link inspector: what an order link points at, spending an MTProto account only when it must.

Public names ask the Bot API first (free), then MTProto; posts go to MTProto, which can tell whether the
post exists (the Bot API cannot read a channel's posts); invites use CheckChatInvite; bot links resolve the
name and report the bot flag. Telethon is reached only through the PeerLookup (the pool), so
importing this module loads no worker code.
"""

from __future__ import annotations

import logging
import uuid
from typing import TYPE_CHECKING

from tgops.config import PLACEHOLDER, Settings
from tgops.orders.inspection_result import InspectionResult
from tgops.telegram.links import ParsedLink, parse_link
from tgops.telegram.peers import PeerInfo, PeerLookup, PoolResult

if TYPE_CHECKING:
    from tgops.cache.client import RedisClient
    from tgops.db.database import Database
    from tgops.telegram.bot_api import BotApiChats
    from tgops.telegram.pool import MtprotoPool
    from tgops.telegram.sessions import ClientFactory

log = logging.getLogger(__name__)


class Inspector:
    def __init__(self, *, mtproto: PeerLookup, bot_api: BotApiChats | None = None) -> None:
        self._mtproto = mtproto
        self._bot_api = bot_api

    async def inspect(self, link: str) -> InspectionResult:
        parsed = parse_link(link)
        rid = uuid.uuid4().hex[:12]
        if not parsed.is_valid:
            return InspectionResult.missing("invalid", "INVALID_LINK", parsed.reason or "invalid link")
        # A valid link carries what its kind needs: the hash of an invite, the name (and post) otherwise.
        username, invite_hash, post_id = parsed.username or "", parsed.invite_hash or "", parsed.post_id or 0
        if parsed.kind == "invite":
            return _from_pool(parsed, await self._mtproto.check_invite(invite_hash, rid=rid))
        if parsed.kind == "private_post":
            return InspectionResult(
                ok=False,
                link_kind=parsed.kind,
                error_code="PRIVATE_POST_NOT_INSPECTABLE",
                reason="a t.me/c/ post can only be read by a member of the chat",
            )
        if parsed.kind == "post":
            return _post(parsed, await self._mtproto.resolve_post(username, post_id, rid=rid))
        if parsed.kind == "public" and self._bot_api is not None:
            info = await self._bot_api.get_chat(username)
            if info is not None:
                return _found(parsed, info)
        return _from_pool(parsed, await self._mtproto.resolve_username(username, rid=rid))


def _post(parsed: ParsedLink, result: PoolResult[PeerInfo]) -> InspectionResult:
    info = result.value
    if result.ok and info is not None and not info.post_exists:
        where = f"@{parsed.username}"
        if info.chat_type in ("user", "bot"):
            return InspectionResult.missing(
                parsed.kind,
                "POST_NOT_FOUND",
                f"{where} is a {info.chat_type}, not a channel with posts",
            )
        return InspectionResult.missing(
            parsed.kind, "POST_NOT_FOUND", f"post {parsed.post_id} of {where} does not exist"
        )
    return _from_pool(parsed, result)


def _from_pool(parsed: ParsedLink, result: PoolResult[PeerInfo]) -> InspectionResult:
    if result.ok and result.value is not None:
        return _found(parsed, result.value)
    code = result.error_code or "UNKNOWN"
    reason = result.reason or code.lower()
    if result.definite:
        return InspectionResult.missing(parsed.kind, code, reason)
    return InspectionResult.temporary(parsed.kind, code, reason)


def _found(parsed: ParsedLink, info: PeerInfo) -> InspectionResult:
    return InspectionResult(
        ok=True,
        exists=True,
        link_kind=_link_kind(parsed, info),
        chat_type=info.chat_type,
        title=info.title,
        username=info.username or parsed.username,
        participants_count=info.participants_count,
        is_private=info.is_private,
        join_request=info.join_request,
        paid=info.paid,
        is_bot=info.is_bot,
    )


def _link_kind(parsed: ParsedLink, info: PeerInfo) -> str:
    """A name link's kind is what the name resolved to (a bot or not), not how it is spelled."""
    if parsed.kind in ("public", "bot"):
        return "bot" if info.is_bot else "public"
    return parsed.kind


def create_inspector(
    settings: Settings, *, db: Database, redis: RedisClient, client_factory: ClientFactory | None = None
) -> tuple[Inspector, MtprotoPool]:
    """The inspector the validation worker uses, over the Telethon pool (simulated when the settings say so)
    unless a factory is given. The caller closes the pool on shutdown."""
    from tgops.telegram.bot_api import BotApiChats
    from tgops.telegram.pool import MtprotoPool

    factory = client_factory or default_client_factory(settings)
    pool = MtprotoPool(db=db, redis=redis, settings=settings, client_factory=factory)
    token = settings.telegram_bot_token.get_secret_value()
    bot_api = BotApiChats(token) if token and token != PLACEHOLDER else None
    return Inspector(mtproto=pool, bot_api=bot_api), pool


def default_client_factory(settings: Settings) -> ClientFactory:
    if settings.uses_simulated_telegram:
        from tgops.telegram.simulated import SimulatedTelegram

        log.warning("MTProto is simulated (tgops.telegram.simulated): no request reaches Telegram")
        return SimulatedTelegram().factory
    from tgops.telegram.sessions import TelethonClientFactory

    return TelethonClientFactory(settings)
