"""Fixtures for a real MtprotoPool (real Postgres and Redis) over the simulated Telegram of telethon_client.py.

Import them into a test module or conftest: `from tests.fakes.mtproto_pool import *  # noqa: F403`.
"""

import itertools

import pytest

from tests.fakes.telethon_client import FakeTelegram
from tgops.telegram.accounts import MtprotoAccounts
from tgops.telegram.pool import MtprotoPool
from tgops.telegram.sessions import SessionCipher

__all__ = ["add_accounts", "cipher", "make_pool", "pool_settings", "sessions", "telegram"]

FAST = {
    "proxy_throttle_sec": 0.01,
    "proxy_throttle_max_wait_inspect_sec": 2,
    "call_deadline_inspect_ms": 5000,
    "call_deadline_ms": 5000,
}


@pytest.fixture
def pool_settings(settings):
    return settings.model_copy(update=FAST)


@pytest.fixture
def cipher(settings) -> SessionCipher:
    return SessionCipher.from_settings(settings)


@pytest.fixture
def telegram() -> FakeTelegram:
    return FakeTelegram()


@pytest.fixture
def sessions() -> dict[int, str]:
    """account id -> its (plaintext) session string, for the accounts `add_accounts` created."""
    return {}


@pytest.fixture
def add_accounts(db, cipher, sessions):
    """Insert `count` accounts (probe accounts unless told) with distinct session strings; returns their ids."""
    accounts = MtprotoAccounts(db)
    phones = itertools.count(15550000)

    async def add(count: int, *, probe: bool = True, **proxy) -> list[int]:
        ids = []
        for _ in range(count):
            phone = f"+{next(phones)}"
            session = f"1BVtsOK-secret-session-{phone}"
            account_id = await accounts.add(
                phone=phone, session_encrypted=cipher.encrypt(session), probe=probe, **proxy
            )
            sessions[account_id] = session
            ids.append(account_id)
        return ids

    return add


@pytest.fixture
async def make_pool(db, redis_client, pool_settings, telegram, cipher):
    pools = []

    def make(settings=None, idle_release_sec: float = 60.0, **overrides) -> MtprotoPool:
        chosen = (settings or pool_settings).model_copy(update=overrides)
        pool = MtprotoPool(
            db=db,
            redis=redis_client,
            settings=chosen,
            client_factory=telegram.factory,
            cipher=cipher,
            idle_release_sec=idle_release_sec,
        )
        pools.append(pool)
        return pool

    yield make
    for pool in pools:
        await pool.close()
