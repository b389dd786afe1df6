"""The setup pipeline on real Postgres and Redis: dispatch (routing, once only), the runner through the real
MtprotoPool.call_on over the fake Telegram, and every error path of issue 17."""

from __future__ import annotations

import logging
from datetime import UTC, datetime, timedelta

import psycopg
import pytest
from pydantic import SecretStr
from telethon import errors
from telethon.tl import functions

from tests.fakes.telethon_setup import *  # noqa: F403
from tgops.accounts import dispatch
from tgops.accounts.runner import handle
from tgops.accounts.setup_tasks import ALL_TASKS, FAST_TASKS, RunSetupTask
from tgops.messaging.envelopes import decode
from tgops.messaging.sqs import InMemoryQueues, Received
from tgops.runtime import Runtime
from tgops.telegram.simulated import CHANGE_REQUESTS

PASSWORD = "payload-2fa-password"


@pytest.fixture
async def runtime(setup_settings):
    runtime = Runtime(setup_settings, queue_sender=InMemoryQueues())
    yield runtime
    await runtime.close()


async def run_sent(runtime, runner) -> dict[int, str]:
    """Run every message the dispatcher sent (and forget them): task id -> status after its run."""
    queues = runtime.queues()
    statuses = {}
    for sent in list(queues.sent):
        job = decode(sent.body, RunSetupTask)
        await handle(runtime, Received(sent.message_id, "receipt", sent.body, 1), runner=runner)
        statuses[job.task_id] = (await task(runtime, job.task_id))["status"]
    queues.sent.clear()
    return statuses


async def task(runtime, task_id):
    return await (await runtime.database()).fetch_one("setup_get_task", {"id": task_id})


async def tasks_of(runtime, account_id) -> dict[str, dict]:
    rows = await (await runtime.database()).fetch_all("setup_account_tasks", {"account_id": account_id})
    return {row["task_type"]: row for row in rows}


def change_count(telegram) -> int:
    names = {request.__name__ for request in CHANGE_REQUESTS}
    return sum(call.request in names for call in telegram.calls)


def make_due(database_url, *task_ids):
    with psycopg.connect(database_url, autocommit=True) as connection:
        connection.execute(
            "UPDATE mtproto_account_tasks SET retry_at = now() WHERE id = ANY(%s)", (list(task_ids),)
        )
        connection.execute("UPDATE mtproto_accounts SET cooldown_until = NULL")


async def test_dispatch_routes_by_type_and_never_queues_a_task_twice(
    runtime, action_accounts, add_accounts_probe
):
    accounts = await action_accounts(2)
    await add_accounts_probe()

    first = await dispatch.run(runtime)
    second = await dispatch.run(runtime)

    assert first == {"enabled": True, "created": 16, "enqueued": 16, "unsent": 0}
    assert second == {"enabled": True, "created": 0, "enqueued": 0, "unsent": 0}
    queues = runtime.queues()
    for queue, expected in (
        ("tg-setup-fast", set(FAST_TASKS)),
        ("tg-setup-media", set(ALL_TASKS) - set(FAST_TASKS)),
    ):
        jobs = [decode(body, RunSetupTask) for body in queues.bodies(queue)]
        assert {job.task_type for job in jobs} == expected
        assert {job.account_id for job in jobs} == set(accounts)  # never the probe account


@pytest.fixture
def add_accounts_probe(db, setup_settings):
    from tgops.accounts.fleet import AccountFleet
    from tgops.telegram.sessions import SessionCipher

    async def add():
        fleet = AccountFleet(db, SessionCipher.from_settings(setup_settings))
        probe = await fleet.add(phone="+15558000001", session="probe-session", probe=True)
        disabled = await fleet.add(phone="+15558000002", session="disabled-session", probe=False)
        await fleet.disable(str(disabled), "by hand")
        return probe, disabled

    return add


async def test_setup_off_dispatches_nothing(runtime, action_accounts):
    await action_accounts(1)
    runtime.settings = runtime.settings.model_copy(update={"setup_enabled": False})

    assert await dispatch.run(runtime) == {"enabled": False}
    assert runtime.queues().sent == []


async def test_one_task_per_account_and_type(runtime, action_accounts, database_url):
    [account_id] = await action_accounts(1)
    await dispatch.run(runtime)

    with psycopg.connect(database_url) as connection, pytest.raises(psycopg.errors.UniqueViolation):
        connection.execute(
            "INSERT INTO mtproto_account_tasks (account_id, task_type) VALUES (%s, 'update_name')",
            (account_id,),
        )


async def test_the_pipeline_brings_every_task_to_done_and_a_second_run_changes_nothing(
    runtime, action_accounts, make_runner, setup_telegram, database_url
):
    accounts = await action_accounts(3)
    runner = make_runner(setup_2fa_enable=True, setup_2fa_password=SecretStr(PASSWORD))
    await dispatch.run(runtime)

    statuses = await run_sent(runtime, runner)

    assert list(statuses.values()) == ["done"] * 24
    assert change_count(setup_telegram) == 24
    profile = setup_telegram.profiles[accounts[next(iter(accounts))]]
    assert profile.has_password and profile.first_name == "Ada" and len(profile.stories) == 2
    for row in (await tasks_of(runtime, next(iter(accounts)))).values():
        assert row["enqueued_at"] is None and row["attempts"] == 0
    assert (await tasks_of(runtime, next(iter(accounts))))["story_video"]["result_json"]["story_id"] == 2

    # A second full run (every task pending again, as after a reset): reads only, no change.
    with psycopg.connect(database_url, autocommit=True) as connection:
        connection.execute("UPDATE mtproto_account_tasks SET status = 'pending'")
    setup_telegram.calls.clear()
    await dispatch.run(runtime)
    assert list((await run_sent(runtime, runner)).values()) == ["done"] * 24
    assert change_count(setup_telegram) == 0 and setup_telegram.calls


async def test_flood_wait_cools_the_account_and_the_task_retries_when_it_ends(
    runtime, action_accounts, make_runner, setup_telegram, db
):
    [(account_id, session)] = (await action_accounts(1)).items()
    runner = make_runner()
    runtime.settings = runtime.settings.model_copy(
        update={"setup_tasks": ["update_name", "privacy_phone_hidden"]}
    )
    setup_telegram.fail_next(session, errors.FloodWaitError(request=None, capture=120))
    await dispatch.run(runtime)

    statuses = await run_sent(runtime, runner)

    name = (await tasks_of(runtime, account_id))["update_name"]
    assert sorted(statuses.values()) == ["retry", "retry"]  # the second one: the account rests, no call
    assert name["last_error_code"] == "FLOOD_WAIT" and name["attempts"] == 0
    assert timedelta(seconds=110) < name["retry_at"] - datetime.now(UTC) <= timedelta(seconds=120)
    account = await db.fetch_one("mtproto_get_account", {"id": account_id})
    assert account["cooling_down"] and account["last_error_code"] == "FLOOD_WAIT"
    assert len(setup_telegram.calls) == 1  # nothing was sent to the account while it cooled down
    assert await dispatch.run(runtime) == {"enabled": True, "created": 0, "enqueued": 0, "unsent": 0}


async def test_a_banned_account_is_disabled_and_its_task_fails_with_the_reason(
    runtime, action_accounts, make_runner, setup_telegram, db
):
    [(account_id, session)] = (await action_accounts(1)).items()
    runtime.settings = runtime.settings.model_copy(
        update={"setup_tasks": ["update_name", "privacy_phone_hidden"]}
    )
    setup_telegram.fail_next(session, errors.UserDeactivatedBanError(request=None))
    await dispatch.run(runtime)

    statuses = await run_sent(runtime, make_runner())

    tasks = await tasks_of(runtime, account_id)
    failed = [row for row in tasks.values() if row["status"] == "failed"]
    assert len(failed) == 1 and failed[0]["last_error_code"] == "USER_DEACTIVATED_BAN"
    assert "account disabled" in failed[0]["last_error"]
    assert sorted(statuses.values()) == [
        "failed",
        "pending",
    ]  # the other one is not run for a disabled account
    account = await db.fetch_one("mtproto_get_account", {"id": account_id})
    assert account["disabled_reason"] == "USER_DEACTIVATED_BAN"
    assert await dispatch.run(runtime) == {"enabled": True, "created": 0, "enqueued": 0, "unsent": 0}
    await db.execute("fleet_enable_account", {"id": account_id})  # signed in again, say
    assert (await dispatch.run(runtime))["enqueued"] == 1  # the task that never ran is queued again


async def test_peer_flood_rests_the_account_long_and_retries(
    runtime, action_accounts, make_runner, setup_telegram
):
    [(account_id, session)] = (await action_accounts(1)).items()
    runtime.settings = runtime.settings.model_copy(update={"setup_tasks": ["update_name"]})
    setup_telegram.fail_next(session, errors.PeerFloodError(request=None))
    await dispatch.run(runtime)

    await run_sent(runtime, make_runner())

    name = (await tasks_of(runtime, account_id))["update_name"]
    assert (name["status"], name["last_error_code"]) == ("retry", "PEER_FLOOD")
    assert name["retry_at"] - datetime.now(UTC) > timedelta(hours=23)


async def test_other_errors_back_off_60_300_900_3600_then_fail(
    runtime, action_accounts, make_runner, setup_telegram, database_url
):
    [(account_id, session)] = (await action_accounts(1)).items()
    runtime.settings = runtime.settings.model_copy(update={"setup_tasks": ["update_name"]})
    runner = make_runner()
    delays = []
    for _ in range(5):
        setup_telegram.fail_next(
            session, errors.RPCError(request=None, message="INTERNAL_SERVER_ERROR", code=500)
        )
        await dispatch.run(runtime)
        await run_sent(runtime, runner)
        row = (await tasks_of(runtime, account_id))["update_name"]
        if row["status"] == "retry":
            delays.append(round((row["retry_at"] - datetime.now(UTC)).total_seconds() / 10) * 10)
            make_due(database_url, row["id"])

    assert delays == [60, 300, 900, 3600]
    assert (row["status"], row["attempts"], row["last_error_code"]) == ("failed", 5, "INTERNAL_SERVER_ERROR")
    assert row["last_error"].startswith("gave up after 5 attempts")


async def test_missing_media_fail_the_task_with_a_reason_and_no_call(
    runtime, action_accounts, make_runner, setup_telegram
):
    [account_id] = await action_accounts(1)
    runtime.settings = runtime.settings.model_copy(update={"setup_tasks": ["story_image"]})
    await dispatch.run(runtime)

    await run_sent(runtime, make_runner(setup_story_image="absent.jpg"))

    row = (await tasks_of(runtime, account_id))["story_image"]
    assert (row["status"], row["last_error_code"]) == ("failed", "MEDIA_UNAVAILABLE")
    assert setup_telegram.calls == []


async def test_no_password_or_session_in_any_log_line_or_error(
    runtime, action_accounts, make_runner, setup_telegram, caplog, db
):
    caplog.set_level(logging.DEBUG)
    accounts = await action_accounts(2)
    runtime.settings = runtime.settings.model_copy(update={"setup_tasks": ["ensure_2fa", "update_name"]})
    await dispatch.run(runtime)
    with psycopg.connect(runtime.settings.database_url, autocommit=True) as connection:
        connection.execute(
            "UPDATE mtproto_account_tasks SET payload_json = %s",
            (psycopg.types.json.Jsonb({"password": PASSWORD}),),
        )
    first, second = accounts.values()
    setup_telegram.fail_next(second, errors.AuthKeyUnregisteredError(request=None))

    await run_sent(runtime, make_runner(setup_2fa_enable=True))

    rows = [row for account_id in accounts for row in (await tasks_of(runtime, account_id)).values()]
    stored = " ".join(f"{row['last_error']} {row['result_json']}" for row in rows)
    for secret in (PASSWORD, first, second):
        assert secret not in caplog.text and secret not in stored
    assert setup_telegram.profiles[first].has_password
    assert any(
        call.request == functions.account.UpdatePasswordSettingsRequest.__name__
        for call in setup_telegram.calls
    )
