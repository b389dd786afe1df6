import importlib.util

import pytest
from cryptography.fernet import Fernet
from telethon import TelegramClient
from telethon.sessions import StringSession

from tgops.telegram.accounts import Account
from tgops.telegram.sessions import (
    MAX_FLOOD_SLEEP_SEC,
    PROXY_PASSWORD,
    KmsKeyring,
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


# -- envelope encryption (issue 17) ------------------------------------------------------------------------

KEY = Fernet.generate_key().decode()
SECRET = "1BVtsOK-envelope-secret-session"


@pytest.fixture
def kms():
    import boto3
    from moto import mock_aws

    with mock_aws():
        client = boto3.client("kms", region_name="us-east-1")
        key_id = client.create_key(Description="tgops sessions")["KeyMetadata"]["KeyId"]
        yield KmsKeyring(key_id, client)


def test_a_session_sealed_for_one_account_opens_for_that_account_only():
    cipher = SessionCipher(KEY)
    stored = cipher.encrypt(SECRET, account_id=7)

    assert stored.startswith("tgv2.local.") and SECRET not in stored
    assert cipher.decrypt(stored, account_id=7) == SECRET
    with pytest.raises(SessionDecryptError) as moved:
        cipher.decrypt(stored, account_id=8)  # copied to another account's row
    with pytest.raises(SessionDecryptError):
        cipher.decrypt(stored, account_id=7, purpose=PROXY_PASSWORD)  # copied to another column
    with pytest.raises(SessionDecryptError):
        cipher.decrypt(stored)  # an envelope needs its account id
    assert SECRET not in str(moved.value)


def test_each_secret_gets_its_own_data_key():
    cipher = SessionCipher(KEY)
    first, second = (cipher.encrypt(SECRET, account_id=7) for _ in range(2))
    assert first.split(".")[2] != second.split(".")[2]


def test_kms_data_keys_are_bound_to_the_account_and_purpose(kms):
    cipher = SessionCipher(KEY, kms=kms)
    stored = cipher.encrypt(SECRET, account_id=7)

    assert stored.startswith("tgv2.kms.")
    assert cipher.decrypt(stored, account_id=7) == SECRET
    with pytest.raises(SessionDecryptError, match="KMS refused"):
        cipher.decrypt(stored, account_id=8)
    with pytest.raises(SessionDecryptError):
        SessionCipher(KEY).decrypt(stored, account_id=7)  # no KMS configured: cannot open


def test_a_tampered_envelope_fails_to_open():
    cipher = SessionCipher(KEY)
    head, sealed = cipher.encrypt(SECRET, account_id=7).rsplit(".", 1)
    flipped = sealed[:-2] + ("A" if sealed[-2] != "A" else "B") + sealed[-1]
    with pytest.raises(SessionDecryptError):
        cipher.decrypt(f"{head}.{flipped}", account_id=7)
    with pytest.raises(SessionDecryptError):
        cipher.decrypt("tgv2.local.not-base64!", account_id=7)


def test_legacy_fernet_tokens_still_open_and_need_an_upgrade(kms):
    legacy = Fernet(KEY.encode()).encrypt(SECRET.encode()).decode()
    cipher = SessionCipher(KEY, kms=kms)

    assert cipher.decrypt(legacy) == SECRET
    assert cipher.decrypt(legacy, account_id=7) == SECRET
    assert cipher.needs_upgrade(legacy)
    assert cipher.needs_upgrade(SessionCipher(KEY).encrypt(SECRET, account_id=7))  # local, KMS writes now
    assert not cipher.needs_upgrade(cipher.encrypt(SECRET, account_id=7))


def test_the_settings_choose_kms_when_a_key_id_is_set(settings, kms):
    with_kms = settings.model_copy(update={"session_kms_key_id": kms._key_id})
    import boto3

    cipher = SessionCipher.from_settings(with_kms)
    cipher._keyrings["kms"]._client = boto3.client("kms", region_name="us-east-1")  # the moto one
    assert cipher.encrypt(SECRET, account_id=1).startswith("tgv2.kms.")
    assert SessionCipher.from_settings(settings).encrypt(SECRET, account_id=1).startswith("tgv2.local.")
