"""RESERVE, COMMIT and ROLLBACK against a real Redis."""

from __future__ import annotations

import datetime as dt

from tgops.cache import keys
from tgops.provider import claims
from tgops.provider.actions import link_hash, rules_for

LINK = link_hash("https://t.me/channel")
TTL_MS = 120_000
MARKER_TTL = 3600
NOW = dt.datetime(2026, 1, 21, 22, 0, tzinfo=dt.UTC)


def claim(settings, task_id: str, account_id: int, action: str = "subscribe") -> claims.Reservation:
    return claims.Reservation(task_id, account_id, LINK, rules_for(settings, action))


async def test_reserve_locks_the_first_free_account_without_consuming_anything(settings, redis_client):
    rules = rules_for(settings, "subscribe")
    await redis_client.set(keys.reserve_lock("subscribe", 1), "other-task")

    chosen = await claims.reserve(redis_client, "task-a", rules, LINK, [1, 2, 3], TTL_MS, NOW)

    assert chosen == 2
    assert await redis_client.get(keys.reserve_lock("subscribe", 2)) == "task-a"
    assert 0 < await redis_client.pttl(keys.reserve_lock("subscribe", 2)) <= TTL_MS
    assert await redis_client.get(keys.cooldown("subscribe", 2)) is None
    assert await redis_client.get(keys.daily_cap("subscribe", 2, NOW.date())) is None


async def test_reserve_skips_accounts_on_cooldown_at_cap_or_gated(settings, redis_client):
    rules = rules_for(settings, "subscribe")
    await redis_client.set(keys.cooldown("subscribe", 1), "1", ex=60)
    await redis_client.set(keys.daily_cap("subscribe", 2, NOW.date()), rules.daily_cap)
    await redis_client.set(keys.link_state(LINK, 3), "subscribed")

    assert await claims.reserve(redis_client, "task-a", rules, LINK, [1, 2, 3], TTL_MS, NOW) is None
    assert await claims.reserve(redis_client, "task-a", rules, LINK, [1, 2, 3, 4], TTL_MS, NOW) == 4


async def test_unsubscribe_needs_a_subscribed_link(settings, redis_client):
    rules = rules_for(settings, "unsubscribe")
    assert await claims.reserve(redis_client, "task-a", rules, LINK, [1], TTL_MS, NOW) is None
    await redis_client.set(keys.link_state(LINK, 1), "subscribed")
    assert await claims.reserve(redis_client, "task-a", rules, LINK, [1], TTL_MS, NOW) == 1


async def test_one_shot_action_is_reserved_once_per_link_and_account(settings, redis_client):
    rules = rules_for(settings, "view")
    assert rules.one_shot
    assert await claims.reserve(redis_client, "task-a", rules, LINK, [1], TTL_MS, NOW) == 1
    assert await claims.commit(redis_client, [claim(settings, "task-a", 1, "view")], MARKER_TTL, NOW) == [
        claims.CommitResult.COMMITTED
    ]
    # The cooldown is spent too; once it is gone, the dedupe key alone still refuses the same link.
    await redis_client.delete(keys.cooldown("view", 1))
    assert await claims.reserve(redis_client, "task-b", rules, LINK, [1], TTL_MS, NOW) is None
    assert (
        await claims.reserve(redis_client, "task-b", rules, link_hash("https://t.me/other"), [1], TTL_MS, NOW)
        == 1
    )


async def test_commit_consumes_cooldown_cap_and_state_once_and_releases_the_lock(settings, redis_client):
    rules = rules_for(settings, "subscribe")
    await claims.reserve(redis_client, "task-a", rules, LINK, [7], TTL_MS, NOW)
    task = claim(settings, "task-a", 7)

    first = await claims.commit(redis_client, [task], MARKER_TTL, NOW)
    again = await claims.commit(redis_client, [task], MARKER_TTL, NOW)

    assert first == [claims.CommitResult.COMMITTED]
    assert again == [claims.CommitResult.ALREADY_COMMITTED]
    assert await redis_client.get(keys.daily_cap("subscribe", 7, NOW.date())) == "1"
    assert 0 < await redis_client.pttl(keys.daily_cap("subscribe", 7, NOW.date())) <= 2 * 3600 * 1000
    assert 0 < await redis_client.pttl(keys.cooldown("subscribe", 7)) <= rules.cooldown_sec * 1000
    assert await redis_client.get(keys.link_state(LINK, 7)) == "subscribed"
    assert await redis_client.pttl(keys.link_state(LINK, 7)) > 89 * 86400 * 1000
    assert await redis_client.get(keys.reserve_lock("subscribe", 7)) is None


async def test_a_holder_that_lost_its_lock_cannot_commit(settings, redis_client):
    await redis_client.set(keys.reserve_lock("subscribe", 7), "task-b", px=TTL_MS)

    result = await claims.commit(redis_client, [claim(settings, "task-a", 7)], MARKER_TTL, NOW)

    assert result == [claims.CommitResult.LOST]
    assert await redis_client.get(keys.reserve_lock("subscribe", 7)) == "task-b"
    assert await redis_client.get(keys.daily_cap("subscribe", 7, NOW.date())) is None
    assert await redis_client.get(keys.cooldown("subscribe", 7)) is None
    assert await redis_client.get(keys.task_commit("task-a")) is None


async def test_rollback_releases_only_its_own_lock_and_consumes_nothing(settings, redis_client):
    rules = rules_for(settings, "subscribe")
    await claims.reserve(redis_client, "task-a", rules, LINK, [1], TTL_MS, NOW)
    await redis_client.set(keys.reserve_lock("subscribe", 2), "task-b", px=TTL_MS)

    released = await claims.rollback(
        redis_client, [claim(settings, "task-a", 1), claim(settings, "task-a", 2)]
    )

    assert released == 1
    assert await redis_client.get(keys.reserve_lock("subscribe", 1)) is None
    assert await redis_client.get(keys.reserve_lock("subscribe", 2)) == "task-b"
    assert await redis_client.get(keys.cooldown("subscribe", 1)) is None


async def test_commit_charges_when_the_lock_expired_unheld_and_refuses_while_another_task_holds_it(
    settings, redis_client
):
    """The rule (issue 16 item 6): no other reservation exists once the lock expired unheld (task
    generation gives an account no second open task per action), so the success is charged once."""
    expired = await claims.commit(redis_client, [claim(settings, "task-a", 7)], MARKER_TTL, NOW)
    await redis_client.set(keys.reserve_lock("subscribe", 8), "task-c", px=TTL_MS)
    held_by_another = await claims.commit(redis_client, [claim(settings, "task-b", 8)], MARKER_TTL, NOW)

    assert (expired, held_by_another) == ([claims.CommitResult.COMMITTED], [claims.CommitResult.LOST])
    assert await redis_client.get(keys.daily_cap("subscribe", 7, NOW.date())) == "1"
    assert await redis_client.get(keys.daily_cap("subscribe", 8, NOW.date())) is None
    assert await redis_client.get(keys.reserve_lock("subscribe", 8)) == "task-c"
