"""Chaos: 8 providers at once on 10,000 tasks; some never report, some report twice, some report late.

Afterwards every task is done or failed exactly once, caps and cooldowns were consumed exactly once per
success, no lease ever had two holders at the same moment, and every order's `remains` is exact.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import hashlib
import itertools
from collections import defaultdict

import httpx
import psycopg
import pytest
import redis
from ulid import ULID

from tests.provider.conftest import PROVIDER_TOKEN, add_accounts, add_order, fetch
from tgops.api.app import create_app
from tgops.cache import keys
from tgops.provider import claims
from tgops.provider.actions import link_hash, rules_for
from tgops.runtime import Runtime

ACCOUNTS = 2500
ACTIONS = ("subscribe", "view", "react", "vote")  # one task per (account, action): 10,000 tasks
ORDERS_PER_ACTION = 2
PROVIDERS = 8
PULL_LIMIT = 250
LEASE_SEC = 2
BASE = "/api/provider/telegram"


def fate(task_id: str) -> str:
    bucket = int(hashlib.sha1(task_id.encode()).hexdigest(), 16) % 100
    if bucket < 10:
        return "never_reported"  # on its first lease; a later holder reports it
    if bucket < 15:
        return "reported_twice"
    if bucket < 18:
        return "reported_late"
    if bucket < 25:
        return "failed"
    return "done"


def final_state(task_id: str) -> str:
    return "failed" if fate(task_id) == "failed" else "done"


@pytest.fixture
def chaos_settings(settings):
    cooldowns = dict.fromkeys(ACTIONS, 3600)  # outlives the test, so every cooldown is still visible
    return settings.model_copy(
        update={
            "task_lease_sec": LEASE_SEC,
            "provider_action_cooldown_sec": cooldowns,
            "database_pool_max": 20,
        }
    )


async def create_tasks(database_url: str, settings, redis_client) -> dict[str, list[int]]:
    """10,000 queued tasks, each holding its account's RESERVE lock, as generation leaves them."""
    account_ids = add_accounts(database_url, ACCOUNTS)
    orders = {
        action: [
            add_order(
                database_url,
                remains=ACCOUNTS // ORDERS_PER_ACTION,
                action=action,
                link=f"https://t.me/{action}{n}",
            )
            for n in range(ORDERS_PER_ACTION)
        ]
        for action in ACTIONS
    }
    rows = []
    for action in ACTIONS:
        for position, account_id in enumerate(account_ids):
            order_id = orders[action][position % ORDERS_PER_ACTION]
            link = f"https://t.me/{action}{position % ORDERS_PER_ACTION}"
            rows.append(
                (
                    str(ULID()),
                    order_id,
                    action,
                    link_hash(link),
                    account_id,
                    f"ext_{position + 1}",
                    psycopg.types.json.Jsonb({"link": link}),
                )
            )
    with psycopg.connect(database_url, autocommit=True) as connection, connection.cursor() as cursor:
        cursor.executemany(
            "INSERT INTO telegram_tasks (id, order_id, action, link_hash, telegram_account_id,"
            " provider_account_id, payload) VALUES (%s, %s, %s, %s, %s, %s, %s)",
            rows,
        )
    for start in range(0, len(rows), 50):
        await asyncio.gather(
            *(
                claims.reserve(
                    redis_client, task_id, rules_for(settings, action), hashed, [account_id], 120_000
                )
                for task_id, _, action, hashed, account_id, *_ in rows[start : start + 50]
            )
        )
    return orders


class Providers:
    def __init__(self, api: httpx.AsyncClient, database_url: str) -> None:
        self.api = api
        self.database_url = database_url
        self.leases: dict[str, list[tuple[int, dt.datetime]]] = defaultdict(list)
        self.refusals: list[dict] = []
        self.late_reports = 0
        self.late: set[asyncio.Task] = set()

    async def run(self) -> None:
        await asyncio.wait_for(asyncio.gather(*(self.provider() for _ in range(PROVIDERS))), 120)

    async def provider(self) -> None:
        while True:
            response = await self.api.post(f"{BASE}/tasks/pull", json={"limit": PULL_LIMIT})
            assert response.status_code == 200, response.text
            pulled = response.json()["tasks"]
            if not pulled:
                if not self.late and self.open_tasks() == 0:
                    return
                await asyncio.sleep(0.2)
                continue
            await self.work(pulled)

    async def work(self, pulled: list[dict]) -> None:
        reports, twice = [], []
        for task in pulled:
            leased_until = dt.datetime.fromisoformat(task["leased_until"])
            self.leases[task["task_id"]].append((task["lease_version"], leased_until))
            report = {
                "task_id": task["task_id"],
                "state": final_state(task["task_id"]),
                "lease_version": task["lease_version"],
                "provider_task_id": f"p-{task['task_id']}",
            }
            first_lease = task["attempt"] == 0
            kind = fate(task["task_id"])
            if first_lease and kind == "never_reported":
                continue
            if kind == "reported_late":
                # The first holder reports done after its lease expired; the next holder takes its time.
                # A done is a fact: the late one is applied (once), the next holder's then finds it done.
                self.spawn(self.report_late(report) if first_lease else self.report_slowly(report))
                continue
            reports.append(report)
            if kind == "reported_twice":
                twice.append(report)
        if reports:
            await self.report_batch(reports)
        for report in twice:
            response = await self.api.post(f"{BASE}/tasks/report", json=report)
            assert response.status_code == 200 or _leased_again(response.json()), response.text

    async def report_batch(self, reports: list[dict]) -> None:
        response = await self.api.post(f"{BASE}/tasks/report", json={"reports": reports})
        assert response.status_code == 200, response.text
        for result in response.json()["results"]:
            # Applied, unless this provider was so slow that its lease expired and another took the task.
            assert result["ok"] or _leased_again(result), result

    def spawn(self, coroutine) -> None:
        task = asyncio.create_task(coroutine)
        self.late.add(task)
        task.add_done_callback(self.late.discard)

    async def report_slowly(self, report: dict) -> None:
        await asyncio.sleep(LEASE_SEC * 0.75)
        await self.report_batch([report])

    async def report_late(self, report: dict) -> None:
        await asyncio.sleep(LEASE_SEC + 0.5)  # the lease expired; another provider holds the task by now
        response = await self.api.post(f"{BASE}/tasks/report", json=report)
        self.late_reports += 1
        if response.status_code != 200:
            self.refusals.append(report | {"answer": response.text})

    def open_tasks(self) -> int:
        sql = "SELECT count(*) FROM telegram_tasks WHERE status NOT IN ('done', 'failed')"
        return fetch(self.database_url, sql)[0][0]


def _leased_again(result: dict) -> bool:
    return "leased again" in result.get("error", "")


async def test_chaos(database_url, redis_url, chaos_settings, redis_client):
    orders = await create_tasks(database_url, chaos_settings, redis_client)
    runtime = Runtime(chaos_settings)
    transport = httpx.ASGITransport(app=create_app(runtime))
    async with httpx.AsyncClient(
        transport=transport,
        base_url="http://tgops.test",
        headers={"X-Provider-Token": PROVIDER_TOKEN},
        timeout=60,
    ) as api:
        providers = Providers(api, database_url)
        await providers.run()
    await runtime.close()

    tasks = fetch(
        database_url,
        "SELECT id, order_id, action, telegram_account_id, status, lease_version,"
        " reported_lease_version FROM telegram_tasks",
    )
    assert len(tasks) == len(ACTIONS) * ACCOUNTS
    # Every task finished exactly as its holders reported it (a late done on the lease current then).
    assert all(status == final_state(task_id) for task_id, _, _, _, status, _, _ in tasks)
    assert all(reported == version for *_, version, reported in tasks)
    assert sum(1 for task_id, *_ in tasks if fate(task_id) in ("never_reported", "reported_late")) > 0
    assert providers.late_reports > 0 and providers.refusals == [], "a late done is applied, never refused"

    # Never two holders of one lease at the same moment.
    for task_id, leases in providers.leases.items():
        versions = [version for version, _ in leases]
        assert sorted(versions) == list(range(1, len(versions) + 1)), task_id
        ordered = sorted(leases)
        for (_, previous_end), (_, end) in itertools.pairwise(ordered):
            assert end - dt.timedelta(seconds=LEASE_SEC) >= previous_end, task_id

    # Caps, cooldowns, link state and one-shot dedupe consumed exactly once per success; no lock left.
    today = dt.datetime.now(dt.UTC).date()
    sync = redis.Redis.from_url(redis_url, decode_responses=True)
    pipe = sync.pipeline(transaction=False)
    for task_id, _, action, account_id, *_ in tasks:
        pipe.get(keys.daily_cap(action, account_id, today))
        pipe.exists(keys.cooldown(action, account_id))
        pipe.exists(keys.reserve_lock(action, account_id))
        pipe.exists(keys.task_commit(task_id))
    replies = pipe.execute()
    sync.close()
    for index, (task_id, _, _action, _account_id, status, *_) in enumerate(tasks):
        cap, cooldown, lock, marker = replies[index * 4 : index * 4 + 4]
        done = status == "done"
        assert (cap, cooldown, lock, marker) == (("1", 1, 0, 1) if done else (None, 0, 0, 0)), (
            task_id,
            status,
        )

    # Every order's remains is exact.
    done_per_order = defaultdict(int)
    for _, order_id, _, _, status, *_ in tasks:
        done_per_order[order_id] += status == "done"
    for order_id in (order for per_action in orders.values() for order in per_action):
        [[remains]] = fetch(database_url, "SELECT remains FROM provider_orders WHERE id = %s", (order_id,))
        assert remains == ACCOUNTS // ORDERS_PER_ACTION - done_per_order[order_id]
