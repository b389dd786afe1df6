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


@pytest.fixture
async def runtime(bot_settings: Settings):
    from tgops.messaging.sqs import InMemoryQueues
    from tgops.runtime import Runtime

    runtime = Runtime(bot_settings, queue_sender=InMemoryQueues())
    yield runtime
    await runtime.close()


def received(message, receive_count: int = 1):
    from ulid import ULID

    from tgops.messaging.envelopes import encode
    from tgops.messaging.sqs import Received

    body = message if isinstance(message, str) else encode(message)
    return Received(message_id=str(ULID()), receipt_handle="rh", body=body, receive_count=receive_count)


async def add_groups(db, chat_ids, **fields) -> None:
    for chat_id in chat_ids:
        await db.fetch_one(
            "group_insert",
            {
                "chat_id": chat_id,
                "title": f"group {chat_id}",
                "username": None,
                "chat_type": "supergroup",
                "display_name": None,
                "invite_link": None,
                "is_active": fields.get("is_active", True),
                "final_message_allowed": fields.get("final_message_allowed", True),
            },
        )
