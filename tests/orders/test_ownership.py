"""Who owns an order's fields (ARCHITECTURE.md): the panel owns link, quantity, service and cancellation;
tgops owns the verdict, start count, remains and execution status once the order has started. A poll
never overwrites what is ours."""

from __future__ import annotations

import psycopg


async def stored(db, remote_order_id):
    return await db.fetch_one("provider_order_by_remote_id", {"remote_order_id": remote_order_id})


def set_order(database_url: str, remote_order_id: int, **columns) -> None:
    assignments = ", ".join(f"{column} = %s" for column in columns)
    with psycopg.connect(database_url, autocommit=True) as connection:
        connection.execute(
            f"UPDATE provider_orders SET {assignments} WHERE remote_order_id = %s",
            (*columns.values(), remote_order_id),
        )


async def test_a_poll_never_raises_remains_that_reports_lowered(panel, poller, db, database_url):
    order_id = panel.place_order("t.me/alpha", quantity=10, status="in_progress")
    await poller.poll()
    set_order(database_url, order_id, remains=4)  # six done reports were applied

    await poller.poll()  # the panel still says 10

    assert (await stored(db, order_id))["remains"] == 4


async def test_a_poll_never_moves_a_completed_order_back_to_in_progress(panel, poller, db, database_url):
    order_id = panel.place_order("t.me/alpha", quantity=10, status="in_progress")
    await poller.poll()
    set_order(database_url, order_id, remains=0, status="completed")

    await poller.poll()  # the panel has not heard yet: it still lists the order in_progress

    row = await stored(db, order_id)
    assert (row["status"], row["remains"]) == ("completed", 0)


async def test_an_order_first_polled_as_executing_is_due_at_once(panel, poller, db, settings, redis):
    order_id = panel.place_order("t.me/alpha", quantity=10, status="in_progress")

    await poller.poll()

    row = await stored(db, order_id)
    assert row["next_run_at"] is not None
    due = await db.fetch_all("lock_due_orders", {"limit": 10})
    assert [order["id"] for order in due] == [row["id"]]


async def test_the_panel_owns_link_quantity_and_service(panel, poller, db):
    order_id = panel.place_order("t.me/alpha", quantity=10)
    await poller.poll()
    panel.orders[order_id] |= {"link": "t.me/beta", "quantity": 12, "service_id": 3}

    await poller.poll()

    row = await stored(db, order_id)
    assert (row["link"], row["quantity"], row["remote_service_id"]) == ("https://t.me/beta", 12, 3)
