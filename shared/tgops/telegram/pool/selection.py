"""Account selection: which account a call tries next, and when the throttle slot of its proxy frees.

A call may use an account that is active, not disabled, not cooling down, of the mode's role, not yet tried
by this call, not owned by another process, not busy here and whose proxy is not resting. The pool
schedules its accounts itself: it knows when each throttle slot frees, so a waiting call sleeps until the
earliest slot instead of polling Redis.

The list of candidates comes from Postgres and is reused for CANDIDATE_REFRESH_SEC; the in-process mirrors
of cooldowns, proxy rests and ownership elsewhere keep a call from picking what that list still shows.
All of it is a hint: the gate checks the account again under its lock.

Calls on one named account (`MtprotoPool.call_on`) queue for it first come, first served: releasing the
account hands it to the next of them only (it stays busy in between), so a release wakes one waiter, not
every call waiting in the process.
"""

from __future__ import annotations

import asyncio
import math
from collections import deque
from time import monotonic
from typing import Literal

from tgops.config import Settings
from tgops.telegram.accounts import Account, MtprotoAccounts

Mode = Literal["inspect", "action"]
Candidate = tuple[Account, str]  # the account and its proxy key

NO_AVAILABLE_ACCOUNTS = "NO_AVAILABLE_ACCOUNTS"
THROTTLE_SLOT_UNAVAILABLE = "MTPROTO_THROTTLE_SLOT_UNAVAILABLE"
CANDIDATE_LIMIT = 1000
# How long a list of available accounts read from Postgres is reused. A stale list is safe: every
# account is checked again in Postgres under its lock before it is called.
CANDIDATE_REFRESH_SEC = 1.0


class NoAccount(Exception):
    def __init__(self, code: str, reason: str) -> None:
        super().__init__(reason)
        self.code = code
        self.reason = reason


class AccountSelection:
    def __init__(self, accounts: MtprotoAccounts, settings: Settings) -> None:
        self._accounts = accounts
        self._settings = settings
        self.busy: set[int] = set()  # accounts this process is using (or about to)
        self.slot_free_at: dict[str, float] = {}  # proxy key -> when its throttle slot frees (monotonic)
        self.cooling_until: dict[int, float] = {}  # mirrors the cooldowns this process wrote to Postgres
        self._cooled_at: dict[int, float] = {}  # when each of those was written
        self.proxy_cooling_until: dict[str, float] = {}
        self.owned_elsewhere_until: dict[int, float] = {}  # not asked for again until then
        self.candidates: dict[bool, tuple[float, list[Candidate]]] = {}
        self._candidates_lock = asyncio.Lock()
        self._released = asyncio.Event()  # set (and replaced) whenever this process stops using an account
        self._turns: dict[int, deque[asyncio.Future[None]]] = {}  # calls waiting for one named account

    async def pick(self, mode: Mode, tried: set[int], skipped: set[int], wait_until: float) -> Candidate:
        """Reserve (in this process) the usable account whose throttle slot frees first, and sleep until then."""
        excluded = tried | skipped
        while True:
            candidates = await self.candidates_for(mode)
            if not candidates:
                raise NoAccount(NO_AVAILABLE_ACCOUNTS, "db_query_empty")
            now = monotonic()
            untried = [
                entry
                for entry in candidates
                if entry[0].id not in excluded and self.owned_elsewhere_until.get(entry[0].id, 0) <= now
            ]
            if not untried:
                raise NoAccount(
                    NO_AVAILABLE_ACCOUNTS, "all_attempts_exhausted" if tried else "all_owned_elsewhere"
                )
            rested = [entry for entry in untried if self.cooling_until.get(entry[0].id, 0) <= now]
            if not rested:
                raise NoAccount(NO_AVAILABLE_ACCOUNTS, "cooldown_all_dropped")
            usable = [entry for entry in rested if self.proxy_cooling_until.get(entry[1], 0) <= now]
            if not usable:
                raise NoAccount(NO_AVAILABLE_ACCOUNTS, "proxy_cooldown_all_dropped")
            idle = [entry for entry in usable if entry[0].id not in self.busy]
            if not idle:
                await self.wait_for_release(wait_until)
                continue
            account, proxy_key = min(idle, key=lambda entry: self.slot_free_at.get(entry[1], 0))
            await self.reserve(account.id, proxy_key, wait_until)
            return account, proxy_key

    async def reserve(self, account_id: int, proxy_key: str, wait_until: float) -> None:
        """Mark the account busy here and take its proxy's next throttle slot, sleeping until it frees."""
        delay = self.take_slot(proxy_key, wait_until)
        self.busy.add(account_id)
        if delay > 0:
            try:
                await asyncio.sleep(delay)
            except BaseException:
                self.give_back(account_id)
                raise

    async def wait_for_slot(self, proxy_key: str, wait_until: float) -> None:
        delay = self.take_slot(proxy_key, wait_until)
        if delay > 0:
            await asyncio.sleep(delay)

    def take_slot(self, proxy_key: str, wait_until: float) -> float:
        """Take the proxy's next throttle slot in this process (so another call here sharing the proxy
        picks a later one); the seconds until it frees."""
        now = monotonic()
        free_at = max(self.slot_free_at.get(proxy_key, 0), now)
        if free_at > wait_until:
            raise NoAccount(THROTTLE_SLOT_UNAVAILABLE, "throttle_wait_exceeded")
        self.slot_free_at[proxy_key] = free_at + self._settings.proxy_throttle_sec
        return free_at - now

    async def take_turn(self, account_id: int, wait_until: float) -> None:
        """Make the account busy for the caller: at once when it is idle here, else when every call queued
        for it before has given it back. The caller must give it back."""
        if account_id not in self.busy:
            self.busy.add(account_id)
            return
        timeout = wait_until - monotonic()
        if timeout <= 0:
            raise NoAccount(THROTTLE_SLOT_UNAVAILABLE, "account_busy")
        turn = asyncio.get_running_loop().create_future()
        self._turns.setdefault(account_id, deque()).append(turn)
        try:
            async with asyncio.timeout(timeout):
                await turn
        except BaseException as stopped:
            if turn.done() and not turn.cancelled():
                self.give_back(account_id)  # handed over just as this call gave up: pass it on
            else:
                turn.cancel()  # the holder's give_back skips it
            if isinstance(stopped, TimeoutError):
                raise NoAccount(THROTTLE_SLOT_UNAVAILABLE, "account_busy") from None
            raise

    async def candidates_for(self, mode: Mode) -> list[Candidate]:
        probe = mode == "inspect"
        cached = self.candidates.get(probe)
        if cached and monotonic() - cached[0] < CANDIDATE_REFRESH_SEC:
            return cached[1]
        async with self._candidates_lock:
            cached = self.candidates.get(probe)
            if cached and monotonic() - cached[0] < CANDIDATE_REFRESH_SEC:
                return cached[1]
            asked_at = monotonic()
            accounts = await self._accounts.available(probe=probe, limit=CANDIDATE_LIMIT)
            entries = [(account, account.proxy_key(self._settings.proxy_mode)) for account in accounts]
            self._forget_cooldowns_postgres_lifted(accounts, asked_at)
            self.candidates[probe] = (monotonic(), entries)
            return entries

    def forget_candidates(self, mode: Mode) -> None:
        self.candidates.pop(mode == "inspect", None)

    def cool(self, account_id: int, seconds: float) -> None:
        """Mirror a cooldown just written to Postgres (math.inf for a disabled account)."""
        now = monotonic()
        self.cooling_until[account_id] = now + seconds
        self._cooled_at[account_id] = now

    def disabled(self, account_id: int) -> None:
        self.cool(account_id, math.inf)

    def cooled_since(self, account_id: int, since: float) -> float:
        """The rest left (math.inf: disabled) of a cooldown this process wrote after `since`, else 0: what
        a call that read Postgres at `since` cannot know from that read."""
        cooled_at = self._cooled_at.get(account_id)
        if cooled_at is None or cooled_at < since:
            return 0.0
        return max(0.0, self.cooling_until.get(account_id, 0) - monotonic())

    def _forget_cooldowns_postgres_lifted(self, available: list[Account], asked_at: float) -> None:
        """Postgres is the truth: an account it lists as available, asked after the mirror was written,
        was enabled again or its cooldown lifted (by an operator), and is picked again."""
        for account in available:
            cooled_at = self._cooled_at.get(account.id)
            if cooled_at is not None and cooled_at < asked_at:
                del self._cooled_at[account.id]
                self.cooling_until.pop(account.id, None)

    def rest_proxy(self, proxy_key: str, seconds: float) -> None:
        self.proxy_cooling_until[proxy_key] = monotonic() + seconds

    async def wait_for_release(self, wait_until: float) -> None:
        timeout = wait_until - monotonic()
        if timeout <= 0:
            raise NoAccount(THROTTLE_SLOT_UNAVAILABLE, "accounts_busy")
        try:
            await asyncio.wait_for(self._released.wait(), timeout)
        except TimeoutError:
            raise NoAccount(THROTTLE_SLOT_UNAVAILABLE, "accounts_busy") from None

    def give_back(self, account_id: int) -> None:
        """This call is done with the account: the next call queued for it gets it (it stays busy), or it
        is idle and every call waiting for some idle account is woken."""
        waiting = self._turns.get(account_id)
        while waiting:
            turn = waiting.popleft()
            if not turn.done():
                turn.set_result(None)
                return
        self._turns.pop(account_id, None)
        self.busy.discard(account_id)
        # Wake every `pick`: the account may be one some of them already tried.
        released, self._released = self._released, asyncio.Event()
        released.set()
