"""`tgops dev`: the whole system on this machine (tgops.local.dev)."""

from __future__ import annotations

import typer

from tgops.cli.support import load_settings, one_line_errors

app = typer.Typer(invoke_without_command=True)


@app.callback()
def dev(ctx: typer.Context) -> None:
    """Run the whole system locally: embedded Postgres, Redis and SQS unless URLs are configured."""
    if ctx.invoked_subcommand is not None:
        return
    from tgops.local.dev import run_dev

    load_settings()
    with one_line_errors():
        run_dev()
