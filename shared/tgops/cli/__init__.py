"""The `tgops` command."""

from __future__ import annotations

import logging

import typer

import tgops
from tgops.cli.apikey import app as apikey_app
from tgops.cli.orders import app as orders_app
from tgops.cli.panel import app as panel_app
from tgops.cli.provider import app as provider_app
from tgops.cli.support import console, load_settings, one_line_errors
from tgops.cli.tasks import app as tasks_app

app = typer.Typer(help="tgops: run, migrate and operate the Telegram backend.", no_args_is_help=True)
app.add_typer(apikey_app, name="apikey")
app.add_typer(tasks_app, name="tasks")
app.add_typer(panel_app, name="panel")
app.add_typer(orders_app, name="orders")
app.add_typer(provider_app, name="provider")


@app.command()
def version() -> None:
    """Print the tgops version."""
    print(tgops.__version__)


@app.command()
def migrate() -> None:
    """Apply pending database migrations to TGOPS_DATABASE_URL."""
    from tgops.db.migrate import apply_migrations

    settings = load_settings()
    if not settings.database_url:
        console.print(
            "[red]error:[/red] TGOPS_DATABASE_URL: not set (tgops dev migrates its embedded database itself)"
        )
        raise typer.Exit(2)
    with one_line_errors():
        applied = apply_migrations(settings.database_url)
    print(f"applied: {', '.join(applied)}" if applied else "up to date")


@app.command()
def dev() -> None:
    """Run the whole system locally: embedded Postgres, Redis and SQS unless URLs are configured."""
    from tgops.local.dev import run_dev

    settings = load_settings()
    logging.basicConfig(level=settings.log_level, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    logging.getLogger("werkzeug").setLevel(logging.WARNING)  # moto's server logs every SQS call
    logging.getLogger("httpx").setLevel(logging.WARNING)  # logs every request: each panel poll
    with one_line_errors():
        run_dev()


if __name__ == "__main__":
    app()
