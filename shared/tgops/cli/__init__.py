"""The `tgops` command: one typer app, one module per command group."""

from __future__ import annotations

import typer

from tgops.cli.accounts import app as accounts_app
from tgops.cli.apikey import app as apikey_app
from tgops.cli.bot import app as bot_app
from tgops.cli.db import app as db_app
from tgops.cli.dev import app as dev_app
from tgops.cli.orders import app as orders_app
from tgops.cli.outbox import app as outbox_app
from tgops.cli.panel import app as panel_app
from tgops.cli.provider import app as provider_app
from tgops.cli.setup import app as setup_app
from tgops.cli.tasks import app as tasks_app
from tgops.cli.version import app as version_app

app = typer.Typer(help="tgops: run, migrate and operate the Telegram backend.", no_args_is_help=True)
app.add_typer(dev_app, name="dev")
app.add_typer(db_app)  # tgops migrate
app.add_typer(version_app)  # tgops version
app.add_typer(apikey_app, name="apikey")
app.add_typer(tasks_app, name="tasks")
app.add_typer(panel_app, name="panel")
app.add_typer(bot_app, name="bot")
app.add_typer(outbox_app, name="outbox")
app.add_typer(accounts_app, name="accounts")
app.add_typer(setup_app, name="setup")
app.add_typer(orders_app, name="orders")
app.add_typer(provider_app, name="provider")


@app.callback()
def configure() -> None:
    """Every command logs through tgops.logs (bad settings are the command's to report)."""
    from tgops.config import SettingsError, get_settings
    from tgops.logs import configure_logging

    try:
        settings = get_settings()
    except SettingsError:
        settings = None
    configure_logging(settings, service="cli")


if __name__ == "__main__":
    app()
