"""The `tgops` command."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager

import typer
from rich.console import Console

import tgops
from tgops.api.api_key_commands import app as apikey_app
from tgops.config import Settings, SettingsError, get_settings
from tgops.local.panel_commands import app as panel_app
from tgops.provider.cli import app as tasks_app

app = typer.Typer(help="tgops: run, migrate and operate the Telegram backend.", no_args_is_help=True)
app.add_typer(apikey_app, name="apikey")
app.add_typer(tasks_app, name="tasks")
app.add_typer(panel_app, name="panel")
console = Console(stderr=True, highlight=False, soft_wrap=True)


@contextmanager
def one_line_errors() -> Iterator[None]:
    """Start-up problems end the command with one line naming the setting, not a traceback."""
    from tgops.db.errors import DatabaseError
    from tgops.local.dev import StartupError
    from tgops.local.services import LocalServiceError

    try:
        yield
    except (SettingsError, StartupError, LocalServiceError, DatabaseError) as error:
        console.print(f"[red]error:[/red] {error}")
        raise typer.Exit(2) from None


def load_settings() -> Settings:
    with one_line_errors():
        return get_settings()


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
        console.print("[red]error:[/red] TGOPS_DATABASE_URL: not set (tgops dev migrates its embedded database itself)")
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
