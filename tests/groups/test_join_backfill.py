"""Backfill of missed join requests through the group's admin account: detected on tgms_queue, listed on
tg-inspect through the real MtprotoPool (real Postgres and Redis) over the fake Telethon boundary, which
raises Telethon's real errors; each request recorded once and decided through the paced action queue."""

from __future__ import annotations

from collections import Counter

import psycopg
import pytest
from pydantic import SecretStr
from telethon import errors
from telethon.tl import functions, types

from tests.broadcast.conftest import add_groups, received
from tests.fakes.mtproto_pool import *  # noqa: F403 -- fixtures: make_pool, add_accounts, telegram...
from tests.groups.test_group_management import join_request
from tgops.groups import repository
from tgops.groups.consumer import handle as group_handle
from tgops.groups.messages import BackfillJoinRequests, GroupMaintenance
from tgops.messaging.envelopes import decode
from tgops.messaging.sqs import InMemoryQueues
from tgops.runtime import Runtime
from tgops.telegram.simulated import SimulatedTelegram, supergroup
from tgops.workers.inspect_queue import handle as inspect_handle

CHANNEL = 777
CHAT = -(10**12 + CHANNEL)
INVITE = "adminhash"
REQUESTERS = [(5001, 1_700_000_500), (5002, 1_700_000_400), (5003, 1_700_000_300), (5004, 1_700_000_200)]
IMPORTERS = "GetChatInviteImportersRequest"


@pytest.fixture
async def runtime(bot_settings):
    settings = bot_settings.model_copy(update={"group_backfill_page_size": 2})
    runtime = Runtime(settings, queue_sender=InMemoryQueues())
    yield runtime
    await runtime.close()


@pytest.fixture
async def admin(db, add_accounts, telegram, bot_api):
    """A managed group in growth with an invite link, a gap of 4 in Telegram, and an admin account."""
    (account_id,) = await add_accounts(1, probe=False)
    await add_groups(db, [CHAT])
    group = await db.fetch_one("group_get_by_chat_id", {"chat_id": CHAT})
    await repository.update_group(db, group["id"], {"invite_link": f"https://t.me/+{INVITE}"})
    await repository.set_rules(db, group["id"], decision_interval_sec=0.05, admin_account_id=account_id)
    telegram._invites[INVITE] = types.ChatInviteAlready(chat=supergroup(CHANNEL, title="Live"))
    telegram.pending_join_requests[CHANNEL] = list(REQUESTERS)
    bot_api.pending_join_requests[CHAT] = len(REQUESTERS)
    return account_id


def backfills(runtime) -> list:
    return [sent for sent in runtime.queues().sent if sent.queue == "tg-inspect"]


async def detect(runtime) -> None:
    await group_handle(runtime, received(GroupMaintenance(chat_id=CHAT, task="member_count")))


async def decide_queued(runtime) -> None:
    """What the group consumer does with the `decide` jobs the backfill queued."""
    for sent in [sent for sent in runtime.queues().sent if sent.queue == "tgms_queue"]:
        runtime.queues().sent.remove(sent)
        await group_handle(runtime, received(sent.body))


def join_rows(database_url) -> dict[int, tuple[str, str]]:
    with psycopg.connect(database_url) as connection:
        rows = connection.execute(
            "SELECT user_id, status, source FROM join_requests WHERE chat_id = %s", (CHAT,)
        )
        return {user_id: (status, source) for user_id, status, source in rows}


async def group_row(db) -> dict:
    return await db.fetch_one("group_get_by_chat_id", {"chat_id": CHAT})


def cooldown_until(database_url, account_id):
    with psycopg.connect(database_url) as connection:
        query = "SELECT cooldown_until FROM mtproto_accounts WHERE id = %s"
        return connection.execute(query, (account_id,)).fetchone()[0]


def importer_calls(telegram) -> int:
    return sum(call.request == IMPORTERS for call in telegram.calls)


async def test_a_gap_is_backfilled_through_the_admin_account_each_request_recorded_and_decided_once(
    runtime, db, admin, make_pool, telegram, bot_api, database_url, sessions
):
    await group_handle(runtime, received(join_request(5002, chat_id=CHAT)))  # one did reach the webhook
    await decide_queued(runtime)
    await detect(runtime)
    (queued,) = backfills(runtime)
    assert decode(queued.body, BackfillJoinRequests).account_id == admin

    pool = make_pool()
    await inspect_handle(runtime, received(queued.body), pool=pool)
    await inspect_handle(runtime, received(queued.body, receive_count=2), pool=pool)  # SQS redelivery
    await decide_queued(runtime)

    assert join_rows(database_url) == {
        5001: ("approved", "backfill"),
        5002: ("approved", "webhook"),
        5003: ("approved", "backfill"),
        5004: ("approved", "backfill"),
    }
    approvals = Counter(call.params["user_id"] for call in bot_api.calls_to("approveChatJoinRequest"))
    assert approvals == Counter({5001: 1, 5002: 1, 5003: 1, 5004: 1})
    assert importer_calls(telegram) == 2 * 3  # 4 requests in pages of 2 (and an empty last one), twice
    assert set(telegram.sessions_called()) == {sessions[admin]}  # only the admin account
    row = await group_row(db)
    assert row["join_backfill_at"] is not None and row["join_backfill_error"] is None
    assert row["join_backfill_recorded"] == 0  # the redelivery found every request already recorded


async def test_the_backfill_is_requested_once_per_interval(runtime, db, admin):
    await detect(runtime)
    await detect(runtime)
    assert len(backfills(runtime)) == 1


async def test_without_an_admin_account_the_gap_is_only_reported(runtime, db, admin):
    group = await group_row(db)
    await repository.set_rules(db, group["id"], admin_account_id=None)

    await detect(runtime)

    assert backfills(runtime) == []
    row = await group_row(db)
    assert row["join_gap_pending"] == len(REQUESTERS) and row["join_gap_detected_at"] is not None


async def test_a_flood_wait_cools_the_account_down_and_the_backfill_goes_on_later_from_the_same_page(
    runtime, db, admin, make_pool, telegram, database_url
):
    answered = Counter()

    def flood_on_the_second_page(session, request):
        if isinstance(request, functions.messages.GetChatInviteImportersRequest):
            answered[session] += 1
            if answered[session] == 2:
                return errors.FloodWaitError(request=request, capture=120)
        return None

    telegram.inject = flood_on_the_second_page
    await detect(runtime)
    (first,) = backfills(runtime)
    pool = make_pool()

    await inspect_handle(runtime, received(first.body), pool=pool)

    assert set(join_rows(database_url)) == {5001, 5002}
    assert cooldown_until(database_url, admin) is not None
    continuation = backfills(runtime)[-1]
    job = decode(continuation.body, BackfillJoinRequests)
    assert continuation.delay_sec == 120 and job.offset_user_id == 5002 and job.tries == 0

    # Delivered before the rest is over: no call reaches Telegram, it waits again.
    calls = importer_calls(telegram)
    await inspect_handle(runtime, received(continuation.body), pool=pool)
    assert importer_calls(telegram) == calls
    waiting = backfills(runtime)[-1]
    assert waiting.delay_sec > 60 and decode(waiting.body, BackfillJoinRequests).offset_user_id == 5002

    with psycopg.connect(database_url, autocommit=True) as connection:
        connection.execute("UPDATE mtproto_accounts SET cooldown_until = NULL")
    await inspect_handle(runtime, received(waiting.body), pool=make_pool())

    assert set(join_rows(database_url)) == {5001, 5002, 5003, 5004}
    row = await group_row(db)
    assert row["join_backfill_recorded"] == 4 and row["join_backfill_error"] is None


async def test_chat_admin_required_is_reported_on_the_group_and_not_retried_until_it_may_have_changed(
    runtime, db, admin, make_pool, telegram, database_url, add_accounts
):
    def not_an_admin(session, request):
        if isinstance(request, functions.messages.GetChatInviteImportersRequest):
            return errors.ChatAdminRequiredError(request=request)
        return None

    telegram.inject = not_an_admin
    await detect(runtime)
    (queued,) = backfills(runtime)

    await inspect_handle(runtime, received(queued.body), pool=make_pool())

    assert len(backfills(runtime)) == 1  # no continuation: not retried
    row = await group_row(db)
    assert row["join_backfill_error"].startswith("CHAT_ADMIN_REQUIRED")
    assert cooldown_until(database_url, admin) is None  # not the account's fault
    assert join_rows(database_url) == {}

    with psycopg.connect(database_url, autocommit=True) as connection:
        connection.execute(
            "UPDATE managed_groups SET join_backfill_requested_at = now() - interval '2 hours'"
        )
    await detect(runtime)
    assert len(backfills(runtime)) == 1  # refused within the refusal retry: not asked again

    (other,) = await add_accounts(1, probe=False)
    await repository.set_rules(db, row["id"], admin_account_id=other)
    assert (await group_row(db))["join_backfill_error"] is None  # another account starts afresh
    await detect(runtime)
    assert len(backfills(runtime)) == 2


async def test_an_invite_link_of_another_chat_is_refused_and_nothing_recorded(
    runtime, db, admin, make_pool, telegram, database_url
):
    telegram._invites[INVITE] = types.ChatInviteAlready(chat=supergroup(CHANNEL + 1, title="Other"))
    await detect(runtime)

    await inspect_handle(runtime, received(backfills(runtime)[0].body), pool=make_pool())

    assert (await group_row(db))["join_backfill_error"].startswith("CHAT_MISMATCH")
    assert importer_calls(telegram) == 0 and join_rows(database_url) == {}


async def test_the_simulated_telegram_of_tgops_dev_answers_a_backfill(
    runtime, db, admin, make_pool, database_url
):
    group = await group_row(db)
    await repository.update_group(db, group["id"], {"invite_link": f"https://t.me/+member-{CHANNEL}"})
    simulated = SimulatedTelegram(latency_sec=(0.0, 0.0))
    await detect(runtime)
    pool = make_pool()
    pool._factory = simulated.factory

    await inspect_handle(runtime, received(backfills(runtime)[0].body), pool=pool)

    expected = CHANNEL % 4 + 2  # the simulated requesters of the channel
    rows = join_rows(database_url)
    assert len(rows) == expected and {source for _, source in rows.values()} == {"backfill"}
    assert (await group_row(db))["join_backfill_recorded"] == expected


async def test_without_a_bot_token_the_gap_is_not_checked_and_the_member_count_job_still_completes(
    settings, db, database_url
):
    no_token = settings.model_copy(update={"telegram_bot_token": SecretStr("")})
    dry_run = Runtime(no_token, queue_sender=InMemoryQueues())  # every Bot API call goes to the outbox
    await add_groups(db, [CHAT])
    group = await group_row(db)
    await repository.update_group(db, group["id"], {"invite_link": f"https://t.me/+{INVITE}"})
    try:
        await group_handle(dry_run, received(GroupMaintenance(chat_id=CHAT, task="member_count")))
    finally:
        await dry_run.close()

    row = await group_row(db)
    assert row["member_count_at"] is not None and row["join_gap_detected_at"] is None
    assert backfills(dry_run) == []


async def test_an_unknown_error_is_retried_as_a_counted_try_and_reported_after_the_last(
    runtime, db, admin, make_pool, telegram, database_url
):
    def unknown(session, request):
        if isinstance(request, functions.messages.GetChatInviteImportersRequest):
            return errors.RPCError(request=request, message="SOMETHING_ODD", code=400)
        return None

    telegram.inject = unknown
    first = BackfillJoinRequests(chat_id=CHAT, account_id=admin)
    last = BackfillJoinRequests(
        chat_id=CHAT, account_id=admin, tries=runtime.settings.group_backfill_max_tries - 1
    )

    await inspect_handle(runtime, received(first), pool=make_pool())
    retried = decode(backfills(runtime)[-1].body, BackfillJoinRequests)
    with psycopg.connect(database_url, autocommit=True) as connection:
        connection.execute("UPDATE mtproto_accounts SET cooldown_until = NULL")
    await inspect_handle(runtime, received(last), pool=make_pool())

    assert retried.tries == 1 and (await group_row(db))["join_backfill_error"].startswith(
        "gave up after 5 tries"
    )
    assert len(backfills(runtime)) == 1  # the last try sent no continuation
