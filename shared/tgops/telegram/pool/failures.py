"""The failure policy: a request on a leased account, and what its error means for the account.

Errors go through the error table (tgops.telegram.errors): a definite answer about the target is final;
a cooldown is written to Postgres (and the proxy's rest to Redis) before the account's lock is released,
so whoever takes the lock next sees it; a dead session disables the account; a peer missing from the
client's cache is retried once on a fresh client; a wrong configuration or protocol (fatal) blames
no account and stops the pool.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

from tgops.cache import keys
from tgops.cache.client import RedisClient
from tgops.config import Settings
from tgops.telegram.accounts import MtprotoAccounts
from tgops.telegram.errors import ErrorOutcome, classify, safe_detail
from tgops.telegram.peers import PoolResult
from tgops.telegram.pool.clients import Ownership
from tgops.telegram.pool.gate import Lease
from tgops.telegram.pool.metrics import PoolMetrics
from tgops.telegram.pool.selection import AccountSelection
from tgops.telegram.sessions import MtprotoClient

log = logging.getLogger(__name__)

T = TypeVar("T")
Operation = Callable[[MtprotoClient], Awaitable[T]]


@dataclass(frozen=True)
class Attempt(Generic[T]):
    """One account's go at a call: its result, and whether the call may move on to another account."""

    result: PoolResult[T]
    move_on: bool = False
    fatal: bool = False  # no account can succeed until the configuration changes: the pool stops

    @classmethod
    def failed(
        cls,
        account_id: int,
        code: str,
        *,
        reason: str,
        cooldown_sec: int | None = None,
        disabled: bool = False,
    ) -> Attempt[Any]:
        """The account failed (not the target): another account may answer; this one can again only once
        its cooldown is over, and never when it was disabled."""
        result: PoolResult[Any] = PoolResult(
            ok=False,
            error_code=code,
            retryable=not disabled,
            reason=reason,
            account_id=account_id,
            cooldown_sec=cooldown_sec,
            account_disabled=disabled,
        )
        return cls(result, move_on=True)


class FailurePolicy:
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

    async def run(self, lease: Lease, operation: Operation[T], rid: str) -> Attempt[T]:
        try:
            value = await operation(await self._client(lease))
        except Exception as error:  # noqa: BLE001 -- the error table decides, "anything else" included
            outcome = classify(error, self._settings)
            if outcome.kind == "refresh_peer":
                return await self._retry_on_fresh_client(lease, operation, rid)
            return await self._fail(lease, error, outcome, rid)
        return Attempt(PoolResult(ok=True, value=value, account_id=lease.account.id))

    async def _retry_on_fresh_client(self, lease: Lease, operation: Operation[T], rid: str) -> Attempt[T]:
        account_id = lease.account.id
        log.info(
            "peer not in the client's database, retrying once on a fresh client",
            extra={
                "rid": rid,
                "account_id": account_id,
                "proxy_key": lease.proxy_key,
                "reason": "peer_db_retry",
            },
        )
        await self._ownership.drop_client(account_id, lease.owned)
        try:
            value = await operation(await self._client(lease))
        except Exception as error:  # noqa: BLE001 -- the error table decides, "anything else" included
            outcome = classify(error, self._settings)
            self._metrics.increment("peer_db_retry_failed")
            log.warning(
                "peer_db_retry_failed: skipping the account",
                extra={
                    "rid": rid,
                    "account_id": account_id,
                    "proxy_key": lease.proxy_key,
                    "reason": "peer_db_retry_failed",
                    "error_code": outcome.code,
                    "detail": safe_detail(error),
                },
            )
            if outcome.kind == "refresh_peer":
                await self._accounts.record_failure(account_id, outcome.code)
                return Attempt.failed(account_id, outcome.code, reason="peer_db_retry_failed")
            return await self._fail(lease, error, outcome, rid)
        return Attempt(PoolResult(ok=True, value=value, account_id=account_id))

    async def _fail(self, lease: Lease, error: Exception, outcome: ErrorOutcome, rid: str) -> Attempt[Any]:
        account_id = lease.account.id
        extra = {
            "rid": rid,
            "account_id": account_id,
            "proxy_key": lease.proxy_key,
            "reason": outcome.kind,
            "error_code": outcome.code,
            "detail": safe_detail(error),
        }
        if outcome.kind == "definite":
            log.info("telegram answered about the target", extra=extra)
            return Attempt(
                PoolResult(
                    ok=False,
                    error_code=outcome.code,
                    definite=True,
                    reason=outcome.code.lower(),
                    account_id=account_id,
                )
            )
        if outcome.kind == "fatal":
            # Not the account's fault, and every account would fail the same way: none is blamed.
            await self._ownership.disown(account_id)
            self._metrics.increment("fatal")
            log.error(f"mtproto pool stopped: {outcome.message}", extra=extra)
            result = PoolResult(
                ok=False,
                error_code=outcome.code,
                retryable=False,
                reason=outcome.message,
                account_id=account_id,
            )
            return Attempt(result, fatal=True)
        if outcome.kind == "disable":
            await self._accounts.disable(account_id, outcome.code)
            self._selection.disabled(account_id)
            await self._ownership.disown(account_id)
            self._metrics.increment("account_disabled")
            log.warning("mtproto account disabled", extra=extra)
            return Attempt.failed(account_id, outcome.code, reason="account_disabled", disabled=True)
        # Written to Postgres before the lock is released: the next holder's claim sees it.
        await self._accounts.cool_down(account_id, outcome.cooldown_sec, outcome.code)
        self._selection.cool(account_id, outcome.cooldown_sec)
        if outcome.proxy_cooldown and outcome.cooldown_sec > 0:
            await self._redis.set(
                keys.proxy_cooldown(lease.proxy_key), outcome.code, px=outcome.cooldown_sec * 1000
            )
            self._selection.rest_proxy(lease.proxy_key, outcome.cooldown_sec)
        await self._ownership.disown(account_id)
        self._metrics.increment("account_cooldown")
        log.warning("mtproto account cooling down", extra=extra | {"cooldown_sec": outcome.cooldown_sec})
        return Attempt.failed(
            account_id, outcome.code, reason="account_cooldown", cooldown_sec=outcome.cooldown_sec
        )

    async def _client(self, lease: Lease) -> MtprotoClient:
        return await self._ownership.client_for(lease.account, lease.owned, lease.claim)
