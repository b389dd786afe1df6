"""Group management against a fake Bot API server over real HTTP: join requests decided once and
paced, phases and their rules, member counts, inactive-member removal, periodic posts, the webhook."""

from __future__ import annotations

import itertools
import time
from collections import Counter

import psycopg
import pytest

from tests.broadcast.conftest import TOKEN, add_groups, received
from tgops.groups import maintenance, repository, tick
from tgops.groups.consumer import handle
from tgops.groups.messages import GroupMaintenance
from tgops.groups.webhook import register_webhook
from tgops.ingress.messages import TelegramUpdateReceived
from tgops.messaging.envelopes import decode
from tgops.telegram.bot_client import bot_client

CHAT = -100500


def join_request(user_id: int, chat_id: int = CHAT, update_id: int | None = None, date: int = 1732366830):
    update = {
        "update_id": update_id or user_id,
        "chat_join_request": {
            "chat": {"id": chat_id, "title": "Live", "type": "supergroup"},
            "from": {"id": user_id, "is_bot": False, "first_name": "U", "username": f"u{user_id}"},
            "user_chat_id": user_id,
            "date": date,
        },
    }
    return TelegramUpdateReceived(
        bot_id=0, update_id=update["update_id"], update_type="chat_join_request", update=update
    )


def group_message(user_id: int, chat_id: int = CHAT) -> TelegramUpdateReceived:
    update = {
        "update_id": 9_000_000 + user_id,
        "message": {
            "message_id": 1,
            "date": 1,
            "chat": {"id": chat_id, "type": "supergroup"},
            "from": {"id": user_id, "is_bot": False, "first_name": "U"},
            "text": "hi",
        },
    }
    return TelegramUpdateReceived(
        bot_id=0, update_id=update["update_id"], update_type="message", update=update
    )


def member_joined(
    user_id: int, chat_id: int = CHAT, status: str = "member", update_type: str = "chat_member"
):
    update = {
        "update_id": 8_000_000 + user_id,
        update_type: {
            "chat": {"id": chat_id, "type": "supergroup"},
            "from": {"id": user_id, "is_bot": False, "first_name": "U"},
            "date": 1,
            "old_chat_member": {
                "status": "left",
                "user": {"id": user_id, "is_bot": False, "first_name": "U"},
            },
            "new_chat_member": {
                "status": status,
                "user": {"id": user_id, "is_bot": False, "first_name": "U"},
            },
        },
    }
    return TelegramUpdateReceived(
        bot_id=0, update_id=update["update_id"], update_type=update_type, update=update
    )


async def group(db, chat_id: int = CHAT) -> dict:
    return await db.fetch_one("group_get_by_chat_id", {"chat_id": chat_id})


@pytest.fixture
async def managed(db, runtime):
    await add_groups(db, [CHAT])
    row = await group(db)
    await repository.set_rules(db, row["id"], decision_interval_sec=0.3)
    return row


def statuses(database_url: str) -> dict[int, str]:
    with psycopg.connect(database_url) as connection:
        return dict(connection.execute("SELECT user_id, status FROM join_requests").fetchall())


async def test_a_join_request_in_growth_is_approved_once_whatever_arrives_twice(
    runtime, bot_api, db, managed, database_url
):
    await handle(runtime, received(join_request(11)))
    await handle(runtime, received(join_request(11), receive_count=2))  # SQS redelivery
    await handle(runtime, received(join_request(11, update_id=99)))  # Telegram's own retry

    approvals = bot_api.calls_to("approveChatJoinRequest")
    assert [(c.chat_id, c.params["user_id"]) for c in approvals] == [(CHAT, 11)]
    assert statuses(database_url) == {11: "approved"}


async def test_decisions_of_one_group_are_paced_and_each_request_decided_once(
    runtime, bot_api, db, managed, database_url
):
    for user_id in range(21, 26):
        await handle(runtime, received(join_request(user_id)))

    approvals = bot_api.calls_to("approveChatJoinRequest")
    assert Counter(c.params["user_id"] for c in approvals) == Counter(range(21, 26))
    times = sorted(c.at for c in approvals)
    assert min(b - a for a, b in itertools.pairwise(times)) >= 0.3 * 0.95
    assert set(statuses(database_url).values()) == {"approved"}


async def test_monitoring_holds_requests_or_declines_them_when_the_group_says_so(
    runtime, bot_api, db, managed, database_url
):
    await repository.set_rules(db, managed["id"], phase="monitoring")
    await handle(runtime, received(join_request(31)))
    assert statuses(database_url) == {31: "pending"} and bot_api.calls == []

    await repository.set_rules(db, managed["id"], monitoring_join_action="decline")
    await handle(runtime, received(join_request(32)))
    assert [c.params["user_id"] for c in bot_api.calls_to("declineChatJoinRequest")] == [32]
    assert statuses(database_url) == {31: "pending", 32: "declined"}


async def test_another_update_for_a_request_just_decided_decides_nothing_again(
    runtime, bot_api, db, managed, database_url
):
    now = int(time.time())
    await handle(runtime, received(join_request(42, date=now)))
    await handle(runtime, received(join_request(42, update_id=4200, date=now + 1)))  # same second, rounded

    assert [c.params["user_id"] for c in bot_api.calls_to("approveChatJoinRequest")] == [42]
    assert statuses(database_url) == {42: "approved"}


async def test_a_request_again_after_a_decision_is_a_new_request(runtime, bot_api, db, managed, database_url):
    now = int(time.time())
    await handle(runtime, received(join_request(41, date=now - 3600)))
    with psycopg.connect(database_url, autocommit=True) as connection:  # decided half an hour ago
        connection.execute("UPDATE join_requests SET decided_at = now() - interval '30 minutes'")
    again = join_request(41, update_id=4100, date=now - 60)  # the user left and asked again
    await handle(runtime, received(again))
    await handle(runtime, received(again, receive_count=2))

    assert [c.params["user_id"] for c in bot_api.calls_to("approveChatJoinRequest")] == [41, 41]
    with psycopg.connect(database_url) as connection:
        requested = connection.execute(
            "SELECT extract(epoch FROM requested_at) FROM join_requests"
        ).fetchone()[0]
    assert int(requested) == now - 60


async def test_the_member_count_is_kept_with_its_history_and_moves_the_phase_by_the_groups_rule(
    runtime, bot_api, db, managed, settings
):
    await repository.set_rules(db, managed["id"], phase_rules={"monitoring_at_members": 100})
    bot_api.member_counts[CHAT] = 60
    await handle(runtime, received(GroupMaintenance(chat_id=CHAT, task="member_count")))
    assert (await group(db))["phase"] == "growth"

    bot_api.member_counts[CHAT] = 120
    await handle(runtime, received(GroupMaintenance(chat_id=CHAT, task="member_count")))

    row = await group(db)
    assert (row["phase"], row["member_count"]) == ("monitoring", 120) and row["phase_changed_at"] is not None
    history = await db.fetch_all("group_member_count_history", {"chat_id": CHAT, "limit": 10})
    assert [h["member_count"] for h in history] == [120, 60]

    from tests.api.public_api_support import public_api
    from tgops.api.api_keys import create_api_key

    key = await create_api_key(db, "t")
    async with public_api(settings) as api:
        listed = await api.client.get("/api/groups", headers={"X-API-Key": key.key})
    item = listed.json()["items"][0]
    assert item["phase"] == "monitoring" and item["phase_rules"] == {"monitoring_at_members": 100}
    assert item["monitoring_join_action"] == "hold"


async def test_requests_waiting_in_telegram_that_never_reached_us_are_reported(runtime, bot_api, db, managed):
    await repository.update_group(db, managed["id"], {"invite_link": "https://t.me/+abc"})
    await repository.set_rules(db, managed["id"], phase="monitoring")
    await handle(runtime, received(join_request(51)))  # held: one known pending request
    bot_api.pending_join_requests[CHAT] = 4

    await handle(runtime, received(GroupMaintenance(chat_id=CHAT, task="member_count")))

    row = await group(db)
    assert row["join_gap_pending"] == 3 and row["join_gap_detected_at"] is not None


async def test_inactive_members_are_previewed_first_then_removed_sparing_admins_and_allowed_users(
    runtime, bot_api, db, managed, database_url
):
    for user_id in (61, 62, 63, 64):
        await handle(runtime, received(member_joined(user_id)))
    await handle(runtime, received(group_message(65)))  # active now
    with psycopg.connect(database_url, autocommit=True) as connection:
        connection.execute("UPDATE group_members SET first_seen_at = now() - interval '40 days'")
        connection.execute(
            "UPDATE group_members SET last_active_at = now() - interval '40 days' WHERE user_id = 64"
        )
    bot_api.administrators[CHAT] = [62]
    bot_api.member_counts[CHAT] = 10
    await handle(runtime, received(GroupMaintenance(chat_id=CHAT, task="member_count")))
    await repository.set_rules(db, managed["id"], kick_rule={"inactive_days": 30, "allow_user_ids": [63]})
    client = bot_client(TOKEN, runtime.settings, runtime.redis(), db)

    preview = await maintenance.remove_inactive(db, client, CHAT)
    assert preview.preview and preview.removed == [61, 64] and bot_api.calls_to("banChatMember") == []
    assert preview.unknown == 5  # 10 members, 5 ever seen

    await repository.confirm_kick_rule(db, managed["id"])
    await handle(runtime, received(GroupMaintenance(chat_id=CHAT, task="kick_inactive")))

    assert sorted(c.params["user_id"] for c in bot_api.calls_to("banChatMember")) == [61, 64]
    assert all(c.params.get("only_if_banned") is True for c in bot_api.calls_to("unbanChatMember"))
    with psycopg.connect(database_url) as connection:
        removals = connection.execute(
            "SELECT user_id, preview, outcome, reason FROM group_removals ORDER BY id"
        ).fetchall()
    assert [(r[0], r[1], r[2]) for r in removals] == [
        (61, True, "preview"),
        (64, True, "preview"),
        (61, False, "removed"),
        (64, False, "removed"),
    ]
    assert all("30 days" in r[3] for r in removals)


async def test_the_bot_removed_from_a_group_deactivates_it(runtime, db, managed):
    await handle(runtime, received(member_joined(4242, status="kicked", update_type="my_chat_member")))
    row = await group(db)
    assert not row["is_active"] and "kicked" in row["last_failure_reason"]


async def test_group_tick_queues_due_maintenance_once_per_slot_and_sends_due_posts_once(
    runtime, bot_api, db, managed, database_url
):
    with psycopg.connect(database_url, autocommit=True) as connection:
        connection.execute(
            "INSERT INTO group_posts (chat_id, text, interval_minutes) VALUES (%s, 'Daily live list', 60)",
            (CHAT,),
        )
    first = await tick.run(runtime)
    second = await tick.run(runtime)

    assert first["posts"] == 1 and second["posts"] == 0
    posts = bot_api.delivered()
    assert len(posts) == 1 and posts[0].params["text"].startswith("Daily live list\n\nDBG:")
    jobs = [decode(body, GroupMaintenance) for body in runtime.queues().bodies("tgms_queue")]
    assert {(job.chat_id, job.task) for job in jobs} == {(CHAT, "member_count")}
    assert len(jobs) == 1  # the second tick's job has the first one's dedup id


async def test_the_webhook_asks_for_chat_member_and_join_request_updates(runtime, bot_api, db):
    client = bot_client(TOKEN, runtime.settings, runtime.redis(), db)

    assert await register_webhook(client, "https://example.com/api/webhooks/telegram", "s3cret")

    call = bot_api.calls_to("setWebhook")[0]
    assert {"chat_member", "chat_join_request", "message", "my_chat_member"} <= set(
        call.params["allowed_updates"]
    )
    assert call.params["secret_token"] == "s3cret"
