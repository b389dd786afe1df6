"""MtprotoPool: the calls, from picking an account to the answer, within a deadline per mode.

A call picks an account (selection), passes the gate (lock, proxy rest and throttle, Postgres claim) and
runs the request on the account's connected client (clients), whose errors the failure policy judges; on
an account's failure the call moves on, to at most `max_accounts_to_try_per_call` accounts. Waiting for a
throttle slot is bounded (fails fast as MTPROTO_THROTTLE_SLOT_UNAVAILABLE). `call_on` runs on one named
account and never moves on. Inside the process an account serves one call at a time. A fatal error (our
configuration or protocol is wrong) stops the pool: every later call answers with it at once.
"""

from __future__ import annotations

import asyncio
import logging
import math
import uuid
from collections.abc import Awaitable
from dataclasses import replace
from functools import partial
from time import monotonic
from typing import Any, TypeVar

from tgops.cache.client import RedisClient
from tgops.config import Settings
from tgops.db.database import Database
from tgops.telegram import lookups
from tgops.telegram.accounts import Account, AccountState, MtprotoAccounts
from tgops.telegram.peers import PeerInfo, PoolResult
from tgops.telegram.pool.clients import IDLE_RELEASE_SEC, Owned, Ownership
from tgops.telegram.pool.failures import FailurePolicy, Operation
from tgops.telegram.pool.gate import Gate, Lease, Refusal
from tgops.telegram.pool.metrics import PoolMetrics
from tgops.telegram.pool.selection import (
    NO_AVAILABLE_ACCOUNTS,
    AccountSelection,
    Candidate,
    Mode,
    NoAccount,
)
from tgops.telegram.sessions import ClientFactory, SessionCipher

log = logging.getLogger(__name__)

T = TypeVar("T")

DEADLINE_EXCEEDED = "MTPROTO_DEADLINE_EXCEEDED"
ACCOUNT_UNAVAILABLE = (
    "ACCOUNT_UNAVAILABLE"  # call_on: the named account is resting, disabled or busy elsewhere
)


class MtprotoPool:
    def __init__(
        self,
        *,
        db: Database,
        redis: RedisClient,
        settings: Settings,
        client_factory: ClientFactory,
        cipher: SessionCipher | None = None,
        metrics: PoolMetrics | None = None,
        idle_release_sec: float = IDLE_RELEASE_SEC,
    ) -> None:
        self._accounts = MtprotoAccounts(db)
        self._settings = settings
        self.metrics = metrics or PoolMetrics()
        self._selection = AccountSelection(self._accounts, settings)
        self._ownership = Ownership(
            redis=redis,
            factory=client_factory,
            cipher=cipher or SessionCipher.from_settings(settings),
            lock_ttl_ms=settings.inspect_job_timeout_sec * 1000,
            idle_release_sec=idle_release_sec,
            busy=self._selection.busy,
        )
        parts: dict[str, Any] = {
            "redis": redis,
            "accounts": self._accounts,
            "settings": settings,
            "selection": self._selection,
            "ownership": self._ownership,
            "metrics": self.metrics,
        }
        self._gate = Gate(**parts)
        self._failures = FailurePolicy(**parts)
        self._stopped: PoolResult[Any] | None = None  # the fatal error every later call answers with

    # -- lookups used by the inspector -------------------------------------------------------------

    async def resolve_username(self, username: str, *, rid: str | None = None) -> PoolResult[PeerInfo]:
        return await self.call(partial(lookups.resolve_username, username), mode="inspect", rid=rid)

    async def resolve_post(
        self, username: str, post_id: int, *, rid: str | None = None
    ) -> PoolResult[PeerInfo]:
        return await self.call(partial(lookups.resolve_post, username, post_id), mode="inspect", rid=rid)

    async def check_invite(self, invite_hash: str, *, rid: str | None = None) -> PoolResult[PeerInfo]:
        return await self.call(partial(lookups.check_invite, invite_hash), mode="inspect", rid=rid)

    # -- the calls -------------------------------------------------------------------------------------

    async def call(self, operation: Operation[T], *, mode: Mode, rid: str | None = None) -> PoolResult[T]:
        """Run `operation` on some account of the mode's role, moving to another when one fails."""
        rid = rid or uuid.uuid4().hex[:12]
        return await self._within_deadline(self._call(operation, mode, rid), mode, rid)

    async def call_on(
        self, account_id: int, operation: Operation[T], *, rid: str | None = None
    ) -> PoolResult[T]:
        """Run `operation` on exactly this account (never another), through the same gate and failure policy
        as an action-mode `call`. An account cooling down, disabled or owned by another process answers
        ACCOUNT_UNAVAILABLE (retryable, with the rest left in `cooldown_sec` when known); a failure answers
        with the cooldown it caused or `account_disabled`."""
        rid = rid or uuid.uuid4().hex[:12]
        return await self._within_deadline(self._call_on(account_id, operation, rid), "action", rid)

    async def close(self) -> None:
        """Disconnect every client and release every account lock this process holds."""
        await self._ownership.close()

    async def _within_deadline(
        self, running: Awaitable[PoolResult[T]], mode: Mode, rid: str
    ) -> PoolResult[T]:
        deadline_ms = (
            self._settings.call_deadline_inspect_ms if mode == "inspect" else self._settings.call_deadline_ms
        )
        scope = asyncio.timeout(deadline_ms / 1000)
        try:
            async with scope:
                result = await running
        except TimeoutError:
            if not scope.expired():
                raise
            log.warning(
                "mtproto call deadline exceeded",
                extra={
                    "rid": rid,
                    "account_id": None,
                    "proxy_key": None,
                    "reason": "deadline_exceeded",
                    "mode": mode,
                    "deadline_ms": deadline_ms,
                },
            )
            result = PoolResult(
                ok=False, error_code=DEADLINE_EXCEEDED, retryable=True, reason="deadline_exceeded"
            )
        self.metrics.increment(_outcome_name(result))
        return result

    async def _call(self, operation: Operation[T], mode: Mode, rid: str) -> PoolResult[T]:
        if self._stopped is not None:
            return self._stopped
        self._ownership.start_upkeep()
        tried: set[int] = set()
        wait_until = monotonic() + self._max_wait(mode)
        for _ in range(self._settings.max_accounts_to_try_per_call):
            try:
                lease = await self._lease(mode, tried, wait_until, rid)
            except NoAccount as missing:
                return self._unavailable(missing, rid, mode, tried)
            tried.add(lease.account.id)
            try:
                attempt = await self._failures.run(lease, operation, rid)
            finally:
                self._selection.give_back(lease.account.id)
            if attempt.fatal:
                self._stop(attempt.result)
            if not attempt.move_on:
                return attempt.result
        return self._unavailable(NoAccount(NO_AVAILABLE_ACCOUNTS, "all_attempts_exhausted"), rid, mode, tried)

    def _max_wait(self, mode: Mode) -> float:
        if mode == "inspect":
            return self._settings.proxy_throttle_max_wait_inspect_sec
        return self._settings.proxy_throttle_max_wait_sec

    def _unavailable(self, missing: NoAccount, rid: str, mode: Mode, tried: set[int]) -> PoolResult[Any]:
        log.warning(
            missing.code,
            extra={
                "rid": rid,
                "account_id": None,
                "proxy_key": None,
                "reason": missing.reason,
                "mode": mode,
                "attempts": len(tried),
            },
        )
        return PoolResult(ok=False, error_code=missing.code, retryable=True, reason=missing.reason)

    async def _lease(self, mode: Mode, tried: set[int], wait_until: float, rid: str) -> Lease:
        skipped: set[int] = set()  # owned by another process: not an attempt, but not picked again
        while True:
            account, proxy_key = await self._selection.pick(mode, tried, skipped, wait_until)
            lease = await self._enter(account, proxy_key, mode, rid)
            if isinstance(lease, Lease):
                return lease
            if lease == "owned_elsewhere":
                skipped.add(account.id)

    async def _enter(self, account: Account, proxy_key: str, mode: Mode, rid: str) -> Lease | Refusal:
        """Through the gate with an account reserved by the selection, which gets it back unless leased."""
        try:
            lease = await self._gate.enter(account, proxy_key, mode, rid)
        except BaseException:
            self._selection.give_back(account.id)
            raise
        if not isinstance(lease, Lease):
            self._selection.give_back(account.id)
        return lease

    # -- one named account ---------------------------------------------------------------------------

    async def _call_on(self, account_id: int, operation: Operation[T], rid: str) -> PoolResult[T]:
        if self._stopped is not None:
            return self._stopped
        self._ownership.start_upkeep()
        wait_until = monotonic() + self._max_wait("action")
        try:
            lease = await self._lease_named(account_id, wait_until, rid)
        except NoAccount as busy:  # busy in this process, or its throttle slot, past the wait
            lease = PoolResult(ok=False, error_code=busy.code, retryable=True, reason=busy.reason)
        if isinstance(lease, PoolResult):
            log.warning(
                lease.error_code,
                extra={"rid": rid, "account_id": account_id, "proxy_key": None, "reason": lease.reason},
            )
            return lease
        try:
            attempt = await self._failures.run(lease, operation, rid)
        finally:
            self._selection.give_back(account_id)
        if attempt.fatal:
            self._stop(attempt.result)
        return attempt.result

    def _stop(self, fatal: PoolResult[Any]) -> None:
        """From now on every call answers with this error, without spending an account: the process must be
        reconfigured (or Telethon upgraded) and restarted."""
        self._stopped = replace(fatal, account_id=None)

    async def _lease_named(self, account_id: int, wait_until: float, rid: str) -> Lease | PoolResult[Any]:
        """The account's lease, or why it cannot be had. Postgres is read once, before the call queues for
        the account; what changes while it waits, this process's mirrors tell (a cooldown or disable this
        process wrote, a proxy resting, the account owned elsewhere), and the claim under the lock checks
        the rest."""
        read_at = monotonic()
        state = await self._accounts.state(account_id)
        refused = _refusal_of(state)
        if refused is not None or state is None:
            return refused or _account_unavailable("account_not_found", retryable=False)
        proxy_key = state.account.proxy_key(self._settings.proxy_mode)
        mode: Mode = "inspect" if state.probe else "action"
        await self._selection.take_turn(account_id, wait_until)
        try:
            lease = await self._lease_turn(state.account, proxy_key, mode, read_at, wait_until, rid)
        except BaseException:
            self._selection.give_back(account_id)
            raise
        if not isinstance(lease, Lease):
            self._selection.give_back(account_id)
        return lease

    async def _lease_turn(
        self, account: Account, proxy_key: str, mode: Mode, read_at: float, wait_until: float, rid: str
    ) -> Lease | PoolResult[Any]:
        """With the account busy for this call: through its throttle slot and the gate."""
        selection = self._selection
        while True:
            refused = self._refusal_mirrored(account.id, proxy_key, read_at)
            if refused is not None:
                return refused
            await selection.wait_for_slot(proxy_key, wait_until)
            lease = await self._gate.enter(account, proxy_key, mode, rid)
            if isinstance(lease, Lease):
                return lease
            if lease == "owned_elsewhere":
                return _account_unavailable("owned_elsewhere")
            if lease == "not_claimable":
                # Cooled down or disabled since Postgres was read: say which, or that it cannot be used.
                return _refusal_of(await self._accounts.state(account.id)) or _account_unavailable(
                    "not_claimable"
                )
            # proxy_cooldown or slot_taken: the mirrors know now; the next turn answers or waits for the slot.

    def _refusal_mirrored(self, account_id: int, proxy_key: str, read_at: float) -> PoolResult[Any] | None:
        selection = self._selection
        rest = selection.cooled_since(account_id, read_at)
        if rest == math.inf:
            return _account_unavailable("account_disabled", disabled=True)
        if rest > 0:
            return _account_unavailable("account_cooldown", cooldown_sec=math.ceil(rest))
        now = monotonic()
        if selection.owned_elsewhere_until.get(account_id, 0) > now:
            return _account_unavailable("owned_elsewhere")
        proxy_rest = selection.proxy_cooling_until.get(proxy_key, 0) - now
        if proxy_rest > 0:
            return _account_unavailable("proxy_cooldown", cooldown_sec=math.ceil(proxy_rest))
        return None

    # -- for tests: the parts' state under the names it had before the split -------------------------

    @property
    def _owned(self) -> dict[int, Owned]:
        return self._ownership.owned

    @property
    def _candidates(self) -> dict[bool, tuple[float, list[Candidate]]]:
        return self._selection.candidates

    @property
    def _factory(self) -> ClientFactory:
        return self._ownership.factory

    @_factory.setter
    def _factory(self, factory: ClientFactory) -> None:
        self._ownership.factory = factory


def _refusal_of(state: AccountState | None) -> PoolResult[Any] | None:
    """Why Postgres says the account cannot be called now, or None when it may be."""
    if state is None:
        return _account_unavailable("account_not_found", retryable=False)
    if state.disabled:
        return _account_unavailable("account_disabled", disabled=True)
    if not state.usable:
        return _account_unavailable("account_inactive")
    if state.cooldown_left_sec > 0:
        return _account_unavailable("account_cooldown", cooldown_sec=state.cooldown_left_sec)
    return None


def _account_unavailable(
    reason: str, *, retryable: bool = True, cooldown_sec: int | None = None, disabled: bool = False
) -> PoolResult[Any]:
    return PoolResult(
        ok=False,
        error_code=ACCOUNT_UNAVAILABLE,
        retryable=retryable,
        reason=reason,
        cooldown_sec=cooldown_sec,
        account_disabled=disabled,
    )


def _outcome_name(result: PoolResult[Any]) -> str:
    if result.ok:
        return "ok"
    if result.definite:
        return "definite"
    return (result.error_code or "unknown").lower()
