"""Errors that are no account's fault: the pool blames no account and stops with one clear error."""

import logging

import pytest
from telethon import errors

from tgops.cache import keys
from tgops.config import Settings
from tgops.telegram.accounts import MtprotoAccounts
from tgops.telegram.errors import classify

# What Telethon's MTProtoSender raises when it reached the server but could make no auth key with it:
# every try met a SecurityError, as when the server's RSA key is not one Telethon knows.
AUTH_KEY_GENERATION_FAILED = ConnectionError("auth_key generation failed 1 time(s)")


def layer_mismatch() -> errors.TypeNotFoundError:
    return errors.TypeNotFoundError(0x1CB5C415, b"\x00\x00\x00\x00")


@pytest.mark.parametrize(
    "error,code",
    [
        (layer_mismatch(), "MTPROTO_PROTOCOL_MISMATCH"),
        (AUTH_KEY_GENERATION_FAILED, "MTPROTO_SERVER_KEY_UNKNOWN"),
    ],
)
def test_the_error_table_calls_them_fatal(error, code):
    outcome = classify(error, Settings())

    assert (outcome.kind, outcome.code, outcome.cooldown_sec, outcome.proxy_cooldown) == (
        "fatal",
        code,
        0,
        False,
    )
    assert outcome.message


async def assert_no_account_blamed(db, redis_client, ids):
    for account_id in ids:
        row = await MtprotoAccounts(db).get(account_id)
        assert not row["cooling_down"] and row["disabled_at"] is None
        assert await redis_client.pttl(keys.proxy_cooldown(f"no_proxy:{account_id}")) < 0


async def test_a_protocol_mismatch_cools_no_account_down_and_stops_the_pool(
    add_accounts, make_pool, telegram, sessions, db, redis_client, caplog
):
    ids = await add_accounts(3)
    telegram.add_channel("durov")
    for account_id in ids:
        telegram.fail_next(sessions[account_id], layer_mismatch())
    pool = make_pool()

    with caplog.at_level(logging.ERROR):
        results = [await pool.resolve_username("durov") for _ in range(3)]

    assert {(result.ok, result.error_code, result.retryable) for result in results} == {
        (False, "MTPROTO_PROTOCOL_MISMATCH", False)
    }
    assert "layer" in results[0].reason
    assert len(telegram.calls) == 1  # the first call found out; the others spent no account
    await assert_no_account_blamed(db, redis_client, ids)
    assert len([record for record in caplog.records if record.levelno >= logging.ERROR]) == 1


async def test_an_unknown_server_key_is_a_configuration_error_not_a_connection_cooldown(
    add_accounts, make_pool, telegram, sessions, db, redis_client
):
    ids = await add_accounts(2)
    telegram.add_channel("durov")
    for account_id in ids:
        telegram.fail_connect(sessions[account_id], AUTH_KEY_GENERATION_FAILED)
    pool = make_pool()

    first = await pool.resolve_username("durov")

    async def connected(client):
        return client.is_connected()

    again = await pool.call_on(ids[1], connected)

    for result in (first, again):
        assert (result.ok, result.error_code, result.retryable) == (
            False,
            "MTPROTO_SERVER_KEY_UNKNOWN",
            False,
        )
        assert "TGOPS_TELEGRAM_SERVER_PUBLIC_KEY" in result.reason
    await assert_no_account_blamed(db, redis_client, ids)
