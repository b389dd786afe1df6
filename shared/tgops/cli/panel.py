"""`tgops panel order|orders`: place orders in the fake SMM panel of `tgops dev`, and watch ours.

Run them beside a running `tgops dev`, from the same folder: like every command, they find its fake panel
and its embedded database through `<data_dir>/dev.json` (a configured TGOPS_DATABASE_URL is used as it is).
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Annotated, Any, TypeVar

import httpx
import typer
from rich.console import Console
from rich.table import Table

from tgops.cli.support import console, fail, load_settings, missing_setting, one_line_errors
from tgops.local.dev_state import read_dev_state

if TYPE_CHECKING:
    from tgops.db.database import Database

T = TypeVar("T")

app = typer.Typer(
    help="The fake SMM panel of `tgops dev`: place orders, watch their validation.", no_args_is_help=True
)

STATUS_STYLES = {
    "validating": "yellow", "depends_ok": "green", "depends_failed": "red", "awaiting": "cyan",
    "in_progress": "cyan", "completed": "green", "partial": "magenta", "canceled": "dim",
}  # fmt: skip
PANEL_TIMEOUT_SEC = 5


@app.command()
def order(
    link: Annotated[str, typer.Option(help="the order's link, e.g. https://t.me/durov")],
    service_id: Annotated[int, typer.Option(min=1, help="the panel's service id")] = 1,
    quantity: Annotated[int, typer.Option(min=1)] = 100,
) -> None:
    """Place an order in the fake panel; print its id. poll_orders picks it up on its next run."""

    url, api_key = _fake_panel()
    try:
        response = httpx.post(
            f"{url}/orders",
            json={"service_id": service_id, "link": link, "quantity": quantity},
            headers={"Authorization": f"Bearer {api_key}"},
            timeout=PANEL_TIMEOUT_SEC,
        )
    except httpx.HTTPError as error:
        raise fail(f"the fake panel at {url} did not answer ({error}): is `tgops dev` running?", 1) from None
    if response.status_code != 201:
        raise fail(f"the fake panel refused the order: HTTP {response.status_code} {response.text[:200]}", 1)
    order_id = response.json()["id"]
    console.print(f"placed order {order_id}: {link} (service {service_id}, quantity {quantity})")
    print(order_id)


@app.command()
def cancel(order_id: Annotated[int, typer.Argument(help="the panel's order id")]) -> None:
    """The customer cancels an order in the fake panel; the next poll withdraws its queued tasks."""
    url, api_key = _fake_panel()
    try:
        response = httpx.post(
            f"{url}/orders/{order_id}/cancel",
            headers={"Authorization": f"Bearer {api_key}"},
            timeout=PANEL_TIMEOUT_SEC,
        )
    except httpx.HTTPError as error:
        raise fail(f"the fake panel at {url} did not answer ({error}): is `tgops dev` running?", 1) from None
    if response.status_code != 200:
        raise fail(f"the fake panel refused: HTTP {response.status_code} {response.text[:200]}", 1)
    console.print(f"order {order_id} canceled in the panel")


def _fake_panel() -> tuple[str, str]:
    state = read_dev_state(load_settings().data_dir)
    url, api_key = state.get("TGOPS_PANEL_BASE_URL"), state.get("TGOPS_PANEL_API_KEY")
    if not url:
        raise fail("no fake panel here: run `tgops dev` from this folder with TGOPS_PANEL_BASE_URL unset")
    return url, api_key


@app.command("orders")
def list_orders(
    limit: Annotated[int, typer.Option(min=1, help="newest orders to show")] = 20,
    as_json: Annotated[bool, typer.Option("--json", help="one JSON list on stdout, for scripts")] = False,
) -> None:
    """Our orders (provider_orders), newest first: status, the reason of a failure, and what was found."""
    rows = _recent_orders(limit)
    if as_json:
        print(json.dumps(rows, default=str))
        return
    table = Table("order", "service", "link", "status", "remains", "reason", "found", "validated")
    for row in rows:
        style = STATUS_STYLES.get(row["status"], "")
        table.add_row(
            str(row["remote_order_id"]),
            str(row["remote_service_id"]),
            row["link"],
            f"[{style}]{row['status']}[/{style}]" if style else row["status"],
            f"{row['remains']}/{row['quantity']}",
            row["reason"] or "",
            _found(row),
            f"{row['validated_at']:%H:%M:%S}" if row["validated_at"] else "",
        )
    Console(highlight=False, soft_wrap=True).print(table)


def _found(row: dict[str, Any]) -> str:
    """What the inspection found, e.g. `channel «News», 1234 members`."""
    parts = [row["chat_type"], row["title"] and f"«{row['title']}»"]
    described = " ".join(part for part in parts if part)
    if row["participants_count"] is not None:
        described += f", {row['participants_count']} members"
    return described


def _recent_orders(limit: int) -> list[dict[str, Any]]:
    from tgops.orders.timeline import list_orders

    return with_dev_database(lambda db: list_orders(db, limit=limit))


def with_dev_database(action: Callable[[Database], Awaitable[T]]) -> T:
    """Run `action` on TGOPS_DATABASE_URL, or on the embedded database of the `tgops dev` running here."""
    from tgops.db.database import Database

    settings = load_settings()
    if not settings.database_url:
        raise missing_setting("TGOPS_DATABASE_URL")

    async def run() -> T:
        db = await Database.from_settings(settings)
        try:
            return await action(db)
        finally:
            await db.close()

    with one_line_errors():
        return asyncio.run(run())
