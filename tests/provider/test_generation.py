"""Task generation from due orders, on real Postgres and Redis."""

from __future__ import annotations

import asyncio

from typer.testing import CliRunner

from tests.provider.conftest import add_accounts, add_order, fetch
from tgops.cache import keys
from tgops.cli import app as cli
from tgops.db.database import Database
from tgops.provider.generation import generate_tasks


def tasks(database_url) -> list[tuple]:
    return fetch(
        database_url,
        "SELECT id, order_id, action, telegram_account_id, per_call, status FROM telegram_tasks"
        " ORDER BY order_id, id",
    )


def make_due(database_url) -> None:
    fetch(database_url, "UPDATE provider_orders SET next_run_at = now() - interval '1 second' RETURNING id")


async def test_one_task_per_due_order_with_a_reserved_account(db, database_url, settings, redis_client):
    add_accounts(database_url, 5)
    due = add_order(database_url, remains=10, interval_seconds=300)
    add_order(database_url, remains=10, due=False)
    add_order(database_url, remains=0)
    add_order(database_url, remains=10, status="validating")
    [[before]] = fetch(database_url, "SELECT next_run_at FROM provider_orders WHERE id = %s", (due,))

    result = await generate_tasks(db, redis_client, settings, limit=100)

    [(task_id, order_id, action, account_id, per_call, status)] = tasks(database_url)
    assert (order_id, action, per_call, status) == (due, "subscribe", 1, "queued")
    assert (result.orders, result.created) == (1, 1)
    assert await redis_client.get(keys.reserve_lock("subscribe", account_id)) == task_id
    sql = "SELECT next_run_at, status FROM provider_orders WHERE id = %s"
    [[after, order_status]] = fetch(database_url, sql, (due,))
    assert (after - before).total_seconds() == 300
    assert order_status == "in_progress"
    # Reserving consumed nothing.
    assert await redis_client.get(keys.cooldown("subscribe", account_id)) is None


async def test_never_more_open_work_than_remains(db, database_url, settings, redis_client):
    add_accounts(database_url, 10)
    order_id = add_order(database_url, remains=3, per_call=2)

    for _ in range(4):
        await generate_tasks(db, redis_client, settings, limit=100)
        make_due(database_url)

    assert [(row[1], row[4]) for row in tasks(database_url)] == [(order_id, 2), (order_id, 1)]


async def test_an_account_with_an_open_task_for_the_action_is_not_chosen_again(
    db, database_url, settings, redis_client
):
    add_accounts(database_url, 2)
    for n in range(3):
        add_order(database_url, remains=5, link=f"https://t.me/channel{n}")

    result = await generate_tasks(db, redis_client, settings, limit=100)

    accounts = [row[3] for row in tasks(database_url)]
    assert (result.created, result.no_account) == (2, 1)
    assert len(set(accounts)) == 2


async def test_no_task_when_every_account_is_cooling_down(db, database_url, settings, redis_client):
    [account_id] = add_accounts(database_url, 1)
    order_id = add_order(database_url, remains=5)
    await redis_client.set(keys.cooldown("subscribe", account_id), "1", ex=60)

    result = await generate_tasks(db, redis_client, settings, limit=100)

    assert (result.created, result.no_account) == (0, 1)
    assert tasks(database_url) == []
    [[due_later]] = fetch(
        database_url, "SELECT next_run_at > now() FROM provider_orders WHERE id = %s", (order_id,)
    )
    assert due_later


async def test_two_generators_at_once_create_no_duplicates(database_url, settings, redis_client):
    add_accounts(database_url, 120)
    for n in range(100):
        add_order(database_url, remains=1, link=f"https://t.me/c{n}")
    first, second = await Database.connect(database_url), await Database.connect(database_url)
    try:
        results = await asyncio.gather(
            generate_tasks(first, redis_client, settings, limit=1000),
            generate_tasks(second, redis_client, settings, limit=1000),
        )
    finally:
        await first.close()
        await second.close()

    rows = tasks(database_url)
    assert sum(result.created for result in results) == len(rows) == 100
    assert len({row[1] for row in rows}) == 100  # one task per order
    assert len({row[3] for row in rows}) == 100  # never one account twice for one action
    for task_id, _, action, account_id, *_ in rows:
        assert await redis_client.get(keys.reserve_lock(action, account_id)) == task_id


def test_tasks_generate_command(database_url, settings):
    add_accounts(database_url, 2)
    add_order(database_url, remains=4)
    add_order(database_url, remains=4, link="https://t.me/other")

    result = CliRunner().invoke(cli, ["tasks", "generate", "--limit", "1"])

    assert result.exit_code == 0, result.output
    assert '"created": 1' in result.stdout
    assert len(tasks(database_url)) == 1
