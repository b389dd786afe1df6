"""The MTProto account pool: one asyncio process drives many Telethon accounts, within Telegram's limits.

A call picks an account (active, not disabled, not cooling down, of the mode's role, not yet tried by this
call, its proxy not resting), makes sure this process owns the account's Redis lock
(`tg:mtproto:lock:{id}`), takes a slot of the proxy's throttle (`tg:proxy:throttle:{key}`), checks the
account in Postgres once more, and runs the request on the account's connected client.

Ownership: a process keeps an account's client connected only while it holds the account's lock, and keeps
the lock (extending it) for as long as the client stays connected; an idle client is disconnected and its
lock released. So no two clients ever use one session, even across processes (two connections of one auth
key from different proxy exits is what gets a session killed with AUTH_KEY_DUPLICATED). Inside the process
an account serves one call at a time.

Failures go through the error table (tgops.telegram.errors); a cooldown is written to Postgres before the
account's lock is released, so whoever takes the lock next sees it. At most `max_accounts_to_try_per_call`
accounts per call; waiting for a throttle slot is bounded (fails fast as MTPROTO_THROTTLE_SLOT_UNAVAILABLE)
and the whole call has a deadline per mode. The pool schedules its accounts itself: it knows when each
throttle slot frees, so a waiting call sleeps until the earliest slot instead of polling Redis.
Worker-only (imports Telethon).
"""

from __future__ import annotations

import asyncio
import logging
import math
import uuid
from collections import Counter
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, replace
from functools import partial
from time import monotonic
from typing import Any, Generic, Literal, TypeVar

from telethon import errors as telethon_errors
from telethon.tl import functions, types

from tgops.cache import keys
from tgops.cache.client import RedisClient
from tgops.cache.lock import TokenLock
from tgops.config import Settings
from tgops.db.database import Database
from tgops.telegram.accounts import Account, AccountState, Claim, MtprotoAccounts
from tgops.telegram.errors import ErrorOutcome, classify
from tgops.telegram.peers import PeerInfo, PoolResult
from tgops.telegram.sessions import ClientFactory, MtprotoClient, SessionCipher

log = logging.getLogger(__name__)

T = TypeVar("T")
Mode = Literal["inspect", "action"]
Operation = Callable[[MtprotoClient], Awaitable[T]]

NO_AVAILABLE_ACCOUNTS = "NO_AVAILABLE_ACCOUNTS"
THROTTLE_SLOT_UNAVAILABLE = "MTPROTO_THROTTLE_SLOT_UNAVAILABLE"
ACCOUNT_UNAVAILABLE = (
    "ACCOUNT_UNAVAILABLE"  # call_on: the named account is resting, disabled or busy elsewhere
)
DEADLINE_EXCEEDED = "MTPROTO_DEADLINE_EXCEEDED"
CANDIDATE_LIMIT = 1000
# How long a list of available accounts read from Postgres is reused. A stale list is safe: every
# account is checked again in Postgres under its lock before it is called.
CANDIDATE_REFRESH_SEC = 1.0
IDLE_RELEASE_SEC = 60.0  # an owned account unused this long is disconnected and its lock released


class PoolMetrics:
    """In-process counters per outcome. The pool lives in a long-running Fargate task, where Powertools
    Metrics' flush-per-invocation does not fit; the worker reads `snapshot()` (and may publish it)."""

    def __init__(self) -> None:
        self._counts: Counter[str] = Counter()

    def increment(self, outcome: str) -> None:
        self._counts[outcome] += 1

    def snapshot(self) -> dict[str, int]:
        return dict(self._counts)


class _NoAccount(Exception):
    def __init__(self, code: str, reason: str) -> None:
        super().__init__(reason)
        self.code = code
        self.reason = reason


@dataclass
class _Owned:
    """An account this process holds the lock of (and may keep a connected client for)."""

    lock: TokenLock
    lock_valid_until: float  # monotonic; a little before the lock's TTL really ends
    last_used: float
    client: MtprotoClient | None = None


_Refusal = Literal["owned_elsewhere", "proxy_cooldown", "slot_taken", "not_claimable"]


@dataclass(frozen=True)
class _Attempt(Generic[T]):
    """One account's go at a call: its result, and whether the call may move on to another account."""

    result: PoolResult[T]
    move_on: bool = False

    @classmethod
    def failed(
        cls,
        account_id: int,
        code: str,
        *,
        reason: str,
        cooldown_sec: int | None = None,
        disabled: bool = False,
    ) -> _Attempt[Any]:
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


@dataclass
class _Lease:
    account: Account
    proxy_key: str
    owned: _Owned
    claim: Claim


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
        self._redis = redis
        self._settings = settings
        self._factory = client_factory
        self._cipher = cipher or SessionCipher.from_settings(settings)
        self.metrics = metrics or PoolMetrics()
        self._lock_ttl_ms = settings.inspect_job_timeout_sec * 1000
        self._idle_release_sec = idle_release_sec
        self._owned: dict[int, _Owned] = {}
        self._maintenance: asyncio.Task[None] | None = None
        self._busy: set[int] = set()  # accounts this process is using (or about to)
        self._slot_free_at: dict[str, float] = {}  # proxy key -> when its throttle slot frees (monotonic)
        self._cooling_until: dict[int, float] = {}  # mirrors the cooldowns this process wrote to Postgres
        self._proxy_cooling_until: dict[str, float] = {}
        self._owned_elsewhere_until: dict[int, float] = {}  # not asked for again until then
        self._candidates: dict[bool, tuple[float, list[tuple[Account, str]]]] = {}
        self._candidates_lock = asyncio.Lock()
        self._released = asyncio.Event()  # set (and replaced) whenever this process stops using an account

    # -- lookups used by the inspector -------------------------------------------------------------

    async def resolve_username(self, username: str, *, rid: str | None = None) -> PoolResult[PeerInfo]:
        return await self.call(partial(_resolve_username, username), mode="inspect", rid=rid)

    async def resolve_post(
        self, username: str, post_id: int, *, rid: str | None = None
    ) -> PoolResult[PeerInfo]:
        return await self.call(partial(_resolve_post, username, post_id), mode="inspect", rid=rid)

    async def check_invite(self, invite_hash: str, *, rid: str | None = None) -> PoolResult[PeerInfo]:
        return await self.call(partial(_check_invite, invite_hash), mode="inspect", rid=rid)

    # -- the call --------------------------------------------------------------------------------------

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

    async def close(self) -> None:
        """Disconnect every client and release every account lock this process holds."""
        if self._maintenance is not None:
            self._maintenance.cancel()
            await asyncio.gather(self._maintenance, return_exceptions=True)
            self._maintenance = None
        await asyncio.gather(
            *(self._disown(account_id) for account_id in list(self._owned)), return_exceptions=True
        )

    async def _call(self, operation: Operation[T], mode: Mode, rid: str) -> PoolResult[T]:
        self._start_maintenance()
        tried: set[int] = set()
        max_wait = (
            self._settings.proxy_throttle_max_wait_inspect_sec
            if mode == "inspect"
            else self._settings.proxy_throttle_max_wait_sec
        )
        wait_until = monotonic() + max_wait
        for _ in range(self._settings.max_accounts_to_try_per_call):
            try:
                lease = await self._lease(mode, tried, wait_until, rid)
            except _NoAccount as missing:
                return self._unavailable(missing, rid, mode, tried)
            tried.add(lease.account.id)
            try:
                attempt = await self._run(lease, operation, rid)
            finally:
                self._give_back(lease.account.id)
            if not attempt.move_on:
                return attempt.result
        return self._unavailable(
            _NoAccount(NO_AVAILABLE_ACCOUNTS, "all_attempts_exhausted"), rid, mode, tried
        )

    def _unavailable(self, missing: _NoAccount, rid: str, mode: Mode, tried: set[int]) -> PoolResult[Any]:
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

    async def _call_on(self, account_id: int, operation: Operation[T], rid: str) -> PoolResult[T]:
        self._start_maintenance()
        wait_until = monotonic() + self._settings.proxy_throttle_max_wait_sec
        try:
            lease = await self._lease_named(account_id, wait_until, rid)
        except _NoAccount as busy:  # busy in this process past the throttle's wait
            lease = PoolResult(ok=False, error_code=busy.code, retryable=True, reason=busy.reason)
        if isinstance(lease, PoolResult):
            log.warning(
                lease.error_code,
                extra={"rid": rid, "account_id": account_id, "proxy_key": None, "reason": lease.reason},
            )
            return lease
        try:
            attempt = await self._run(lease, operation, rid)
        finally:
            self._give_back(account_id)
        return attempt.result

    async def _lease_named(self, account_id: int, wait_until: float, rid: str) -> _Lease | PoolResult[Any]:
        """The account's lease, or why it cannot be had (Postgres is asked, not the candidate list)."""
        while True:
            state = await self._accounts.state(account_id)
            refused = _refusal_of(state)
            if refused is not None:
                return refused
            now = monotonic()
            if self._owned_elsewhere_until.get(account_id, 0) > now:
                return _account_unavailable("owned_elsewhere")
            proxy_key = state.account.proxy_key(self._settings.proxy_mode)
            proxy_rest = self._proxy_cooling_until.get(proxy_key, 0) - now
            if proxy_rest > 0:
                return _account_unavailable("proxy_cooldown", cooldown_sec=math.ceil(proxy_rest))
            if account_id in self._busy:
                await self._wait_for_release(wait_until)
                continue
            free_at = max(self._slot_free_at.get(proxy_key, 0), now)
            if free_at > wait_until:
                return PoolResult(
                    ok=False,
                    error_code=THROTTLE_SLOT_UNAVAILABLE,
                    retryable=True,
                    reason="throttle_wait_exceeded",
                )
            self._busy.add(account_id)
            self._slot_free_at[proxy_key] = free_at + self._settings.proxy_throttle_sec
            try:
                if free_at > now:
                    await asyncio.sleep(free_at - now)
                mode: Mode = "inspect" if state.probe else "action"
                lease = await self._try_lease(state.account, proxy_key, mode, rid, set())
            except BaseException:
                self._give_back(account_id)
                raise
            if isinstance(lease, _Lease):
                return lease
            self._give_back(account_id)
            if lease == "owned_elsewhere":
                return _account_unavailable("owned_elsewhere")
            if lease == "not_claimable":
                # Cooled down or disabled since Postgres was read: say which, or that it is unusable.
                return _refusal_of(await self._accounts.state(account_id)) or _account_unavailable(
                    "not_claimable"
                )
            # proxy_cooldown or slot_taken: the in-process mirrors now know; the next turn answers or waits.

    # -- choosing and leasing an account ------------------------------------------------------------

    async def _lease(self, mode: Mode, tried: set[int], wait_until: float, rid: str) -> _Lease:
        skipped: set[int] = set()  # owned by another process: not an attempt, but not picked again
        while True:
            account, proxy_key = await self._pick(mode, tried, skipped, wait_until)
            try:
                lease = await self._try_lease(account, proxy_key, mode, rid, skipped)
            except BaseException:
                self._give_back(account.id)
                raise
            if isinstance(lease, _Lease):
                return lease
            self._give_back(account.id)

    async def _pick(
        self, mode: Mode, tried: set[int], skipped: set[int], wait_until: float
    ) -> tuple[Account, str]:
        """Reserve (in this process) the usable account whose throttle slot frees first, and sleep until then."""
        excluded = tried | skipped
        while True:
            candidates = await self._candidates_for(mode)
            if not candidates:
                raise _NoAccount(NO_AVAILABLE_ACCOUNTS, "db_query_empty")
            now = monotonic()
            untried = [
                entry
                for entry in candidates
                if entry[0].id not in excluded and self._owned_elsewhere_until.get(entry[0].id, 0) <= now
            ]
            if not untried:
                raise _NoAccount(
                    NO_AVAILABLE_ACCOUNTS, "all_attempts_exhausted" if tried else "all_owned_elsewhere"
                )
            rested = [entry for entry in untried if self._cooling_until.get(entry[0].id, 0) <= now]
            if not rested:
                raise _NoAccount(NO_AVAILABLE_ACCOUNTS, "cooldown_all_dropped")
            usable = [entry for entry in rested if self._proxy_cooling_until.get(entry[1], 0) <= now]
            if not usable:
                raise _NoAccount(NO_AVAILABLE_ACCOUNTS, "proxy_cooldown_all_dropped")
            idle = [entry for entry in usable if entry[0].id not in self._busy]
            if not idle:
                await self._wait_for_release(wait_until)
                continue
            account, proxy_key = min(idle, key=lambda entry: self._slot_free_at.get(entry[1], 0))
            free_at = max(self._slot_free_at.get(proxy_key, 0), now)
            if free_at > wait_until:
                raise _NoAccount(THROTTLE_SLOT_UNAVAILABLE, "throttle_wait_exceeded")
            self._busy.add(account.id)
            # Claim the slot here too, so another call in this process sharing the proxy picks a later one.
            self._slot_free_at[proxy_key] = free_at + self._settings.proxy_throttle_sec
            if free_at > now:
                try:
                    await asyncio.sleep(free_at - now)
                except BaseException:
                    self._give_back(account.id)
                    raise
            return account, proxy_key

    async def _candidates_for(self, mode: Mode) -> list[tuple[Account, str]]:
        probe = mode == "inspect"
        cached = self._candidates.get(probe)
        if cached and monotonic() - cached[0] < CANDIDATE_REFRESH_SEC:
            return cached[1]
        async with self._candidates_lock:
            cached = self._candidates.get(probe)
            if cached and monotonic() - cached[0] < CANDIDATE_REFRESH_SEC:
                return cached[1]
            accounts = await self._accounts.available(probe=probe, limit=CANDIDATE_LIMIT)
            entries = [(account, account.proxy_key(self._settings.proxy_mode)) for account in accounts]
            self._candidates[probe] = (monotonic(), entries)
            return entries

    async def _wait_for_release(self, wait_until: float) -> None:
        timeout = wait_until - monotonic()
        if timeout <= 0:
            raise _NoAccount(THROTTLE_SLOT_UNAVAILABLE, "accounts_busy")
        try:
            await asyncio.wait_for(self._released.wait(), timeout)
        except TimeoutError:
            raise _NoAccount(THROTTLE_SLOT_UNAVAILABLE, "accounts_busy") from None

    def _give_back(self, account_id: int) -> None:
        self._busy.discard(account_id)
        # Wake every waiting call: the account may be one some of them already tried.
        released, self._released = self._released, asyncio.Event()
        released.set()

    async def _try_lease(
        self, account: Account, proxy_key: str, mode: Mode, rid: str, skipped: set[int]
    ) -> _Lease | _Refusal:
        """Through the gate: the account's lock, its proxy's rest and throttle slot, its Postgres claim."""
        owned = await self._own(account.id)
        if owned is None:
            skipped.add(account.id)
            self._owned_elsewhere_until[account.id] = monotonic() + CANDIDATE_REFRESH_SEC
            self.metrics.increment("account_owned_elsewhere")
            return "owned_elsewhere"
        rest_ms = await self._redis.pttl(keys.proxy_cooldown(proxy_key))
        if rest_ms > 0:
            self._proxy_cooling_until[proxy_key] = monotonic() + rest_ms / 1000
            return "proxy_cooldown"
        throttle_sec = self._settings.proxy_throttle_sec
        if not await self._redis.set(
            keys.proxy_throttle(proxy_key), rid, nx=True, px=max(1, round(throttle_sec * 1000))
        ):
            # Another process took this slot (a static proxy is shared): remember when it frees.
            left_ms = await self._redis.pttl(keys.proxy_throttle(proxy_key))
            self._slot_free_at[proxy_key] = monotonic() + max(left_ms, 1) / 1000
            self.metrics.increment("throttle_slot_taken_elsewhere")
            return "slot_taken"
        self._slot_free_at[proxy_key] = monotonic() + throttle_sec
        claim = await self._accounts.claim(account.id)
        if claim is None:
            # Cooled down or disabled since the list was read (by an operator, or before we owned it).
            self._cooling_until[account.id] = monotonic() + CANDIDATE_REFRESH_SEC
            self._candidates.pop(mode == "inspect", None)
            await self._disown(account.id)
            return "not_claimable"
        owned.last_used = monotonic()
        return _Lease(account, proxy_key, owned, claim)

    async def _own(self, account_id: int) -> _Owned | None:
        """This process's hold on the account's lock, taken or renewed; None when another process holds it."""
        now = monotonic()
        ttl_sec = self._lock_ttl_ms / 1000
        owned = self._owned.get(account_id)
        if owned is not None:
            if owned.lock_valid_until - now > ttl_sec / 2:
                return owned
            if await owned.lock.extend(self._lock_ttl_ms):
                owned.lock_valid_until = now + ttl_sec * 0.9
                return owned
            # Our lock ran out and someone else may hold it now: our client must not be used again.
            await self._disown(account_id, release=False)
        lock = TokenLock(self._redis, keys.mtproto_lock(account_id), self._lock_ttl_ms)
        if not await lock.acquire():
            return None
        owned = _Owned(lock, lock_valid_until=now + ttl_sec * 0.9, last_used=now)
        self._owned[account_id] = owned
        return owned

    async def _disown(self, account_id: int, *, release: bool = True) -> None:
        """Disconnect the account's client, then release its lock: never a connected client without the lock."""
        owned = self._owned.pop(account_id, None)
        if owned is None:
            return
        if owned.client is not None:
            await _disconnect(owned.client, account_id)
        if release:
            await owned.lock.release()

    def _start_maintenance(self) -> None:
        if self._maintenance is None or self._maintenance.done():
            self._maintenance = asyncio.get_running_loop().create_task(self._maintain())

    async def _maintain(self) -> None:
        """Keep the locks of owned accounts alive; give idle accounts back to every process."""
        tick_sec = min(self._idle_release_sec, self._lock_ttl_ms / 1000 / 4)
        while True:
            await asyncio.sleep(tick_sec)
            now = monotonic()
            for account_id, owned in list(self._owned.items()):
                if account_id in self._busy:
                    continue
                try:
                    if now - owned.last_used >= self._idle_release_sec:
                        await self._disown(account_id)
                    elif await owned.lock.extend(self._lock_ttl_ms):
                        owned.lock_valid_until = monotonic() + self._lock_ttl_ms / 1000 * 0.9
                    else:
                        await self._disown(account_id, release=False)
                except Exception as error:  # noqa: BLE001 -- Redis down: try next tick; the lock TTL bounds the harm
                    log.warning(
                        "mtproto ownership upkeep failed",
                        extra={"account_id": account_id, "detail": _detail(error)},
                    )

    # -- running the request -------------------------------------------------------------------------

    async def _run(self, lease: _Lease, operation: Operation[T], rid: str) -> _Attempt[T]:
        try:
            value = await operation(await self._client_for(lease))
        except Exception as error:  # noqa: BLE001 -- the error table decides, "anything else" included
            outcome = classify(error, self._settings)
            if outcome.kind == "refresh_peer":
                return await self._retry_on_fresh_client(lease, operation, rid)
            return await self._handle_failure(lease, error, outcome, rid)
        return _Attempt(PoolResult(ok=True, value=value, account_id=lease.account.id))

    async def _retry_on_fresh_client(self, lease: _Lease, operation: Operation[T], rid: str) -> _Attempt[T]:
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
        await self._drop_client(lease)
        try:
            value = await operation(await self._client_for(lease))
        except Exception as error:  # noqa: BLE001 -- the error table decides, "anything else" included
            outcome = classify(error, self._settings)
            self.metrics.increment("peer_db_retry_failed")
            log.warning(
                "peer_db_retry_failed: skipping the account",
                extra={
                    "rid": rid,
                    "account_id": account_id,
                    "proxy_key": lease.proxy_key,
                    "reason": "peer_db_retry_failed",
                    "error_code": outcome.code,
                    "detail": _detail(error),
                },
            )
            if outcome.kind == "refresh_peer":
                await self._accounts.record_failure(account_id, outcome.code)
                return _Attempt.failed(account_id, outcome.code, reason="peer_db_retry_failed")
            return await self._handle_failure(lease, error, outcome, rid)
        return _Attempt(PoolResult(ok=True, value=value, account_id=account_id))

    async def _handle_failure(
        self, lease: _Lease, error: Exception, outcome: ErrorOutcome, rid: str
    ) -> _Attempt[Any]:
        account_id = lease.account.id
        extra = {
            "rid": rid,
            "account_id": account_id,
            "proxy_key": lease.proxy_key,
            "reason": outcome.kind,
            "error_code": outcome.code,
            "detail": _detail(error),
        }
        if outcome.kind == "definite":
            log.info("telegram answered about the target", extra=extra)
            return _Attempt(
                PoolResult(
                    ok=False,
                    error_code=outcome.code,
                    definite=True,
                    reason=outcome.code.lower(),
                    account_id=account_id,
                )
            )
        if outcome.kind == "disable":
            await self._accounts.disable(account_id, outcome.code)
            self._cooling_until[account_id] = math.inf
            await self._disown(account_id)
            self.metrics.increment("account_disabled")
            log.warning("mtproto account disabled", extra=extra)
            return _Attempt.failed(account_id, outcome.code, reason="account_disabled", disabled=True)
        # Written to Postgres before the lock is released: the next holder's claim sees it.
        await self._accounts.cool_down(account_id, outcome.cooldown_sec, outcome.code)
        self._cooling_until[account_id] = monotonic() + outcome.cooldown_sec
        if outcome.proxy_cooldown and outcome.cooldown_sec > 0:
            await self._redis.set(
                keys.proxy_cooldown(lease.proxy_key), outcome.code, px=outcome.cooldown_sec * 1000
            )
            self._proxy_cooling_until[lease.proxy_key] = monotonic() + outcome.cooldown_sec
        await self._disown(account_id)
        self.metrics.increment("account_cooldown")
        log.warning("mtproto account cooling down", extra=extra | {"cooldown_sec": outcome.cooldown_sec})
        return _Attempt.failed(
            account_id, outcome.code, reason="account_cooldown", cooldown_sec=outcome.cooldown_sec
        )

    async def _client_for(self, lease: _Lease) -> MtprotoClient:
        client = lease.owned.client
        if client is None:
            session = self._cipher.decrypt(lease.claim.session_encrypted)
            password = (
                self._cipher.decrypt(lease.claim.proxy_password_encrypted)
                if lease.claim.proxy_password_encrypted
                else None
            )
            client = lease.owned.client = self._factory(lease.account, session, password)
        if not client.is_connected():
            await client.connect()
        return client

    async def _drop_client(self, lease: _Lease) -> None:
        client, lease.owned.client = lease.owned.client, None
        if client is not None:
            await _disconnect(client, lease.account.id)


async def _disconnect(client: MtprotoClient, account_id: int) -> None:
    try:
        await client.disconnect()
    except Exception as error:  # noqa: BLE001 -- a broken connection may fail to close; it is gone anyway
        log.info(
            "mtproto client disconnect failed", extra={"account_id": account_id, "detail": _detail(error)}
        )


def _detail(error: Exception) -> str:
    """What is safe to log about an error: Telegram's and the network's messages, otherwise only the type
    (an arbitrary exception, e.g. from parsing a session, may quote the secret it choked on)."""
    if isinstance(error, (telethon_errors.RPCError, OSError)):
        return f"{type(error).__name__}: {str(error)[:200]}"
    return type(error).__name__


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


# -- Telethon requests behind the lookups ----------------------------------------------------------------


async def _resolve_username(username: str, client: MtprotoClient) -> PeerInfo:
    resolved = await client(functions.contacts.ResolveUsernameRequest(username=username))
    return await _peer_info(resolved, client)


async def _resolve_post(username: str, post_id: int, client: MtprotoClient) -> PeerInfo:
    """The channel and whether its post `post_id` exists (Telegram answers MessageEmpty for one that was
    never sent or was deleted). Only channels and supergroups have t.me/name/N posts."""
    resolved = await client(functions.contacts.ResolveUsernameRequest(username=username))
    info = await _peer_info(resolved, client)
    channel = _resolved_chat(resolved)
    if not isinstance(channel, types.Channel):
        return replace(info, post_exists=False)
    found = await client(
        functions.channels.GetMessagesRequest(
            channel=types.InputChannel(channel.id, channel.access_hash), id=[types.InputMessageID(post_id)]
        )
    )
    exists = any(not isinstance(message, types.MessageEmpty) for message in found.messages)
    return replace(info, post_exists=exists)


async def _peer_info(resolved: types.contacts.ResolvedPeer, client: MtprotoClient) -> PeerInfo:
    if isinstance(resolved.peer, types.PeerUser):
        user = next(user for user in resolved.users if user.id == resolved.peer.user_id)
        name = " ".join(part for part in (user.first_name, user.last_name) if part) or None
        return PeerInfo(
            chat_type="bot" if user.bot else "user",
            title=name,
            username=user.username,
            is_private=False,
            join_request=False,
            paid=False,
        )
    chat = _resolved_chat(resolved)
    info = _chat_info(chat)
    if info.participants_count is None and isinstance(chat, types.Channel):
        full = await client(
            functions.channels.GetFullChannelRequest(types.InputChannel(chat.id, chat.access_hash))
        )
        info = replace(info, participants_count=full.full_chat.participants_count)
    return info


def _resolved_chat(resolved: types.contacts.ResolvedPeer) -> Any:
    """The chat a resolved name points at; None for a user."""
    peer = resolved.peer
    if isinstance(peer, types.PeerUser):
        return None
    chat_id = peer.channel_id if isinstance(peer, types.PeerChannel) else peer.chat_id
    return next(chat for chat in resolved.chats if chat.id == chat_id)


async def _check_invite(invite_hash: str, client: MtprotoClient) -> PeerInfo:
    invite = await client(functions.messages.CheckChatInviteRequest(hash=invite_hash))
    if isinstance(invite, (types.ChatInviteAlready, types.ChatInvitePeek)):
        return _chat_info(invite.chat)
    chat_type = "channel" if invite.broadcast else "supergroup" if invite.megagroup else "group"
    return PeerInfo(
        chat_type=chat_type,
        title=invite.title,
        participants_count=invite.participants_count,
        is_private=not invite.public,
        join_request=bool(invite.request_needed),
        paid=invite.subscription_pricing is not None,  # a Telegram Stars subscription is needed to join
    )


def _chat_info(chat: Any) -> PeerInfo:
    if isinstance(chat, types.Channel):
        return PeerInfo(
            chat_type="supergroup" if chat.megagroup else "channel",
            title=chat.title,
            username=chat.username.lower() if chat.username else None,
            participants_count=chat.participants_count,
            is_private=not (chat.username or chat.usernames),
            join_request=bool(chat.join_request),
        )
    return PeerInfo(
        chat_type="group",
        title=getattr(chat, "title", None),
        participants_count=getattr(chat, "participants_count", None),
        is_private=True,
    )
