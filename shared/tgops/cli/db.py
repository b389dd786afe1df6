"""`tgops migrate`: apply the pending migrations to a configured database."""

from __future__ import annotations

import typer

from tgops.cli.support import fail, load_settings, one_line_errors

app = typer.Typer()


@app.command()
def migrate() -> None:
    """Apply pending database migrations to TGOPS_DATABASE_URL."""
    from tgops.db.migrate import apply_migrations

    settings = load_settings()
    if not settings.database_url:
        raise fail("TGOPS_DATABASE_URL: not set (tgops dev migrates its embedded database itself)")
    with one_line_errors():
        applied = apply_migrations(settings.database_url)
    print(f"applied: {', '.join(applied)}" if applied else "up to date")
