"""The provider API end to end: seed 002's shapes, auth, bad input, idempotent reports."""

from __future__ import annotations

import datetime as dt

import pytest

from tests.provider.conftest import add_accounts, add_order, fetch
from tgops.cache import keys
from tgops.provider import claims
from tgops.provider.actions import link_hash, rules_for
from tgops.provider.generation import generate_tasks
from tgops.runtime import Runtime

LINK = "https://t.me/channel"
ENDPOINTS = ("/accounts/sync", "/tasks/pull", "/tasks/report")
BASE = "/api/provider/telegram"


async def leased_task(api, database_url, runtime, *, remains=2, per_call=1, action="subscribe") -> dict:
    add_accounts(database_url, 3)
    order_id = add_order(database_url, remains=remains, per_call=per_call, action=action)
    await generate_tasks(await runtime.database(), runtime.redis(), runtime.settings, limit=10)
    response = await api.post(f"{BASE}/tasks/pull", json={"limit": 10})
    [task] = response.json()["tasks"]
    assert task["order_id"] == order_id
    return task


def task_row(database_url, task_id) -> dict:
    [row] = fetch(
        database_url,
        "SELECT status, attempt, lease_version, result, provider_task_id FROM telegram_tasks WHERE id = %s",
        (task_id,),
    )
    return dict(zip(("status", "attempt", "lease_version", "result", "provider_task_id"), row))


def order_row(database_url, order_id) -> tuple:
    return fetch(database_url, "SELECT remains, status FROM provider_orders WHERE id = %s", (order_id,))[0]


def expire_lease(database_url, task_id) -> None:
    fetch(
        database_url,
        "UPDATE telegram_tasks SET leased_until = now() - interval '1 second',"
        " available_at = now() - interval '1 second' WHERE id = %s RETURNING id",
        (task_id,),
    )


@pytest.mark.parametrize("path", ENDPOINTS)
@pytest.mark.parametrize("headers", [{}, {"X-Provider-Token": "wrong"}, {"X-Provider-Token": ""}])
async def test_missing_or_wrong_token_is_401(api, path, headers):
    api.headers.pop("X-Provider-Token")
    response = await api.post(f"{BASE}{path}", json={"limit": 1, "accounts": []}, headers=headers)
    assert response.status_code == 401
    assert "X-Provider-Token" in response.json()["detail"]


async def test_accounts_sync_upserts_and_reports_bad_items(api, database_url):
    first = await api.post(
        f"{BASE}/accounts/sync",
        json={
            "accounts": [
                {"provider_account_id": "ext_123", "phone": "+1234567890", "is_active": True, "meta": {}},
                {"provider_account_id": "ext_124", "phone": "+1234567891"},
            ]
        },
    )
    second = await api.post(
        f"{BASE}/accounts/sync",
        json={
            "accounts": [
                {"provider_account_id": "ext_123", "phone": "+1999", "is_active": False, "meta": {"dc": 2}},
                {"phone": "+1000"},
                "not an object",
            ]
        },
    )

    assert first.status_code == 200
    assert first.json() == {"ok": True, "synced": 2, "errors": []}
    body = second.json()
    assert body["ok"] is True and body["synced"] == 1
    assert [error["index"] for error in body["errors"]] == [1, 2]
    assert "provider_account_id" in body["errors"][0]["error"]
    rows = fetch(
        database_url, "SELECT provider_account_id, phone, is_active, meta FROM telegram_accounts ORDER BY 1"
    )
    assert rows == [("ext_123", "+1999", False, {"dc": 2}), ("ext_124", "+1234567891", True, {})]


async def test_accounts_sync_refuses_more_than_1000(api, database_url):
    accounts = [{"provider_account_id": f"ext_{n}"} for n in range(1001)]
    response = await api.post(f"{BASE}/accounts/sync", json={"accounts": accounts})
    assert response.status_code == 400
    assert "1000" in response.json()["error"]
    assert fetch(database_url, "SELECT count(*) FROM telegram_accounts") == [(0,)]


async def test_pull_answers_the_seed_shape_and_leases(api, database_url, runtime):
    task = await leased_task(api, database_url, runtime)

    assert set(task) >= {
        "task_id",
        "order_id",
        "action",
        "link",
        "account",
        "per_call",
        "post_id",
        "link_hash",
        "attempt",
        "lease_version",
    }
    assert len(task["task_id"]) == 26
    assert task["action"] == "subscribe" and task["link"] == LINK and task["link_hash"] == link_hash(LINK)
    assert task["account"]["provider_account_id"].startswith("ext_") and task["account"]["phone"].startswith(
        "+1555"
    )
    assert (task["per_call"], task["post_id"], task["attempt"], task["lease_version"]) == (1, None, 0, 1)
    row = task_row(database_url, task["task_id"])
    assert (row["status"], row["attempt"], row["lease_version"]) == ("leased", 1, 1)
    # Leased for 60 s: not pullable again meanwhile.
    again = await api.post(f"{BASE}/tasks/pull", json={"limit": 10})
    assert again.json() == {"ok": True, "tasks": [], "count": 0}


async def test_pull_gives_the_post_and_the_lease_end(api, database_url, runtime):
    add_accounts(database_url, 1)
    order_id = add_order(database_url, remains=1, action="view")
    fetch(database_url, "UPDATE provider_orders SET post_id = 42 WHERE id = %s RETURNING id", (order_id,))
    await generate_tasks(await runtime.database(), runtime.redis(), runtime.settings, limit=10)
    before = dt.datetime.now(dt.UTC)

    [task] = (await api.post(f"{BASE}/tasks/pull", json={"limit": 10})).json()["tasks"]

    assert task["post_id"] == 42
    leased_until = dt.datetime.fromisoformat(task["leased_until"])
    lease = runtime.settings.task_lease_sec
    assert before + dt.timedelta(seconds=lease - 5) < leased_until < before + dt.timedelta(seconds=lease + 5)


async def test_an_expired_lease_is_pullable_again_with_a_new_version(api, database_url, runtime):
    task = await leased_task(api, database_url, runtime)
    expire_lease(database_url, task["task_id"])

    [again] = (await api.post(f"{BASE}/tasks/pull", json={"limit": 10})).json()["tasks"]

    assert again["task_id"] == task["task_id"]
    assert (again["attempt"], again["lease_version"]) == (1, 2)


async def test_done_commits_once_and_decrements_the_order(api, database_url, runtime, redis_client):
    task = await leased_task(api, database_url, runtime, remains=1)
    account_id = fetch(
        database_url, "SELECT telegram_account_id FROM telegram_tasks WHERE id = %s", (task["task_id"],)
    )[0][0]
    report = {
        "task_id": task["task_id"],
        "state": "done",
        "ok": True,
        "error": None,
        "retry_after": None,
        "provider_task_id": "provider_task_123",
        "data": {"message_id": 7, "note": None},
    }

    first = await api.post(f"{BASE}/tasks/report", json=report)
    second = await api.post(f"{BASE}/tasks/report", json=report)

    assert (first.status_code, first.json()) == (200, {"ok": True})
    assert (second.status_code, second.json()) == (200, {"ok": True})
    row = task_row(database_url, task["task_id"])
    assert (row["status"], row["provider_task_id"]) == ("done", "provider_task_123")
    # The report as given, less its empty fields; the provider's data is kept whole.
    assert row["result"] == {"state": "done", "ok": True, "data": {"message_id": 7, "note": None}}
    assert order_row(database_url, task["order_id"]) == (0, "completed")
    today = dt.datetime.now(dt.UTC).date()
    assert await redis_client.get(keys.daily_cap("subscribe", account_id, today)) == "1"
    assert await redis_client.get(keys.cooldown("subscribe", account_id)) == "1"
    assert await redis_client.get(keys.link_state(task["link_hash"], account_id)) == "subscribed"
    assert await redis_client.get(keys.reserve_lock("subscribe", account_id)) is None


async def test_failed_releases_the_lock_only_and_is_final(api, database_url, runtime, redis_client):
    task = await leased_task(api, database_url, runtime)
    [[account_id]] = fetch(database_url, "SELECT telegram_account_id FROM telegram_tasks")
    assert await redis_client.get(keys.reserve_lock("subscribe", account_id)) == task["task_id"]

    response = await api.post(
        f"{BASE}/tasks/report",
        json={"task_id": task["task_id"], "state": "failed", "ok": False, "error": "USER_BANNED"},
    )

    assert response.json() == {"ok": True}
    row = task_row(database_url, task["task_id"])
    assert (row["status"], row["result"]) == (
        "failed",
        {"state": "failed", "ok": False, "error": "USER_BANNED"},
    )
    assert order_row(database_url, task["order_id"]) == (2, "in_progress")
    assert await redis_client.get(keys.reserve_lock("subscribe", account_id)) is None
    assert await redis_client.get(keys.cooldown("subscribe", account_id)) is None
    today = dt.datetime.now(dt.UTC).date()
    assert await redis_client.get(keys.daily_cap("subscribe", account_id, today)) is None


async def test_failed_with_retry_after_is_pullable_after_that_time(api, database_url, runtime):
    task = await leased_task(api, database_url, runtime)
    report = {"task_id": task["task_id"], "state": "failed", "retry_after": 3600, "lease_version": 1}

    assert (await api.post(f"{BASE}/tasks/report", json=report)).json() == {"ok": True}
    assert (await api.post(f"{BASE}/tasks/report", json=report)).json() == {"ok": True}  # a repeat is ok

    assert task_row(database_url, task["task_id"])["status"] == "queued"
    assert (await api.post(f"{BASE}/tasks/pull", json={"limit": 10})).json()["count"] == 0
    fetch(database_url, "UPDATE telegram_tasks SET available_at = now() - interval '1 second' RETURNING id")
    [again] = (await api.post(f"{BASE}/tasks/pull", json={"limit": 10})).json()["tasks"]
    assert (again["task_id"], again["lease_version"]) == (task["task_id"], 2)


async def test_a_failure_from_an_expired_and_re_leased_lease_is_refused(
    api, database_url, runtime, redis_client
):
    task = await leased_task(api, database_url, runtime)
    expire_lease(database_url, task["task_id"])
    [again] = (await api.post(f"{BASE}/tasks/pull", json={"limit": 10})).json()["tasks"]

    late = await api.post(
        f"{BASE}/tasks/report",
        json={"task_id": task["task_id"], "state": "failed", "lease_version": task["lease_version"]},
    )

    assert late.status_code == 409
    assert "leased again" in late.json()["error"]
    assert task_row(database_url, task["task_id"])["status"] == "leased"
    assert order_row(database_url, task["order_id"])[0] == 2
    current = await api.post(
        f"{BASE}/tasks/report",
        json={"task_id": again["task_id"], "state": "done", "lease_version": again["lease_version"]},
    )
    assert current.json() == {"ok": True}
    assert order_row(database_url, task["order_id"])[0] == 1


async def test_a_done_from_an_expired_lease_is_a_fact_applied_once(api, database_url, runtime):
    task = await leased_task(api, database_url, runtime)
    expire_lease(database_url, task["task_id"])
    [again] = (await api.post(f"{BASE}/tasks/pull", json={"limit": 10})).json()["tasks"]

    late = await api.post(
        f"{BASE}/tasks/report",
        json={"task_id": task["task_id"], "state": "done", "lease_version": task["lease_version"]},
    )
    current = await api.post(
        f"{BASE}/tasks/report",
        json={"task_id": again["task_id"], "state": "done", "lease_version": again["lease_version"]},
    )

    assert late.json() == {"ok": True} and current.json() == {"ok": True}
    assert order_row(database_url, task["order_id"])[0] == 1


@pytest.mark.parametrize(
    ("body", "status", "reason"),
    [
        ({"limit": 0}, 400, "between 1 and 1000"),
        ({"limit": -5}, 400, "between 1 and 1000"),
        ({"limit": 10**12}, 400, "between 1 and 1000"),
        ({"limit": "many"}, 422, "integer"),
    ],
)
async def test_pull_refuses_a_bad_limit_and_leases_nothing(api, database_url, runtime, body, status, reason):
    add_accounts(database_url, 1)
    add_order(database_url, remains=1)
    await generate_tasks(await runtime.database(), runtime.redis(), runtime.settings, limit=10)

    response = await api.post(f"{BASE}/tasks/pull", json=body)

    assert response.status_code == status
    assert reason in response.text
    assert fetch(database_url, "SELECT status, lease_version FROM telegram_tasks") == [("queued", 0)]


async def test_report_refuses_bad_input_with_a_reason_and_changes_nothing(api, database_url, runtime):
    task = await leased_task(api, database_url, runtime)
    json_header = {"Content-Type": "application/json"}
    malformed = await api.post(f"{BASE}/tasks/report", content=b'{"task_id": ', headers=json_header)
    unknown = {"task_id": "01ARZ3NDEKTSV4RRFFQ69G5FAV", "state": "done"}
    unknown_task = await api.post(f"{BASE}/tasks/report", json=unknown)
    unknown_state = await api.post(
        f"{BASE}/tasks/report", json={"task_id": task["task_id"], "state": "maybe"}
    )
    not_an_object = await api.post(f"{BASE}/tasks/report", json=[1, 2])

    assert malformed.status_code == 422 and "JSON" in malformed.text
    assert unknown_task.status_code == 404 and "unknown task_id" in unknown_task.json()["error"]
    assert unknown_state.status_code == 422 and "state" in unknown_state.json()["error"]
    assert not_an_object.status_code == 422
    assert task_row(database_url, task["task_id"])["status"] == "leased"
    assert order_row(database_url, task["order_id"])[0] == 2


async def test_batch_report_answers_per_item(api, database_url, runtime):
    task = await leased_task(api, database_url, runtime)
    response = await api.post(
        f"{BASE}/tasks/report",
        json={
            "reports": [
                {"task_id": task["task_id"], "state": "done"},
                {"task_id": "01ARZ3NDEKTSV4RRFFQ69G5FAV", "state": "done"},
                {"task_id": task["task_id"], "state": "done"},
                {"task_id": task["task_id"], "state": "nope"},
            ]
        },
    )

    assert response.status_code == 200
    results = response.json()["results"]
    assert [result["ok"] for result in results] == [True, False, True, False]
    assert "unknown task_id" in results[1]["error"] and "state" in results[3]["error"]
    assert order_row(database_url, task["order_id"])[0] == 1


async def test_redis_down_during_a_report_is_503_and_the_retry_has_the_same_effect(
    api, database_url, runtime, settings, redis_client
):
    task = await leased_task(api, database_url, runtime, remains=1)
    [[account_id]] = fetch(database_url, "SELECT telegram_account_id FROM telegram_tasks")
    report = {"task_id": task["task_id"], "state": "done", "lease_version": 1}
    broken = Runtime(settings.model_copy(update={"redis_url": "redis://127.0.0.1:1/0"}))
    try:
        api._transport.app.state.runtime = broken
        down = await api.post(f"{BASE}/tasks/report", json=report)
    finally:
        api._transport.app.state.runtime = runtime
        await broken.close()

    assert down.status_code == 503 and "retry" in down.json()["error"]
    assert task_row(database_url, task["task_id"])["status"] == "leased"
    assert order_row(database_url, task["order_id"]) == (1, "in_progress")
    assert await redis_client.get(keys.reserve_lock("subscribe", account_id)) == task["task_id"]
    retry = await api.post(f"{BASE}/tasks/report", json=report)
    assert retry.json() == {"ok": True}
    assert order_row(database_url, task["order_id"]) == (0, "completed")
    today = dt.datetime.now(dt.UTC).date()
    assert await redis_client.get(keys.daily_cap("subscribe", account_id, today)) == "1"


async def test_a_retry_after_redis_committed_but_postgres_did_not_consumes_nothing_twice(
    api, database_url, runtime, settings, redis_client
):
    task = await leased_task(api, database_url, runtime, remains=1)
    [[account_id]] = fetch(database_url, "SELECT telegram_account_id FROM telegram_tasks")
    # The first attempt's COMMIT reached Redis, then its Postgres transaction was lost.
    first_attempt = claims.Reservation(
        task["task_id"], account_id, task["link_hash"], rules_for(settings, "subscribe")
    )
    await claims.commit(redis_client, [first_attempt], settings.provider_commit_marker_ttl_sec)

    retry = await api.post(f"{BASE}/tasks/report", json={"task_id": task["task_id"], "state": "done"})

    assert retry.json() == {"ok": True}
    assert task_row(database_url, task["task_id"])["status"] == "done"
    assert order_row(database_url, task["order_id"]) == (0, "completed")
    today = dt.datetime.now(dt.UTC).date()
    assert await redis_client.get(keys.daily_cap("subscribe", account_id, today)) == "1"


async def test_pending_extends_the_lease_and_a_later_done_applies(api, database_url, runtime):
    task = await leased_task(api, database_url, runtime)
    pending = await api.post(
        f"{BASE}/tasks/report",
        json={"task_id": task["task_id"], "state": "pending", "provider_task_id": "p-1"},
    )
    done = await api.post(
        f"{BASE}/tasks/report", json={"task_id": task["task_id"], "state": "done", "lease_version": 1}
    )

    assert pending.json() == {"ok": True} and done.json() == {"ok": True}
    row = task_row(database_url, task["task_id"])
    assert (row["status"], row["provider_task_id"]) == ("done", "p-1")
    assert order_row(database_url, task["order_id"])[0] == 1


async def test_a_batch_reporting_one_task_twice_applies_the_first_and_refuses_another_state(
    api, database_url, runtime
):
    task = await leased_task(api, database_url, runtime)
    response = await api.post(
        f"{BASE}/tasks/report",
        json={
            "reports": [
                {"task_id": task["task_id"], "state": "failed", "error": "USER_BANNED"},
                {"task_id": task["task_id"], "state": "done"},
            ]
        },
    )

    [first, second] = response.json()["results"]
    assert first == {"task_id": task["task_id"], "ok": True}
    assert not second["ok"] and "reported as 'failed' earlier in this batch" in second["error"]
    assert task_row(database_url, task["task_id"])["status"] == "failed"
    assert order_row(database_url, task["order_id"])[0] == 2


async def test_a_report_for_a_task_never_leased_is_refused(api, database_url, runtime):
    add_accounts(database_url, 1)
    add_order(database_url, remains=1)
    await generate_tasks(await runtime.database(), runtime.redis(), runtime.settings, limit=10)
    [[task_id]] = fetch(database_url, "SELECT id FROM telegram_tasks")

    response = await api.post(f"{BASE}/tasks/report", json={"task_id": task_id, "state": "done"})

    assert response.status_code == 409 and "not leased" in response.json()["error"]
    assert task_row(database_url, task_id)["status"] == "queued"
