"""The broadcaster against a fake Bot API server over real HTTP: every active group once, the ledger
surviving redeliveries and cut-off runs, failures counted per group, migrations, deletions."""

from __future__ import annotations

import asyncio
from collections import Counter

import psycopg
import pytest
import redis

from tests.broadcast.conftest import add_groups, received
from tests.fakes.bot_api_server import error, kicked, migrated, too_many_requests
from tgops.broadcast import sender
from tgops.broadcast.consumer import handle
from tgops.broadcast.jobs import BroadcastJob, CallbackButton, PhotoContent, TextContent, UrlButton
from tgops.broadcast.messages import BroadcastContinue, BroadcastDelete
from tgops.messaging.envelopes import decode_any
from tgops.messaging.errors import InvalidMessage

GROUPS = [-1001, -1002, -1003, -1004, -1005]


def text_job(**fields) -> BroadcastJob:
    return BroadcastJob(content=TextContent(type="text", text="We are live"), **fields)


def sends_per_chat(bot_api) -> Counter:
    return Counter(call.chat_id for call in bot_api.delivered())


async def deliveries(db, job_id: str) -> dict[int, dict]:
    rows = await db.fetch_all("broadcast_status_counts", {"job_id": job_id})
    return {row["status"]: row["count"] for row in rows}


def forget_chat_spacing(redis_url: str) -> None:
    """Tests of one group's successive jobs need not wait out its 3 s spacing between them."""
    client = redis.Redis.from_url(redis_url)
    for key in client.scan_iter("tg:bot:*:chat:*"):
        client.delete(key)
    client.close()


async def fast_settings(runtime, **changes):
    runtime.settings = runtime.settings.model_copy(update={"broadcast_rate_per_sec": 20, **changes})


async def test_a_job_reaches_every_active_group_that_allows_it_once_with_buttons_and_a_debug_code(
    runtime, bot_api, db
):
    await fast_settings(runtime)
    await add_groups(db, GROUPS)
    await add_groups(db, [-2001], is_active=False)
    await add_groups(db, [-2002], final_message_allowed=False)
    buttons = [
        [
            UrlButton(text="JOIN LIVE", url="https://t.me/live"),
            CallbackButton(text="BAN", callback_data="ban:1"),
        ]
    ]
    job = text_job(buttons=buttons)

    await handle(runtime, received(job))

    assert sends_per_chat(bot_api) == Counter(dict.fromkeys(GROUPS, 1))
    call = bot_api.delivered()[0]
    assert call.params["text"].startswith("We are live\n\nDBG:")
    assert call.params["reply_markup"] == {
        "inline_keyboard": [
            [{"text": "JOIN LIVE", "url": "https://t.me/live"}, {"text": "BAN", "callback_data": "ban:1"}]
        ]
    }
    rows = await db.fetch_all("sent_messages_export", {"after_id": 0, "job_id": job.job_id, "limit": 100})
    codes = {row["debug_code"] for row in rows}
    assert (
        len(rows) == 5
        and len(codes) == 5
        and all(code.startswith("DBG:") and len(code) == 10 for code in codes)
    )
    assert {row["debug_code"] for row in rows} == {
        c.params["text"].rsplit("\n", 1)[1] for c in bot_api.delivered()
    }
    assert (await db.fetch_one("broadcast_job_get", {"job_id": job.job_id}))["status"] == "done"


async def test_a_photo_job_to_listed_chats_skips_inactive_groups_and_sends_unmanaged_chats(
    runtime, bot_api, db
):
    await fast_settings(runtime)
    await add_groups(db, [-3001])
    await add_groups(db, [-3002], is_active=False)
    job = BroadcastJob(
        content=PhotoContent(type="photo", photo_url="https://example.com/p.jpg", caption="Live now"),
        chat_ids=[-3001, -3002, 555],
    )

    await handle(runtime, received(job))

    assert sends_per_chat(bot_api) == Counter({-3001: 1, 555: 1})
    assert all(
        c.method == "sendPhoto" and c.params["caption"].startswith("Live now\n\nDBG:")
        for c in bot_api.delivered()
    )
    assert await deliveries(db, job.job_id) == {"sent": 2, "skipped": 1}


async def test_the_same_job_delivered_twice_sends_each_chat_once(runtime, bot_api, db):
    await fast_settings(runtime)
    await add_groups(db, GROUPS)
    job = text_job()

    await asyncio.gather(handle(runtime, received(job)), handle(runtime, received(job, receive_count=2)))
    await handle(runtime, received(job, receive_count=3))

    assert sends_per_chat(bot_api) == Counter(dict.fromkeys(GROUPS, 1))


async def test_a_run_out_of_budget_continues_in_a_fresh_message_and_resumes_where_it_stopped(
    runtime, bot_api, db
):
    await fast_settings(runtime, broadcast_rate_per_sec=5, broadcast_run_budget_sec=0.5)
    chats = [-4000 - n for n in range(8)]
    await add_groups(db, chats)
    job = text_job()

    await handle(runtime, received(job))
    first_run = len(bot_api.delivered())
    continuations = [
        decode_any(body, [BroadcastContinue]) for body in runtime.queues().bodies("group_message_queue")
    ]
    assert 0 < first_run < len(chats) and [c.job_id for c in continuations] == [job.job_id]

    runtime.settings = runtime.settings.model_copy(update={"broadcast_run_budget_sec": 30})
    await handle(runtime, received(continuations[0]))

    assert sends_per_chat(bot_api) == Counter(dict.fromkeys(chats, 1))


async def test_a_run_killed_mid_send_resumes_and_never_sends_a_chat_twice(runtime, bot_api, db, monkeypatch):
    await fast_settings(runtime, broadcast_rate_per_sec=10, broadcast_unconfirmed_after_sec=0.01)
    monkeypatch.setattr(sender, "LEASE_SEC", 0)  # the killed run's leases are free at once
    chats = [-5000 - n for n in range(10)]
    await add_groups(db, chats)
    job = text_job()

    killed = asyncio.create_task(handle(runtime, received(job)))
    while len(bot_api.delivered()) < 4:
        await asyncio.sleep(0.02)
    killed.cancel()  # the Lambda timed out somewhere in the middle of a send or a mark
    await asyncio.gather(killed, return_exceptions=True)
    await asyncio.sleep(0.05)

    await handle(runtime, received(job, receive_count=2))

    per_chat = sends_per_chat(bot_api)
    assert max(per_chat.values()) == 1
    counts = await deliveries(db, job.job_id)
    assert counts.get("sent", 0) + counts.get("unconfirmed", 0) == len(chats)
    assert counts.get("unconfirmed", 0) <= 1  # at most the one send the cancellation cut into
    assert counts["sent"] >= len(per_chat) - 1


async def test_a_group_failing_three_times_is_deactivated_with_the_reason_and_a_success_resets_the_count(
    runtime, bot_api, db, redis_url
):
    await fast_settings(runtime)
    await add_groups(db, [-6001, -6002])
    for _ in range(2):
        bot_api.fail_next(-6001, kicked())
        await handle(runtime, received(text_job()))
        forget_chat_spacing(redis_url)
    bot_api.fail_next(-6002, kicked())
    await handle(runtime, received(text_job()))  # -6002 fails once; -6001 succeeds: its count resets
    forget_chat_spacing(redis_url)
    group = await db.fetch_one("group_get_by_chat_id", {"chat_id": -6001})
    assert group["is_active"] and group["consecutive_failures"] == 0

    for _ in range(3):
        bot_api.fail_next(-6001, kicked())
        await handle(runtime, received(text_job()))
        forget_chat_spacing(redis_url)
    group = await db.fetch_one("group_get_by_chat_id", {"chat_id": -6001})
    assert not group["is_active"] and group["consecutive_failures"] == 3
    assert group["last_failure_reason"] == "Forbidden: bot was kicked from the supergroup chat"  # said once

    sent_before = sends_per_chat(bot_api)[-6001]
    await handle(runtime, received(text_job()))
    forget_chat_spacing(redis_url)
    assert sends_per_chat(bot_api)[-6001] == sent_before  # not sent to while inactive

    from tgops.groups import repository

    await repository.update_group(db, group["id"], {"is_active": True})
    await handle(runtime, received(text_job()))
    reactivated = await db.fetch_one("group_get_by_chat_id", {"chat_id": -6001})
    assert sends_per_chat(bot_api)[-6001] == sent_before + 1 and reactivated["consecutive_failures"] == 0


async def test_a_429_mid_job_is_waited_out_and_nothing_is_lost_a_content_error_blames_no_group(
    runtime, bot_api, db
):
    await fast_settings(runtime)
    await add_groups(db, GROUPS)
    bot_api.fail_next(-1002, too_many_requests(retry_after=1))
    bot_api.fail_next(-1003, error(400, "Bad Request: wrong file identifier/HTTP URL specified"))
    job = text_job()

    await handle(runtime, received(job))

    assert sends_per_chat(bot_api) == Counter({-1001: 1, -1002: 1, -1004: 1, -1005: 1})
    assert await deliveries(db, job.job_id) == {"sent": 4, "failed": 1}
    group = await db.fetch_one("group_get_by_chat_id", {"chat_id": -1003})
    assert group["consecutive_failures"] == 0 and group["is_active"]


async def test_a_migrated_group_is_sent_at_its_new_id_which_is_stored(runtime, bot_api, db, redis_url):
    await fast_settings(runtime)
    await add_groups(db, [-7001])
    bot_api.fail_next(-7001, migrated(-1007001))

    await handle(runtime, received(text_job()))

    assert sends_per_chat(bot_api) == Counter({-1007001: 1})
    assert await db.fetch_one("group_get_by_chat_id", {"chat_id": -1007001}) is not None
    forget_chat_spacing(redis_url)
    await handle(runtime, received(text_job()))
    assert sends_per_chat(bot_api) == Counter({-1007001: 2})


async def test_deleting_a_broadcast_gives_each_message_its_outcome(runtime, bot_api, db, database_url):
    await fast_settings(runtime)
    await add_groups(db, [-8001, -8002, -8003, -8004, -8005])
    job = text_job()
    await handle(runtime, received(job))
    with psycopg.connect(database_url, autocommit=True) as connection:
        connection.execute(
            "UPDATE sent_messages SET sent_at = now() - interval '49 hours' WHERE chat_id = -8003"
        )
        connection.execute("UPDATE sent_messages SET bot_key = 'another-bot' WHERE chat_id = -8004")
        by_hand = connection.execute("SELECT message_id FROM sent_messages WHERE chat_id = -8002").fetchone()[
            0
        ]
    bot_api.delete_by_hand(-8002, by_hand)
    bot_api.fail_next(-8001, error(400, "Bad Request: message can't be deleted for everyone"))

    await handle(runtime, received(BroadcastDelete(job_id=job.job_id)))
    await handle(runtime, received(BroadcastDelete(job_id=job.job_id)))  # twice: nothing is tried again

    rows = await db.fetch_all("sent_messages_export", {"after_id": 0, "job_id": job.job_id, "limit": 100})
    assert {row["chat_id"]: row["delete_outcome"] for row in rows} == {
        -8001: "no_rights",
        -8002: "already_deleted",
        -8003: "too_old",
        -8004: "wrong_bot",
        -8005: "deleted",
    }
    assert sorted(call.chat_id for call in bot_api.calls_to("deleteMessage")) == [-8005, -8002, -8001]


async def test_a_poison_message_fails_alone(runtime):
    with pytest.raises(InvalidMessage):
        await handle(runtime, received('{"kind": "broadcast", "content": {"type": "text"}}'))
    with pytest.raises(InvalidMessage):
        await handle(runtime, received(BroadcastContinue(job_id="never-queued")))


def test_a_poison_message_lands_in_the_dlq_without_blocking_its_batch(bot_settings, bot_api, database_url):
    import functools

    from tests.messaging.test_lambda_batch import event_from, failed_ids
    from tgops.messaging.lambda_batch import process_sqs_messages, run_in_lambda_loop
    from tgops.messaging.sqs import InMemoryQueues
    from tgops.messaging.topology import GROUP_MESSAGE
    from tgops.runtime import Runtime

    with psycopg.connect(database_url, autocommit=True) as connection:
        connection.execute("INSERT INTO managed_groups (chat_id) VALUES (-9001), (-9002)")
    runtime = Runtime(
        bot_settings.model_copy(update={"broadcast_rate_per_sec": 20}), queue_sender=InMemoryQueues()
    )
    poison = received('{"kind": "broadcast", "content": {"type": "text"}}', receive_count=3)
    good = received(text_job())

    response = process_sqs_messages(
        event_from([poison, good]), None, GROUP_MESSAGE, functools.partial(handle, runtime)
    )

    run_in_lambda_loop(runtime.close())
    assert failed_ids(response) == [poison.message_id]
    assert sends_per_chat(bot_api) == Counter({-9001: 1, -9002: 1})
    with psycopg.connect(database_url) as connection:
        reason = connection.execute(
            "SELECT reason FROM queue_message_failures WHERE message_id = %s", (poison.message_id,)
        ).fetchone()[0]
    assert "content.text" in reason
