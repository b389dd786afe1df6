"""`tgops orders list|show|start`: our orders, one order's whole timeline, and starting one by hand.

Beside a running `tgops dev` they use its embedded database (found through `<data_dir>/dev.json`);
otherwise TGOPS_DATABASE_URL. `--json` prints the same data for scripts and the dashboard.
"""

from __future__ import annotations

import json
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.table import Table

from tgops.cli.panel import STATUS_STYLES, fail, with_dev_database
from tgops.cli.support import console, load_settings

app = typer.Typer(help="Orders: list them, see one whole, start one that waits.", no_args_is_help=True)
out = Console(highlight=False, soft_wrap=True)


@app.command("list")
def list_(
    status: Annotated[str | None, typer.Option(help="only orders in this status, e.g. in_progress")] = None,
    limit: Annotated[int, typer.Option(min=1, help="newest orders to show")] = 20,
    as_json: Annotated[bool, typer.Option("--json", help="one JSON list on stdout")] = False,
) -> None:
    """The newest orders: status, remains, start count, and panel updates not sent yet."""
    from tgops.orders.timeline import list_orders

    rows = with_dev_database(lambda db: list_orders(db, status=status, limit=limit))
    if as_json:
        print(json.dumps(rows, default=str))
        return
    table = Table("order", "service", "link", "status", "remains", "start count", "reason", "panel pending")
    for row in rows:
        table.add_row(
            str(row["remote_order_id"]), str(row["remote_service_id"]), row["link"], _styled(row["status"]),
            f"{row['remains']}/{row['quantity']}", "" if row["start_count"] is None else str(row["start_count"]),
            row["reason"] or "", str(row["panel_updates_pending"]),
        )  # fmt: skip
    out.print(table)


@app.command()
def show(
    order_id: Annotated[int, typer.Argument(help="the panel's order id")],
    as_json: Annotated[
        bool, typer.Option("--json", help="the timeline as one JSON object on stdout")
    ] = False,
) -> None:
    """One order's timeline: polled, validated (with the inspection), started, tasks and reports,
    panel updates sent and pending."""
    from tgops.orders.timeline import order_timeline

    timeline = with_dev_database(lambda db: order_timeline(db, order_id))
    if timeline is None:
        raise fail(f"no order {order_id} here: the panel's id, once poll_orders has stored it", 1)
    if as_json:
        print(json.dumps(timeline, default=str))
        return
    order = timeline["order"]
    out.print(
        f"order {order['remote_order_id']} (service {order['remote_service_id']}) {order['link']}: "
        f"{_styled(order['status'])}, remains {order['remains']}/{order['quantity']}, "
        f"start count {order['start_count']}"
    )
    table = Table("at", "event", "detail")
    for event in timeline["events"]:
        detail = {
            key: value
            for key, value in event.items()
            if key not in ("at", "event") and value not in (None, {})
        }
        table.add_row(f"{event['at']:%H:%M:%S}", event["event"], _describe(detail))
    out.print(table)
    updates = timeline["panel_updates"]
    out.print(
        f"tasks {timeline['tasks']}; panel updates: {updates['sent']} sent, {updates['pending']} pending"
    )


@app.command()
def start(order_id: Annotated[int, typer.Argument(help="the panel's order id")]) -> None:
    """Start a validated order (depends_ok) whose service waits for the panel (auto_start false)."""
    from tgops.orders.lifecycle import start_by_operator

    settings = load_settings()

    async def run(db) -> bool:
        order = await db.fetch_one("provider_order_by_remote_id", {"remote_order_id": order_id})
        return order is not None and await start_by_operator(db, settings, order["id"])

    if not with_dev_database(run):
        raise fail(f"order {order_id} is not a validated order waiting to start (see `tgops orders show`)", 1)
    console.print(f"order {order_id} started: awaiting, due now")


def _styled(status: str) -> str:
    style = STATUS_STYLES.get(status, "")
    return f"[{style}]{status}[/{style}]" if style else status


def _describe(detail: dict[str, Any]) -> str:
    return ", ".join(f"{key}={json.dumps(value, default=str)}" for key, value in detail.items())[:300]
