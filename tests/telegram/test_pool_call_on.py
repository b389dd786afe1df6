"""MtprotoPool.call_on: one named account, through the same gate and failure policy as `call`."""

import asyncio

import psycopg
from telethon import errors
from telethon.tl import functions

from tgops.cache import keys
from tgops.telegram.accounts import MtprotoAccounts
from tgops.telegram.pool import ACCOUNT_UNAVAILABLE, DEADLINE_EXCEEDED, THROTTLE_SLOT_UNAVAILABLE


async def resolve_durov(client):
    return await client(functions.contacts.ResolveUsernameRequest(username="durov"))


async def test_runs_on_exactly_the_named_account(add_accounts, make_pool, telegram, sessions):
    _first, second = await add_accounts(2, probe=False)
    telegram.add_channel("durov")
    pool = make_pool()

    results = [await pool.call_on(second, resolve_durov) for _ in range(3)]

    assert all(result.ok and result.account_id == second for result in results)
    assert telegram.sessions_called() == {sessions[second]: 3}


async def test_a_flood_wait_reports_its_cooldown_and_never_moves_to_another_account(
    add_accounts, make_pool, telegram, sessions, db
):
    flooded, _other = await add_accounts(2, probe=False)
    telegram.add_channel("durov")
    telegram.fail_next(sessions[flooded], errors.FloodWaitError(request=None, capture=30))
    pool = make_pool()

    failed = await pool.call_on(flooded, resolve_durov)
    again = await pool.call_on(flooded, resolve_durov)

    assert (
        failed.ok,
        failed.error_code,
        failed.cooldown_sec,
        failed.account_disabled,
        failed.account_id,
    ) == (
        False,
        "FLOOD_WAIT",
        30,
        False,
        flooded,
    )
    assert (await MtprotoAccounts(db).get(flooded))["cooling_down"]
    assert (again.ok, again.error_code, again.retryable) == (False, ACCOUNT_UNAVAILABLE, True)
    assert 0 < again.cooldown_sec <= 30
    assert telegram.sessions_called() == {sessions[flooded]: 1}


async def test_a_dead_session_is_disabled_and_then_answered_unavailable(
    add_accounts, make_pool, telegram, sessions, db
):
    [dead] = await add_accounts(1, probe=False)
    telegram.add_channel("durov")
    telegram.fail_next(sessions[dead], errors.AuthKeyUnregisteredError(request=None))
    pool = make_pool()

    failed = await pool.call_on(dead, resolve_durov)
    again = await pool.call_on(dead, resolve_durov)

    assert (failed.ok, failed.error_code, failed.account_disabled) == (False, "AUTH_KEY_UNREGISTERED", True)
    assert (await MtprotoAccounts(db).get(dead))["disabled_reason"] == "AUTH_KEY_UNREGISTERED"
    assert (again.error_code, again.retryable, again.account_disabled) == (ACCOUNT_UNAVAILABLE, True, True)
    assert len(telegram.calls) == 1


async def test_an_account_owned_by_another_process_is_unavailable(
    add_accounts, make_pool, telegram, redis_client
):
    locked, _free = await add_accounts(2, probe=False)
    telegram.add_channel("durov")
    await redis_client.set(keys.mtproto_lock(locked), "another-process", px=60_000)

    result = await make_pool().call_on(locked, resolve_durov)

    assert (result.ok, result.error_code, result.retryable, result.reason) == (
        False,
        ACCOUNT_UNAVAILABLE,
        True,
        "owned_elsewhere",
    )
    assert telegram.calls == []


async def test_a_definite_answer_comes_back_as_from_call(add_accounts, make_pool, telegram, db):
    [account_id] = await add_accounts(1, probe=False)

    async def resolve_nobody(client):
        return await client(functions.contacts.ResolveUsernameRequest(username="nobodyhere"))

    result = await make_pool().call_on(account_id, resolve_nobody)

    assert (result.ok, result.definite, result.error_code, result.account_id) == (
        False,
        True,
        "USERNAME_NOT_OCCUPIED",
        account_id,
    )
    assert not (await MtprotoAccounts(db).get(account_id))["cooling_down"]


async def test_the_throttle_wait_is_the_action_modes(add_accounts, make_pool, telegram):
    [account_id] = await add_accounts(1, probe=False)
    telegram.add_channel("durov")
    # The inspect wait is long and the action wait short: call_on must use the action one.
    pool = make_pool(
        proxy_throttle_sec=60, proxy_throttle_max_wait_sec=0.05, proxy_throttle_max_wait_inspect_sec=30
    )

    first = await pool.call_on(account_id, resolve_durov)
    second = await pool.call_on(account_id, resolve_durov)

    assert first.ok
    assert (second.ok, second.error_code, second.retryable) == (False, THROTTLE_SLOT_UNAVAILABLE, True)
    assert len(telegram.calls) == 1


async def test_the_deadline_is_the_action_modes(add_accounts, make_pool, telegram):
    [account_id] = await add_accounts(1, probe=False)
    telegram.add_channel("durov")
    telegram.latency_sec = (5, 5)
    pool = make_pool(call_deadline_ms=100, call_deadline_inspect_ms=60_000)

    result = await pool.call_on(account_id, resolve_durov)

    assert (result.ok, result.error_code, result.retryable) == (False, DEADLINE_EXCEEDED, True)


async def test_concurrent_calls_on_one_account_take_turns(add_accounts, make_pool, telegram, sessions):
    [account_id] = await add_accounts(1, probe=False)
    telegram.add_channel("durov")
    telegram.latency_sec = (0.005, 0.01)
    pool = make_pool()

    results = await asyncio.gather(*(pool.call_on(account_id, resolve_durov) for _ in range(5)))

    assert all(result.ok for result in results)
    assert telegram.max_in_flight[sessions[account_id]] == 1


async def test_an_unknown_account_is_unavailable_for_good(make_pool, telegram):
    result = await make_pool().call_on(987654, resolve_durov)

    assert (result.error_code, result.retryable, result.reason) == (
        ACCOUNT_UNAVAILABLE,
        False,
        "account_not_found",
    )


def count_state_reads(db) -> list[int]:
    """How often the pool reads one account's state from Postgres (the named-account path's DB read)."""
    reads = [0]
    fetch_one = db.fetch_one

    async def counted(query, params=None):
        reads[0] += query == "mtproto_account_state"
        return await fetch_one(query, params)

    db.fetch_one = counted
    return reads


async def test_a_release_passes_the_account_to_its_next_waiter_without_rereading_postgres(
    add_accounts, make_pool, telegram, sessions, db
):
    first, second = await add_accounts(2, probe=False)
    telegram.add_channel("durov")
    reads = count_state_reads(db)
    pool = make_pool()

    results = await asyncio.gather(
        *(pool.call_on(account_id, resolve_durov) for account_id in (first, second) * 4)
    )

    assert all(result.ok for result in results)
    assert telegram.sessions_called() == {sessions[first]: 4, sessions[second]: 4}
    assert max(telegram.max_in_flight.values()) == 1
    # One read per call: a waiter is woken only when the account is handed to it, not by every release.
    assert reads[0] == 8


async def test_waiters_on_an_account_that_just_got_a_flood_wait_answer_its_cooldown_without_a_call(
    add_accounts, make_pool, telegram, sessions, db
):
    [flooded] = await add_accounts(1, probe=False)
    telegram.add_channel("durov")
    telegram.fail_next(sessions[flooded], errors.FloodWaitError(request=None, capture=30))
    reads = count_state_reads(db)
    pool = make_pool()

    first, *waiters = await asyncio.gather(*(pool.call_on(flooded, resolve_durov) for _ in range(3)))

    assert (first.error_code, first.cooldown_sec) == ("FLOOD_WAIT", 30)
    for waiter in waiters:
        assert (waiter.error_code, waiter.reason, waiter.retryable) == (
            ACCOUNT_UNAVAILABLE,
            "account_cooldown",
            True,
        )
        assert 0 < waiter.cooldown_sec <= 30
    assert len(telegram.calls) == 1
    assert reads[0] == 3


async def test_a_cooldown_lifted_in_postgres_after_the_pool_wrote_it_is_seen(
    add_accounts, make_pool, telegram, sessions, database_url
):
    [account_id] = await add_accounts(1, probe=False)
    telegram.add_channel("durov")
    telegram.fail_next(sessions[account_id], errors.FloodWaitError(request=None, capture=300))
    pool = make_pool()
    assert (await pool.call_on(account_id, resolve_durov)).error_code == "FLOOD_WAIT"

    with psycopg.connect(database_url, autocommit=True) as connection:  # the operator lifts it
        connection.execute("UPDATE mtproto_accounts SET cooldown_until = NULL WHERE id = %s", (account_id,))
    again = await pool.call_on(account_id, resolve_durov)

    assert again.ok and len(telegram.calls) == 2


async def test_a_waiter_that_gives_up_leaves_the_account_usable(add_accounts, make_pool, telegram):
    [account_id] = await add_accounts(1, probe=False)
    telegram.add_channel("durov")
    telegram.latency_sec = (1.0, 1.0)  # the first call holds the account far longer than the others wait
    pool = make_pool(proxy_throttle_max_wait_sec=0.05)

    held, *gave_up = await asyncio.gather(*(pool.call_on(account_id, resolve_durov) for _ in range(3)))
    telegram.latency_sec = (0.0, 0.0)
    after = await pool.call_on(account_id, resolve_durov)

    assert held.ok and after.ok
    assert [(result.error_code, result.retryable) for result in gave_up] == [
        (THROTTLE_SLOT_UNAVAILABLE, True)
    ] * 2
    assert len(telegram.calls) == 2
