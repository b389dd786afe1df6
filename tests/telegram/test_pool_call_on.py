"""MtprotoPool.call_on: one named account, through the same gate and failure policy as `call`."""

import asyncio

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
