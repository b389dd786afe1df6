"""`tgops dev`: the whole system on this machine (tgops.local.dev); `tgops dev tokens`: its local secrets."""

from __future__ import annotations

import os
from typing import Annotated

import typer

from tgops.cli.support import one_line_errors
from tgops.config import get_settings

app = typer.Typer(invoke_without_command=True)


@app.callback()
def dev(
    ctx: typer.Context,
    port: Annotated[
        int | None, typer.Option(min=1, max=65535, help="the API's port (default: TGOPS_API_PORT, 8000)")
    ] = None,
) -> None:
    """Run the whole system locally: embedded Postgres, Redis and SQS unless URLs are configured.

    One per data directory (TGOPS_DATA_DIR, default .tgops): a second one there refuses to start.

    Ctrl-C stops everything; the data stays for the next run.
    """
    if ctx.invoked_subcommand is not None:
        return
    from tgops.local.dev import run_dev

    if port is not None:
        os.environ["TGOPS_API_PORT"] = str(port)
    get_settings.cache_clear()
    with (
        one_line_errors()
    ):  # a bad setting, a running tgops dev here, a taken port: one line, nothing started
        run_dev()
