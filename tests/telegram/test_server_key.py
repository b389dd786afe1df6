"""TGOPS_TELEGRAM_SERVER_PUBLIC_KEY in the forms it gets pasted in, read into the key Telethon uses."""

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa as crypto_rsa
from telethon.crypto import rsa as telethon_rsa

from tgops.config import SettingsError
from tgops.telegram.sessions import TelethonClientFactory

KEY = crypto_rsa.generate_private_key(public_exponent=65537, key_size=2048).public_key()
PKCS1 = KEY.public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.PKCS1).decode()
SPKI = KEY.public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo).decode()


def fingerprint() -> int:
    numbers = KEY.public_numbers()
    return telethon_rsa._compute_fingerprint(telethon_rsa.rsa.PublicKey(numbers.n, numbers.e))


FORMS = {
    "pkcs1": PKCS1,
    "pkcs1_one_line": " ".join(PKCS1.split("\n")),
    "pkcs1_escaped_newlines": PKCS1.replace("\n", "\\n"),
    "pkcs1_quoted": f'"{PKCS1.strip()}"',
    "pkcs1_crlf": PKCS1.replace("\n", "\r\n"),
    "spki": SPKI,
    "spki_one_line": "".join(SPKI.split("\n")),
    "spki_escaped_newlines": SPKI.replace("\n", "\\n"),
}


@pytest.fixture
def factory_settings(settings):
    return settings.model_copy(update={"telegram_api_id": 12345, "telegram_api_hash": "0" * 32})


@pytest.mark.parametrize("form", FORMS.values(), ids=FORMS.keys())
def test_every_common_pem_form_gives_telethon_the_key(factory_settings, form):
    telethon_rsa._server_keys.pop(fingerprint(), None)

    TelethonClientFactory(factory_settings.model_copy(update={"telegram_server_public_key": form}))

    registered, old = telethon_rsa._server_keys[fingerprint()]
    assert (registered.n, registered.e, old) == (KEY.public_numbers().n, KEY.public_numbers().e, False)


@pytest.mark.parametrize(
    "bad",
    [
        "not a key",
        "-----BEGIN RSA PUBLIC KEY-----\n!!!!\n-----END RSA PUBLIC KEY-----",
        "-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----",
        PKCS1[: len(PKCS1) // 2] + "\n-----END RSA PUBLIC KEY-----\n",
    ],
    ids=["text", "bad_base64", "certificate", "truncated"],
)
def test_anything_else_is_a_setting_error_naming_the_variable(factory_settings, bad):
    with pytest.raises(SettingsError, match="TGOPS_TELEGRAM_SERVER_PUBLIC_KEY"):
        TelethonClientFactory(factory_settings.model_copy(update={"telegram_server_public_key": bad}))
