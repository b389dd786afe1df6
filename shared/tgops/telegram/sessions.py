"""MTProto sessions: StringSession strings sealed at rest (envelope encryption), and the Telethon client factory.

A session string is a full login. It is decrypted only to build a client, and never logged or shown.

Every secret gets its own 256-bit data key; the secret is sealed with AES-GCM under it, with an
encryption context as associated data: `{"account_id": "<id>", "purpose": "<purpose>"}`. The data key
is wrapped by KMS (`GenerateDataKey` with the same context) when `TGOPS_SESSION_KMS_KEY_ID` is set, or
else by a local key derived from `TGOPS_SESSION_ENCRYPTION_KEY` (`tgops dev` keeps one under `.tgops/`),
in the same format. A ciphertext copied to another account's row (or another column) fails to decrypt:
its context no longer matches. Fernet ciphertexts of earlier versions are still read;
`tgops accounts reencrypt` rewrites them.

Token: `tgv2.<keyring>.<wrapped data key>.<nonce>.<sealed secret>` (url-safe base64 without padding;
keyring is `kms` or `local`; the purpose is part of the context, never read from the token).
Telethon is imported inside `TelethonClientFactory` so encryption alone stays cheap to import.
"""

from __future__ import annotations

import base64
import importlib.util
import json
import os
from typing import TYPE_CHECKING, Any, Literal, Protocol

from cryptography.exceptions import InvalidTag
from cryptography.fernet import Fernet, InvalidToken
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from tgops.config import Settings, env_name

if TYPE_CHECKING:
    from tgops.telegram.accounts import Account

# Telethon sleeps through FLOOD_WAITs up to this many seconds by itself; anything longer must reach the
# pool as an error so the account cools down instead of a worker sleeping through it.
MAX_FLOOD_SLEEP_SEC = 5

Purpose = Literal["mtproto_session", "mtproto_proxy_password", "bot_token"]
SESSION: Purpose = "mtproto_session"
PROXY_PASSWORD: Purpose = "mtproto_proxy_password"
BOT_TOKEN: Purpose = "bot_token"  # a cloned bot's token; its "account_id" is the bots row
ENVELOPE_PREFIX = "tgv2"
NONCE_BYTES = 12


class SessionKeyError(Exception):
    """The session encryption key is missing or not a Fernet key."""


class SessionDecryptError(Exception):
    """A stored secret cannot be decrypted: wrong key, damaged data, or sealed for another account or purpose."""


def encryption_context(account_id: int, purpose: Purpose) -> dict[str, str]:
    return {"account_id": str(account_id), "purpose": purpose}


def _associated_data(context: dict[str, str]) -> bytes:
    return json.dumps(context, sort_keys=True, separators=(",", ":")).encode()


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).decode().rstrip("=")


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


class LocalKeyring:
    """Wraps data keys with a key derived from the local secret (development, tests, self-hosting)."""

    name = "local"

    def __init__(self, secret: bytes) -> None:
        derived = HKDF(hashes.SHA256(), 32, salt=None, info=b"tgops session envelope v2").derive(secret)
        self._aead = AESGCM(derived)

    def generate(self, context: dict[str, str]) -> tuple[bytes, bytes]:
        data_key = AESGCM.generate_key(bit_length=256)
        nonce = os.urandom(NONCE_BYTES)
        return data_key, nonce + self._aead.encrypt(nonce, data_key, _associated_data(context))

    def unwrap(self, wrapped: bytes, context: dict[str, str]) -> bytes:
        try:
            return self._aead.decrypt(wrapped[:NONCE_BYTES], wrapped[NONCE_BYTES:], _associated_data(context))
        except InvalidTag:
            raise SessionDecryptError("the data key does not open under this key and context") from None


class KmsKeyring:
    """Data keys from AWS KMS (`GenerateDataKey`, `Decrypt`), bound to the encryption context."""

    name = "kms"

    def __init__(self, key_id: str, client: Any) -> None:
        self._key_id = key_id
        self._client = client

    @classmethod
    def from_settings(cls, settings: Settings) -> KmsKeyring:
        import boto3

        client = boto3.client("kms", region_name=settings.aws_region, endpoint_url=settings.kms_endpoint_url)
        return cls(settings.session_kms_key_id, client)

    def generate(self, context: dict[str, str]) -> tuple[bytes, bytes]:
        response = self._client.generate_data_key(
            KeyId=self._key_id, KeySpec="AES_256", EncryptionContext=context
        )
        return response["Plaintext"], response["CiphertextBlob"]

    def unwrap(self, wrapped: bytes, context: dict[str, str]) -> bytes:
        from botocore.exceptions import ClientError

        try:
            return self._client.decrypt(
                CiphertextBlob=wrapped, EncryptionContext=context, KeyId=self._key_id
            )["Plaintext"]
        except ClientError as error:
            code = error.response.get("Error", {}).get("Code", "error")
            raise SessionDecryptError(f"KMS refused the data key: {code}") from None


class SessionCipher:
    """Seals and opens the secrets of `mtproto_accounts` rows (session strings, proxy passwords).

    `encrypt(plain, account_id=...)` writes the envelope format bound to the row; without an account id
    it writes the legacy Fernet format (callers that insert before they know the id; reencrypt upgrades
    them). `decrypt(token, account_id=...)` reads both; an envelope token needs the account id.
    """

    def __init__(self, key: str, *, kms: KmsKeyring | None = None) -> None:
        try:
            self._fernet = Fernet(key.encode())
        except (ValueError, TypeError):
            raise SessionKeyError(
                f"{env_name('session_encryption_key')} must be a Fernet key (32 url-safe base64-encoded bytes), "
                "e.g. from `python -c 'from cryptography.fernet import Fernet; print(Fernet.generate_key().decode())'`"
            ) from None
        local = LocalKeyring(base64.urlsafe_b64decode(key.encode()))
        self._keyrings: dict[str, LocalKeyring | KmsKeyring] = {local.name: local}
        if kms is not None:
            self._keyrings[kms.name] = kms
        self._writer = kms or local

    @classmethod
    def from_settings(cls, settings: Settings) -> SessionCipher:
        kms = KmsKeyring.from_settings(settings) if settings.session_kms_key_id else None
        return cls(settings.session_encryption_key.get_secret_value(), kms=kms)

    def encrypt(self, plain: str, *, account_id: int | None = None, purpose: Purpose = SESSION) -> str:
        if account_id is None:
            return self._fernet.encrypt(plain.encode()).decode()
        context = encryption_context(account_id, purpose)
        data_key, wrapped = self._writer.generate(context)
        nonce = os.urandom(NONCE_BYTES)
        sealed = AESGCM(data_key).encrypt(nonce, plain.encode(), _associated_data(context))
        return ".".join((ENVELOPE_PREFIX, self._writer.name, _b64(wrapped), _b64(nonce), _b64(sealed)))

    def decrypt(self, token: str, *, account_id: int | None = None, purpose: Purpose = SESSION) -> str:
        if not is_envelope(token):
            return self._decrypt_fernet(token)
        if account_id is None:
            raise SessionDecryptError("an envelope-encrypted secret opens only with its account id")
        try:
            _, keyring_name, wrapped, nonce, sealed = token.split(".")
            keyring = self._keyrings[keyring_name]
            parts = _unb64(wrapped), _unb64(nonce), _unb64(sealed)
        except (ValueError, KeyError):
            raise SessionDecryptError(
                "stored secret is damaged or sealed by an unconfigured keyring"
            ) from None
        context = encryption_context(account_id, purpose)
        data_key = keyring.unwrap(parts[0], context)
        try:
            return AESGCM(data_key).decrypt(parts[1], parts[2], _associated_data(context)).decode()
        except InvalidTag:
            raise SessionDecryptError("stored secret does not open for this account and purpose") from None

    def needs_upgrade(self, token: str) -> bool:
        """A legacy Fernet token, or an envelope wrapped by another keyring than the one writing now."""
        return not is_envelope(token) or token.split(".", 2)[1] != self._writer.name

    def _decrypt_fernet(self, token: str) -> str:
        try:
            return self._fernet.decrypt(token.encode()).decode()
        except InvalidToken:
            raise SessionDecryptError("stored secret cannot be decrypted with the configured key") from None

    def __repr__(self) -> str:
        return f"SessionCipher(<key hidden>, writes={self._writer.name})"


def is_envelope(token: str) -> bool:
    return token.startswith(ENVELOPE_PREFIX + ".")


class ProxyUnsupported(Exception):
    """An account's proxy cannot be used; the account must not connect without it."""


class MtprotoClient(Protocol):
    """The slice of Telethon's TelegramClient the pool uses (a fake in tests and the benchmark)."""

    async def connect(self) -> None: ...

    async def disconnect(self) -> None: ...

    def is_connected(self) -> bool: ...

    async def __call__(self, request: Any) -> Any: ...


class ClientFactory(Protocol):
    def __call__(self, account: Account, session: str, proxy_password: str | None) -> MtprotoClient: ...


class TelethonClientFactory:
    """Builds real TelegramClients: StringSession, the account's proxy, a short flood sleep, the test DC."""

    def __init__(self, settings: Settings) -> None:
        if settings.telegram_api_id is None or settings.telegram_api_hash is None:
            raise SessionKeyError(
                f"{env_name('telegram_api_id')} and {env_name('telegram_api_hash')} must be set to run MTProto accounts"
            )
        self._settings = settings
        if settings.telegram_server_public_key:
            from tgops.telegram.server_key import add_server_key

            add_server_key(settings.telegram_server_public_key)

    def __call__(self, account: Account, session: str, proxy_password: str | None) -> MtprotoClient:
        from telethon import TelegramClient
        from telethon.sessions import StringSession

        settings = self._settings
        client = TelegramClient(
            StringSession(session),
            settings.telegram_api_id,
            settings.telegram_api_hash.get_secret_value(),
            flood_sleep_threshold=MAX_FLOOD_SLEEP_SEC,
            receive_updates=False,
            connection_retries=1,
            request_retries=1,
            **_proxy_arguments(account, proxy_password),
        )
        if settings.telegram_dc_id is not None and settings.telegram_dc_address:
            client.session.set_dc(
                settings.telegram_dc_id, settings.telegram_dc_address, settings.telegram_dc_port or 443
            )
        return client


def _proxy_arguments(account: Account, password: str | None) -> dict[str, Any]:
    if not account.proxy_type or not account.proxy_host:
        return {}
    if account.proxy_type == "mtproxy":
        from telethon import connection

        # An MTProxy's secret is stored in the password column.
        return {
            "connection": connection.ConnectionTcpMTProxyRandomizedIntermediate,
            "proxy": (account.proxy_host, account.proxy_port, password or ""),
        }
    # Without python-socks Telethon only warns and connects directly, exposing the worker's own address.
    if importlib.util.find_spec("python_socks") is None:
        raise ProxyUnsupported("python-socks is not installed: SOCKS/HTTP proxies cannot be used")
    proxy = {
        "proxy_type": account.proxy_type,
        "addr": account.proxy_host,
        "port": account.proxy_port,
        "rdns": True,
    }
    if account.proxy_username:
        proxy |= {"username": account.proxy_username, "password": password}
    return {"proxy": proxy}
