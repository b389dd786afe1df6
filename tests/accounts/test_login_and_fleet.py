"""`tgops accounts login` against a fake Telethon client, and the operator's commands on the fleet."""

import logging

import pytest
from cryptography.fernet import Fernet
from telethon import errors
from telethon.tl import functions

from tests.accounts.conftest import make_string_session
from tgops.accounts.fleet import AccountFleet, AccountNotFound, Proxy
from tgops.accounts.login import LoginFailed, login
from tgops.telegram.sessions import PROXY_PASSWORD, SessionCipher

CODE, PASSWORD = "24680", "correct horse battery"


class FakeLoginClient:
    """Telethon's TelegramClient as a login sees it: the code, then the 2FA password when the account has one."""

    def __init__(self, *, two_factor: bool, code: str = CODE, password: str = PASSWORD) -> None:
        self.session = type("Session", (), {"save": lambda _: self.saved})()
        self.saved = make_string_session()
        self.two_factor, self.code, self.password = two_factor, code, password
        self.calls: list[str] = []
        self.connected = False

    async def connect(self):
        self.connected = True

    async def disconnect(self):
        self.connected = False

    async def send_code_request(self, phone):
        self.calls.append("send_code")
        return type("SentCode", (), {"phone_code_hash": "hash-1"})()

    async def sign_in(self, phone=None, code=None, *, password=None, phone_code_hash=None):
        if password is not None:
            self.calls.append("password")
            if password != self.password:
                raise errors.PasswordHashInvalidError(
                    request=functions.auth.CheckPasswordRequest(password=None)
                )
            return
        self.calls.append("code")
        request = functions.auth.SignInRequest(phone, phone_code_hash, code)
        if code != self.code:
            raise errors.PhoneCodeInvalidError(request=request)
        if self.two_factor:
            raise errors.SessionPasswordNeededError(request=request)


def answers(*values):
    queue = list(values)
    return lambda prompt: queue.pop(0)


async def test_login_asks_for_the_code_then_the_2fa_password_and_stores_the_session(fleet, caplog):
    caplog.set_level(logging.DEBUG)
    client = FakeLoginClient(two_factor=True)

    result = await login(
        fleet, "+1 555 000 0041", client=client, ask_code=answers("11111", CODE),
        ask_password=answers("wrong password", PASSWORD),
    )  # fmt: skip

    assert result.created and client.calls == ["send_code", "code", "code", "password", "password"]
    row = await fleet.find("+15550000041")
    assert fleet.stored_session(row) == client.saved and not row["is_probe"] and not client.connected
    for secret in (CODE, PASSWORD, "wrong password", client.saved):
        assert secret not in caplog.text


async def test_login_again_replaces_the_session_and_reenables(fleet):
    first = await login(fleet, "+15550000042", client=FakeLoginClient(two_factor=False),
                        ask_code=answers(CODE), ask_password=answers())  # fmt: skip
    await fleet.disable("+15550000042", "AUTH_KEY_UNREGISTERED")
    client = FakeLoginClient(two_factor=False)

    again = await login(fleet, "+15550000042", client=client, ask_code=answers(CODE), ask_password=answers())

    row = await fleet.find("+15550000042")
    assert again == type(again)(first.account_id, created=False)
    assert row["disabled_at"] is None and fleet.stored_session(row) == client.saved


async def test_a_login_that_fails_says_why_without_the_secrets(fleet, caplog):
    caplog.set_level(logging.DEBUG)
    with pytest.raises(LoginFailed) as wrong_code:
        await login(fleet, "+15550000043", client=FakeLoginClient(two_factor=False),
                    ask_code=answers("1", "2", "3"), ask_password=answers())  # fmt: skip
    with pytest.raises(LoginFailed) as wrong_password:
        await login(fleet, "+15550000043", client=FakeLoginClient(two_factor=True),
                    ask_code=answers(CODE), ask_password=answers("pw-one", "pw-two", "pw-three"))  # fmt: skip

    assert "code was wrong 3 times" in str(wrong_code.value)
    assert "2FA password was wrong 3 times" in str(wrong_password.value)
    for secret in ("pw-one", "pw-two", "pw-three", CODE):
        assert secret not in str(wrong_password.value) + caplog.text
    assert await fleet.find_phone("+15550000043") is None


async def test_the_operator_commands_change_what_the_list_shows(fleet, db):
    account_id = await fleet.add(phone="+15550000051", session=make_string_session(), probe=False)

    await fleet.set_proxy(str(account_id), Proxy("socks5", "10.1.1.1", 1080, "u", "proxy-pw"))
    await fleet.set_probe("+15550000051", True)
    await fleet.disable("+15550000051", "banned by hand")
    await db.execute("mtproto_set_cooldown", {"id": account_id, "seconds": 120, "error_code": "FLOOD_WAIT"})
    [line] = await fleet.list()

    assert (line.role, line.status, line.proxy, line.disabled_reason) == (
        "probe", "disabled", "socks5://10.1.1.1:1080", "banned by hand",
    )  # fmt: skip
    assert 100 < line.cooldown_left_sec <= 120
    row = await fleet.find("+15550000051")
    assert (
        fleet._cipher.decrypt(row["proxy_password_encrypted"], account_id=account_id, purpose=PROXY_PASSWORD)
        == "proxy-pw"
    )
    await fleet.enable(str(account_id))
    await fleet.set_proxy(str(account_id), None)
    [line] = await fleet.list()
    assert (line.status, line.proxy) == ("cooling down", "-")
    with pytest.raises(AccountNotFound):
        await fleet.enable("+19999999999")


async def test_reencrypt_rewrites_fernet_secrets_sealed_for_their_row(db, settings, fleet):
    legacy = SessionCipher.from_settings(settings)
    session = make_string_session()
    account_id = await db.fetch_one(
        "mtproto_insert_account",
        {"phone": "+15550000061", "session_encrypted": legacy.encrypt(session), "is_probe": False,
         "proxy_type": "http", "proxy_host": "h", "proxy_port": 8080, "proxy_username": "u",
         "proxy_password_encrypted": legacy.encrypt("pw")},
    )  # fmt: skip
    account_id = account_id["id"]
    await db.execute(
        "mtproto_insert_account",
        {"phone": "+15550000062", "session_encrypted": SessionCipher(Fernet.generate_key().decode()).encrypt("x"),
         "is_probe": False, "proxy_type": None, "proxy_host": None, "proxy_port": None, "proxy_username": None,
         "proxy_password_encrypted": None},
    )  # fmt: skip

    first = await fleet.reencrypt()
    again = await fleet.reencrypt()

    row = await fleet.find(str(account_id))
    assert row["session_encrypted"].startswith("tgv2.") and fleet.stored_session(row) == session
    assert (
        fleet._cipher.decrypt(row["proxy_password_encrypted"], account_id=account_id, purpose=PROXY_PASSWORD)
        == "pw"
    )
    assert (first.rewritten, len(first.unreadable)) == (1, 1)
    assert (again.rewritten, again.current, len(again.unreadable)) == (0, 1, 1)


async def test_a_session_moved_to_another_row_does_not_open(fleet, db):
    first = await fleet.add(phone="+15550000071", session=make_string_session(), probe=False)
    second = await fleet.add(phone="+15550000072", session=make_string_session(), probe=False)
    moved = (await fleet.find(str(first)))["session_encrypted"]
    await db.execute(
        "fleet_set_secrets", {"id": second, "session_encrypted": moved, "proxy_password_encrypted": None}
    )

    assert fleet.stored_session(await fleet.find(str(second))) is None
    assert isinstance(fleet, AccountFleet)
