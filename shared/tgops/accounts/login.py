"""`tgops accounts login PHONE`: sign an account in interactively and store its session, sealed.

Telegram sends a code; the operator types it; when the account has 2FA, Telegram asks for the password
and the operator types that too. What is typed goes to Telegram only: it is never echoed (the CLI reads
it hidden), logged or put in an error. Worker-side: imports Telethon.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, Protocol

from telethon import errors

from tgops.accounts.fleet import AccountFleet
from tgops.accounts.importing import normalize_phone
from tgops.config import Settings

log = logging.getLogger(__name__)
MAX_TRIES = 3

Ask = Callable[[str], Awaitable[str] | str]


class LoginFailed(Exception):
    pass


class LoginClient(Protocol):
    """The slice of Telethon's TelegramClient a login uses."""

    session: Any

    async def connect(self) -> None: ...

    async def disconnect(self) -> None: ...

    async def send_code_request(self, phone: str) -> Any: ...

    async def sign_in(
        self,
        phone: str | None = None,
        code: str | None = None,
        *,
        password: str | None = None,
        phone_code_hash: str | None = None,
    ) -> Any: ...


@dataclass(frozen=True, slots=True)
class LoginResult:
    account_id: int
    created: bool


def telethon_login_client(settings: Settings) -> LoginClient:
    from telethon import TelegramClient
    from telethon.sessions import StringSession

    if settings.telegram_api_id is None or settings.telegram_api_hash is None:
        raise LoginFailed("TGOPS_TELEGRAM_API_ID and TGOPS_TELEGRAM_API_HASH must be set to log in")
    return TelegramClient(
        StringSession(), settings.telegram_api_id, settings.telegram_api_hash.get_secret_value(),
        receive_updates=False,
    )  # fmt: skip


async def login(
    fleet: AccountFleet,
    phone: str,
    *,
    client: LoginClient,
    ask_code: Ask,
    ask_password: Ask,
    probe: bool = False,
) -> LoginResult:
    normalized = normalize_phone(phone)
    if normalized is None:
        raise LoginFailed("the phone must be 7 to 15 digits, optionally after +")
    await client.connect()
    try:
        await _sign_in(client, normalized, ask_code, ask_password)
        session = client.session.save()
    finally:
        await client.disconnect()
    existing = await fleet.find_phone(normalized)
    if existing is not None:
        await fleet.replace_session(existing["id"], session)
        log.info("account signed in again; its session replaced", extra={"account_id": existing["id"]})
        return LoginResult(existing["id"], created=False)
    account_id = await fleet.add(phone=normalized, session=session, probe=probe)
    log.info("account signed in and added", extra={"account_id": account_id})
    return LoginResult(account_id, created=True)


async def _sign_in(client: LoginClient, phone: str, ask_code: Ask, ask_password: Ask) -> None:
    try:
        sent = await client.send_code_request(phone)
    except errors.RPCError as error:
        raise LoginFailed(f"Telegram refused to send a code: {_name(error)}") from None
    for _ in range(MAX_TRIES):
        code = (await _ask(ask_code, "code Telegram sent")).strip()
        try:
            await client.sign_in(phone=phone, code=code, phone_code_hash=sent.phone_code_hash)
            return
        except errors.SessionPasswordNeededError:
            await _two_factor(client, ask_password)
            return
        except (errors.PhoneCodeInvalidError, errors.PhoneCodeEmptyError):
            continue
        except errors.RPCError as error:
            raise LoginFailed(f"sign-in refused: {_name(error)}") from None
    raise LoginFailed(f"the code was wrong {MAX_TRIES} times")


async def _two_factor(client: LoginClient, ask_password: Ask) -> None:
    for _ in range(MAX_TRIES):
        password = await _ask(ask_password, "2FA password")
        try:
            await client.sign_in(password=password)
            return
        except errors.PasswordHashInvalidError:
            continue
        except errors.RPCError as error:
            raise LoginFailed(f"2FA refused: {_name(error)}") from None
    raise LoginFailed(f"the 2FA password was wrong {MAX_TRIES} times")


async def _ask(ask: Ask, prompt: str) -> str:
    answer = ask(prompt)
    return await answer if isinstance(answer, Awaitable) else answer


def _name(error: errors.RPCError) -> str:
    """Telegram's error name only: the message Telethon builds may quote the request (and so the code)."""
    return getattr(error, "message", None) or type(error).__name__
