"""MTProto sessions: StringSession strings encrypted at rest (Fernet), and the Telethon client factory.

A session string is a full login. It is decrypted only to build a client, and never logged or shown.
Telethon is imported inside `TelethonClientFactory` so encryption alone stays cheap to import.
"""

from __future__ import annotations

import importlib.util
from typing import TYPE_CHECKING, Any, Protocol

from cryptography.fernet import Fernet, InvalidToken

from tgops.config import Settings, env_name

if TYPE_CHECKING:
    from tgops.telegram.accounts import Account

# Telethon sleeps through FLOOD_WAITs up to this many seconds by itself; anything longer must reach the
# pool as an error so the account cools down instead of a worker sleeping through it.
MAX_FLOOD_SLEEP_SEC = 5


class SessionKeyError(Exception):
    """The session encryption key is missing or not a Fernet key."""


class SessionDecryptError(Exception):
    """A stored session cannot be decrypted with the configured key (wrong key or damaged data)."""


class SessionCipher:
    def __init__(self, key: str) -> None:
        try:
            self._fernet = Fernet(key.encode())
        except (ValueError, TypeError):
            raise SessionKeyError(
                f"{env_name('session_encryption_key')} must be a Fernet key (32 url-safe base64-encoded bytes), "
                "e.g. from `python -c 'from cryptography.fernet import Fernet; print(Fernet.generate_key().decode())'`"
            ) from None

    @classmethod
    def from_settings(cls, settings: Settings) -> SessionCipher:
        return cls(settings.session_encryption_key.get_secret_value())

    def encrypt(self, plain: str) -> str:
        return self._fernet.encrypt(plain.encode()).decode()

    def decrypt(self, token: str) -> str:
        try:
            return self._fernet.decrypt(token.encode()).decode()
        except InvalidToken:
            raise SessionDecryptError("stored secret cannot be decrypted with the configured key") from None

    def __repr__(self) -> str:
        return "SessionCipher(<key hidden>)"


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
