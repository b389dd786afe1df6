"""The client cache, and the account ownership it rests on.

A process keeps an account's client connected only while it holds the account's lock
(`tg:mtproto:lock:{id}`), and keeps the lock (extending it) for as long as the client stays connected; an
idle client is disconnected and its lock released. So no two clients ever use one session, even across
processes (two connections of one auth key from different proxy exits is what gets a session killed with
AUTH_KEY_DUPLICATED).
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass
from time import monotonic

from tgops.cache import keys
from tgops.cache.client import RedisClient
from tgops.cache.lock import TokenLock
from tgops.telegram.accounts import Account, ClaimedAccount
from tgops.telegram.errors import safe_detail
from tgops.telegram.sessions import PROXY_PASSWORD, ClientFactory, MtprotoClient, SessionCipher

log = logging.getLogger(__name__)

IDLE_RELEASE_SEC = 60.0  # an owned account unused this long is disconnected and its lock released


@dataclass
class Owned:
    """An account this process holds the lock of (and may keep a connected client for)."""

    lock: TokenLock
    lock_valid_until: float  # monotonic; a little before the lock's TTL really ends
    last_used: float
    client: MtprotoClient | None = None


class Ownership:
    def __init__(
        self,
        *,
        redis: RedisClient,
        factory: ClientFactory,
        cipher: SessionCipher,
        lock_ttl_ms: int,
        idle_release_sec: float,
        busy: set[int],
    ) -> None:
        self._redis = redis
        self.factory = factory
        self._cipher = cipher
        self._lock_ttl_ms = lock_ttl_ms
        self._idle_release_sec = idle_release_sec
        self._busy = busy  # the selection's: a busy account is never given back by the upkeep
        self.owned: dict[int, Owned] = {}
        self._upkeep: asyncio.Task[None] | None = None

    async def own(self, account_id: int) -> Owned | None:
        """This process's hold on the account's lock, taken or renewed; None when another process holds it."""
        now = monotonic()
        ttl_sec = self._lock_ttl_ms / 1000
        owned = self.owned.get(account_id)
        if owned is not None:
            if owned.lock_valid_until - now > ttl_sec / 2:
                return owned
            if await owned.lock.extend(self._lock_ttl_ms):
                owned.lock_valid_until = now + ttl_sec * 0.9
                return owned
            # Our lock ran out and someone else may hold it now: our client must not be used again.
            await self.disown(account_id, release=False)
        lock = TokenLock(self._redis, keys.mtproto_lock(account_id), self._lock_ttl_ms)
        if not await lock.acquire():
            return None
        owned = Owned(lock, lock_valid_until=now + ttl_sec * 0.9, last_used=now)
        self.owned[account_id] = owned
        return owned

    async def disown(self, account_id: int, *, release: bool = True) -> None:
        """Disconnect the account's client, then release its lock: never a connected client without the lock."""
        owned = self.owned.pop(account_id, None)
        if owned is None:
            return
        if owned.client is not None:
            await _disconnect(owned.client, account_id)
        if release:
            await owned.lock.release()

    async def client_for(self, account: Account, owned: Owned, claim: ClaimedAccount) -> MtprotoClient:
        client = owned.client
        if client is None:
            # Each secret opens only for its own account and purpose (its encryption context).
            session = self._cipher.decrypt(claim.session_encrypted, account_id=account.id)
            password = (
                self._cipher.decrypt(
                    claim.proxy_password_encrypted, account_id=account.id, purpose=PROXY_PASSWORD
                )
                if claim.proxy_password_encrypted
                else None
            )
            client = owned.client = self.factory(account, session, password)
        if not client.is_connected():
            await client.connect()
        return client

    async def drop_client(self, account_id: int, owned: Owned) -> None:
        client, owned.client = owned.client, None
        if client is not None:
            await _disconnect(client, account_id)

    def start_upkeep(self) -> None:
        if self._upkeep is None or self._upkeep.done():
            self._upkeep = asyncio.get_running_loop().create_task(self._keep_up())

    async def close(self) -> None:
        """Disconnect every client and release every account lock this process holds."""
        if self._upkeep is not None:
            self._upkeep.cancel()
            await asyncio.gather(self._upkeep, return_exceptions=True)
            self._upkeep = None
        await asyncio.gather(
            *(self.disown(account_id) for account_id in list(self.owned)), return_exceptions=True
        )

    async def _keep_up(self) -> None:
        """Keep the locks of owned accounts alive; give idle accounts back to every process."""
        tick_sec = min(self._idle_release_sec, self._lock_ttl_ms / 1000 / 4)
        while True:
            await asyncio.sleep(tick_sec)
            now = monotonic()
            for account_id, owned in list(self.owned.items()):
                if account_id in self._busy:
                    continue
                try:
                    if now - owned.last_used >= self._idle_release_sec:
                        await self.disown(account_id)
                    elif await owned.lock.extend(self._lock_ttl_ms):
                        owned.lock_valid_until = monotonic() + self._lock_ttl_ms / 1000 * 0.9
                    else:
                        await self.disown(account_id, release=False)
                except Exception as error:  # noqa: BLE001 -- Redis down: try next tick; the lock TTL bounds the harm
                    log.warning(
                        "mtproto ownership upkeep failed",
                        extra={"account_id": account_id, "detail": safe_detail(error)},
                    )


async def _disconnect(client: MtprotoClient, account_id: int) -> None:
    try:
        await client.disconnect()
    except Exception as error:  # noqa: BLE001 -- a broken connection may fail to close; it is gone anyway
        log.info(
            "mtproto client disconnect failed", extra={"account_id": account_id, "detail": safe_detail(error)}
        )
