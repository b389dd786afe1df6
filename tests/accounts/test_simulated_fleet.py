"""The simulated Telegram of `tgops dev` for the setup pipeline: seeded action accounts, bans, flood waits."""

import pytest
from telethon import errors
from telethon.tl import functions, types

from tgops.accounts.fleet import AccountFleet
from tgops.telegram.simulated import SimulatedTelegram, seed_action_accounts

NAME = functions.account.UpdateProfileRequest(first_name="Ada")


async def test_action_accounts_are_seeded_once_with_sessions_sealed_for_their_row(db, fleet_cipher):
    first = await seed_action_accounts(db, fleet_cipher, 3, banned=1)
    again = await seed_action_accounts(db, fleet_cipher, 3, banned=1)

    fleet = AccountFleet(db, fleet_cipher)
    lines = await fleet.list()
    assert first == again and [line.role for line in lines] == ["action"] * 3
    sessions = [fleet.stored_session(await fleet.find(str(account_id))) for account_id in first]
    assert sessions == [
        "simulated-action-session-1",
        "simulated-action-session-2",
        "simulated-banned-action-session-3",
    ]


async def client_of(telegram, session):
    client = telegram.factory(None, session, None)
    await client.connect()
    return client


async def test_a_banned_session_is_refused_as_telegram_does():
    telegram = SimulatedTelegram(latency_sec=(0, 0))
    client = await client_of(telegram, "simulated-banned-action-session-1")

    for _ in range(2):
        with pytest.raises(errors.UserDeactivatedBanError):
            await client(functions.account.GetPasswordRequest())
    assert telegram.calls_after_ban["simulated-banned-action-session-1"] == 1


async def test_a_flood_wait_comes_once_and_calls_inside_it_are_counted():
    telegram = SimulatedTelegram(latency_sec=(0, 0), flood_every=1, flood_wait_sec=60)
    client = await client_of(telegram, "s-1")

    with pytest.raises(errors.FloodWaitError) as flood:
        await client(NAME)
    await client(NAME)

    assert flood.value.seconds == 60
    assert telegram.calls_while_cooling["s-1"] == 1 and telegram.changes["s-1"] == 1
    assert telegram.profiles["s-1"].first_name == "Ada"


async def test_lookups_are_answered_as_before_beside_the_setup_model():
    telegram = SimulatedTelegram(latency_sec=(0, 0), flood_every=1)
    client = await client_of(telegram, "s-2")

    resolved = await client(functions.contacts.ResolveUsernameRequest(username="news"))

    assert isinstance(resolved.chats[0], types.Channel) and telegram.changes["s-2"] == 0
