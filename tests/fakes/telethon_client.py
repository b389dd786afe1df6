"""The package's simulated Telegram (tgops.telegram.simulated) with a world the test builds, recorded calls
(who, what, when, how many at once per session), scripted failures and injected errors.

`FakeTelegram.factory` has the pool's ClientFactory signature. A name or invite the test did not add does not
exist (UsernameNotOccupiedError, InviteHashExpiredError); channels have no member count unless given, and
posts 1..`posts` (100 unless given).
"""

from __future__ import annotations

import random
from collections import Counter, defaultdict, deque
from collections.abc import Callable
from dataclasses import dataclass, field
from time import monotonic
from typing import Any

from telethon import errors
from telethon.tl import types

from tgops.telegram.simulated import (
    SimulatedClient,
    SimulatedTelegram,
    chat_invite,
    resolved_channel,
    resolved_user,
)


@dataclass
class Call:
    session: str
    request: str
    started: float
    ended: float = 0.0


@dataclass
class FakeTelegram(SimulatedTelegram):
    latency_sec: tuple[float, float] = (0.0, 0.0)
    rng: random.Random = field(default_factory=lambda: random.Random(7))
    # Called before each request; an exception it returns is raised to the client (e.g. injected FLOOD_WAITs).
    inject: Callable[[str, Any], Exception | None] | None = None
    calls: list[Call] = field(default_factory=list)
    in_flight: Counter = field(default_factory=Counter)
    max_in_flight: Counter = field(default_factory=Counter)
    clients_built: Counter = field(default_factory=Counter)
    _peers: dict[str, Any] = field(default_factory=dict)
    _invites: dict[str, Any] = field(default_factory=dict)
    _full_channels: dict[int, int] = field(default_factory=dict)
    _posts: dict[int, int] = field(default_factory=dict)
    _scripted: dict[str, deque] = field(default_factory=lambda: defaultdict(deque))
    _connect_failures: dict[str, deque] = field(default_factory=lambda: defaultdict(deque))
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
        posts: int = 100,
    ) -> None:
        chat_id = self._new_id()
        if full_participants is not None:
            self._full_channels[chat_id] = full_participants
        self._posts[chat_id] = posts
        self._peers[username.lower()] = resolved_channel(
            chat_id, username, title=title, participants=participants, megagroup=megagroup,
            join_request=join_request,
        )  # fmt: skip

    def add_user(self, username: str, *, bot: bool = False, first_name: str = "Ann") -> None:
        user_id = self._new_id()
        self._peers[username.lower()] = resolved_user(user_id, username, bot=bot, first_name=first_name)

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
        self._invites[invite_hash] = chat_invite(
            title=title, participants=participants, broadcast=broadcast, request_needed=request_needed,
            paid=paid,
        )  # fmt: skip

    def add_joined_invite(
        self,
        invite_hash: str,
        *,
        peek: bool = False,
        title: str = "Joined",
        megagroup: bool = False,
        participants: int | None = None,
        full_participants: int | None = None,
    ) -> None:
        """An invite to a private channel the probe account is already in (ChatInviteAlready), or may look
        into for a while (ChatInvitePeek). Telegram often leaves the member count off the chat object."""
        chat_id = self._new_id()
        if full_participants is not None:
            self._full_channels[chat_id] = full_participants
        channel = types.Channel(
            id=chat_id, title=title, photo=types.ChatPhotoEmpty(), date=None, access_hash=chat_id * 7,
            megagroup=megagroup, broadcast=not megagroup, participants_count=participants,
        )  # fmt: skip
        self._invites[invite_hash] = (
            types.ChatInvitePeek(chat=channel, expires=None)
            if peek
            else types.ChatInviteAlready(chat=channel)
        )

    def fail_next(self, session: str, *failures: Exception) -> None:
        """The next requests from `session` raise these, in order."""
        self._scripted[session].extend(failures)

    def fail_connect(self, session: str, *failures: Exception) -> None:
        """The next connects of `session`'s clients raise these, in order (as Telethon's connect does)."""
        self._connect_failures[session].extend(failures)

    def sessions_called(self) -> Counter:
        return Counter(call.session for call in self.calls)

    def factory(self, account: Any, session: str, proxy_password: str | None) -> SimulatedClient:
        self.clients_built[session] += 1
        return FakeClient(self, session)

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
            return await super().answer(session, request)
        finally:
            self.in_flight[session] -= 1
            call.ended = monotonic()

    def reply(self, session: str, request: Any) -> Any:
        if self._scripted[session]:
            raise self._scripted[session].popleft()
        injected = self.inject(session, request) if self.inject else None
        if injected is not None:
            raise injected
        return super().reply(session, request)

    def resolve_username(self, request: Any) -> Any:
        resolved = self._peers.get(request.username.lower())
        if resolved is None:
            raise errors.UsernameNotOccupiedError(request=request)
        return resolved

    def check_invite(self, request: Any) -> Any:
        invite = self._invites.get(request.hash)
        if invite is None:
            raise errors.InviteHashExpiredError(request=request)
        return invite

    def full_participants(self, channel_id: int) -> int | None:
        return self._full_channels.get(channel_id)

    def post_count(self, channel_id: int) -> int:
        return self._posts.get(channel_id, 0)


class FakeClient(SimulatedClient):
    """A simulated client whose connect can be made to fail (FakeTelegram.fail_connect)."""

    def __init__(self, telegram: FakeTelegram, session: str) -> None:
        super().__init__(telegram, session)
        self._failures = telegram._connect_failures[session]

    async def connect(self) -> None:
        if self._failures:
            raise self._failures.popleft()
        await super().connect()
