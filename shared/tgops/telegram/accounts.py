"""Our own MTProto accounts (table `mtproto_accounts`): which may be called, and what happened to them."""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from typing import Literal

from tgops.db.database import Database, Row

ProxyMode = Literal["rotating", "static"]


@dataclass(frozen=True, slots=True)
class Account:
    id: int
    proxy_type: str | None = None
    proxy_host: str | None = None
    proxy_port: int | None = None
    proxy_username: str | None = None

    @classmethod
    def from_row(cls, row: Row) -> Account:
        return cls(
            id=row["id"],
            proxy_type=row["proxy_type"],
            proxy_host=row["proxy_host"],
            proxy_port=row["proxy_port"],
            proxy_username=row["proxy_username"],
        )

    def proxy_key(self, mode: ProxyMode) -> str:
        """Who shares a throttle and a proxy cooldown: one key per account behind a rotating proxy
        (each connection leaves from a different address), one per proxy when it is static."""
        if not self.proxy_type or not self.proxy_host:
            return f"no_proxy:{self.id}"
        fields = {
            "type": self.proxy_type,
            "host": self.proxy_host.lower(),
            "port": self.proxy_port,
            "username": self.proxy_username,
        }
        base = hashlib.sha1(json.dumps(fields, sort_keys=True).encode()).hexdigest()[:16]
        return f"{base}:acct:{self.id}" if mode == "rotating" else base


@dataclass(frozen=True, slots=True)
class AccountState:
    """Whether one named account may be called now, and if not, why."""

    account: Account
    probe: bool
    usable: bool  # active, with a session
    disabled: bool
    cooldown_left_sec: int  # 0 when it is not cooling down


@dataclass(frozen=True, slots=True)
class ClaimedAccount:
    session_encrypted: str
    proxy_password_encrypted: str | None


class MtprotoAccounts:
    def __init__(self, db: Database) -> None:
        self._db = db

    async def available(self, *, probe: bool, limit: int) -> list[Account]:
        rows = await self._db.fetch_all("mtproto_available_accounts", {"is_probe": probe, "limit": limit})
        return [Account.from_row(row) for row in rows]

    async def state(self, account_id: int) -> AccountState | None:
        row = await self._db.fetch_one("mtproto_account_state", {"id": account_id})
        if row is None:
            return None
        return AccountState(
            account=Account.from_row(row),
            probe=row["is_probe"],
            usable=row["usable"],
            disabled=row["disabled"],
            cooldown_left_sec=row["cooldown_left_sec"] or 0,
        )

    async def claim(self, account_id: int) -> ClaimedAccount | None:
        """Mark the account used, if it still may be; call only while holding its lock."""
        row = await self._db.fetch_one("mtproto_claim_account", {"id": account_id})
        if row is None:
            return None
        return ClaimedAccount(row["session_encrypted"], row["proxy_password_encrypted"])

    async def cool_down(self, account_id: int, seconds: int, error_code: str) -> None:
        await self._db.execute(
            "mtproto_set_cooldown", {"id": account_id, "seconds": seconds, "error_code": error_code}
        )

    async def disable(self, account_id: int, reason: str) -> None:
        await self._db.execute("mtproto_disable_account", {"id": account_id, "reason": reason})

    async def record_failure(self, account_id: int, error_code: str) -> None:
        await self._db.execute("mtproto_record_failure", {"id": account_id, "error_code": error_code})

    async def add(
        self,
        *,
        phone: str,
        session_encrypted: str,
        probe: bool,
        proxy_type: str | None = None,
        proxy_host: str | None = None,
        proxy_port: int | None = None,
        proxy_username: str | None = None,
        proxy_password_encrypted: str | None = None,
    ) -> int:
        row = await self._db.fetch_one(
            "mtproto_insert_account",
            {
                "phone": phone,
                "session_encrypted": session_encrypted,
                "is_probe": probe,
                "proxy_type": proxy_type,
                "proxy_host": proxy_host,
                "proxy_port": proxy_port,
                "proxy_username": proxy_username,
                "proxy_password_encrypted": proxy_password_encrypted,
            },
        )
        return row["id"]

    async def get(self, account_id: int) -> Row | None:
        return await self._db.fetch_one("mtproto_get_account", {"id": account_id})
