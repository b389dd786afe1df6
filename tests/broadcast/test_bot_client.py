"""The Bot API client against a fake Bot API server over real HTTP: limits shared through Redis,
429 pauses, migrations, chat failures, the dry-run outbox, and no token in a log line."""

from __future__ import annotations

import asyncio
import logging
import time
from collections import defaultdict

import psycopg
import pytest
from telegram.error import BadRequest, Forbidden
from typer.testing import CliRunner

from tests.broadcast.conftest import TOKEN, sliding_window_max
from tests.fakes.bot_api_server import blocked, chat_not_found, kicked, migrated, too_many_requests
from tgops.cache import keys
from tgops.cli import app
from tgops.config import Settings
from tgops.telegram.bot_client import Lane, Pacing, bot_client, bot_key, is_chat_failure


def send(text: str):
    async def request(bot, chat_id):
        return await bot.send_message(chat_id, text)

    return request


def fast(settings: Settings, **changes) -> Settings:
    return settings.model_copy(update=changes)


async def test_a_message_goes_through_the_configured_base_url_and_the_token_never_reaches_a_log_line(
    bot_settings, bot_api, redis_client, db, caplog
):
    caplog.set_level(logging.DEBUG)
    client = bot_client(TOKEN, bot_settings, redis_client, db)

    message = await client.call(send("hello"), chat_id=-1001, lane=Lane.PRIORITY)

    assert message.message_id >= 1000 and message.chat.id == -1001
    assert [(c.token, c.method, c.params["text"]) for c in bot_api.calls] == [(TOKEN, "sendMessage", "hello")]
    assert any("sendMessage" in record.getMessage() for record in caplog.records)  # httpx logged the call
    secret = TOKEN.split(":", 1)[1]
    assert not [r.getMessage() for r in caplog.records if secret in r.getMessage()]


async def test_concurrent_consumers_share_one_rate_and_each_chat_keeps_its_spacing(
    bot_settings, bot_api, redis_client, db
):
    settings = fast(bot_settings, broadcast_rate_per_sec=20, broadcast_private_spacing_sec=0.5)
    chats = list(range(1, 11))  # private chats: 0.5 s apart each

    async def consumer(index: int) -> None:
        client = bot_client(TOKEN, settings, redis_client, db)  # each consumer its own client
        for n in range(9):
            chat = chats[(index * 3 + n) % len(chats)]
            await client.call(send(f"{index}-{n}"), chat_id=chat, lane=Lane.BULK)

    await asyncio.gather(*(consumer(index) for index in range(4)))

    delivered = bot_api.delivered()
    assert len(delivered) == 36
    assert sliding_window_max([call.at for call in delivered]) <= 20
    by_chat = defaultdict(list)
    for call in delivered:
        by_chat[call.chat_id].append(call.at)
    gaps = [b - a for times in by_chat.values() for a, b in zip(sorted(times), sorted(times)[1:])]
    assert min(gaps) >= 0.5


async def test_a_reply_never_waits_behind_a_broadcast(bot_settings, bot_api, redis_client, db):
    settings = fast(bot_settings, broadcast_rate_per_sec=2)
    client = bot_client(TOKEN, settings, redis_client, db)
    broadcast = [
        asyncio.create_task(client.call(send("bulk"), chat_id=-100 - n, lane=Lane.BULK)) for n in range(8)
    ]
    await asyncio.sleep(0.1)

    await client.call(send("reply"), chat_id=77, lane=Lane.PRIORITY)

    order = [call.params["text"] for call in bot_api.delivered()]
    for task in broadcast:
        task.cancel()
    await asyncio.gather(*broadcast, return_exceptions=True)
    # 8 bulk sends at 2/s take 4 s; the reply went out after at most the first of them.
    assert order.index("reply") <= 1, order


async def test_a_429_pauses_every_consumer_of_the_bot_then_the_send_is_retried(
    bot_settings, bot_api, redis_client, db
):
    first, other = (
        bot_client(TOKEN, bot_settings, redis_client, db),
        bot_client(TOKEN, bot_settings, redis_client, db),
    )
    bot_api.fail_next(-1, too_many_requests(retry_after=1))

    await first.call(send("a"), chat_id=-1, lane=Lane.BULK)
    await other.call(send("b"), chat_id=-2, lane=Lane.BULK)

    statuses = [(call.chat_id, call.status) for call in bot_api.calls]
    assert statuses == [(-1, 429), (-1, 200), (-2, 200)]
    flood_at = bot_api.calls[0].at
    assert all(call.at - flood_at >= 0.95 for call in bot_api.calls[1:])


async def test_a_429_that_comes_while_a_call_waits_for_its_slot_holds_that_call_too(
    bot_settings, bot_api, redis_client, db
):
    client = bot_client(TOKEN, fast(bot_settings, broadcast_rate_per_sec=1), redis_client, db)
    await client.call(send("first"), chat_id=-1, lane=Lane.BULK)
    waiting = asyncio.create_task(client.call(send("second"), chat_id=-2, lane=Lane.BULK))  # its slot: 1 s on
    await asyncio.sleep(0.3)

    await client.limiter.pause(2)  # another consumer's 429
    paused_at = time.time()
    await waiting

    second = next(call for call in bot_api.calls if call.params["text"] == "second")
    assert second.at - paused_at >= 1.9


async def test_a_pause_never_shortens_a_longer_one(bot_settings, redis_client, db):
    client = bot_client(TOKEN, bot_settings, redis_client, db)
    await client.limiter.pause(30)
    await client.limiter.pause(1)
    assert await redis_client.pttl(keys.bot_pause(bot_key(TOKEN))) > 25_000


async def test_a_migrated_group_is_followed_and_the_hook_stores_the_new_id(
    bot_settings, bot_api, redis_client, db
):
    moves = []

    async def on_migrated(old, new):
        moves.append((old, new))

    client = bot_client(TOKEN, bot_settings, redis_client, db, on_migrated=on_migrated)
    bot_api.fail_next(-5, migrated(-1005))

    message = await client.call(send("x"), chat_id=-5, lane=Lane.BULK)

    assert moves == [(-5, -1005)] and message.chat.id == -1005
    assert [(c.chat_id, c.status) for c in bot_api.calls] == [(-5, 400), (-1005, 200)]


@pytest.mark.parametrize(
    ("reply", "error_type"), [(kicked(), Forbidden), (blocked(), Forbidden), (chat_not_found(), BadRequest)]
)
async def test_kicked_blocked_and_missing_chats_are_failures_of_that_chat(
    bot_settings, bot_api, redis_client, db, reply, error_type
):
    client = bot_client(TOKEN, bot_settings, redis_client, db)
    bot_api.fail_next(-9, reply)

    with pytest.raises(error_type) as raised:
        await client.call(send("x"), chat_id=-9, lane=Lane.BULK)

    assert is_chat_failure(raised.value)
    assert not is_chat_failure(BadRequest("Wrong file identifier/http url specified"))


def test_telegrams_ceilings_hold_whatever_the_settings_say(settings):
    pacing = Pacing.from_settings(
        settings.model_copy(
            update={
                "broadcast_rate_per_sec": 1000,
                "broadcast_group_spacing_sec": 0,
                "bot_priority_reserved_share": 0.2,
            }
        )
    )
    assert 1000 / pacing.bulk_interval_ms <= 24  # 30/s less the reserved share
    assert 1000 / pacing.bulk_interval_ms + 1000 / pacing.priority_interval_ms <= 30
    assert pacing.spacing_ms(-1) >= 3000  # 20 messages a minute per group
    assert pacing.spacing_ms(5) >= 1000


async def test_without_a_token_every_call_lands_in_the_outbox_instead_of_going_out(
    bot_settings, bot_api, redis_client, db
):
    client = bot_client("change-me", bot_settings, redis_client, db)

    message = await client.call(send("dry run"), chat_id=-42, lane=Lane.BULK)

    assert client.dry_run and bot_api.calls == []
    rows = await db.fetch_all("bot_outbox_list", {"method": None, "limit": 10})
    assert [(row["method"], row["chat_id"], row["params"]["text"]) for row in rows] == [
        ("sendMessage", -42, "dry run")
    ]
    assert message.message_id == rows[0]["id"]


def test_tgops_outbox_lists_the_recorded_calls_latest_first(settings, database_url):
    with psycopg.connect(database_url) as connection:
        for method, chat_id, params in (
            ("sendMessage", -42, '{"text": "dry run"}'),
            ("approveChatJoinRequest", -42, '{"user_id": 7}'),
        ):
            connection.execute(
                "INSERT INTO bot_outbox (bot_key, method, chat_id, params) VALUES ('k', %s, %s, %s)",
                (method, chat_id, params),
            )

    result = CliRunner().invoke(app, ["outbox", "--limit", "5"])
    only_sends = CliRunner().invoke(app, ["outbox", "--method", "sendMessage"])

    assert result.exit_code == 0, result.output
    lines = [line for line in result.output.splitlines() if "-42" in line]
    assert "approveChatJoinRequest" in lines[0] and "sendMessage" in lines[1] and "dry run" in lines[1]
    assert "approveChatJoinRequest" not in only_sends.output and "sendMessage" in only_sends.output
