"""A batch report finds its tasks by id, whatever the table's statistics say.

The worst case for the planner: statistics taken while every task was queued, then a thousand of them
leased and reported at once. A join of the reports to the table then looked like "one leased row at
most", and Postgres scanned the whole table and checked every report against every row.
"""

from __future__ import annotations

import json

import psycopg
from psycopg.types.json import Jsonb

from tests.provider.conftest import add_accounts, add_order
from tgops.db.queries import query

TASKS = 3_000
REPORTED = 1_000


def plan_nodes(plan: dict) -> list[dict]:
    nodes = [plan]
    for child in plan.get("Plans", []):
        nodes += plan_nodes(child)
    return nodes


def test_a_batch_report_looks_tasks_up_by_id_under_stale_statistics(database_url):
    [account_id] = add_accounts(database_url, 1)
    order_id = add_order(database_url, remains=TASKS, action="view")
    with psycopg.connect(database_url, autocommit=True) as connection:
        connection.execute(
            "INSERT INTO telegram_tasks (id, order_id, action, link_hash, telegram_account_id, provider_account_id,"
            " payload) SELECT lpad(n::text, 26, '0'), %s, 'view', md5(n::text), %s, 'ext_1', '{}'"
            " FROM generate_series(1, %s) AS n",
            (order_id, account_id, TASKS),
        )
        connection.execute("ANALYZE telegram_tasks")
        leased = json.loads(
            connection.execute(query("lease_tasks"), {"limit": REPORTED, "lease_sec": 60}).fetchone()[1]
        )
        reports = [
            {
                "task_id": task["task_id"],
                "status": "done",
                "lease_version": task["lease_version"],
                "result": {"state": "done"},
            }
            for task in sorted(leased, key=lambda task: task["task_id"])
        ]

        with connection.transaction(force_rollback=True):
            [[plan]] = connection.execute(
                "EXPLAIN (ANALYZE, FORMAT JSON) " + query("finish_reported_tasks"),
                {"reports": Jsonb(reports), "lease_sec": 60},
            ).fetchall()

    nodes = plan_nodes(plan[0]["Plan"])
    scans = {
        node["Node Type"]
        for node in nodes
        if node.get("Relation Name") == "telegram_tasks" and node["Node Type"] != "ModifyTable"
    }
    assert scans == {"Index Scan", "Tid Scan"}
    assert plan[0]["Plan"]["Actual Rows"] == REPORTED
