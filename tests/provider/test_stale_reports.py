"""Issue 16 items 5 and 6, with seed-shaped reports (no lease_version): a done is a fact, applied exactly
once even after a failed; a versionless report never finalises a task as failed while a newer lease is
live; and the one rule COMMIT follows when the reserve lock is no longer this task's."""

from __future__ import annotations

import datetime as dt

from tests.provider.conftest import fetch
from tests.provider.test_api import BASE, expire_lease, leased_task, order_row, task_row
from tgops.cache import keys

TODAY = dt.datetime.now(dt.UTC).date


def account_of(database_url, task_id) -> int:
    [[account_id]] = fetch(
        database_url, "SELECT telegram_account_id FROM telegram_tasks WHERE id = %s", (task_id,)
    )
    return account_id


async def test_a_late_versionless_failure_does_not_finalise_the_new_lease_and_its_done_counts(
    api, database_url, runtime, redis_client
):
    task = await leased_task(api, database_url, runtime, remains=2)
    expire_lease(database_url, task["task_id"])
    [again] = (await api.post(f"{BASE}/tasks/pull", json={"limit": 10})).json()["tasks"]
    assert (again["task_id"], again["lease_version"]) == (task["task_id"], 2)
    account_id = account_of(database_url, task["task_id"])

    stale = await api.post(
        f"{BASE}/tasks/report", json={"task_id": task["task_id"], "state": "failed", "error": "timeout"}
    )
    done = await api.post(f"{BASE}/tasks/report", json={"task_id": task["task_id"], "state": "done"})

    assert stale.status_code == 409 and "lease_version" in stale.json()["error"]
    assert done.json() == {"ok": True}
    assert task_row(database_url, task["task_id"])["status"] == "done"
    assert order_row(database_url, task["order_id"]) == (1, "in_progress")
    assert await redis_client.get(keys.daily_cap("subscribe", account_id, TODAY())) == "1"


async def test_a_done_after_a_failed_for_the_same_task_is_applied_exactly_once(
    api, database_url, runtime, redis_client
):
    task = await leased_task(api, database_url, runtime, remains=2)
    account_id = account_of(database_url, task["task_id"])
    failed = await api.post(f"{BASE}/tasks/report", json={"task_id": task["task_id"], "state": "failed"})
    assert failed.json() == {"ok": True} and task_row(database_url, task["task_id"])["status"] == "failed"

    first = await api.post(f"{BASE}/tasks/report", json={"task_id": task["task_id"], "state": "done"})
    second = await api.post(f"{BASE}/tasks/report", json={"task_id": task["task_id"], "state": "done"})

    assert first.json() == {"ok": True} and second.json() == {"ok": True}
    assert task_row(database_url, task["task_id"])["status"] == "done"
    assert order_row(database_url, task["order_id"]) == (1, "in_progress")
    assert await redis_client.get(keys.daily_cap("subscribe", account_id, TODAY())) == "1"
    assert await redis_client.get(keys.link_state(task["link_hash"], account_id)) == "subscribed"


async def test_a_versionless_failure_of_the_only_lease_still_applies(api, database_url, runtime):
    task = await leased_task(api, database_url, runtime, remains=2)

    response = await api.post(f"{BASE}/tasks/report", json={"task_id": task["task_id"], "state": "failed"})

    assert response.json() == {"ok": True}
    assert task_row(database_url, task["task_id"])["status"] == "failed"


async def test_a_done_whose_reservation_another_task_holds_counts_in_the_order_and_charges_nothing(
    api, database_url, runtime, redis_client
):
    """COMMIT's rule (16.6): it charges a success when the reserve lock is this task's or nobody's (it
    expired: no other reservation exists, so nothing is charged twice); while another task holds it,
    COMMIT charges nothing and leaves that lock. The done is still a fact: the order counts it."""
    task = await leased_task(api, database_url, runtime)
    account_id = account_of(database_url, task["task_id"])
    lock = keys.reserve_lock("subscribe", account_id)
    await redis_client.set(lock, "another-task")

    response = await api.post(f"{BASE}/tasks/report", json={"task_id": task["task_id"], "state": "done"})

    assert response.json() == {"ok": True}
    row = task_row(database_url, task["task_id"])
    assert (row["status"], row["result"]["reservation_lost"]) == ("done", True)
    assert order_row(database_url, task["order_id"]) == (1, "in_progress")
    assert await redis_client.get(lock) == "another-task"
    assert await redis_client.get(keys.daily_cap("subscribe", account_id, TODAY())) is None
