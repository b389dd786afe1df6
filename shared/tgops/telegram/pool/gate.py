"""The gate every call passes before it reaches Telegram: the account's lock (this process must own it),
its proxy's rest (`tg:proxy:cooldown:{key}`) and throttle slot (`tg:proxy:throttle:{key}`), and its claim
in Postgres, which sees a cooldown or disable written by whoever held the lock before."""

from __future__ import annotations

from dataclasses import dataclass
from time import monotonic
from typing import Literal

from tgops.cache import keys
from tgops.cache.client import RedisClient
from tgops.config import Settings
from tgops.telegram.accounts import Account, ClaimedAccount, MtprotoAccounts
from tgops.telegram.pool.clients import Owned, Ownership
from tgops.telegram.pool.metrics import PoolMetrics
from tgops.telegram.pool.selection import CANDIDATE_REFRESH_SEC, AccountSelection, Mode

Refusal = Literal["owned_elsewhere", "proxy_cooldown", "slot_taken", "not_claimable"]


@dataclass
class Lease:
    account: Account
    proxy_key: str
    owned: Owned
    claim: ClaimedAccount


class Gate:
    def __init__(
        self,
        *,
        redis: RedisClient,
        accounts: MtprotoAccounts,
        settings: Settings,
        selection: AccountSelection,
        ownership: Ownership,
        metrics: PoolMetrics,
    ) -> None:
        self._redis = redis
        self._accounts = accounts
        self._settings = settings
        self._selection = selection
        self._ownership = ownership
        self._metrics = metrics

    async def enter(self, account: Account, proxy_key: str, mode: Mode, rid: str) -> Lease | Refusal:
        """The lease, or why not; each refusal is written into the selection's mirrors first."""
        selection = self._selection
        owned = await self._ownership.own(account.id)
        if owned is None:
            selection.owned_elsewhere_until[account.id] = monotonic() + CANDIDATE_REFRESH_SEC
            self._metrics.increment("account_owned_elsewhere")
            return "owned_elsewhere"
        rest_ms = await self._redis.pttl(keys.proxy_cooldown(proxy_key))
        if rest_ms > 0:
            selection.rest_proxy(proxy_key, rest_ms / 1000)
            return "proxy_cooldown"
        throttle_sec = self._settings.proxy_throttle_sec
        if not await self._redis.set(
            keys.proxy_throttle(proxy_key), rid, nx=True, px=max(1, round(throttle_sec * 1000))
        ):
            # Another process took this slot (a static proxy is shared): remember when it frees.
            left_ms = await self._redis.pttl(keys.proxy_throttle(proxy_key))
            selection.slot_free_at[proxy_key] = monotonic() + max(left_ms, 1) / 1000
            self._metrics.increment("throttle_slot_taken_elsewhere")
            return "slot_taken"
        selection.slot_free_at[proxy_key] = monotonic() + throttle_sec
        claim = await self._accounts.claim(account.id)
        if claim is None:
            # Cooled down or disabled since the list was read (by an operator, or before we owned it).
            selection.cool(account.id, CANDIDATE_REFRESH_SEC)
            selection.forget_candidates(mode)
            await self._ownership.disown(account.id)
            return "not_claimable"
        owned.last_used = monotonic()
        return Lease(account, proxy_key, owned, claim)
