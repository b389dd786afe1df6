"""A simulated Telegram behind fake Telethon clients: answers with Telethon's real TL types, fails with its
real error classes, and records every call (who, what, when, how many at once per session).

`FakeTelegram.factory` has the pool's ClientFactory signature. A client is identified by its session
string, as a real one is by its auth key.
"""

from __future__ import annotations

import asyncio
import random
from collections import Counter, defaultdict, deque
from collections.abc import Callable
from dataclasses import dataclass, field
from time import monotonic
from typing import Any

from telethon import errors
from telethon.tl import functions, types


@dataclass
class Call:
    session: str
    request: str
    started: float
    ended: float = 0.0


@dataclass
class FakeTelegram:
    latency_sec: tuple[float, float] = (0.0, 0.0)
    rng: random.Random = field(default_factory=lambda: random.Random(7))
    # Called before each request; an exception it returns is raised to the client (e.g. injected FLOOD_WAITs).
    inject: Callable[[str, Any], Exception | None] | None = None
    calls: list[Call] = field(default_factory=list)
    in_flight: Counter = field(default_factory=Counter)
    max_in_flight: Counter = field(default_factory=Counter)
    session_conflicts: int = 0
    clients_built: Counter = field(default_factory=Counter)
    _peers: dict[str, types.contacts.ResolvedPeer] = field(default_factory=dict)
    _invites: dict[str, Any] = field(default_factory=dict)
    _full_channels: dict[int, int] = field(default_factory=dict)
    _scripted: dict[str, deque] = field(default_factory=lambda: defaultdict(deque))
    _connected: Counter = field(default_factory=Counter)
    _next_id: int = 1000

    # -- the world ---------------------------------------------------------------------------------------

    def add_channel(
        self,
        username: str,
        *,
        title: str = "A channel",
        participants: int | None = 1234,
        megagroup: bool = False,
        join_request: bool = False,
        full_participants: int | None = None,
    ) -> None:
        chat_id = self._new_id()
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
        if full_participants is not None:
            self._full_channels[chat_id] = full_participants
        self._peers[username.lower()] = types.contacts.ResolvedPeer(
            peer=types.PeerChannel(chat_id), chats=[channel], users=[]
        )

    def add_user(self, username: str, *, bot: bool = False, first_name: str = "Ann") -> None:
        user_id = self._new_id()
        user = types.User(
            id=user_id, access_hash=user_id * 7, bot=bot, first_name=first_name, username=username
        )
        self._peers[username.lower()] = types.contacts.ResolvedPeer(
            peer=types.PeerUser(user_id), chats=[], users=[user]
        )

    def add_invite(
        self,
        invite_hash: str,
        *,
        title: str = "Private",
        broadcast: bool = True,
        request_needed: bool = False,
        paid: bool = False,
        participants: int = 55,
    ) -> None:
        pricing = types.StarsSubscriptionPricing(period=2592000, amount=100) if paid else None
        self._invites[invite_hash] = types.ChatInvite(
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

    def fail_next(self, session: str, *failures: Exception) -> None:
        """The next requests from `session` raise these, in order."""
        self._scripted[session].extend(failures)

    def sessions_called(self) -> Counter:
        return Counter(call.session for call in self.calls)

    def factory(self, account: Any, session: str, proxy_password: str | None) -> FakeTelethonClient:
        self.clients_built[session] += 1
        return FakeTelethonClient(self, session)

    def _new_id(self) -> int:
        self._next_id += 1
        return self._next_id

    # -- answering ---------------------------------------------------------------------------------------

    async def answer(self, session: str, request: Any) -> Any:
        call = Call(session, type(request).__name__, monotonic())
        self.calls.append(call)
        self.in_flight[session] += 1
        self.max_in_flight[session] = max(self.max_in_flight[session], self.in_flight[session])
        try:
            low, high = self.latency_sec
            if high:
                await asyncio.sleep(self.rng.uniform(low, high))
            if self._scripted[session]:
                raise self._scripted[session].popleft()
            injected = self.inject(session, request) if self.inject else None
            if injected is not None:
                raise injected
            return self._reply(request)
        finally:
            self.in_flight[session] -= 1
            call.ended = monotonic()

    def _reply(self, request: Any) -> Any:
        if isinstance(request, functions.contacts.ResolveUsernameRequest):
            resolved = self._peers.get(request.username.lower())
            if resolved is None:
                raise errors.UsernameNotOccupiedError(request=request)
            return resolved
        if isinstance(request, functions.messages.CheckChatInviteRequest):
            invite = self._invites.get(request.hash)
            if invite is None:
                raise errors.InviteHashExpiredError(request=request)
            return invite
        if isinstance(request, functions.channels.GetFullChannelRequest):
            channel_id = request.channel.channel_id
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
                participants_count=self._full_channels.get(channel_id),
            )
            return types.messages.ChatFull(full_chat=full, chats=[], users=[])
        raise errors.RPCError(request=request, message="METHOD_NOT_SIMULATED", code=400)


class FakeTelethonClient:
    def __init__(self, telegram: FakeTelegram, session: str) -> None:
        self._telegram = telegram
        self.session_string = session
        self._connected = False
        self.flood_sleep_threshold = 0

    async def connect(self) -> None:
        if self._telegram._connected[self.session_string]:
            self._telegram.session_conflicts += 1
        self._telegram._connected[self.session_string] += 1
        self._connected = True

    async def disconnect(self) -> None:
        if self._connected:
            self._telegram._connected[self.session_string] -= 1
        self._connected = False

    def is_connected(self) -> bool:
        return self._connected

    async def __call__(self, request: Any) -> Any:
        if not self._connected:
            raise ConnectionError("Cannot send requests while disconnected")
        return await self._telegram.answer(self.session_string, request)
