"""The poll_orders Lambda handler, invoked as Lambda would (generate_tasks': tests/provider/test_stats.py)."""

import importlib.util
from pathlib import Path

import psycopg

POLL_ORDERS = Path(__file__).resolve().parents[2] / "functions" / "poll_orders" / "app.py"


def test_poll_orders_handler_without_a_panel_does_nothing(settings, database_url):
    spec = importlib.util.spec_from_file_location("poll_orders_lambda", POLL_ORDERS)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    try:
        assert module.handler({"source": "aws.events"}, None) is None
    finally:
        module.handler.close()
    with psycopg.connect(database_url) as connection:
        assert connection.execute("SELECT count(*) FROM provider_orders").fetchone()[0] == 0
