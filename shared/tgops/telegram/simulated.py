"""A simulated Telegram for local runs: a client factory for the MTProto pool that never opens a connection.

It answers exactly the requests the pool sends (ResolveUsername, GetFullChannel, CheckChatInvite) with
Telethon's real TL types, and fails with Telethon's real error classes, after a little latency. The model
is deterministic, so the same link always gets the same answer:

- a name starting with `missing` → UsernameNotOccupiedError; with `private` → ChannelPrivateError;
- a name ending with `bot` → a bot user;
- any other name → a public channel titled after the name, its member count derived from it;
- an invite hash starting with `expired` → InviteHashExpiredError; any other → a private channel's invite.

`tgops dev` uses it when Settings.uses_simulated_telegram (TGOPS_ENV=development without
TGOPS_TELEGRAM_API_ID/API_HASH; never in production) and seeds probe accounts for it. The test fake
(tests/fakes/telethon_client.py) builds on it with a world of its own and recorded calls.
Worker-side only: imports Telethon.
"""

from __future__ import annotations

import asyncio
import random
import zlib
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from telethon import errors
from telethon.tl import functions, types

from tgops.db.database import Database
from tgops.telegram.sessions import SessionCipher

DEFAULT_LATENCY_SEC = (0.05, 0.25)
SIMULATED_PHONE_PREFIX = "simulated-"  # never a real phone number: real mode can find and retire them
SIMULATED_PROBE_ACCOUNTS = 3
SIMULATED_POSTS_PER_CHANNEL = 10_000


@dataclass
class SimulatedTelegram:
    latency_sec: tuple[float, float] = DEFAULT_LATENCY_SEC
    rng: random.Random = field(default_factory=random.Random)
    session_conflicts: int = 0  # connects on a session already connected: the pool must never make one
    _connected: Counter = field(default_factory=Counter)

    def factory(self, account: Any, session: str, proxy_password: str | None) -> SimulatedClient:
        """The pool's ClientFactory. A client is known by its session string, as a real one by its auth key."""
        return SimulatedClient(self, session)

    async def answer(self, session: str, request: Any) -> Any:
        low, high = self.latency_sec
        if high:
            await asyncio.sleep(self.rng.uniform(low, high))
        return self.reply(session, request)

    def reply(self, session: str, request: Any) -> Any:
        if isinstance(request, functions.contacts.ResolveUsernameRequest):
            return self.resolve_username(request)
        if isinstance(request, functions.messages.CheckChatInviteRequest):
            return self.check_invite(request)
        if isinstance(request, functions.channels.GetFullChannelRequest):
            channel_id = request.channel.channel_id
            return full_channel(channel_id, self.full_participants(channel_id))
        if isinstance(request, functions.channels.GetMessagesRequest):
            channel_id = request.channel.channel_id
            return channel_messages(
                channel_id, [wanted.id for wanted in request.id], self.post_count(channel_id)
            )
        raise errors.RPCError(request=request, message="METHOD_NOT_SIMULATED", code=400)

    # -- the model: override these for a world of your own -------------------------------------------

    def resolve_username(
        self, request: functions.contacts.ResolveUsernameRequest
    ) -> types.contacts.ResolvedPeer:
        name = request.username.lower()
        if name.startswith("missing"):
            raise errors.UsernameNotOccupiedError(request=request)
        if name.startswith("private"):
            raise errors.ChannelPrivateError(request=request)
        if name.endswith("bot"):
            return resolved_user(_stable_id(name), name, bot=True, first_name=f"{name} (simulated)")
        # No member count here, as from real Telegram: the pool asks GetFullChannel for it.
        return resolved_channel(_stable_id(name), name, title=f"{name} (simulated)", participants=None)

    def check_invite(self, request: functions.messages.CheckChatInviteRequest) -> types.ChatInvite:
        if request.hash.startswith("expired"):
            raise errors.InviteHashExpiredError(request=request)
        return chat_invite(
            title=f"private chat {request.hash[:8]} (simulated)",
            participants=_member_count(_stable_id(request.hash)),
        )

    def full_participants(self, channel_id: int) -> int | None:
        return _member_count(channel_id)

    def post_count(self, channel_id: int) -> int:
        """Posts 1..N exist in every simulated channel."""
        return SIMULATED_POSTS_PER_CHANNEL


class SimulatedClient:
    """The slice of TelegramClient the pool uses (tgops.telegram.sessions.MtprotoClient)."""

    def __init__(self, telegram: SimulatedTelegram, session: str) -> None:
        self._telegram = telegram
        self._session = session
        self._connected = False

    async def connect(self) -> None:
        if self._telegram._connected[self._session]:
            self._telegram.session_conflicts += 1
        self._telegram._connected[self._session] += 1
        self._connected = True

    async def disconnect(self) -> None:
        if self._connected:
            self._telegram._connected[self._session] -= 1
        self._connected = False

    def is_connected(self) -> bool:
        return self._connected

    async def __call__(self, request: Any) -> Any:
        if not self._connected:
            raise ConnectionError("Cannot send requests while disconnected")
        return await self._telegram.answer(self._session, request)


# -- Telethon's TL objects, as Telegram sends them ------------------------------------------------------


def resolved_channel(
    chat_id: int,
    username: str,
    *,
    title: str,
    participants: int | None,
    megagroup: bool = False,
    join_request: bool = False,
) -> types.contacts.ResolvedPeer:
    channel = types.Channel(
        id=chat_id,
        title=title,
        photo=types.ChatPhotoEmpty(),
        date=None,
        access_hash=chat_id * 7,
        username=username,
        megagroup=megagroup,
        broadcast=not megagroup,
        join_request=join_request,
        participants_count=participants,
    )
    return types.contacts.ResolvedPeer(peer=types.PeerChannel(chat_id), chats=[channel], users=[])


def resolved_user(user_id: int, username: str, *, bot: bool, first_name: str) -> types.contacts.ResolvedPeer:
    user = types.User(id=user_id, access_hash=user_id * 7, bot=bot, first_name=first_name, username=username)
    return types.contacts.ResolvedPeer(peer=types.PeerUser(user_id), chats=[], users=[user])


def chat_invite(
    *,
    title: str,
    participants: int,
    broadcast: bool = True,
    request_needed: bool = False,
    paid: bool = False,
) -> types.ChatInvite:
    pricing = types.StarsSubscriptionPricing(period=2592000, amount=100) if paid else None
    return types.ChatInvite(
        title=title,
        photo=types.PhotoEmpty(0),
        participants_count=participants,
        color=0,
        channel=broadcast,
        broadcast=broadcast,
        megagroup=not broadcast,
        request_needed=request_needed,
        public=False,
        subscription_pricing=pricing,
    )


def full_channel(channel_id: int, participants: int | None) -> types.messages.ChatFull:
    full = types.ChannelFull(
        id=channel_id,
        about="",
        read_inbox_max_id=0,
        read_outbox_max_id=0,
        unread_count=0,
        chat_photo=types.PhotoEmpty(0),
        notify_settings=types.PeerNotifySettings(),
        bot_info=[],
        pts=1,
        exported_invite=None,
        participants_count=participants,
    )
    return types.messages.ChatFull(full_chat=full, chats=[], users=[])


def channel_messages(channel_id: int, ids: list[int], post_count: int) -> types.messages.ChannelMessages:
    """channels.getMessages' answer: each id that was never posted (or was deleted) comes back as MessageEmpty."""
    peer = types.PeerChannel(channel_id)
    messages = [
        types.Message(id=post_id, peer_id=peer, date=None, message="a post (simulated)")
        if 1 <= post_id <= post_count
        else types.MessageEmpty(id=post_id, peer_id=peer)
        for post_id in ids
    ]
    return types.messages.ChannelMessages(
        pts=1, count=post_count, messages=messages, topics=[], chats=[], users=[]
    )


def _stable_id(text: str) -> int:
    return 1_000_000 + zlib.crc32(text.encode())


def _member_count(peer_id: int) -> int:
    return 100 + peer_id % 9_900


# -- the probe accounts `tgops dev` gives the pool ------------------------------------------------------


async def seed_probe_accounts(
    db: Database, cipher: SessionCipher, count: int = SIMULATED_PROBE_ACCOUNTS
) -> list[int]:
    """Active simulated probe accounts, `count` of them, whatever ran before (idempotent).
    Their sessions are encrypted again under the current key, so a changed key cannot strand them."""
    ids = []
    for number in range(1, count + 1):
        phone = f"{SIMULATED_PHONE_PREFIX}probe-{number}"
        row = await db.fetch_one(
            "mtproto_seed_simulated_account",
            {"phone": phone, "session_encrypted": cipher.encrypt(f"simulated-session-{number}")},
        )
        ids.append(row["id"])
    return ids


async def retire_simulated_accounts(db: Database) -> int:
    """With a real Telegram, the simulated accounts must not be picked: they have no real session."""
    return await db.execute(
        "mtproto_deactivate_simulated_accounts", {"phone_pattern": f"{SIMULATED_PHONE_PREFIX}%"}
    )
