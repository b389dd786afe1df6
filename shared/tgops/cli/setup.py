"""`tgops setup dispatch|status`: the account setup pipeline by hand (what the dispatch_setup schedule does)."""

from __future__ import annotations

import json

import typer

from tgops.cli.accounts import run_on_runtime

app = typer.Typer(help="Account setup: dispatch the due tasks, count tasks per status.", no_args_is_help=True)


@app.command()
def dispatch() -> None:
    """Upsert every action account's setup tasks and queue the due ones (needs TGOPS_SETUP_ENABLED=true)."""
    from tgops.accounts.dispatch import run

    print(json.dumps(run_on_runtime(run)))


@app.command()
def status() -> None:
    """Setup tasks per status."""

    async def counts(runtime) -> dict[str, int]:
        rows = await (await runtime.database()).fetch_all("setup_status_counts")
        return {row["status"]: row["count"] for row in rows}

    print(json.dumps(run_on_runtime(counts)))
