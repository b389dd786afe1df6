"""`tgops provider simulate`: a provider that pulls tasks from the running tgops and reports them done."""

from __future__ import annotations

import asyncio
import logging
import signal
from typing import Annotated

import typer

from tgops.cli.support import console, load_settings

app = typer.Typer(help="Providers: simulate one against the running tgops.", no_args_is_help=True)


@app.command()
def simulate(
    api_url: Annotated[
        str | None, typer.Option(help="the tgops API; default http://TGOPS_API_HOST:TGOPS_API_PORT")
    ] = None,
    accounts: Annotated[
        int, typer.Option(min=1, help="accounts it syncs (one task per account and link)")
    ] = 20,
    period: Annotated[float, typer.Option(min=0.1, help="seconds between pulls when there was nothing")] = 2,
    fail_with: Annotated[
        str | None, typer.Option(help="report every task failed with this error, e.g. CHANNEL_PRIVATE")
    ] = None,
    once: Annotated[bool, typer.Option(help="sync, pull and report once, then exit")] = False,
) -> None:
    """Sync accounts, then pull tasks and report each done, with TGOPS_PROVIDER_TOKEN, until Ctrl-C.

    Run it from the folder of `tgops dev`, with the same TGOPS_PROVIDER_TOKEN and TGOPS_API_PORT."""
    from tgops.provider.simulated import SimulatedProvider

    settings = load_settings()
    logging.basicConfig(level=settings.log_level, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    logging.getLogger("httpx").setLevel(logging.WARNING)
    url = api_url or f"http://{settings.api_host}:{settings.api_port}"
    token = _provider_token(settings)

    async def main() -> dict[str, int]:
        async with SimulatedProvider(url, token, accounts=accounts, fail_with=fail_with) as provider:
            if once:
                await provider.sync_accounts()
                await provider.work_once()
                return provider.reported
            stop = asyncio.Event()
            loop = asyncio.get_running_loop()
            for sig in (signal.SIGINT, signal.SIGTERM):
                loop.add_signal_handler(sig, stop.set)
            console.print(f"simulated provider: {accounts} accounts, pulling from {url} (Ctrl-C stops)")
            await provider.run(stop, period)
            return provider.reported

    try:
        reported = asyncio.run(main())
    except Exception as error:  # noqa: BLE001 -- one line naming what failed, not a traceback
        console.print(f"[red]error:[/red] the simulated provider stopped: {type(error).__name__}: {error}")
        raise typer.Exit(1) from None
    console.print(f"reported: {reported}")


def _provider_token(settings) -> str:
    """TGOPS_PROVIDER_TOKEN, else the one the `tgops dev` running here made for itself."""
    from tgops.config import PLACEHOLDER
    from tgops.local.dev_state import read_dev_state

    token = settings.provider_token.get_secret_value()
    if token in ("", PLACEHOLDER):
        token = read_dev_state(settings.data_dir).get("TGOPS_PROVIDER_TOKEN", "")
    if token in ("", PLACEHOLDER):
        console.print(
            "[red]error:[/red] TGOPS_PROVIDER_TOKEN: not set; set the same one for `tgops dev` and this command"
        )
        raise typer.Exit(2)
    return token
