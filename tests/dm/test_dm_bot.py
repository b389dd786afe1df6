"""The DM bot against a real Bot API server fake over HTTP, real Postgres and Redis."""

from __future__ import annotations

import asyncio
import logging

import psycopg
import pytest

from tests.dm.conftest import MAIN_TOKEN, button, group_command, private_text, received
from tgops.dm import live
from tgops.dm.consumer import handle
from tgops.messaging.errors import InvalidMessage


def sql(runtime, statement: str) -> list[tuple]:
    """A look at the tables from outside the package (what an operator's psql would see)."""
    with psycopg.connect(runtime.settings.database_url, autocommit=True) as connection:
        cursor = connection.execute(statement)
        return cursor.fetchall() if cursor.description else []


async def points(runtime, user_id: int) -> int:
    row = await (await runtime.database()).fetch_one("dm_user", {"user_id": user_id})
    return row["points"]


async def run(runtime, update, **kwargs) -> None:
    await handle(runtime, received(update, **kwargs))


def texts(bot_api, chat_id: int) -> list[str]:
    return [
        call.params["text"]
        for call in bot_api.calls
        if call.method in ("sendMessage", "editMessageText") and int(call.params["chat_id"]) == chat_id
    ]


async def test_start_registers_the_user_with_the_initial_points_and_shows_the_menu(runtime, bot_api):
    await run(runtime, private_text(101, "/start"))

    assert await points(runtime, 101) == 10
    [sent] = bot_api.calls_to("sendMessage", MAIN_TOKEN)
    assert "You have 10 points" in sent.params["text"]
    assert [row[0]["callback_data"] for row in sent.params["reply_markup"]["inline_keyboard"]] == [
        "live", "account", "clone",
    ]  # fmt: skip


async def test_a_referral_credits_the_referrer_once_per_new_user(runtime, bot_api):
    await run(runtime, private_text(201, "/start"))
    referred = private_text(202, "/start 201")
    await run(runtime, referred)
    await run(runtime, referred)  # the same update delivered again
    await run(runtime, private_text(202, "/start 201"))  # a later /start of the now existing user

    assert await points(runtime, 201) == 20
    row = await (await runtime.database()).fetch_one("dm_user", {"user_id": 201})
    assert row["referral_count"] == 1
    assert sql(runtime, "SELECT reason, delta FROM bot_points_ledger WHERE user_id = 201 ORDER BY id") == [
        ("initial", 10), ("referral", 10),
    ]  # fmt: skip


async def test_self_referral_and_an_existing_users_referral_give_nothing(runtime, bot_api):
    await run(runtime, private_text(301, "/start 301"))
    await run(runtime, private_text(302, "/start"))
    await run(runtime, private_text(302, "/start 301"))

    assert await points(runtime, 301) == 10
    row = await (await runtime.database()).fetch_one("dm_user", {"user_id": 301})
    assert row["referral_count"] == 0


async def test_daily_points_are_granted_on_the_first_command_of_a_day_only(runtime, bot_api):
    await run(runtime, private_text(401, "/start"))
    sql(runtime, "UPDATE bot_users SET daily_points_on = daily_points_on - 1 WHERE user_id = 401")
    await run(runtime, private_text(401, "/account"))
    await run(runtime, private_text(401, "/account"))

    assert await points(runtime, 401) == 20


async def test_the_live_list_costs_one_point_per_check_and_pages_in_place_for_free(runtime, bot_api):
    db = await runtime.database()
    streams = [
        {"platform": "instagram", "username": f"star{n}", "title": f"show {n}", "url": None} for n in range(7)
    ]
    await live.publish(db, streams, "replace")
    await run(runtime, private_text(501, "/start"))

    await run(runtime, button(501, "live", message_id=900))
    await run(runtime, button(501, "live:1", message_id=900))

    assert await points(runtime, 501) == 9
    edits = bot_api.calls_to("editMessageText")
    assert [int(call.params["message_id"]) for call in edits] == [900, 900]
    assert "1–5 of 7" in edits[0].params["text"] and "6–7 of 7" in edits[1].params["text"]
    assert len(bot_api.calls_to("answerCallbackQuery")) == 2


async def test_a_user_out_of_points_is_refused_politely_and_an_unlimited_one_pays_nothing(runtime, bot_api):
    await run(runtime, private_text(601, "/start"))
    sql(runtime, "UPDATE bot_users SET points = 1 WHERE user_id = 601")
    await run(runtime, button(601, "live"))
    await run(runtime, button(601, "live"))

    assert await points(runtime, 601) == 0
    refusal = bot_api.calls_to("answerCallbackQuery")[-1]
    assert "out of points" in refusal.params["text"] and refusal.params["show_alert"] is True

    db = await runtime.database()
    await db.execute("dm_set_unlimited", {"user_id": 601, "chat_id": -1})
    await run(runtime, button(601, "live"))
    assert await points(runtime, 601) == 0
    assert "Nobody is live" in bot_api.calls_to("editMessageText")[-1].params["text"]


async def test_init_registers_a_group_and_activate_makes_its_admin_unlimited(runtime, bot_api):
    group, admin, member = -1001234, 701, 702
    bot_user = int(MAIN_TOKEN.split(":")[0])
    bot_api.members |= {(group, bot_user): "administrator", (group, admin): "creator"}

    await run(runtime, group_command(group, member, "/init"))
    assert "Only an administrator" in texts(bot_api, group)[-1]
    await run(runtime, group_command(group, admin, "/init@main_test_bot"))
    assert "registered" in texts(bot_api, group)[-1]
    await run(runtime, group_command(group, member, "/activate"))
    assert "Only an administrator or the owner" in texts(bot_api, group)[-1]
    await run(runtime, group_command(group, admin, "/activate"))

    db = await runtime.database()
    assert (await db.fetch_one("dm_managed_group", {"chat_id": group}))["is_active"] is True
    assert (await db.fetch_one("dm_user", {"user_id": admin}))["is_unlimited"] is True
    assert (await db.fetch_one("dm_user", {"user_id": member}))["is_unlimited"] is False


async def test_init_refuses_while_the_bot_is_not_an_admin_of_the_group(runtime, bot_api):
    group, admin = -1005555, 711
    bot_api.members[(group, admin)] = "administrator"
    await run(runtime, group_command(group, admin, "/init"))
    assert "Make me an administrator" in texts(bot_api, group)[-1]
    assert await (await runtime.database()).fetch_one("dm_managed_group", {"chat_id": group}) is None


async def test_a_command_for_another_bot_in_a_group_is_left_alone(runtime, bot_api):
    await run(runtime, group_command(-1007777, 721, "/init@SomeOtherBot"))
    assert bot_api.calls_to("sendMessage") == []


async def test_more_than_ten_commands_a_minute_get_one_polite_refusal_then_silence(runtime, bot_api):
    for _ in range(12):
        await run(runtime, private_text(801, "/account"))

    sent = texts(bot_api, 801)
    assert len(sent) == 11
    assert "too fast" in sent[-1]


async def test_the_command_limit_holds_under_concurrent_deliveries(runtime, bot_api):
    await asyncio.gather(*(run(runtime, private_text(802, "/account")) for _ in range(20)))

    sent = texts(bot_api, 802)
    assert len([text for text in sent if "too fast" not in text]) == 10
    assert len([text for text in sent if "too fast" in text]) == 1


async def test_every_callback_is_answered_a_stale_one_too(runtime, bot_api):
    await run(runtime, button(901, "no-such-button"))
    [answer] = bot_api.calls_to("answerCallbackQuery")
    assert answer.params["text"] == "This button is no longer valid."


async def test_unknown_text_gets_the_help_and_never_an_error(runtime, bot_api):
    await run(runtime, private_text(911, "hello there"))
    assert "Here is what I can do" in texts(bot_api, 911)[-1]


async def test_a_user_who_blocked_the_bot_is_marked_and_cleared_when_they_write_again(runtime, bot_api):
    bot_api.blocked.add(921)
    await run(runtime, private_text(921, "/start"))
    db = await runtime.database()
    assert (await db.fetch_one("dm_user", {"user_id": 921}))["blocked_at"] is not None

    bot_api.blocked.clear()
    await run(runtime, private_text(921, "/account"))
    assert (await db.fetch_one("dm_user", {"user_id": 921}))["blocked_at"] is None


async def test_an_update_delivered_twice_has_one_effect_and_one_reply(runtime, bot_api):
    await run(runtime, private_text(931, "/start"))
    check = button(931, "live")
    await run(runtime, check)
    await run(runtime, check, receive_count=2)

    assert await points(runtime, 931) == 9
    assert len(bot_api.calls_to("answerCallbackQuery")) == 1


async def test_replies_not_sent_before_a_crash_are_sent_by_the_redelivery(runtime, bot_api):
    bot_api.valid_tokens.discard(MAIN_TOKEN)  # the Bot API refuses: the reply is not sent, the effect stays
    update = private_text(941, "/start")
    with pytest.raises(Exception):  # noqa: B017 -- python-telegram-bot's InvalidToken, whatever its class
        await run(runtime, update)
    bot_api.valid_tokens.add(MAIN_TOKEN)
    await run(runtime, update, receive_count=2)

    assert await points(runtime, 941) == 10
    assert len([call for call in bot_api.calls_to("sendMessage") if call.token == MAIN_TOKEN]) == 2


async def test_a_poison_message_fails_so_that_it_reaches_the_dlq(runtime):
    from tgops.messaging.sqs import Received

    with pytest.raises(InvalidMessage):
        await handle(runtime, Received("m", "r", '{"kind": "telegram_update"}', 1))


CLONE_TOKEN = "800200:" + "C" * 35


async def test_cloning_a_bot_stores_its_token_sealed_and_it_answers_through_its_own_token(
    runtime, bot_api, caplog
):
    caplog.set_level(logging.DEBUG)
    bot_api.valid_tokens.add(CLONE_TOKEN)
    await run(runtime, private_text(1001, "/clone"))
    token_message = private_text(1001, CLONE_TOKEN)
    await run(runtime, token_message)

    [webhook] = bot_api.calls_to("setWebhook", CLONE_TOKEN)
    db = await runtime.database()
    [bot] = await db.fetch_all("dm_owned_bots", {"owner_user_id": 1001})
    assert webhook.params["url"] == f"https://tgops.example/api/webhooks/telegram/{bot['id']}"
    assert "chat_member" in webhook.params["allowed_updates"]
    assert "is ready" in texts(bot_api, 1001)[-1]
    assert bot_api.calls_to("deleteMessage")[0].params["message_id"] == token_message["message"]["message_id"]
    stored = await db.fetch_one("dm_bot", {"bot_id": bot["id"]})
    assert CLONE_TOKEN not in stored["token_encrypted"]

    await run(runtime, private_text(1002, "/start"), bot_id=bot["id"])
    assert [
        call.token for call in bot_api.calls_to("sendMessage") if int(call.params["chat_id"]) == 1002
    ] == [CLONE_TOKEN]
    # No log line carries a token: ours never log one, and the libraries' request lines are redacted.
    lines = [record.getMessage() + str(record.__dict__) for record in caplog.records]
    assert lines and not [line for line in lines if CLONE_TOKEN in line or MAIN_TOKEN in line]


async def test_a_token_telegram_refuses_is_not_stored(runtime, bot_api):
    await run(runtime, private_text(1011, "/clone"))
    await run(runtime, private_text(1011, "800300:" + "X" * 35))

    assert "does not accept this token" in texts(bot_api, 1011)[-1]
    assert await (await runtime.database()).fetch_all("dm_owned_bots", {"owner_user_id": 1011}) == []


async def test_text_that_is_not_a_token_keeps_the_conversation_waiting(runtime, bot_api):
    await run(runtime, private_text(1021, "/clone"))
    await run(runtime, private_text(1021, "my token is secret"))
    assert "not a bot token" in texts(bot_api, 1021)[-1]


async def test_a_revoked_token_deactivates_the_cloned_bot(runtime, bot_api):
    bot_api.valid_tokens.add(CLONE_TOKEN)
    await run(runtime, private_text(1031, "/clone"))
    await run(runtime, private_text(1031, CLONE_TOKEN))
    db = await runtime.database()
    [bot] = await db.fetch_all("dm_owned_bots", {"owner_user_id": 1031})

    bot_api.valid_tokens.discard(CLONE_TOKEN)
    await run(runtime, private_text(1032, "/start"), bot_id=bot["id"])

    assert (await db.fetch_one("dm_bot", {"bot_id": bot["id"]}))["is_active"] is False
    await run(runtime, private_text(1033, "/start"), bot_id=bot["id"])  # ignored: the bot is gone
    assert not [call for call in bot_api.calls if call.params.get("chat_id") == 1033]


async def test_the_owner_lists_and_removes_their_bot(runtime, bot_api):
    bot_api.valid_tokens.add(CLONE_TOKEN)
    await run(runtime, private_text(1041, "/clone"))
    await run(runtime, private_text(1041, CLONE_TOKEN))
    db = await runtime.database()
    [bot] = await db.fetch_all("dm_owned_bots", {"owner_user_id": 1041})

    await run(runtime, button(1099, f"rmbot:{bot['id']}"))  # not the owner
    assert (await db.fetch_one("dm_bot", {"bot_id": bot["id"]}))["is_active"] is True
    await run(runtime, button(1041, f"rmbot:{bot['id']}"))
    assert (await db.fetch_one("dm_bot", {"bot_id": bot["id"]}))["is_active"] is False
    assert bot_api.calls_to("deleteWebhook", CLONE_TOKEN)


async def test_a_managed_bot_created_through_telegram_is_adopted(runtime, bot_api):
    managed_token = "800400:" + "G" * 35
    bot_api.valid_tokens.add(managed_token)
    bot_api.managed_tokens[800400] = managed_token
    update = {
        "update_id": 99_001,
        "managed_bot": {"user": {"id": 1051, "is_bot": False, "first_name": "Ann"},
                        "bot": {"id": 800400, "is_bot": True, "first_name": "Mine", "username": "mine_bot"}},
    }  # fmt: skip
    await run(runtime, update)

    [bot] = await (await runtime.database()).fetch_all("dm_owned_bots", {"owner_user_id": 1051})
    assert bot["username"] == "mine_bot"
    assert bot_api.calls_to("setWebhook", managed_token)


async def test_a_cloned_bots_sealed_token_opens_only_for_its_own_row(runtime, bot_api):
    from tgops.dm.bots import open_token, seal_token
    from tgops.telegram.sessions import SessionDecryptError

    sealed = seal_token(runtime.settings, 7, CLONE_TOKEN)
    assert open_token(runtime.settings, 7, sealed) == CLONE_TOKEN
    with pytest.raises(SessionDecryptError) as refused:
        open_token(runtime.settings, 8, sealed)
    assert CLONE_TOKEN not in str(refused.value)
