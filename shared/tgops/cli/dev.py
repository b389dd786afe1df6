"""`tgops dev`: the whole system on this machine (tgops.local.dev); `tgops dev tokens`: its local secrets."""

from __future__ import annotations

import os
from typing import Annotated

import typer

from tgops.cli.support import console, fail, one_line_errors
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


@app.command()
def tokens() -> None:
    """Print the local provider token, admin token and webhook secret as `export` lines.

    `tgops dev` generates them once and keeps them in <data_dir>/dev-tokens.json;
    `eval "$(tgops dev tokens)"` puts them in this shell.
    """
    from tgops.local.dev_state import LOCAL_TOKENS, TOKENS_FILE, read_local_tokens

    with one_line_errors():
        data_dir = get_settings().data_dir.resolve()
    kept = read_local_tokens(data_dir)
    if not kept:
        raise fail(f"no local tokens in {data_dir} yet: `tgops dev` generates them on its first start", 1)
    console.print(f"kept in {data_dir / TOKENS_FILE}; each is sent as:")
    for name, value in kept.items():
        console.print(f"  {name}: {LOCAL_TOKENS[name]}")
        if os.environ.get(name, value) != value:
            console.print(
                f"  [yellow]{name} is set in this environment to another value: that one is used[/yellow]"
            )
        print(f"export {name}={value}")
