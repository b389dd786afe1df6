"""A simulated Telegram for local runs: a client factory for the MTProto pool that never opens a connection.

It answers exactly the requests the pool sends (ResolveUsername, GetFullChannel, CheckChatInvite) with
Telethon's real TL types, and fails with Telethon's real error classes, after a little latency. The model
is deterministic, so the same link always gets the same answer:

- a name starting with `missing` → UsernameNotOccupiedError; with `private` → ChannelPrivateError;
- a name ending with `bot` → a bot user;
- any other name → a public channel titled after the name, its member count derived from it;
- an invite hash starting with `expired` → InviteHashExpiredError; `member-<channel id>` → the account is
  in that supergroup (ChatInviteAlready: a managed group with chat id -100<channel id> and this invite
  link is reachable by its admin account); any other → a private channel's invite;
- GetChatInviteImporters (a group admin's pending join requests) → `pending_join_requests[channel id]`
  when set, else a few requesters derived from the channel id, newest first, paged as Telegram pages.

It also answers the account setup requests (tgops.accounts.executors) with a profile kept per session:
2FA, name, privacy rules, profile photos, stories, uploads. Errors are injected as Telethon raises them:
a session whose string contains `banned` is refused with UserDeactivatedBanError; one session in
`flood_every` gets one FloodWaitError of `flood_wait_sec` on its first change request. `changes`,
`calls_while_cooling` and `calls_after_ban` count what a benchmark or a test checks.

`tgops dev` uses it when Settings.uses_simulated_telegram (TGOPS_ENV=development without
TGOPS_TELEGRAM_API_ID/API_HASH; never in production) and seeds probe accounts for it. The test fake
(tests/fakes/telethon_client.py) builds on it with a world of its own and recorded calls.
Worker-side only: imports Telethon.
"""

from __future__ import annotations

import asyncio
import os
import random
import zlib
from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, datetime
from time import monotonic
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
    flood_every: int = 10  # one session in this many gets a FLOOD_WAIT on its first change (0: none)
    flood_wait_sec: int = 20
    changes: Counter = field(default_factory=Counter)  # change requests per session
    calls_while_cooling: Counter = field(default_factory=Counter)  # requests inside a FLOOD_WAIT we sent
    calls_after_ban: Counter = field(default_factory=Counter)  # requests after a ban we answered
    profiles: dict[str, SimulatedProfile] = field(default_factory=dict)
    # channel id -> its pending join requests as (user id, unix date); unset: derived from the id
    pending_join_requests: dict[int, list[tuple[int, int]]] = field(default_factory=dict)
    _connected: Counter = field(default_factory=Counter)
    _cooling_until: dict[str, float] = field(default_factory=dict)
    _flooded: set[str] = field(default_factory=set)
    _banned_answered: set[str] = field(default_factory=set)

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
        if isinstance(request, functions.messages.GetChatInviteImportersRequest):
            return self.invite_importers(request)
        if type(request) in SETUP_REQUESTS:
            return self.setup_reply(session, request)
        raise errors.RPCError(request=request, message="METHOD_NOT_SIMULATED", code=400)

    # -- the account setup requests -------------------------------------------------------------------

    def setup_reply(self, session: str, request: Any) -> Any:
        self._check_limits(session, request)
        profile = self.profiles.setdefault(session, SimulatedProfile.fresh(session))
        if type(request) in CHANGE_REQUESTS:
            self.changes[session] += 1
        return profile.answer(request)

    def _check_limits(self, session: str, request: Any) -> None:
        if monotonic() < self._cooling_until.get(session, 0):
            self.calls_while_cooling[session] += 1
        if "banned" in session:
            if session in self._banned_answered:
                self.calls_after_ban[session] += 1
            self._banned_answered.add(session)
            raise errors.UserDeactivatedBanError(request=request)
        first_change = type(request) in CHANGE_REQUESTS and session not in self._flooded
        if first_change and self.flood_every and zlib.crc32(session.encode()) % self.flood_every == 0:
            self._flooded.add(session)
            self._cooling_until[session] = monotonic() + self.flood_wait_sec
            raise errors.FloodWaitError(request=request, capture=self.flood_wait_sec)

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
        member_of = request.hash.removeprefix("member-")
        if member_of != request.hash and member_of.isdigit():
            return types.ChatInviteAlready(
                chat=supergroup(int(member_of), title=f"group {member_of} (simulated)")
            )
        return chat_invite(
            title=f"private chat {request.hash[:8]} (simulated)",
            participants=_member_count(_stable_id(request.hash)),
        )

    def full_participants(self, channel_id: int) -> int | None:
        return _member_count(channel_id)

    def invite_importers(
        self, request: functions.messages.GetChatInviteImportersRequest
    ) -> types.messages.ChatInviteImporters:
        """The chat's pending requests, newest first, after the request's offset user."""
        peer = request.peer
        chat_id = peer.channel_id if isinstance(peer, types.InputPeerChannel) else peer.chat_id
        requests = self.pending_join_requests.get(chat_id)
        if requests is None:
            requests = [
                (_stable_id(f"{chat_id}:{n}"), 1_700_000_000 + n * 60) for n in range(chat_id % 4 + 2)
            ]
        ordered = sorted(requests, key=lambda entry: (entry[1], entry[0]), reverse=True)
        start = 0
        if isinstance(request.offset_user, types.InputUser):
            after = [
                index for index, (user_id, _) in enumerate(ordered) if user_id == request.offset_user.user_id
            ]
            start = after[0] + 1 if after else len(ordered)
        page = ordered[start : start + request.limit]
        return invite_importers(page, count=len(ordered))

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


def supergroup(channel_id: int, *, title: str) -> types.Channel:
    return types.Channel(
        id=channel_id, title=title, photo=types.ChatPhotoEmpty(), date=None, access_hash=channel_id * 7,
        megagroup=True,
    )  # fmt: skip


def invite_importers(requests: list[tuple[int, int]], *, count: int) -> types.messages.ChatInviteImporters:
    """getChatInviteImporters' answer for (user id, unix date) pairs, with the users it names."""
    importers = [
        types.ChatInviteImporter(user_id=user_id, date=datetime.fromtimestamp(date, UTC), requested=True)
        for user_id, date in requests
    ]
    users = [
        types.User(id=user_id, access_hash=user_id * 7, first_name="Requester", username=f"user{user_id}")
        for user_id, _ in requests
    ]
    return types.messages.ChatInviteImporters(count=count, importers=importers, users=users)


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


# -- the account setup model: one profile per session -----------------------------------------------------

CHANGE_REQUESTS = frozenset(
    {
        functions.account.UpdatePasswordSettingsRequest,
        functions.account.UpdateProfileRequest,
        functions.account.SetPrivacyRequest,
        functions.photos.UploadProfilePhotoRequest,
        functions.stories.SendStoryRequest,
    }
)
SETUP_REQUESTS = CHANGE_REQUESTS | {
    functions.account.GetPasswordRequest,
    functions.users.GetUsersRequest,
    functions.account.GetPrivacyRequest,
    functions.photos.GetUserPhotosRequest,
    functions.upload.SaveFilePartRequest,
    functions.upload.SaveBigFilePartRequest,
}
PRIVACY_VALUES = {
    types.InputPrivacyValueAllowAll: types.PrivacyValueAllowAll,
    types.InputPrivacyValueAllowContacts: types.PrivacyValueAllowContacts,
    types.InputPrivacyValueDisallowAll: types.PrivacyValueDisallowAll,
}
# Telegram's 2048-bit SRP prime (what telethon.password accepts without factorizing).
SRP_PRIME = bytes.fromhex(
    "c71caeb9c6b1c9048e6c522f70f13f73980d40238e3e21c14934d037563d930f48198a0aa7c14058229493d22530f4db"
    "fa336f6e0ac925139543aed44cce7c3720fd51f69458705ac68cd4fe6b6b13abdc9746512969328454f18faf8c595f64"
    "2477fe96bb2a941d5bcd1d4ac8cc49880708fa9b378e3c4f3a9060bee67cf9a4a4a695811051907e162753b56b0f6b41"
    "0dba74d8a84b2a14b3144e0ef1284754fd17ed950d5965b4b9dd46582db1178d169c6bc465b0d6ff9ca3928fef5b9ae4"
    "e418fc15e83ebea0f87fa9ff5eed70050ded2849f47bf959d956850ce929851f0d8115f635b105ee2e4e15d04b2454bf"
    "6f4fadf034b10403119cd8e3b92fcc5b"
)


@dataclass
class SimulatedProfile:
    user_id: int
    first_name: str
    last_name: str = ""
    has_password: bool = False
    privacy: dict[type, list[Any]] = field(default_factory=dict)
    photos: list[types.Photo] = field(default_factory=list)
    stories: list[int] = field(default_factory=list)
    photos_uploaded: int = 0
    uploaded_parts: Counter = field(default_factory=Counter)

    @classmethod
    def fresh(cls, session: str) -> SimulatedProfile:
        """A new account as Telegram leaves it: no 2FA, a placeholder name, phone and last seen for contacts."""
        user_id = _stable_id(session)
        return cls(user_id=user_id, first_name=f"User {user_id % 10_000}")

    def answer(self, request: Any) -> Any:
        if isinstance(request, functions.account.GetPasswordRequest):
            return self.password_state()
        if isinstance(request, functions.account.UpdatePasswordSettingsRequest):
            self.has_password = bool(request.new_settings.new_password_hash)
            return True
        if isinstance(request, functions.users.GetUsersRequest):
            return [self.user()]
        if isinstance(request, functions.account.UpdateProfileRequest):
            self.first_name = request.first_name if request.first_name is not None else self.first_name
            self.last_name = request.last_name if request.last_name is not None else self.last_name
            return self.user()
        if isinstance(request, functions.account.GetPrivacyRequest):
            return self.privacy_rules(type(request.key))
        if isinstance(request, functions.account.SetPrivacyRequest):
            self.privacy[type(request.key)] = [PRIVACY_VALUES[type(rule)]() for rule in request.rules]
            return self.privacy_rules(type(request.key))
        if isinstance(request, functions.photos.GetUserPhotosRequest):
            newest_first = list(reversed(self.photos))[: request.limit or None]
            return types.photos.Photos(photos=newest_first, users=[])
        if isinstance(
            request, (functions.upload.SaveFilePartRequest, functions.upload.SaveBigFilePartRequest)
        ):
            self.uploaded_parts[request.file_id] += 1
            return True
        if isinstance(request, functions.photos.UploadProfilePhotoRequest):
            return self.new_photo(request)
        if isinstance(request, functions.stories.SendStoryRequest):
            return self.new_story(request)
        raise errors.RPCError(request=request, message="METHOD_NOT_SIMULATED", code=400)

    def password_state(self) -> types.account.Password:
        algo = types.PasswordKdfAlgoSHA256SHA256PBKDF2HMACSHA512iter100000SHA256ModPow(
            salt1=os.urandom(8), salt2=os.urandom(16), g=3, p=SRP_PRIME
        )
        return types.account.Password(
            new_algo=algo,
            new_secure_algo=types.SecurePasswordKdfAlgoUnknown(),
            secure_random=os.urandom(32),
            has_password=self.has_password,
        )

    def user(self) -> types.User:
        return types.User(
            id=self.user_id, is_self=True, access_hash=self.user_id * 7,
            first_name=self.first_name, last_name=self.last_name or None,
        )  # fmt: skip

    def privacy_rules(self, key: type) -> types.account.PrivacyRules:
        rules = self.privacy.get(key, [types.PrivacyValueAllowContacts()])
        return types.account.PrivacyRules(rules=rules, chats=[], users=[])

    def new_photo(self, request: functions.photos.UploadProfilePhotoRequest) -> types.photos.Photo:
        uploaded = request.video or request.file
        if uploaded is None or uploaded.id not in self.uploaded_parts:
            raise errors.FilePartMissingError(request=request, capture=0)
        video_sizes = [types.VideoSize(type="u", w=640, h=640, size=1)] if request.video else None
        self.photos_uploaded += 1
        photo = types.Photo(
            id=self.user_id * 1000 + self.photos_uploaded, access_hash=1, file_reference=b"", date=None,
            sizes=[types.PhotoSize(type="x", w=640, h=640, size=1)], dc_id=2, video_sizes=video_sizes,
        )  # fmt: skip
        self.photos.append(photo)
        return types.photos.Photo(photo=photo, users=[])

    def new_story(self, request: functions.stories.SendStoryRequest) -> types.Updates:
        if request.period not in (None, 86400):
            raise errors.PremiumAccountRequiredError(request=request)
        story_id = len(self.stories) + 1
        self.stories.append(story_id)
        return types.Updates(
            updates=[types.UpdateStoryID(id=story_id, random_id=request.random_id)],
            users=[], chats=[], date=None, seq=0,
        )  # fmt: skip


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


async def seed_action_accounts(
    db: Database, cipher: SessionCipher, count: int, *, banned: int = 0
) -> list[int]:
    """Active simulated action accounts for the setup pipeline (idempotent), the last `banned` of them with
    sessions Telegram refuses as banned. Sessions are sealed for their row (envelope encryption)."""
    ids = []
    for number in range(1, count + 1):
        kind = "banned-action" if number > count - banned else "action"
        phone = f"{SIMULATED_PHONE_PREFIX}{kind}-{number}"
        account_id = (await db.fetch_one("mtproto_seed_simulated_action_account", {"phone": phone}))["id"]
        sealed = cipher.encrypt(f"simulated-{kind}-session-{number}", account_id=account_id)
        await db.execute(
            "fleet_set_secrets",
            {"id": account_id, "session_encrypted": sealed, "proxy_password_encrypted": None},
        )
        ids.append(account_id)
    return ids


async def retire_simulated_accounts(db: Database) -> int:
    """With a real Telegram, the simulated accounts must not be picked: they have no real session."""
    return await db.execute(
        "mtproto_deactivate_simulated_accounts", {"phone_pattern": f"{SIMULATED_PHONE_PREFIX}%"}
    )
