"""The setup runner and an account's cooldown: a task of a cooling account is not attempted and retries at
the moment the cooldown ends (not a rounded second later), whether the runner learns of the cooldown from
Postgres, from the pool while the task waited for the account, or from the FLOOD_WAIT its own call got.
Real Postgres and Redis, the real pool over the fake Telegram."""

from __future__ import annotations

import asyncio

import psycopg
from telethon import errors

from tests.fakes.telethon_setup import *  # noqa: F403


async def tasks_of(db, account_id: int, *task_types: str) -> list[int]:
    await db.execute("setup_upsert_tasks", {"task_types": list(task_types)})
    rows = await db.fetch_all("setup_account_tasks", {"account_id": account_id})
    by_type = {row["task_type"]: row["id"] for row in rows}
    return [by_type[task_type] for task_type in task_types]


async def retry_and_cooldown_end(db, task_id: int, account_id: int):
    task = await db.fetch_one("setup_get_task", {"id": task_id})
    account = await db.fetch_one("mtproto_get_account", {"id": account_id})
    return task, account["cooldown_until"]


async def test_a_task_of_a_cooling_account_retries_when_the_cooldown_ends_without_a_call(
    action_accounts, make_runner, setup_telegram, db, database_url
):
    [account_id] = await action_accounts(1)
    [task_id] = await tasks_of(db, account_id, "update_name")
    with psycopg.connect(database_url, autocommit=True) as connection:
        connection.execute(
            "UPDATE mtproto_accounts SET cooldown_until = now() + interval '90.4 seconds' WHERE id = %s",
            (account_id,),
        )

    status = await make_runner().run(task_id)

    task, cooldown_until = await retry_and_cooldown_end(db, task_id, account_id)
    assert (status, task["status"], task["attempts"]) == ("retry", "retry", 0)
    assert task["retry_at"] == cooldown_until
    assert setup_telegram.calls == []


async def test_a_flood_wait_and_the_tasks_waiting_behind_it_all_retry_when_the_cooldown_ends(
    action_accounts, make_runner, setup_telegram, db
):
    [(account_id, session)] = (await action_accounts(1)).items()
    task_ids = await tasks_of(
        db, account_id, "update_name", "privacy_phone_hidden", "privacy_last_seen_everybody"
    )
    setup_telegram.fail_next(session, errors.FloodWaitError(request=None, capture=120))
    runner = make_runner()

    statuses = await asyncio.gather(*(runner.run(task_id) for task_id in task_ids))

    assert statuses == ["retry"] * 3
    assert len(setup_telegram.calls) == 1  # the two waiting behind it never reached Telegram
    for task_id in task_ids:
        task, cooldown_until = await retry_and_cooldown_end(db, task_id, account_id)
        assert (task["status"], task["attempts"]) == ("retry", 0)
        assert task["retry_at"] == cooldown_until
