"""Provider pull benchmark: three figures, each against its baseline, in one run on one Postgres.

    /tmp/venv312/bin/pip install pgqueuer asyncpg   # the baseline of (a); not a tgops dependency
    python bench/provider_pull.py

(a) lease-and-complete at the database level: tgops's own code (pull_tasks, then a batch report's Postgres
    part in one transaction: finish_tasks + take_done_from_orders, i.e. apply_reports minus Redis) against
    pgqueuer's dequeue + log_jobs, same worker count and batch size, on the same server, the median of
    five rounds each; goal >= 2x. Printed beside it, from the same rounds: the issue's reference point,
    a plain SKIP LOCKED loop on the same table and indexes that leases returning only the ids and marks
    them done, with none of the contract (task shape, lease-version check, result, order remains).
(b) HTTP: 8 simulated providers pulling and batch-reporting `done` against the API served by uvicorn in
    its own process, with the real Redis COMMIT; goal >= 2,000 reports/s.
(c) one pull of 1,000 tasks with 10k rows in the table and with 1M (mostly finished) rows; goal <= 2x.

Ends by printing one JSON line.
"""

from __future__ import annotations

import asyncio
import json
import os
import statistics
import subprocess
import sys
import time
import uuid
from datetime import timedelta

import httpx
import psycopg
from psycopg import sql
from psycopg_pool import AsyncConnectionPool

from tgops.config import Settings
from tgops.db.database import Database
from tgops.db.migrate import apply_migrations
from tgops.local.services import LocalPostgres, free_port, throwaway_postgres_and_redis, wait_for_port
from tgops.provider.leasing import pull_tasks
from tgops.provider.reports import TaskReport, finish_tasks, take_done_from_orders

WORKERS = 4
BATCH = 100
DB_LEVEL_JOBS = 40_000
DB_LEVEL_ROUNDS = 5
HTTP_PROVIDERS = 8
HTTP_TASKS = 40_000
HTTP_PULL_LIMIT = 500
PULL_SIZE = 1_000
PULL_REPEATS = 7
TOKEN = "bench-provider-token"


def create_database(postgres: LocalPostgres, name: str, *, migrate: bool = True) -> str:
    with psycopg.connect(postgres.url(), autocommit=True) as admin:
        admin.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))
        admin.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    url = postgres.url(name)
    if migrate:
        apply_migrations(url)
    return url


def seed_tasks(url: str, *, open_tasks: int, finished_tasks: int = 0, accounts: int = 1000) -> None:
    """One big order, `accounts` accounts, and tasks spread over them (ids sort like ULIDs: by time)."""
    with psycopg.connect(url, autocommit=True) as connection:
        connection.execute(
            "INSERT INTO provider_orders (remote_order_id, remote_service_id, raw_link, link, quantity, remains,"
            " status, next_run_at) VALUES (1, 1, 'https://t.me/bench', 'https://t.me/bench', %(n)s, %(n)s,"
            " 'in_progress', now() + interval '1 day')",
            {"n": open_tasks + finished_tasks},
        )
        connection.execute(
            "INSERT INTO telegram_accounts (provider_account_id, phone)"
            " SELECT 'ext_' || n, '+1555' || n FROM generate_series(1, %s) AS n",
            (accounts,),
        )
        insert = (
            "INSERT INTO telegram_tasks (id, order_id, action, link_hash, telegram_account_id, provider_account_id,"
            " status, payload, finished_at, available_at)"
            " SELECT lpad(n::text, 26, '0'), 1, 'view', md5(n::text), 1 + n %% %(accounts)s,"
            " 'ext_' || (1 + n %% %(accounts)s),"
            ' %(status)s, \'{"link": "https://t.me/bench"}\'::jsonb,'
            " CASE WHEN %(status)s = 'done' THEN now() END, now() - interval '1 minute'"
            " FROM generate_series(%(first)s::bigint, %(last)s::bigint) AS n"
        )
        if finished_tasks:
            connection.execute(
                insert, {"status": "done", "first": 1, "last": finished_tasks, "accounts": accounts}
            )
        connection.execute(
            insert,
            {
                "status": "queued",
                "first": finished_tasks + 1,
                "last": finished_tasks + open_tasks,
                "accounts": accounts,
            },
        )
        connection.execute("VACUUM ANALYZE telegram_tasks")


# (a) ------------------------------------------------------------------------------------------------


async def tgops_lease_and_complete(url: str, jobs: int) -> float:
    seed_tasks(url, open_tasks=jobs)
    db = await Database.connect(url, min_size=WORKERS, max_size=WORKERS)
    settings = Settings()

    async def worker() -> None:
        while True:
            leased = (await pull_tasks(db, settings, BATCH)).tasks()
            if not leased:
                return
            reports = [
                TaskReport(
                    task_id=task["task_id"], state="done", ok=True, lease_version=task["lease_version"]
                )
                for task in leased
            ]
            async with db.transaction() as tx:
                finished = await finish_tasks(tx, reports, settings.task_lease_sec)
                await take_done_from_orders(tx, finished.values())

    started = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(WORKERS)))
    elapsed = time.perf_counter() - started
    await db.close()
    return jobs / elapsed


PLAIN_LEASE = """
UPDATE telegram_tasks SET status = 'leased', leased_until = now() + interval '60 seconds',
    available_at = now() + interval '60 seconds', attempt = attempt + 1, lease_version = lease_version + 1
WHERE ctid = ANY(ARRAY(
    SELECT ctid FROM telegram_tasks WHERE status IN ('queued', 'leased', 'pending') AND available_at <= now()
    ORDER BY available_at LIMIT %(limit)s FOR UPDATE SKIP LOCKED))
RETURNING id"""
PLAIN_DONE = "UPDATE telegram_tasks SET status = 'done', finished_at = now() WHERE id = ANY(%(ids)s)"


async def plain_skip_locked_loop(url: str, jobs: int) -> float:
    seed_tasks(url, open_tasks=jobs)
    pool = AsyncConnectionPool(
        url, min_size=WORKERS, max_size=WORKERS, kwargs={"autocommit": True}, open=False
    )
    await pool.open()

    async def worker() -> None:
        while True:
            async with pool.connection() as connection:
                ids = [
                    row[0]
                    for row in await (await connection.execute(PLAIN_LEASE, {"limit": BATCH})).fetchall()
                ]
                if not ids:
                    return
                await connection.execute(PLAIN_DONE, {"ids": ids})

    started = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(WORKERS)))
    elapsed = time.perf_counter() - started
    await pool.close()
    return jobs / elapsed


async def pgqueuer_dequeue_and_ack(url: str, jobs: int) -> float:
    import asyncpg
    from pgqueuer.queries import EntrypointExecutionParameter, Queries

    pool = await asyncpg.create_pool(url, min_size=WORKERS, max_size=WORKERS)
    queries = Queries.from_asyncpg_pool(pool)
    await queries.install()
    for start in range(0, jobs, 5000):
        size = min(5000, jobs - start)
        await queries.enqueue(["bench"] * size, [None] * size, [0] * size)
    async with pool.acquire() as connection:
        await connection.execute("VACUUM ANALYZE")
    entrypoints = {"bench": EntrypointExecutionParameter(concurrency_limit=0)}

    async def worker() -> None:
        manager_id = uuid.uuid4()
        while True:
            picked = await queries.dequeue(BATCH, entrypoints, manager_id, None, timedelta(seconds=30))
            if not picked:
                return
            await queries.log_jobs([(job, "successful", None) for job in picked])

    started = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(WORKERS)))
    elapsed = time.perf_counter() - started
    await pool.close()
    return jobs / elapsed


# (b) ------------------------------------------------------------------------------------------------


def start_api(database_url: str, redis_url: str) -> tuple[subprocess.Popen, str]:
    port = free_port()
    env = {
        **os.environ,
        "TGOPS_DATABASE_URL": database_url,
        "TGOPS_REDIS_URL": redis_url,
        "TGOPS_PROVIDER_TOKEN": TOKEN,
        "TGOPS_ENV": "development",
        "TGOPS_DATABASE_POOL_MAX": "16",
    }
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "uvicorn",
            "--factory",
            "tgops.api.app:create_app",
            "--port",
            str(port),
            "--log-level",
            "warning",
            "--no-access-log",
        ],
        env=env,
        stdin=subprocess.DEVNULL,
    )
    wait_for_port(port, 30, "the tgops API")
    return process, f"http://127.0.0.1:{port}"


async def http_reports_per_sec(database_url: str, redis_url: str) -> float:
    seed_tasks(database_url, open_tasks=HTTP_TASKS)
    process, base = start_api(database_url, redis_url)
    reported = 0
    try:
        async with httpx.AsyncClient(
            base_url=base, headers={"X-Provider-Token": TOKEN}, timeout=60
        ) as client:
            await client.post("/api/provider/telegram/tasks/pull", json={"limit": 1})  # warm the pool
            started = time.perf_counter()

            async def provider() -> None:
                nonlocal reported
                while True:
                    response = await client.post(
                        "/api/provider/telegram/tasks/pull", json={"limit": HTTP_PULL_LIMIT}
                    )
                    tasks = response.json()["tasks"]
                    if not tasks:
                        return
                    reports = [
                        {
                            "task_id": task["task_id"],
                            "state": "done",
                            "ok": True,
                            "lease_version": task["lease_version"],
                        }
                        for task in tasks
                    ]
                    answer = await client.post(
                        "/api/provider/telegram/tasks/report", json={"reports": reports}
                    )
                    reported += sum(1 for result in answer.json()["results"] if result["ok"])

            await asyncio.gather(*(provider() for _ in range(HTTP_PROVIDERS)))
            elapsed = time.perf_counter() - started
    finally:
        process.terminate()
        process.wait(timeout=15)
    return reported / elapsed


# (c) ------------------------------------------------------------------------------------------------


async def pull_ms(url: str) -> float:
    db = await Database.connect(url, min_size=1, max_size=1)
    settings = Settings()
    timings = []
    for _ in range(PULL_REPEATS):
        started = time.perf_counter()
        leased = await pull_tasks(db, settings, PULL_SIZE)
        timings.append((time.perf_counter() - started) * 1000)
        assert leased.count == PULL_SIZE
    await db.close()
    return statistics.median(timings)


async def main() -> None:
    with throwaway_postgres_and_redis() as (postgres, redis_server):
        redis_url = redis_server.url()
        tgops_rates, pgqueuer_rates, plain_rates = [], [], []
        for _ in range(DB_LEVEL_ROUNDS):  # taken in turns, so a slow spell of the machine hits both
            tgops_rates.append(
                await tgops_lease_and_complete(create_database(postgres, "bench_tgops"), DB_LEVEL_JOBS)
            )
            pgqueuer_rates.append(
                await pgqueuer_dequeue_and_ack(
                    create_database(postgres, "bench_pgqueuer", migrate=False), DB_LEVEL_JOBS
                )
            )
            plain_rates.append(
                await plain_skip_locked_loop(create_database(postgres, "bench_plain"), DB_LEVEL_JOBS)
            )
        tgops_rate, pgqueuer_rate = statistics.median(tgops_rates), statistics.median(pgqueuer_rates)
        plain_rate = statistics.median(plain_rates)
        http_rate = await http_reports_per_sec(create_database(postgres, "bench_http"), redis_url)
        small = create_database(postgres, "bench_pull_10k")
        seed_tasks(
            small, open_tasks=PULL_SIZE * PULL_REPEATS, finished_tasks=10_000 - PULL_SIZE * PULL_REPEATS
        )
        large = create_database(postgres, "bench_pull_1m")
        seed_tasks(
            large, open_tasks=PULL_SIZE * PULL_REPEATS, finished_tasks=1_000_000 - PULL_SIZE * PULL_REPEATS
        )
        small_ms, large_ms = await pull_ms(small), await pull_ms(large)
    print(
        json.dumps(
            {
                "db_lease_complete_tasks_per_sec": round(tgops_rate),
                "pgqueuer_dequeue_ack_jobs_per_sec": round(pgqueuer_rate),
                "db_throughput_ratio_vs_pgqueuer": round(tgops_rate / pgqueuer_rate, 2),
                "plain_skip_locked_loop_tasks_per_sec": round(plain_rate),
                "plain_loop_ratio_vs_pgqueuer": round(plain_rate / pgqueuer_rate, 2),
                "http_providers": HTTP_PROVIDERS,
                "http_reports_per_sec": round(http_rate),
                "pull_1000_ms_10k_rows": round(small_ms, 2),
                "pull_1000_ms_1m_rows": round(large_ms, 2),
                "pull_ratio_1m_vs_10k": round(large_ms / small_ms, 2),
            }
        )
    )


if __name__ == "__main__":
    asyncio.run(main())
