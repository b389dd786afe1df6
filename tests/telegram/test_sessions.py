import importlib.util

import pytest
from cryptography.fernet import Fernet
from telethon import TelegramClient
from telethon.sessions import StringSession

from tgops.telegram.accounts import Account
from tgops.telegram.sessions import (
    MAX_FLOOD_SLEEP_SEC,
    ProxyUnsupported,
    SessionCipher,
    SessionDecryptError,
    SessionKeyError,
    TelethonClientFactory,
)


def test_session_strings_are_encrypted_at_rest():
    cipher = SessionCipher(Fernet.generate_key().decode())
    stored = cipher.encrypt("1BVtsOKsecret")

    assert "1BVtsOKsecret" not in stored
    assert cipher.decrypt(stored) == "1BVtsOKsecret"
    assert "key" in repr(cipher) and Fernet.generate_key().decode() not in repr(cipher)


def test_a_wrong_key_is_a_clear_error():
    stored = SessionCipher(Fernet.generate_key().decode()).encrypt("1BVtsOKsecret")
    with pytest.raises(SessionDecryptError):
        SessionCipher(Fernet.generate_key().decode()).decrypt(stored)
    with pytest.raises(SessionKeyError, match="TGOPS_SESSION_ENCRYPTION_KEY"):
        SessionCipher("change-me")


def test_real_clients_use_the_test_data_centre_and_a_short_flood_sleep(settings):
    session = StringSession.save(StringSession())  # an empty, valid session string

    client = TelethonClientFactory(with_test_environment(settings))(Account(id=1), session, None)

    assert isinstance(client, TelegramClient)
    assert client.flood_sleep_threshold <= MAX_FLOOD_SLEEP_SEC
    assert (client.session.dc_id, client.session.server_address, client.session.port) == (
        2,
        "149.154.167.40",
        443,
    )


def test_an_account_proxy_is_used_or_the_account_does_not_connect(settings):
    account = Account(id=1, proxy_type="socks5", proxy_host="10.0.0.1", proxy_port=1080, proxy_username="u")
    factory = TelethonClientFactory(with_test_environment(settings))
    session = StringSession.save(StringSession())

    if importlib.util.find_spec("python_socks") is None:
        with pytest.raises(ProxyUnsupported):
            factory(account, session, "pw")
        return
    client = factory(account, session, "pw")
    assert client._proxy == {
        "proxy_type": "socks5",
        "addr": "10.0.0.1",
        "port": 1080,
        "rdns": True,
        "username": "u",
        "password": "pw",
    }


def test_the_factory_refuses_to_start_without_api_credentials(settings):
    with pytest.raises(SessionKeyError, match="TGOPS_TELEGRAM_API_ID"):
        TelethonClientFactory(settings)


def with_test_environment(settings):
    return settings.model_copy(
        update={
            "telegram_api_id": 12345,
            "telegram_api_hash": settings.admin_token,
            "telegram_dc_id": 2,
            "telegram_dc_address": "149.154.167.40",
            "telegram_dc_port": 443,
        }
    )
