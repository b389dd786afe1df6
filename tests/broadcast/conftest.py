"""A fake Bot API server over real HTTP, and settings pointing the Bot API client at it."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.fakes.bot_api_server import FakeBotApi
from tgops.config import Settings, get_settings

TOKEN = "123456789:AAFakeTokenForTestsOnly_abcdefghijklm"


@pytest.fixture
def bot_api() -> Iterator[FakeBotApi]:
    with FakeBotApi() as fake:
        yield fake


@pytest.fixture
def bot_settings(settings: Settings, bot_api: FakeBotApi, monkeypatch: pytest.MonkeyPatch) -> Settings:
    """The test settings with the Bot API at the fake server and this bot's token."""
    monkeypatch.setenv("TGOPS_TELEGRAM_BOT_API_BASE_URL", bot_api.base_url)
    monkeypatch.setenv("TGOPS_TELEGRAM_BOT_TOKEN", TOKEN)
    get_settings.cache_clear()
    return get_settings()


def sliding_window_max(times: list[float], window_sec: float = 1.0) -> int:
    """The most calls that arrived within any window of `window_sec` (half-open)."""
    times = sorted(times)
    best, start = 0, 0
    for end, at in enumerate(times):
        while at - times[start] >= window_sec:
            start += 1
        best = max(best, end - start + 1)
    return best
