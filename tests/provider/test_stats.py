"""Task counts for the dashboard and metrics, and the generate_tasks Lambda that logs them."""

from __future__ import annotations

import importlib.util
from pathlib import Path

from tests.provider.conftest import add_accounts, add_order, fetch
from tgops.provider.generation import generate_tasks
from tgops.provider.stats import task_counts

LAMBDA = Path(__file__).parents[2] / "functions" / "generate_tasks" / "app.py"


async def test_counts_per_status_and_expired_leases(db, database_url, settings, redis_client):
    add_accounts(database_url, 4)
    for n in range(4):
        add_order(database_url, remains=1, link=f"https://t.me/c{n}")
    await generate_tasks(db, redis_client, settings, limit=10)
    ids = [row[0] for row in fetch(database_url, "SELECT id FROM telegram_tasks ORDER BY id")]
    fetch(database_url, "UPDATE telegram_tasks SET status = 'done' WHERE id = %s RETURNING id", (ids[0],))
    fetch(
        database_url,
        "UPDATE telegram_tasks SET status = 'leased', leased_until = now() - interval '1 second',"
        " available_at = now() - interval '1 second' WHERE id = %s RETURNING id",
        (ids[1],),
    )
    fetch(
        database_url,
        "UPDATE telegram_tasks SET status = 'leased', leased_until = now() + interval '1 minute',"
        " available_at = now() + interval '1 minute' WHERE id = %s RETURNING id",
        (ids[2],),
    )

    counts = await task_counts(db)

    assert counts == {"queued": 1, "leased": 2, "pending": 0, "done": 1, "failed": 0, "expired_leases": 1}


def test_generate_tasks_lambda_runs_one_generation(database_url, settings):
    add_accounts(database_url, 1)
    add_order(database_url, remains=3)
    spec = importlib.util.spec_from_file_location("generate_tasks_lambda", LAMBDA)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    try:
        summary = module.handler({"source": "aws.events"}, None)
    finally:
        module.handler.close()

    assert summary["generated"]["created"] == 1
    assert summary["tasks"]["queued"] == 1
