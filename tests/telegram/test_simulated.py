"""The simulated Telegram of local runs, through the real pool and inspector, and what chooses it."""

import pytest
from cryptography.fernet import Fernet
from pydantic import SecretStr
from telethon import errors
from telethon.tl import functions

from tests.fakes.mtproto_pool import *  # noqa: F403
from tgops.config import SettingsError, get_settings
from tgops.orders.link_inspector import Inspector, default_client_factory
from tgops.telegram.accounts import MtprotoAccounts
from tgops.telegram.sessions import SessionCipher, SessionKeyError, TelethonClientFactory
from tgops.telegram.simulated import SimulatedTelegram, retire_simulated_accounts, seed_probe_accounts


@pytest.fixture
def telegram() -> SimulatedTelegram:  # the package's own model answers, not the test fake's world
    return SimulatedTelegram(latency_sec=(0, 0))


@pytest.fixture
async def inspector(make_pool, add_accounts) -> Inspector:
    await add_accounts(2)
    return Inspector(mtproto=make_pool())


@pytest.mark.parametrize(
    ("link", "expected"),
    [
        ("https://t.me/good_channel", {"exists": True, "chat_type": "channel",
                                       "title": "good_channel (simulated)", "is_private": False}),
        ("t.me/news/42", {"exists": True, "link_kind": "post", "chat_type": "channel"}),
        ("t.me/news/10001", {"exists": False, "link_kind": "post", "error_code": "POST_NOT_FOUND"}),
        ("@helper_bot", {"exists": True, "chat_type": "bot", "is_bot": True}),
        ("https://t.me/+AbCdEf123", {"exists": True, "link_kind": "invite", "chat_type": "channel",
                                     "is_private": True, "paid": False}),
        ("https://t.me/missing_channel", {"exists": False, "error_code": "USERNAME_NOT_OCCUPIED"}),
        ("https://t.me/private_club", {"exists": False, "error_code": "CHANNEL_PRIVATE"}),
        ("https://t.me/+expiredHash1", {"exists": False, "error_code": "INVITE_HASH_EXPIRED"}),
    ],
)  # fmt: skip
async def test_the_model_gives_a_definite_answer_to_every_lookup(inspector, link, expected):
    result = await inspector.inspect(link)

    assert result.ok, result
    assert {name: getattr(result, name) for name in expected} == expected


async def test_the_same_channel_gets_the_same_member_count_from_every_simulated_telegram(inspector):
    first = await inspector.inspect("https://t.me/good_channel")
    again = await inspector.inspect("https://t.me/good_channel")
    other = await inspector.inspect("https://t.me/other_channel")

    assert first.participants_count is not None  # asked through GetFullChannel, as from real Telegram
    assert again.participants_count == first.participants_count
    assert other.participants_count != first.participants_count


async def test_a_request_outside_the_model_fails_as_telegram_would():
    client = SimulatedTelegram(latency_sec=(0, 0)).factory(None, "session", None)
    with pytest.raises(ConnectionError):
        await client(functions.help.GetConfigRequest())
    await client.connect()
    with pytest.raises(errors.RPCError, match="METHOD_NOT_SIMULATED"):
        await client(functions.help.GetConfigRequest())


async def test_probe_accounts_are_seeded_once_and_retired_for_a_real_telegram(db, cipher):
    accounts = MtprotoAccounts(db)
    real = await accounts.add(phone="+15550001", session_encrypted=cipher.encrypt("real"), probe=True)
    await seed_probe_accounts(db, SessionCipher(Fernet.generate_key().decode()))  # an earlier run's key

    seeded = await seed_probe_accounts(db, cipher)

    available = {account.id for account in await accounts.available(probe=True, limit=10)}
    assert len(seeded) == 3 and available == {real, *seeded}
    claim = await accounts.claim(seeded[0])
    assert cipher.decrypt(claim.session_encrypted)  # readable with today's key
    assert await retire_simulated_accounts(db) == 3
    assert [account.id for account in await accounts.available(probe=True, limit=10)] == [real]
    assert await seed_probe_accounts(db, cipher) == seeded  # simulated again: the same accounts come back


def test_telegram_is_simulated_in_development_without_api_credentials_only(settings):
    development = settings.model_copy(update={"env": "development"})
    credentials = {"telegram_api_id": 1, "telegram_api_hash": SecretStr("hash")}
    with_credentials = development.model_copy(update=credentials)

    assert isinstance(default_client_factory(development).__self__, SimulatedTelegram)
    assert isinstance(default_client_factory(with_credentials), TelethonClientFactory)
    with pytest.raises(SessionKeyError, match="TGOPS_TELEGRAM_API_ID"):
        default_client_factory(settings)  # TGOPS_ENV=test: the real factory, which needs credentials


def test_production_with_a_simulated_telegram_refuses_to_start(settings, monkeypatch):
    monkeypatch.setenv("TGOPS_ENV", "production")
    monkeypatch.setenv("TGOPS_TELEGRAM_SIMULATED", "true")
    get_settings.cache_clear()

    with pytest.raises(SettingsError, match="TGOPS_TELEGRAM_SIMULATED must not be true when TGOPS_ENV=prod"):
        get_settings()
