"""The MTProto server's RSA public key (TGOPS_TELEGRAM_SERVER_PUBLIC_KEY), in whichever common form it came.

Telethon reads only a PKCS#1 PEM ("BEGIN RSA PUBLIC KEY") with its line breaks, and fails on anything else
with a bare ValueError. Servers and their docs hand the key out in other forms too: SubjectPublicKeyInfo
("BEGIN PUBLIC KEY"), on one line, with its line breaks written as `\\n` (as an environment variable often
carries it), in quotes. Each is read into the same key; anything else is a SettingsError naming the setting.
Worker-only (`add_server_key` imports Telethon).
"""

from __future__ import annotations

import base64
import binascii
import re

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.rsa import RSAPublicKey

from tgops.config import SettingsError, env_name

PEM = re.compile(r"-----BEGIN (RSA PUBLIC KEY|PUBLIC KEY)-----(.*?)-----END \1-----", re.DOTALL)
SETTING = env_name("telegram_server_public_key")


def add_server_key(text: str) -> None:
    """Make Telethon trust this server key for new auth keys."""
    from telethon.crypto import rsa

    rsa.add_key(pkcs1_pem(text), old=False)


def pkcs1_pem(text: str) -> str:
    der = _der(text)
    try:
        key = serialization.load_der_public_key(der)  # SubjectPublicKeyInfo or PKCS#1 alike
    except ValueError:
        raise _unreadable("its content is not a public key") from None
    if not isinstance(key, RSAPublicKey):
        raise _unreadable("it is not an RSA key")
    return key.public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.PKCS1).decode()


def _der(text: str) -> bytes:
    cleaned = text.strip().strip("\"'").replace("\\r", "").replace("\\n", "\n")
    match = PEM.search(cleaned)
    if match is None:
        raise _unreadable('no "BEGIN RSA PUBLIC KEY" or "BEGIN PUBLIC KEY" block')
    try:
        return base64.b64decode("".join(match.group(2).split()), validate=True)
    except binascii.Error:
        raise _unreadable("its body is not base64") from None


def _unreadable(why: str) -> SettingsError:
    return SettingsError(
        f"{SETTING} must be the server's RSA public key as PEM (PKCS#1 or SubjectPublicKeyInfo); {why}"
    )
