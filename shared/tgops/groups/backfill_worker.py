"""The `group_join_backfill` messages of `tg-inspect`, in the Fargate inspect worker (and `tgops dev`): list
the join requests waiting in Telegram through the group's admin account and record the missed ones
(tgops.groups.backfill).

Every page is one `MtprotoPool.call_on` on the assigned account: its lock, its proxy's throttle and the
failure policy apply to each. The chat is reached by its public username or else by its invite link
(the admin is a member: CheckChatInvite answers with the chat and its access hash); the chat found must
be the group's. Answers:

- Telegram refuses the group (CHAT_ADMIN_REQUIRED, the chat is private to the account, no such chat or
  link): reported on the group, not retried (the refusal retry of `request_backfill` applies); the
  account is not cooled down for it, as it did nothing wrong;
- FLOOD_WAIT, or the account unavailable (cooling down, busy in another process, its proxy's throttle
  slot taken): the pool cooled it down or it waits its turn; the backfill goes on from the same page in
  a fresh message once the rest is over, and such waits are not counted as tries;
- the account disabled or gone: reported on the group;
- anything else: retried the same way up to `TGOPS_GROUP_BACKFILL_MAX_TRIES`, then reported.

Worker-side only (imports Telethon).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from functools import partial
from typing import TYPE_CHECKING, Any

from telethon import errors
from telethon.tl import functions, types

from tgops.groups import backfill
from tgops.groups.backfill import Importer
from tgops.groups.messages import BackfillJoinRequests
from tgops.messaging.envelopes import decode, encode
from tgops.messaging.sqs import MAX_DELAY_SEC
from tgops.messaging.topology import INSPECT
from tgops.telegram.errors import error_code
from tgops.telegram.links import parse_link
from tgops.telegram.lookups import resolved_chat
from tgops.telegram.pool import ACCOUNT_UNAVAILABLE, THROTTLE_SLOT_UNAVAILABLE

if TYPE_CHECKING:
    from tgops.db.database import Database, Row
    from tgops.messaging.sqs import Received
    from tgops.runtime import Runtime
    from tgops.telegram.peers import PoolResult
    from tgops.telegram.pool import MtprotoPool
    from tgops.telegram.sessions import MtprotoClient

log = logging.getLogger(__name__)

# Telegram's answers about the group, not the account: final for this backfill, and no cooldown.
REFUSALS = (
    errors.ChatAdminRequiredError,
    errors.ChannelPrivateError,
    errors.ChannelInvalidError,
    errors.ChatIdInvalidError,
    errors.PeerIdInvalidError,
    errors.UserNotParticipantError,
    errors.InviteHashExpiredError,
    errors.InviteHashInvalidError,
    errors.UsernameNotOccupiedError,
    errors.UsernameInvalidError,
)
CHANNEL_ID_OFFSET = 10**12  # a supergroup's Bot API id is -(10**12 + its MTProto channel id)
FLOOD_CODES = ("FLOOD", "SLOWMODE")


@dataclass(frozen=True, slots=True)
class Refused:
    code: str
    reason: str


@dataclass(frozen=True, slots=True)
class Cursor:
    date: int | None = None
    user_id: int | None = None
    user_hash: int | None = None


@dataclass(frozen=True, slots=True)
class Page:
    peer: Any  # the chat's InputPeer, for the next pages of the same message
    importers: list[Importer]
    next_cursor: Cursor


async def fetch_page(
    target: Row, peer: Any, cursor: Cursor, limit: int, client: MtprotoClient
) -> Page | Refused:
    """One page of the chat's pending join requests, newest first, after `cursor`."""
    try:
        if peer is None:
            peer = await _input_peer(target, client)
            if isinstance(peer, Refused):
                return peer
        answer = await client(
            functions.messages.GetChatInviteImportersRequest(
                peer=peer,
                requested=True,
                offset_date=cursor.date,
                offset_user=(
                    types.InputUser(cursor.user_id, cursor.user_hash or 0)
                    if cursor.user_id is not None
                    else types.InputUserEmpty()
                ),
                limit=limit,
            )
        )
    except REFUSALS as error:
        return Refused(error_code(error), f"Telegram refused {target['chat_id']}: {type(error).__name__}")
    users = {user.id: user for user in answer.users}
    importers = [
        Importer(
            user_id=importer.user_id,
            date=int(importer.date.timestamp()) if importer.date else 0,
            username=getattr(users.get(importer.user_id), "username", None),
        )
        for importer in answer.importers
    ]
    last = importers[-1] if importers else None
    next_cursor = (
        Cursor(last.date, last.user_id, getattr(users.get(last.user_id), "access_hash", None))
        if last
        else cursor
    )
    return Page(peer, importers, next_cursor)


async def _input_peer(target: Row, client: MtprotoClient) -> Any:
    """The group as this account sees it (with its access hash), by username or else invite link."""
    if target["username"]:
        resolved = await client(functions.contacts.ResolveUsernameRequest(username=target["username"]))
        chat = resolved_chat(resolved)
    else:
        invite = parse_link(target["invite_link"] or "")
        if invite.kind != "invite":
            return Refused("NO_WAY_TO_THE_CHAT", "the group has neither a username nor an invite link")
        answer = await client(functions.messages.CheckChatInviteRequest(hash=invite.invite_hash))
        if not isinstance(answer, (types.ChatInviteAlready, types.ChatInvitePeek)):
            return Refused("ADMIN_NOT_A_MEMBER", "the admin account is not a member of the group")
        chat = answer.chat
    if chat is None or bot_api_chat_id(chat) != target["chat_id"]:
        found = bot_api_chat_id(chat) if chat is not None else None
        return Refused("CHAT_MISMATCH", f"the group's link leads to chat {found}, not {target['chat_id']}")
    if isinstance(chat, types.Channel):
        return types.InputPeerChannel(chat.id, chat.access_hash)
    return types.InputPeerChat(chat.id)


def bot_api_chat_id(chat: Any) -> int:
    if isinstance(chat, (types.Channel, types.ChannelForbidden)):
        return -(CHANNEL_ID_OFFSET + chat.id)
    return -chat.id


async def handle(runtime: Runtime, message: Received, *, pool: MtprotoPool | None = None) -> None:
    job = decode(message.body, BackfillJoinRequests)
    db = await runtime.database()
    settings = runtime.settings
    target = await db.fetch_one("group_backfill_target", {"chat_id": job.chat_id})
    if target is None or target["admin_account_id"] != job.account_id:
        log.info("group %s: its admin account changed; this backfill ends", job.chat_id)
        return
    pool = pool or await shared_pool(runtime)
    limit = settings.group_backfill_page_size
    cursor, peer, recorded = Cursor(job.offset_date, job.offset_user_id, job.offset_user_hash), None, 0
    try:
        for _ in range(settings.group_backfill_pages_per_message):
            operation = partial(fetch_page, target, peer, cursor, limit)
            result = await pool.call_on(job.account_id, operation, rid=f"backfill-{job.message_id[-12:]}")
            if not result.ok:
                await _failed(runtime, db, job, cursor, job.recorded + recorded, result)
                return
            page = result.value
            assert page is not None  # an ok call answers its operation's page
            if isinstance(page, Refused):
                await backfill.refused(db, job.chat_id, f"{page.code}: {page.reason}")
                return
            recorded += await backfill.record_importers(db, settings, job.chat_id, page.importers)
            if len(page.importers) < limit:
                await backfill.finished(db, job.chat_id, job.recorded + recorded)
                return
            peer, cursor = page.peer, page.next_cursor
        await _go_on(runtime, job, cursor, job.recorded + recorded, tries=0, delay_sec=0)
    finally:
        if recorded:
            await backfill.start_decisions(runtime.queues(), job.chat_id, job.message_id)


async def _failed(
    runtime: Runtime,
    db: Database,
    job: BackfillJoinRequests,
    cursor: Cursor,
    recorded: int,
    result: PoolResult,
) -> None:
    code = result.error_code or "UNKNOWN"
    if result.account_disabled or not result.retryable or result.definite:
        await backfill.refused(db, job.chat_id, f"{code}: {result.reason or code} (account {job.account_id})")
        return
    obeying_limits = code in (ACCOUNT_UNAVAILABLE, THROTTLE_SLOT_UNAVAILABLE) or any(
        word in code for word in FLOOD_CODES
    )
    tries = job.tries if obeying_limits else job.tries + 1
    if tries >= runtime.settings.group_backfill_max_tries:
        await backfill.refused(db, job.chat_id, f"gave up after {tries} tries: {code} ({result.reason})")
        return
    delay = result.cooldown_sec or runtime.settings.unknown_error_cooldown_sec
    log.info("group %s: backfill waits %ss (%s) and goes on from the same page", job.chat_id, delay, code)
    await _go_on(runtime, job, cursor, recorded, tries=tries, delay_sec=delay)


async def _go_on(
    runtime: Runtime, job: BackfillJoinRequests, cursor: Cursor, recorded: int, *, tries: int, delay_sec: int
) -> None:
    """The same backfill in a fresh message, from `cursor` (a longer rest is waited out in turns)."""
    continuation = BackfillJoinRequests(
        chat_id=job.chat_id,
        account_id=job.account_id,
        offset_date=cursor.date,
        offset_user_id=cursor.user_id,
        offset_user_hash=cursor.user_hash,
        recorded=recorded,
        tries=tries,
    )
    await runtime.queues().send(INSPECT.name, encode(continuation), delay_sec=min(delay_sec, MAX_DELAY_SEC))


_SHARED_POOLS: dict[int, tuple[Runtime, MtprotoPool]] = {}


async def shared_pool(runtime: Runtime) -> MtprotoPool:
    """One pool per Runtime for a caller that has none to pass (`tgops dev`)."""
    db = await runtime.database()
    entry = _SHARED_POOLS.get(id(runtime))
    if entry is None:  # no await between the check and the insert: one pool even under concurrent jobs
        from tgops.orders.link_inspector import default_client_factory
        from tgops.telegram.pool import MtprotoPool

        settings = runtime.settings
        pool = MtprotoPool(
            db=db, redis=runtime.redis(), settings=settings,
            client_factory=default_client_factory(settings),
        )  # fmt: skip
        entry = _SHARED_POOLS[id(runtime)] = (runtime, pool)
    return entry[1]


async def close_shared_pool(runtime: Runtime) -> None:
    entry = _SHARED_POOLS.pop(id(runtime), None)
    if entry is not None:
        await entry[1].close()
