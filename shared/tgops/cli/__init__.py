"""The `tgops` command."""

from __future__ import annotations

import typer

import tgops
from tgops.cli.apikey import app as apikey_app
from tgops.cli.panel import app as panel_app
from tgops.cli.support import console, load_settings, one_line_errors
from tgops.cli.tasks import app as tasks_app

app = typer.Typer(help="tgops: run, migrate and operate the Telegram backend.", no_args_is_help=True)
app.add_typer(apikey_app, name="apikey")
app.add_typer(tasks_app, name="tasks")
app.add_typer(panel_app, name="panel")


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

    load_settings()
    with one_line_errors():
        run_dev()


if __name__ == "__main__":
    app()
