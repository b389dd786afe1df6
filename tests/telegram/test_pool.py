import asyncio
import logging

import psycopg
from telethon import errors

from tgops.cache import keys
from tgops.telegram.accounts import MtprotoAccounts
from tgops.telegram.pool import (
    CANDIDATE_REFRESH_SEC,
    DEADLINE_EXCEEDED,
    NO_AVAILABLE_ACCOUNTS,
    THROTTLE_SLOT_UNAVAILABLE,
)


async def test_resolves_a_username_through_an_account(add_accounts, make_pool, telegram, sessions, db):
    [account_id] = await add_accounts(1)
    telegram.add_channel("durov", title="Durov", participants=900)

    result = await make_pool().resolve_username("durov")

    assert result.ok and result.account_id == account_id
    assert (result.value.chat_type, result.value.title, result.value.participants_count) == (
        "channel",
        "Durov",
        900,
    )
    assert telegram.sessions_called() == {sessions[account_id]: 1}
    assert (await MtprotoAccounts(db).get(account_id))["last_used_at"] is not None


async def test_action_accounts_are_never_used_for_inspection(add_accounts, make_pool, telegram):
    await add_accounts(2, probe=False)
    telegram.add_channel("durov")

    result = await make_pool().resolve_username("durov")

    assert (result.ok, result.error_code, result.reason) == (False, NO_AVAILABLE_ACCOUNTS, "db_query_empty")
    assert telegram.calls == []


async def test_flood_wait_cools_the_account_down_in_postgres_and_the_next_account_answers(
    add_accounts, make_pool, telegram, sessions, db
):
    first, second = await add_accounts(2)
    telegram.add_channel("durov")
    telegram.fail_next(sessions[first], errors.FloodWaitError(request=None, capture=120))

    result = await make_pool().resolve_username("durov")

    assert result.ok and result.account_id == second
    row = await MtprotoAccounts(db).get(first)
    assert row["cooling_down"] and row["last_error_code"] == "FLOOD_WAIT"


async def test_no_call_reaches_a_cooling_account_under_concurrency_across_processes(
    add_accounts, make_pool, telegram, sessions, db
):
    flooded, *others = await add_accounts(4)
    telegram.add_channel("durov")
    telegram.latency_sec = (0.001, 0.01)
    telegram.fail_next(sessions[flooded], errors.FloodWaitError(request=None, capture=600))
    pools = [make_pool(), make_pool()]  # two worker processes over the same Postgres and Redis

    results = await asyncio.gather(*(pools[n % 2].resolve_username("durov") for n in range(60)))

    # A process that finds every account owned by the other one fails fast and retryably.
    assert all(
        result.ok or (result.error_code, result.retryable) == (NO_AVAILABLE_ACCOUNTS, True)
        for result in results
    )
    assert sum(result.ok for result in results) >= 30
    assert (
        telegram.sessions_called()[sessions[flooded]] == 1
    )  # the call that got the FLOOD_WAIT, nothing after
    assert {result.account_id for result in results if result.ok} <= set(others)
    assert (await MtprotoAccounts(db).get(flooded))["cooling_down"]


async def test_one_session_never_has_two_clients_even_across_processes(add_accounts, make_pool, telegram):
    await add_accounts(3)
    telegram.add_channel("durov")
    telegram.latency_sec = (0.005, 0.02)
    pools = [make_pool(), make_pool(), make_pool()]

    results = await asyncio.gather(*(pools[n % 3].resolve_username("durov") for n in range(60)))

    assert sum(result.ok for result in results) >= 20
    assert set(telegram.max_in_flight.values()) == {1}  # never two requests at once on one session
    assert telegram.session_conflicts == 0  # never a second connected client on a session
    owners = [set(pool._owned) for pool in pools]
    assert sum(len(owned) for owned in owners) == len(set().union(*owners))


async def test_clients_stay_connected_between_calls_and_idle_ones_are_given_back(
    add_accounts, make_pool, telegram, sessions, redis_client
):
    [account_id] = await add_accounts(1)
    telegram.add_channel("durov")
    pool = make_pool(idle_release_sec=0.05)

    await pool.resolve_username("durov")
    await pool.resolve_username("durov")
    assert telegram.clients_built[sessions[account_id]] == 1
    assert await redis_client.get(keys.mtproto_lock(account_id)) is not None

    await asyncio.sleep(0.3)
    assert account_id not in pool._owned
    assert await redis_client.get(keys.mtproto_lock(account_id)) is None
    assert telegram.session_conflicts == 0


async def test_a_session_locked_by_another_process_is_skipped(
    add_accounts, make_pool, telegram, redis_client
):
    locked, free = await add_accounts(2)
    telegram.add_channel("durov")
    await redis_client.set(keys.mtproto_lock(locked), "another-process", px=60_000)

    pool = make_pool()

    results = [await pool.resolve_username("durov") for _ in range(3)]

    assert {result.account_id for result in results} == {free}
    assert telegram.session_conflicts == 0


async def test_throttle_wait_is_bounded_and_fails_fast_as_retryable(add_accounts, make_pool, telegram):
    await add_accounts(1)
    telegram.add_channel("durov")
    pool = make_pool(proxy_throttle_sec=60, proxy_throttle_max_wait_inspect_sec=0.05)

    first = await pool.resolve_username("durov")
    second = await pool.resolve_username("durov")

    assert first.ok
    assert (second.ok, second.error_code, second.retryable) == (False, THROTTLE_SLOT_UNAVAILABLE, True)
    assert len(telegram.calls) == 1


async def test_throttle_slot_taken_by_another_process_is_respected(
    add_accounts, make_pool, telegram, redis_client
):
    [account_id] = await add_accounts(1)
    telegram.add_channel("durov")
    pool = make_pool(proxy_throttle_sec=60, proxy_throttle_max_wait_inspect_sec=0.05)
    await redis_client.set(keys.proxy_throttle(f"no_proxy:{account_id}"), "other", px=60_000)

    result = await pool.resolve_username("durov")

    assert (result.error_code, result.retryable) == (THROTTLE_SLOT_UNAVAILABLE, True)
    assert telegram.calls == []


async def test_static_proxy_accounts_share_one_throttle(add_accounts, make_pool, telegram):
    await add_accounts(3, proxy_type="socks5", proxy_host="10.0.0.1", proxy_port=1080)
    telegram.add_channel("durov")
    pool = make_pool(proxy_mode="static", proxy_throttle_sec=60, proxy_throttle_max_wait_inspect_sec=0.05)

    results = [await pool.resolve_username("durov") for _ in range(3)]

    assert [result.ok for result in results] == [True, False, False]
    assert len(telegram.calls) == 1


async def test_rotating_proxy_accounts_each_have_their_own_throttle(add_accounts, make_pool, telegram):
    await add_accounts(3, proxy_type="socks5", proxy_host="10.0.0.1", proxy_port=1080)
    telegram.add_channel("durov")
    pool = make_pool(proxy_mode="rotating", proxy_throttle_sec=60, proxy_throttle_max_wait_inspect_sec=0.05)

    results = [await pool.resolve_username("durov") for _ in range(3)]

    assert all(result.ok for result in results)
    assert len({result.account_id for result in results}) == 3


async def test_deadline_ends_a_slow_call_and_frees_the_account(add_accounts, make_pool, telegram):
    [account_id] = await add_accounts(1)
    telegram.add_channel("durov")
    telegram.latency_sec = (5, 5)
    pool = make_pool(call_deadline_inspect_ms=100)

    result = await pool.resolve_username("durov")
    telegram.latency_sec = (0, 0)
    after = await pool.resolve_username("durov")

    assert (result.ok, result.error_code, result.retryable) == (False, DEADLINE_EXCEEDED, True)
    assert after.ok and after.account_id == account_id


async def test_at_most_four_accounts_per_call_each_cooled_down(
    add_accounts, make_pool, telegram, sessions, db
):
    ids = await add_accounts(6)
    telegram.add_channel("durov")
    for account_id in ids:
        telegram.fail_next(
            sessions[account_id], errors.RPCError(request=None, message="INTERNAL_WEIRDNESS", code=500)
        )

    result = await make_pool().resolve_username("durov")

    assert (result.error_code, result.reason, result.retryable) == (
        NO_AVAILABLE_ACCOUNTS,
        "all_attempts_exhausted",
        True,
    )
    called = [account_id for account_id in ids if telegram.sessions_called()[sessions[account_id]]]
    assert len(called) == 4
    for account_id in called:
        row = await MtprotoAccounts(db).get(account_id)
        assert row["cooling_down"] and row["last_error_code"] == "INTERNAL_WEIRDNESS"


async def test_a_dead_session_disables_the_account_for_good(add_accounts, make_pool, telegram, sessions, db):
    dead, alive = await add_accounts(2)
    telegram.add_channel("durov")
    telegram.fail_next(sessions[dead], errors.AuthKeyUnregisteredError(request=None))
    pool = make_pool()

    results = [await pool.resolve_username("durov") for _ in range(4)]

    assert all(result.ok and result.account_id == alive for result in results)
    row = await MtprotoAccounts(db).get(dead)
    assert row["disabled_at"] is not None and row["disabled_reason"] == "AUTH_KEY_UNREGISTERED"
    assert telegram.sessions_called()[sessions[dead]] == 1


async def test_a_definite_answer_is_final_and_spends_no_other_account(add_accounts, make_pool, telegram, db):
    ids = await add_accounts(3)

    result = await make_pool().resolve_username("nobodyhere")

    assert (result.ok, result.definite, result.error_code, result.retryable) == (
        False,
        True,
        "USERNAME_NOT_OCCUPIED",
        False,
    )
    assert len(telegram.calls) == 1
    rows = [await MtprotoAccounts(db).get(account_id) for account_id in ids]
    assert not any(row["cooling_down"] for row in rows)


async def test_connection_failure_rests_the_proxy_and_rebuilds_the_client(
    add_accounts, make_pool, telegram, sessions, redis_client
):
    broken, other = await add_accounts(2, proxy_type="socks5", proxy_host="10.0.0.9", proxy_port=1080)
    telegram.add_channel("durov")
    telegram.fail_next(sessions[broken], ConnectionResetError("stream closed"))
    pool = make_pool(proxy_mode="static")

    result = await pool.resolve_username("durov")

    # Static mode: both accounts leave through the resting proxy, so neither may be called.
    assert (result.error_code, result.reason) == (NO_AVAILABLE_ACCOUNTS, "proxy_cooldown_all_dropped")
    proxy_key = pool._candidates[True][1][0][1]
    assert 0 < await redis_client.pttl(keys.proxy_cooldown(proxy_key)) <= 60_000
    assert broken not in pool._owned
    assert telegram.sessions_called()[sessions[other]] == 0


async def test_peer_not_in_database_retries_once_on_a_fresh_client(
    add_accounts, make_pool, telegram, sessions
):
    [account_id] = await add_accounts(1)
    telegram.add_channel("durov")
    telegram.fail_next(
        sessions[account_id], ValueError("Could not find the input entity for PeerUser(user_id=1)")
    )

    result = await make_pool().resolve_username("durov")

    assert result.ok
    assert telegram.clients_built[sessions[account_id]] == 2


async def test_peer_db_retry_failure_skips_the_account_with_a_log(
    add_accounts, make_pool, telegram, sessions, db, caplog
):
    stale, good = await add_accounts(2)
    telegram.add_channel("durov")
    missing = "Could not find the input entity for PeerUser(user_id=1)"
    telegram.fail_next(sessions[stale], ValueError(missing), ValueError(missing))
    pool = make_pool()

    with caplog.at_level(logging.INFO, logger="tgops.telegram.pool"):
        result = await pool.resolve_username("durov", rid="rid-peerdb")

    assert result.ok and result.account_id == good
    [record] = [
        record for record in caplog.records if getattr(record, "reason", None) == "peer_db_retry_failed"
    ]
    assert (record.rid, record.account_id, record.proxy_key) == ("rid-peerdb", stale, f"no_proxy:{stale}")
    assert not (await MtprotoAccounts(db).get(stale))["cooling_down"]
    assert pool.metrics.snapshot()["peer_db_retry_failed"] == 1


async def test_no_available_accounts_is_logged_with_its_reason(make_pool, caplog):
    with caplog.at_level(logging.WARNING, logger="tgops.telegram.pool"):
        result = await make_pool().resolve_username("durov", rid="rid-empty")

    assert result.error_code == NO_AVAILABLE_ACCOUNTS
    [record] = [record for record in caplog.records if record.getMessage() == NO_AVAILABLE_ACCOUNTS]
    assert (record.rid, record.reason, record.account_id, record.proxy_key) == (
        "rid-empty",
        "db_query_empty",
        None,
        None,
    )


async def test_metrics_count_each_outcome(add_accounts, make_pool, telegram, sessions):
    first, _ = await add_accounts(2)
    telegram.add_channel("durov")
    telegram.fail_next(sessions[first], errors.FloodWaitError(request=None, capture=30))
    pool = make_pool()

    await pool.resolve_username("durov")
    await pool.resolve_username("nobodyhere")

    counts = pool.metrics.snapshot()
    assert (counts["ok"], counts["definite"], counts["account_cooldown"]) == (1, 1, 1)


async def test_no_session_string_ever_reaches_a_log(
    add_accounts, make_pool, telegram, sessions, database_url, caplog
):
    ids = await add_accounts(4)
    telegram.add_channel("durov")
    telegram.fail_next(sessions[ids[0]], errors.FloodWaitError(request=None, capture=30))
    telegram.fail_next(sessions[ids[1]], errors.SessionRevokedError(request=None))
    missing = ValueError("Could not find the input entity")
    telegram.fail_next(sessions[ids[2]], missing, ValueError(f"cannot parse {sessions[ids[2]]}"))
    with psycopg.connect(database_url) as connection:
        encrypted = {row[0] for row in connection.execute("SELECT session_encrypted FROM mtproto_accounts")}

    def factory(account, session, proxy_password):
        if session == sessions[ids[3]]:
            raise ValueError(f"Not a valid string session: {session}")
        return telegram.factory(account, session, proxy_password)

    pool = make_pool()
    pool._factory = factory
    with caplog.at_level(logging.DEBUG):
        for _ in range(3):
            await pool.resolve_username("durov")

    logged = "\n".join(f"{record.getMessage()} {record.__dict__}" for record in caplog.records)
    assert "peer_db_retry_failed" in logged and "SESSION_REVOKED" in logged  # the failures were logged
    for secret in [*sessions.values(), *encrypted]:
        assert secret not in logged


async def test_more_calls_than_accounts_wait_their_turn_in_one_process(
    add_accounts, make_pool, telegram, sessions
):
    first, second = await add_accounts(2)
    telegram.add_channel("durov")
    telegram.latency_sec = (0.005, 0.01)
    telegram.fail_next(sessions[first], errors.FloodWaitError(request=None, capture=60))
    pool = make_pool()

    results = await asyncio.gather(*(pool.resolve_username("durov") for _ in range(12)))

    assert all(result.ok and result.account_id == second for result in results)
    assert telegram.max_in_flight[sessions[second]] == 1


async def test_a_disabled_account_that_is_enabled_again_is_used_again(
    add_accounts, make_pool, telegram, sessions, database_url
):
    [account_id] = await add_accounts(1)
    telegram.add_channel("durov")
    telegram.fail_next(sessions[account_id], errors.SessionRevokedError(request=None))
    pool = make_pool()

    assert (await pool.resolve_username("durov")).error_code == NO_AVAILABLE_ACCOUNTS
    with psycopg.connect(database_url) as connection:  # an operator gives the account a working session
        connection.execute("UPDATE mtproto_accounts SET disabled_at = NULL WHERE id = %s", (account_id,))
    await asyncio.sleep(CANDIDATE_REFRESH_SEC + 0.1)  # the pool's list of candidates is read again
    result = await pool.resolve_username("durov")

    assert result.ok and result.account_id == account_id
