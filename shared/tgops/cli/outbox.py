"""`tgops outbox`: the Bot API calls recorded instead of sent while no bot token is configured.

Beside a running `tgops dev` it reads that stack's database (found through `.tgops/dev.json`).
"""

from __future__ import annotations

import asyncio
import json
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.table import Table

from tgops.cli.support import console, load_settings, one_line_errors
from tgops.local.dev_state import read_dev_state

app = typer.Typer(help="The dry-run outbox: Bot API calls recorded while no bot token is set.")

PARAMS_SHOWN = 120  # characters of each call's parameters in the table


@app.callback(invoke_without_command=True)
def outbox(
    method: Annotated[str | None, typer.Option(help="only this Bot API method, e.g. sendMessage")] = None,
    limit: Annotated[int, typer.Option(min=1, max=10_000, help="how many, latest first")] = 50,
) -> None:
    """List the latest recorded calls, latest first."""
    rows = _recorded(method, limit)
    table = Table("id", "at", "method", "chat", "parameters")
    for row in rows:
        params = json.dumps(row["params"], ensure_ascii=False)
        table.add_row(
            str(row["id"]),
            f"{row['created_at']:%Y-%m-%d %H:%M:%S}",
            row["method"],
            str(row["chat_id"] if row["chat_id"] is not None else ""),
            params if len(params) <= PARAMS_SHOWN else params[: PARAMS_SHOWN - 1] + "…",
        )
    Console(highlight=False, soft_wrap=True, width=200).print(table)
    if not rows:
        console.print("the outbox is empty")


def _recorded(method: str | None, limit: int) -> list[dict[str, Any]]:
    from tgops.db.database import Database
    from tgops.telegram.bot_client import list_outbox

    settings = load_settings()
    url = settings.database_url or read_dev_state(settings.data_dir).get("TGOPS_DATABASE_URL")
    if not url:
        console.print("[red]error:[/red] TGOPS_DATABASE_URL: not set, and no `tgops dev` runs in this folder")
        raise typer.Exit(2)

    async def fetch() -> list[dict[str, Any]]:
        db = await Database.from_settings(settings.model_copy(update={"database_url": url}))
        try:
            return await list_outbox(db, method=method, limit=limit)
        finally:
            await db.close()

    with one_line_errors():
        return asyncio.run(fetch())
