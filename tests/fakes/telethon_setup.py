"""Fixtures for the account setup pipeline: the fake Telegram (tests/fakes/telethon_client.py, whose
simulated model answers the setup requests with a profile per session), media files made with the ffmpeg
that imageio-ffmpeg ships, action accounts with sealed sessions, and a runner over a real pool.

Import them: `from tests.fakes.telethon_setup import *  # noqa: F403`.
"""

import itertools
import subprocess

import pytest

from tests.fakes.telethon_client import FakeTelegram
from tgops.accounts.fleet import AccountFleet
from tgops.accounts.runner import create_runner

__all__ = ["action_accounts", "make_runner", "media_dir", "setup_settings", "setup_telegram"]

FAST = {
    "proxy_throttle_sec": 0.01,
    "call_deadline_ms": 5000,
    "setup_enabled": True,
    "setup_first_name": "Ada",
    "setup_last_name": "Lovelace",
}


@pytest.fixture(scope="session")
def media_dir(tmp_path_factory):
    import imageio_ffmpeg

    folder = tmp_path_factory.mktemp("media")
    ffmpeg = imageio_ffmpeg.get_ffmpeg_exe()
    source = ["-f", "lavfi", "-i", "testsrc=size=64x64:rate=10", "-t", "1"]
    for name, extra in (("avatar.mp4", ["-pix_fmt", "yuv420p"]), ("story.mp4", ["-pix_fmt", "yuv420p"]),
                        ("avatar.gif", []), ("photo.jpg", ["-frames:v", "1"]), ("story.jpg", ["-frames:v", "1"])):  # fmt: skip
        subprocess.run(
            [ffmpeg, "-nostdin", "-y", "-loglevel", "error", *source, *extra, str(folder / name)], check=True
        )
    return folder


@pytest.fixture
def setup_settings(settings, media_dir):
    return settings.model_copy(update=FAST | {"setup_media_dir": media_dir})


@pytest.fixture
def setup_telegram() -> FakeTelegram:
    return FakeTelegram(flood_every=0)


@pytest.fixture
def action_accounts(db, setup_settings):
    """Insert `count` action accounts with sealed sessions; returns {account id: session string}."""
    from tgops.telegram.sessions import SessionCipher

    fleet = AccountFleet(db, SessionCipher.from_settings(setup_settings))
    phones = itertools.count(15557000000)

    async def add(count: int, *, session_prefix: str = "setup-session") -> dict[int, str]:
        added = {}
        for _ in range(count):
            phone = f"+{next(phones)}"
            session = f"{session_prefix}-{phone}"
            added[await fleet.add(phone=phone, session=session, probe=False)] = session
        return added

    return add


@pytest.fixture
async def make_runner(db, redis_client, setup_settings, setup_telegram):
    pools = []

    def make(**overrides):
        runner, pool = create_runner(
            setup_settings.model_copy(update=overrides), db=db, redis=redis_client,
            client_factory=setup_telegram.factory,
        )  # fmt: skip
        pools.append(pool)
        return runner

    yield make
    for pool in pools:
        await pool.close()
