"""The scheduled Lambda handlers, invoked as Lambda would, against real Postgres and Redis."""

import importlib.util
from pathlib import Path

import psycopg

FUNCTIONS = Path(__file__).resolve().parents[2] / "functions"


def load_handler(name: str):
    spec = importlib.util.spec_from_file_location(f"lambda_{name}", FUNCTIONS / name / "app.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.handler


def test_generate_tasks_handler_makes_a_task_for_a_due_order(settings, database_url):
    with psycopg.connect(database_url, autocommit=True) as connection:
        connection.execute(
            "INSERT INTO telegram_accounts (provider_account_id, phone) VALUES ('ext_1', '+100')"
        )
        connection.execute(
            "INSERT INTO provider_orders (remote_order_id, remote_service_id, raw_link, link, quantity, remains,"
            " status, next_run_at) VALUES (1, 1, 'https://t.me/chan', 'https://t.me/chan', 5, 5, 'awaiting', now())"
        )
    handler = load_handler("generate_tasks")

    # Two ticks in one container: the second reuses the first's loop, pool and Redis client.
    first = handler({}, None)
    second = handler({}, None)

    assert first["tasks"]["queued"] == 1
    assert second["tasks"]["queued"] == 1  # not due again until interval_seconds has passed


def test_poll_orders_handler_without_a_panel_does_nothing(settings, database_url):
    handler = load_handler("poll_orders")

    assert handler({}, None) is None
    with psycopg.connect(database_url) as connection:
        assert connection.execute("SELECT count(*) FROM provider_orders").fetchone()[0] == 0
