import os

import pytest
from telethon.crypto import AuthKey
from telethon.sessions import StringSession

from tgops.accounts.fleet import AccountFleet
from tgops.telegram.sessions import SessionCipher


def make_string_session(dc_id: int = 2, seed: bytes | None = None) -> str:
    session = StringSession()
    session.set_dc(dc_id, "149.154.167.51", 443)
    session.auth_key = AuthKey(seed * (256 // len(seed)) if seed else os.urandom(256))
    return session.save()


@pytest.fixture
def fleet_cipher(settings) -> SessionCipher:
    return SessionCipher.from_settings(settings)


@pytest.fixture
def fleet(db, fleet_cipher) -> AccountFleet:
    return AccountFleet(db, fleet_cipher)
