"""The operator's view of `mtproto_accounts`: add, find, list, enable, disable, proxy, role, re-encrypt.

Secrets are sealed for the row they live in (tgops.telegram.sessions): a new account's row is inserted
first and its session written, sealed with the new id, in the same transaction.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from tgops.db.database import Database, Row
from tgops.telegram.sessions import PROXY_PASSWORD, SESSION, SessionCipher, SessionDecryptError

ProxyType = Literal["socks5", "socks4", "http", "mtproxy"]
PROXY_TYPES: tuple[str, ...] = ("socks5", "socks4", "http", "mtproxy")
REENCRYPT_BATCH = 500


class AccountNotFound(Exception):
    pass


@dataclass(frozen=True, slots=True)
class Proxy:
    type: ProxyType
    host: str
    port: int
    username: str | None = None
    password: str | None = None

    def __repr__(self) -> str:
        return f"Proxy({self.type}://{self.host}:{self.port}, user={self.username!r}, password=<hidden>)"


@dataclass(frozen=True, slots=True)
class AccountLine:
    """One line of `tgops accounts list`."""

    id: int
    phone: str
    role: str
    status: str
    proxy: str
    cooldown_left_sec: int
    disabled_reason: str | None
    last_error_code: str | None
    tasks_done: int
    tasks_failed: int
    tasks_total: int

    @property
    def setup_progress(self) -> str:
        if not self.tasks_total:
            return "-"
        failed = f", {self.tasks_failed} failed" if self.tasks_failed else ""
        return f"{self.tasks_done}/{self.tasks_total}{failed}"


@dataclass(frozen=True, slots=True)
class ReencryptSummary:
    rewritten: int
    current: int
    changed_meanwhile: int
    unreadable: list[int]


class AccountFleet:
    def __init__(self, db: Database, cipher: SessionCipher) -> None:
        self._db = db
        self._cipher = cipher

    async def find(self, ref: str) -> Row:
        """An account by phone or id."""
        row = await self._db.fetch_one("fleet_find_account", {"phone": ref})
        if row is None:
            raise AccountNotFound(f"no account with phone or id {ref!r}")
        return row

    async def find_phone(self, phone: str) -> Row | None:
        return await self._db.fetch_one("fleet_find_account", {"phone": phone})

    async def add(self, *, phone: str, session: str, probe: bool, proxy: Proxy | None = None) -> int | None:
        """A new account with its session sealed for its id; None when the phone is already there."""
        async with self._db.transaction() as tx:
            row = await tx.fetch_one(
                "fleet_insert_account",
                {
                    "phone": phone,
                    "is_probe": probe,
                    "proxy_type": proxy.type if proxy else None,
                    "proxy_host": proxy.host if proxy else None,
                    "proxy_port": proxy.port if proxy else None,
                    "proxy_username": proxy.username if proxy else None,
                },
            )
            if row is None:
                return None
            account_id = row["id"]
            await tx.execute(
                "fleet_set_secrets",
                {
                    "id": account_id,
                    "session_encrypted": self._cipher.encrypt(session, account_id=account_id),
                    "proxy_password_encrypted": self._seal_proxy_password(account_id, proxy),
                },
            )
        return account_id

    def stored_session(self, row: Row) -> str | None:
        """The row's session in plain text (for comparison only), or None when it cannot be read."""
        if not row["session_encrypted"]:
            return None
        try:
            return self._cipher.decrypt(row["session_encrypted"], account_id=row["id"])
        except SessionDecryptError:
            return None

    async def replace_session(self, account_id: int, session: str) -> None:
        sealed = self._cipher.encrypt(session, account_id=account_id)
        await self._db.execute("fleet_replace_session", {"id": account_id, "session_encrypted": sealed})

    async def list(self) -> list[AccountLine]:
        return [_line(row) for row in await self._db.fetch_all("fleet_list_accounts")]

    async def enable(self, ref: str) -> int:
        account_id = (await self.find(ref))["id"]
        await self._db.execute("fleet_enable_account", {"id": account_id})
        return account_id

    async def disable(self, ref: str, reason: str) -> int:
        account_id = (await self.find(ref))["id"]
        await self._db.execute("fleet_disable_account", {"id": account_id, "reason": reason})
        return account_id

    async def set_proxy(self, ref: str, proxy: Proxy | None) -> int:
        account_id = (await self.find(ref))["id"]
        await self._db.execute(
            "fleet_set_proxy",
            {
                "id": account_id,
                "proxy_type": proxy.type if proxy else None,
                "proxy_host": proxy.host if proxy else None,
                "proxy_port": proxy.port if proxy else None,
                "proxy_username": proxy.username if proxy else None,
                "proxy_password_encrypted": self._seal_proxy_password(account_id, proxy),
            },
        )
        return account_id

    async def set_probe(self, ref: str, probe: bool) -> int:
        account_id = (await self.find(ref))["id"]
        await self._db.execute("fleet_set_probe", {"id": account_id, "is_probe": probe})
        return account_id

    async def reencrypt(self) -> ReencryptSummary:
        """Rewrite every secret not in the current format (Fernet, or another keyring) sealed for its row."""
        rewritten = current = changed = 0
        unreadable: list[int] = []
        after_id = 0
        while rows := await self._db.fetch_all(
            "fleet_all_secrets", {"after_id": after_id, "limit": REENCRYPT_BATCH}
        ):
            after_id = rows[-1]["id"]
            for row in rows:
                session, password = row["session_encrypted"], row["proxy_password_encrypted"]
                if not any(token and self._cipher.needs_upgrade(token) for token in (session, password)):
                    current += 1
                    continue
                try:
                    new_session = self._reseal(row["id"], session, SESSION)
                    new_password = self._reseal(row["id"], password, PROXY_PASSWORD)
                except SessionDecryptError:
                    unreadable.append(row["id"])
                    continue
                updated = await self._db.execute(
                    "fleet_reencrypt_secrets",
                    {
                        "id": row["id"],
                        "session_encrypted": new_session,
                        "proxy_password_encrypted": new_password,
                        "old_session": session,
                        "old_proxy_password": password,
                    },
                )
                if updated:
                    rewritten += 1
                else:
                    changed += 1
        return ReencryptSummary(rewritten, current, changed, unreadable)

    def _reseal(self, account_id: int, token: str | None, purpose) -> str | None:
        if not token or not self._cipher.needs_upgrade(token):
            return token
        plain = self._cipher.decrypt(token, account_id=account_id, purpose=purpose)
        return self._cipher.encrypt(plain, account_id=account_id, purpose=purpose)

    def _seal_proxy_password(self, account_id: int, proxy: Proxy | None) -> str | None:
        if proxy is None or not proxy.password:
            return None
        return self._cipher.encrypt(proxy.password, account_id=account_id, purpose=PROXY_PASSWORD)


def _line(row: Row) -> AccountLine:
    if row["disabled"]:
        status = "disabled"
    elif not row["is_active"]:
        status = "inactive"
    elif row["cooldown_left_sec"] > 0:
        status = "cooling down"
    else:
        status = "active"
    proxy = f"{row['proxy_type']}://{row['proxy_host']}:{row['proxy_port']}" if row["proxy_type"] else "-"
    return AccountLine(
        id=row["id"],
        phone=row["phone"],
        role="probe" if row["is_probe"] else "action",
        status=status,
        proxy=proxy,
        cooldown_left_sec=row["cooldown_left_sec"],
        disabled_reason=row["disabled_reason"],
        last_error_code=row["last_error_code"],
        tasks_done=row["tasks_done"],
        tasks_failed=row["tasks_failed"],
        tasks_total=row["tasks_total"],
    )
