"""`tgops apikey create|list|revoke`: operators' keys for the public API.

`create` prints the key once, alone on stdout (so it can be piped into a secret store); the
database keeps only its hash, so it can never be shown again.
"""

from __future__ import annotations

from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

from tgops.api import api_keys
from tgops.cli.support import console, fail, run_with_database

app = typer.Typer(help="Create, list and revoke API keys for the public API.", no_args_is_help=True)


@app.command()
def create(
    name: Annotated[str, typer.Argument(help="who or what uses the key, e.g. 'ops-dashboard'")],
    rate_limit: Annotated[
        int | None,
        typer.Option(min=1, help="requests per window for this key (default: TGOPS_API_KEY_RATE_LIMIT)"),
    ] = None,
) -> None:
    """Create a key and print it once."""
    if not name.strip():
        raise fail("NAME must not be empty")
    created = run_with_database(lambda db: api_keys.create_api_key(db, name.strip(), rate_limit))
    console.print(f"created API key {created.record.id} ({created.record.name}); it is shown only now:")
    print(created.key)


@app.command("list")
def list_keys() -> None:
    """List the keys (prefix, limits, last use, revocation); never the keys themselves."""
    records = run_with_database(api_keys.list_api_keys)
    table = Table("id", "name", "prefix", "rate limit", "created", "last used", "revoked")
    for record in records:
        table.add_row(
            str(record.id),
            record.name,
            record.key_prefix + "…",
            str(record.rate_limit_per_window or "default"),
            f"{record.created_at:%Y-%m-%d %H:%M}",
            f"{record.last_used_at:%Y-%m-%d %H:%M}" if record.last_used_at else "never",
            f"{record.revoked_at:%Y-%m-%d %H:%M}" if record.revoked_at else "",
        )
    Console(highlight=False, soft_wrap=True).print(table)


@app.command()
def revoke(key_id: Annotated[int, typer.Argument(help="the key's id, from `tgops apikey list`")]) -> None:
    """Revoke a key: requests with it are refused from now on."""
    record = run_with_database(lambda db: api_keys.revoke_api_key(db, key_id))
    if record is None:
        raise fail(f"no API key with id {key_id}", 1)
    console.print(f"revoked API key {record.id} ({record.name})")
