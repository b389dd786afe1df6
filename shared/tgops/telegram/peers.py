"""What an MTProto lookup returns, free of Telethon so the inspector and its tests need no worker code."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Generic, Literal, Protocol, TypeVar

T = TypeVar("T")
ChatType = Literal["channel", "supergroup", "group", "user", "bot"]


@dataclass(frozen=True, slots=True)
class PeerInfo:
    chat_type: ChatType
    title: str | None = None
    username: str | None = None
    participants_count: int | None = None
    is_private: bool | None = None
    join_request: bool | None = None
    paid: bool | None = None
    post_exists: bool | None = None  # asked only for a post link: does t.me/name/N exist?

    @property
    def is_bot(self) -> bool:
        return self.chat_type == "bot"


@dataclass(frozen=True, slots=True)
class PoolResult(Generic[T]):
    """One pool call: a value, a definite answer from Telegram about the target, or a failure."""

    ok: bool
    value: T | None = None
    error_code: str | None = None
    retryable: bool = False
    definite: bool = False  # Telegram answered about the target itself (e.g. USERNAME_NOT_OCCUPIED)
    reason: str | None = None
    account_id: int | None = None
    cooldown_sec: int | None = None  # the cooldown the failure caused, or (ACCOUNT_UNAVAILABLE) the rest left
    account_disabled: bool = (
        False  # the failure disabled the account, or (ACCOUNT_UNAVAILABLE) it is disabled
    )


class PeerLookup(Protocol):
    async def resolve_username(self, username: str, *, rid: str | None = None) -> PoolResult[PeerInfo]: ...

    async def resolve_post(
        self, username: str, post_id: int, *, rid: str | None = None
    ) -> PoolResult[PeerInfo]:
        """The channel, as resolve_username, with `post_exists` set."""

    async def check_invite(self, invite_hash: str, *, rid: str | None = None) -> PoolResult[PeerInfo]: ...
