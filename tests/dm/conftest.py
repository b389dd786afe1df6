from __future__ import annotations

import itertools
from collections.abc import AsyncIterator, Iterator
from typing import Any

import pytest

from tests.dm.fake_bot_api import FakeBotApi
from tgops.config import Settings, get_settings
from tgops.ingress.messages import MAIN_BOT_ID, TelegramUpdateReceived
from tgops.ingress.routing import route_update
from tgops.messaging.envelopes import encode
from tgops.messaging.sqs import Received
from tgops.runtime import Runtime

MAIN_TOKEN = "700100:" + "M" * 35
UPDATE_IDS = itertools.count(1)


@pytest.fixture
def bot_api() -> Iterator[FakeBotApi]:
    server = FakeBotApi(valid_tokens={MAIN_TOKEN}).start()
    yield server
    server.stop()


@pytest.fixture
def dm_settings(
    settings: Settings, bot_api: FakeBotApi, monkeypatch: pytest.MonkeyPatch
) -> Iterator[Settings]:
    monkeypatch.setenv("TGOPS_TELEGRAM_BOT_TOKEN", MAIN_TOKEN)
    monkeypatch.setenv("TGOPS_TELEGRAM_BOT_API_BASE_URL", bot_api.base_url)
    monkeypatch.setenv("TGOPS_TELEGRAM_BOT_USERNAME", "main_test_bot")
    monkeypatch.setenv("TGOPS_PUBLIC_BASE_URL", "https://tgops.example")
    # The shared limiter's per-chat spacing is the broadcaster's tests' subject; here it only slows.
    monkeypatch.setenv("TGOPS_BROADCAST_PRIVATE_SPACING_SEC", "0")
    get_settings.cache_clear()
    yield get_settings()
    get_settings.cache_clear()


@pytest.fixture
async def runtime(dm_settings: Settings) -> AsyncIterator[Runtime]:
    runtime = Runtime(dm_settings)
    yield runtime
    await runtime.close()


def user(user_id: int, name: str = "Ann") -> dict[str, Any]:
    return {"id": user_id, "is_bot": False, "first_name": name, "username": f"user{user_id}"}


def private_text(user_id: int, text: str, *, update_id: int | None = None) -> dict[str, Any]:
    message: dict[str, Any] = {
        "message_id": 10 + user_id % 1000,
        "date": 0,
        "chat": {"id": user_id, "type": "private"},
        "from": user(user_id),
        "text": text,
    }
    if text.startswith("/"):
        message["entities"] = [{"type": "bot_command", "offset": 0, "length": len(text.split()[0])}]
    return {"update_id": update_id or next(UPDATE_IDS), "message": message}


def group_command(chat_id: int, user_id: int, text: str) -> dict[str, Any]:
    update = private_text(user_id, text)
    update["message"]["chat"] = {"id": chat_id, "type": "supergroup", "title": "A group"}
    return update


def button(user_id: int, data: str, *, message_id: int = 555, update_id: int | None = None) -> dict[str, Any]:
    return {
        "update_id": update_id or next(UPDATE_IDS),
        "callback_query": {
            "id": f"cb{next(UPDATE_IDS)}",
            "from": user(user_id),
            "chat_instance": "x",
            "data": data,
            "message": {
                "message_id": message_id,
                "date": 0,
                "chat": {"id": user_id, "type": "private"},
                "text": "menu",
            },
        },
    }


def received(update: dict[str, Any], *, bot_id: int = MAIN_BOT_ID, receive_count: int = 1) -> Received:
    route = route_update(update)
    event = TelegramUpdateReceived(
        bot_id=bot_id, update_id=update["update_id"], update_type=route.update_type, update=update
    )
    return Received(f"m{update['update_id']}", f"r{update['update_id']}", encode(event), receive_count)
