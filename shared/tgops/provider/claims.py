"""The two-phase Redis claim of seed 002: RESERVE at task generation, COMMIT or ROLLBACK at report.

Each phase is one Lua script, so it is atomic; the reserve lock's token is the task id.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from dataclasses import dataclass
from enum import IntEnum

from tgops.cache import keys
from tgops.cache.client import RedisClient
from tgops.cache.scripts import script
from tgops.provider.actions import ActionRules, cap_day, seconds_until_midnight


class CommitResult(IntEnum):
    LOST = 0  # another task holds the account's reserve lock now: nothing applied
    COMMITTED = 1
    ALREADY_COMMITTED = 2  # an earlier report of this task was committed: nothing applied again


@dataclass(frozen=True)
class Reservation:
    """One task's hold on one account for one action."""

    task_id: str
    account_id: int
    link_hash: str
    rules: ActionRules


async def reserve(
    client: RedisClient,
    task_id: str,
    rules: ActionRules,
    link_hash: str,
    account_ids: Sequence[int],
    lock_ttl_ms: int,
    now: dt.datetime | None = None,
) -> int | None:
    """Lock the first of `account_ids` that may act now for this task; None when none may."""
    if not account_ids:
        return None
    day = cap_day(now)
    candidate_keys = []
    for account_id in account_ids:
        candidate_keys += [
            keys.reserve_lock(rules.action, account_id),
            keys.cooldown(rules.action, account_id),
            keys.daily_cap(rules.action, account_id, day),
            keys.link_state(link_hash, account_id),
            keys.one_shot_dedupe(rules.action, link_hash, account_id),
        ]
    args = [
        task_id,
        lock_ttl_ms,
        rules.forbidden_state,
        rules.required_state,
        rules.daily_cap,
        "1" if rules.one_shot else "0",
    ]
    position = int(await script("reserve").run(client, candidate_keys, args))
    return account_ids[position - 1] if position else None


async def commit(
    client: RedisClient, claims: Sequence[Reservation], marker_ttl_sec: int, now: dt.datetime | None = None
) -> list[CommitResult]:
    if not claims:
        return []
    day, cap_ttl_sec = cap_day(now), seconds_until_midnight(now)
    claim_keys: list[str] = []
    args: list = []
    for claim in claims:
        action, account_id, rules = claim.rules.action, claim.account_id, claim.rules
        claim_keys += [
            keys.task_commit(claim.task_id),
            keys.reserve_lock(action, account_id),
            keys.cooldown(action, account_id),
            keys.daily_cap(action, account_id, day),
            keys.link_state(claim.link_hash, account_id),
            keys.one_shot_dedupe(action, claim.link_hash, account_id),
        ]
        args += [
            claim.task_id,
            rules.cooldown_sec,
            cap_ttl_sec,
            rules.state_after_success,
            rules.state_ttl_sec,
            "1" if rules.one_shot else "0",
            marker_ttl_sec,
        ]
    results = await script("commit").run(client, claim_keys, args)
    return [CommitResult(int(result)) for result in results]


async def rollback(client: RedisClient, claims: Sequence[Reservation]) -> int:
    if not claims:
        return 0
    locks = [keys.reserve_lock(claim.rules.action, claim.account_id) for claim in claims]
    return int(await script("rollback").run(client, locks, [claim.task_id for claim in claims]))
